/**
 * Rebuilding a lost share from the identity key alone (ChillDKG's recovery, docs/PROTOCOL.md
 * §16.5). The recovery data is public — the session parameters, every round-1 package, the shares
 * sealed to this participant, and the certificate — and the server keeps it for every key. Since
 * a participant's polynomial is drawn from HMAC_DRBG(identity seed, session id) (dkg.ts), its
 * identity key re-creates its own round-1 package (checked byte for byte against the signed one),
 * opens the sealed shares (share-box.ts), and noble's round 3 yields the same signing share.
 */
import type { KeyObject } from "node:crypto";
import { DkeygenError, ErrorCodes } from "../errors.js";
import {
  blameShare,
  checkCertificate,
  checkPackages,
  checkSessionParams,
  groupKeyOf,
  openIncoming,
  polynomialRng,
  type ThresholdShare,
  toNoble,
} from "./dkg.js";
import { encryptionKeyPair, identitySeed } from "./share-box.js";
import { suiteOf } from "./suites.js";
import {
  type DkgSessionParams,
  identifiersOf,
  publicPackageHash,
  type Round1Package,
  type SealedShare,
  sessionIdOf,
  transcriptHash,
} from "./transcript.js";

export interface RecoveryData {
  params: DkgSessionParams;
  packages: Round1Package[];
  /** The shares sealed to the recovering participant (or all of them: the others are skipped). */
  shares: SealedShare[];
  certificate: Uint8Array[];
}

export function recoverShare(
  data: RecoveryData,
  index: number,
  identityKey: KeyObject,
): ThresholdShare {
  const { params } = data;
  checkSessionParams(params);
  const suite = suiteOf(params.suite);
  const sessionId = sessionIdOf(params);
  const identifiers = identifiersOf(params.suite, sessionId, params.n);
  const packages = checkPackages(params, sessionId, data.packages);
  const own = packages[index - 1];
  if (own === undefined) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "This participant is not in the session.");
  }
  const seed = identitySeed(identityKey);
  const encryption = encryptionKeyPair(seed);
  try {
    const { public: pub, secret } = suite.frost.DKG.round1(
      identifiers[index - 1]!,
      { min: params.t, max: params.n },
      undefined,
      polynomialRng(seed, sessionId),
    );
    const same =
      Buffer.from(encryption.public).equals(Buffer.from(own.encryptionKey)) &&
      pub.commitment.every((c, i) => Buffer.from(c).equals(Buffer.from(own.commitment[i]!))) &&
      Buffer.from(pub.proofOfKnowledge).equals(Buffer.from(own.proof));
    if (!same) {
      suite.frost.DKG.clean(secret);
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "This identity key did not make participant " +
          `${index}'s round-1 package: it cannot recover that share.`,
      );
    }
    const others = packages.filter((p) => p.index !== index);
    suite.frost.DKG.round2(
      secret,
      others.map((p) => toNoble(identifiers, p)),
    );
    const incoming = data.shares.filter((s) => s.to === index);
    const opened = openIncoming(params, sessionId, packages, index, encryption.secret, incoming);
    let key: ReturnType<typeof suite.frost.DKG.round3>;
    try {
      key = suite.frost.DKG.round3(
        secret,
        others.map((p) => toNoble(identifiers, p)),
        opened.map((s) => ({ identifier: identifiers[s.from - 1]!, signingShare: s.share })),
      );
    } catch {
      throw blameShare(params, sessionId, identifiers, packages, index, encryption.secret, opened);
    } finally {
      for (const s of opened) s.share.fill(0);
    }
    const transcript = transcriptHash(sessionId, packages);
    checkCertificate(
      params,
      sessionId,
      transcript,
      publicPackageHash(key.public, identifiers),
      data.certificate,
    );
    const { groupPublicKey, outputKey } = groupKeyOf(params.suite, key.public, packages);
    return {
      suite: params.suite,
      t: params.t,
      n: params.n,
      sessionId,
      index,
      identifiers,
      identities: params.identities,
      public: key.public,
      signingShare: key.secret.signingShare,
      groupPublicKey,
      ...(outputKey === undefined ? {} : { outputKey }),
      transcript,
      certificate: data.certificate,
    };
  } finally {
    seed.fill(0);
    encryption.secret.fill(0);
  }
}
