/**
 * A DKG among in-process participants with a scriptable, possibly malicious relay: the
 * coordinator's view of every message can be rewritten per recipient, and a participant's
 * identity key can be used to sign whatever a malicious participant would send. Each
 * participant's outcome (a finished share, or the error that stopped it) is recorded, never
 * thrown, so a test can check who was blamed and that nobody kept a key.
 */
import { randomBytes } from "node:crypto";
import type { DKG_Secret } from "@noble/curves/abstract/frost.js";
import {
  generateIdentity,
  type IdentityKeyPair,
  rawPublicKey,
  signMessage,
} from "../../src/crypto/signature.js";
import {
  type Confirmation,
  DkgParticipant,
  polynomialRng,
  type ThresholdShare,
} from "../../src/threshold/dkg.js";
import {
  encryptionKeyPair,
  identitySeed,
  openShare,
  pairwiseKey,
  sealShare,
} from "../../src/threshold/share-box.js";
import { type SuiteName, suiteOf } from "../../src/threshold/suites.js";
import {
  type DkgSessionParams,
  type Round1Package,
  round1SignedData,
  type SealedShare,
  shareSignedData,
} from "../../src/threshold/transcript.js";

export interface AdversarialSession {
  params: DkgSessionParams;
  keys: IdentityKeyPair[];
  participants: DkgParticipant[];
  /** Copies of each participant's ephemeral X25519 secret (index i at position i - 1). */
  ephemeralSecrets: Uint8Array[];
}

export function adversarialSession(
  suite: SuiteName,
  t: number,
  n: number,
  keys?: IdentityKeyPair[],
): AdversarialSession {
  const ids = keys ?? Array.from({ length: n }, () => generateIdentity());
  const params: DkgSessionParams = {
    suite,
    t,
    n,
    serverFingerprint: "SHA256:test",
    nonce: new Uint8Array(randomBytes(32)),
    identities: ids.map((k) => rawPublicKey(k.publicKey)),
  };
  const ephemeralSecrets: Uint8Array[] = [];
  const participants = ids.map(
    (k, i) =>
      new DkgParticipant({
        params,
        index: i + 1,
        identityKey: k.privateKey,
        random: (b) => {
          const r = new Uint8Array(randomBytes(b));
          ephemeralSecrets[i] = r.slice(); // the participant zeroes its own copy on abort
          return r;
        },
      }),
  );
  return { params, keys: ids, participants, ephemeralSecrets };
}

/** The coordinator's rewrites: what participant `to` is shown at each step. */
export interface Relay {
  round1?: (packages: Round1Package[], to: number) => Round1Package[];
  round2?: (incoming: SealedShare[], to: number) => SealedShare[];
  certificate?: (certificate: Uint8Array[], to: number) => Uint8Array[];
}

export interface Outcome {
  index: number;
  /** The step that threw, or "done". */
  stage: "round2" | "round3" | "finish" | "done";
  share?: ThresholdShare;
  error?: unknown;
  confirmation?: Confirmation;
}

export interface AdversarialRun {
  outcomes: Outcome[];
  packages: Round1Package[];
  /** Every sealed share as the participants produced them (before the relay's rewrites). */
  sealed: SealedShare[];
}

/**
 * Runs every round; participants that fail drop out. A participant that did not confirm has an
 * empty slot in the certificate the others are shown (before the relay's certificate rewrite).
 * `rewriteSealed` lets a malicious sender replace what it produced, before the relay sees it.
 */
export function runAdversarial(
  s: AdversarialSession,
  relay: Relay = {},
  rewriteSealed: (sealed: SealedShare[]) => SealedShare[] = (x) => x,
): AdversarialRun {
  const packages = s.participants.map((p) => p.round1);
  const outcomes: Outcome[] = s.participants.map((p) => ({ index: p.index, stage: "done" }));
  const alive = (o: Outcome) => o.stage === "done";
  let sealed: SealedShare[] = [];
  for (const p of s.participants) {
    const o = outcomes[p.index - 1]!;
    try {
      const shown = relay.round1 ? relay.round1(packages.slice(), p.index) : packages;
      sealed.push(...p.round2(shown));
    } catch (error) {
      Object.assign(o, { stage: "round2", error });
    }
  }
  sealed = rewriteSealed(sealed);
  for (const p of s.participants) {
    const o = outcomes[p.index - 1]!;
    if (!alive(o)) continue;
    try {
      const mine = sealed.filter((x) => x.to === p.index);
      o.confirmation = p.round3(relay.round2 ? relay.round2(mine, p.index) : mine);
    } catch (error) {
      Object.assign(o, { stage: "round3", error });
    }
  }
  const certificate = outcomes.map((o) => o.confirmation?.signature ?? new Uint8Array(0));
  for (const p of s.participants) {
    const o = outcomes[p.index - 1]!;
    if (!alive(o)) continue;
    try {
      o.share = p.finish(
        relay.certificate ? relay.certificate(certificate.slice(), p.index) : certificate,
      );
    } catch (error) {
      Object.assign(o, { stage: "finish", error });
    }
  }
  return { outcomes, packages, sealed };
}

