/**
 * A DKG among in-process participants with a perfect relay, for the threshold tests and the
 * benchmark's in-process figures: the pure protocol (src/threshold/) with no network at all.
 */
import { randomBytes } from "node:crypto";
import {
  generateIdentity,
  type IdentityKeyPair,
  rawPublicKey,
} from "../../src/crypto/signature.js";
import { DkgParticipant, type ThresholdShare } from "../../src/threshold/dkg.js";
import type { SuiteName } from "../../src/threshold/suites.js";
import type { DkgSessionParams, SealedShare } from "../../src/threshold/transcript.js";

export interface LocalDkg {
  params: DkgSessionParams;
  keys: IdentityKeyPair[];
  participants: DkgParticipant[];
}

export function localSession(
  suite: SuiteName,
  t: number,
  n: number,
  keys?: IdentityKeyPair[],
): LocalDkg {
  const ids = keys ?? Array.from({ length: n }, () => generateIdentity());
  const params: DkgSessionParams = {
    suite,
    t,
    n,
    serverFingerprint: "SHA256:test",
    nonce: new Uint8Array(randomBytes(32)),
    identities: ids.map((k) => rawPublicKey(k.publicKey)),
  };
  const participants = ids.map(
    (k, i) =>
      new DkgParticipant({
        params,
        index: i + 1,
        identityKey: k.privateKey,
        random: (b) => new Uint8Array(randomBytes(b)),
      }),
  );
  return { params, keys: ids, participants };
}

/** Runs all rounds with an honest relay; returns every participant's share and all sealed shares. */
export function runLocalDkg(dkg: LocalDkg): { shares: ThresholdShare[]; sealed: SealedShare[] } {
  const packages = dkg.participants.map((p) => p.round1);
  const sealed = dkg.participants.flatMap((p) => p.round2(packages));
  const confirmations = dkg.participants.map((p) =>
    p.round3(sealed.filter((s) => s.to === p.index)),
  );
  const certificate = confirmations.map((c) => c.signature);
  return { shares: dkg.participants.map((p) => p.finish(certificate)), sealed };
}