/** A round-1 package re-signed by its (malicious) sender's identity key after a change. */
export function resign(s: AdversarialSession, p: Omit<Round1Package, "signature">): Round1Package {
  const sessionId = s.participants[0]!.sessionId;
  const unsigned = {
    index: p.index,
    commitment: p.commitment,
    proof: p.proof,
    encryptionKey: p.encryptionKey,
    ephemeralKey: p.ephemeralKey,
  };
  return {
    ...unsigned,
    signature: signMessage(s.keys[p.index - 1]!.privateKey, round1SignedData(sessionId, unsigned)),
  };
}

/** The key K of the share from `from` to `to`, as the sender computes it. */
export function senderPairwiseKey(s: AdversarialSession, from: number, to: number): Uint8Array {
  const sessionId = s.participants[0]!.sessionId;
  const sender = s.participants[from - 1]!.round1;
  const recipient = s.participants[to - 1]!.round1;
  return pairwiseKey(
    s.ephemeralSecrets[from - 1]!,
    recipient.encryptionKey,
    sessionId,
    sender.ephemeralKey,
    recipient.encryptionKey,
    from,
    to,
  );
}

/** The same K, as the recipient computes it from its identity key alone. */
export function recipientPairwiseKey(s: AdversarialSession, from: number, to: number): Uint8Array {
  const sessionId = s.participants[0]!.sessionId;
  const sender = s.participants[from - 1]!.round1;
  const recipient = s.participants[to - 1]!.round1;
  const seed = identitySeed(s.keys[to - 1]!.privateKey);
  const { secret } = encryptionKeyPair(seed);
  return pairwiseKey(
    secret,
    sender.ephemeralKey,
    sessionId,
    sender.ephemeralKey,
    recipient.encryptionKey,
    from,
    to,
  );
}

/** A share sealed under `key` and signed by the sender's identity key (a malicious sender's). */
export function sealAndSign(
  s: AdversarialSession,
  from: number,
  to: number,
  share: Uint8Array,
  key: Uint8Array,
): SealedShare {
  const sessionId = s.participants[0]!.sessionId;
  const ciphertext = sealShare(key, share, sessionId, from, to);
  return {
    from,
    to,
    ciphertext,
    signature: signMessage(
      s.keys[from - 1]!.privateKey,
      shareSignedData(sessionId, from, to, ciphertext),
    ),
  };
}

/** Opens an honest sealed share with the pairwise key (what the recipient would see). */
export function openSealed(s: AdversarialSession, sealed: SealedShare): Uint8Array {
  const sessionId = s.participants[0]!.sessionId;
  const key = senderPairwiseKey(s, sealed.from, sealed.to);
  const share = openShare(key, sealed.ciphertext, sessionId, sealed.from, sealed.to);
  if (share === undefined) throw new Error("openSealed: the share does not open");
  return share;
}

/** `share` + 1 in the suite's scalar field: a share that fails the sender's commitment. */
export function perturbShare(suite: SuiteName, share: Uint8Array): Uint8Array {
  const Fn = suiteOf(suite).frost.utils.Fn;
  return Fn.toBytes(Fn.add(Fn.fromBytes(share), 1n));
}

/**
 * A second, different round-1 package for participant `index` (an equivocator's), with the
 * noble secret that goes with it, signed by its identity key.
 */
export function equivocatingPackage(
  s: AdversarialSession,
  index: number,
): { pkg: Round1Package; secret: DKG_Secret } {
  const p = s.participants[index - 1]!;
  const { frost } = p.suite;
  const { public: pub, secret } = frost.DKG.round1(
    p.identifiers[index - 1]!,
    { min: s.params.t, max: s.params.n },
    undefined,
    polynomialRng(new Uint8Array(randomBytes(32)), p.sessionId),
  );
  const own = p.round1;
  const pkg = resign(s, {
    index,
    commitment: pub.commitment,
    proof: pub.proofOfKnowledge,
    encryptionKey: own.encryptionKey,
    ephemeralKey: own.ephemeralKey,
  });
  return { pkg, secret };
}

export const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
export const b64u = (b: Uint8Array) => Buffer.from(b).toString("base64url");
export const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/**
 * Another participant object for `index` in the same session (same identity key, so the same
 * polynomial; a new ephemeral key): lets one session test several ways of misleading `index`.
 */
export function freshParticipant(s: AdversarialSession, index: number): DkgParticipant {
  return new DkgParticipant({
    params: s.params,
    index,
    identityKey: s.keys[index - 1]!.privateKey,
    random: (b) => new Uint8Array(randomBytes(b)),
  });
}
