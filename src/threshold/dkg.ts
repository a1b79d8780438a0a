/**
 * One participant of a distributed key generation, as a pure state machine over noble's three
 * FROST DKG calls (docs/PROTOCOL.md §16). What dkeygen adds to noble — which assumes honest
 * plaintext channels between all participants — is what an untrusted coordinator requires:
 *
 *   start    noble round 1 with a polynomial drawn from HMAC_DRBG(identity seed, session id),
 *            so the identity key alone rebuilds the share (recovery.ts); a fresh ephemeral
 *            X25519 key; the package signed by the identity key
 *   round2   every package signed by its sender and well-formed (else the sender, or the
 *            coordinator that relayed it, is named); noble round 2 checks the proofs (a bad one
 *            is located and its sender named); each outgoing share sealed to its recipient
 *            (share-box.ts) and signed
 *   round3   every incoming share signed by its sender, opened, and checked against the sender's
 *            commitment (a share that fails is a complaint that reveals that one share's key);
 *            noble round 3 derives the signing share, verifying shares and group key; the
 *            participant signs the transcript hash (its part of the success certificate)
 *   finish   the certificate: all n signatures over the same transcript and group key. Only
 *            then is the share valid; anything less leaves nothing usable.
 *
 * A fault throws DkgFault naming the culprit (a participant index, or "coordinator").
 */
import type { KeyObject } from "node:crypto";
import type { DKG_Round1, DKG_Secret, FrostPublic, Key } from "@noble/curves/abstract/frost.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { lengthPrefixed } from "../crypto/canonical.js";
import {
  isStrongEd25519Key,
  publicKeyFromRaw,
  signMessage,
  verifySignature,
} from "../crypto/signature.js";
import { HmacDrbg } from "../derive/drbg.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import {
  encryptionKeyPair,
  ephemeralKeyPair,
  identitySeed,
  openShare,
  pairwiseKey,
  sealShare,
} from "./share-box.js";
import { checkThreshold, type Suite, suiteOf } from "./suites.js";
import { bip86OutputKey, xOnly } from "./taproot.js";
import {
  confirmSignedData,
  type DkgSessionParams,
  identifiersOf,
  publicPackageHash,
  type Round1Package,
  round1SignedData,
  type SealedShare,
  sessionIdOf,
  shareSignedData,
  transcriptHash,
} from "./transcript.js";

export type FaultKind =
  | "signature"
  | "proof"
  | "commitment"
  | "encryption-key"
  | "share"
  | "equivocation"
  | "certificate"
  | "missing"
  | "replay"
  | "parameters"
  | "protocol";

/** The evidence of a share complaint: the one share's key, so anyone can open it. */
export interface ShareEvidence {
  from: number;
  to: number;
  key: Uint8Array;
}

/** A DKG that cannot go on, and whom to blame for it. */
export class DkgFault extends DkeygenError {
  readonly culpritIndex: number | "coordinator";
  readonly kind: FaultKind;
  readonly evidence: ShareEvidence | undefined;

  constructor(
    culprit: number | "coordinator",
    kind: FaultKind,
    message: string,
    evidence?: ShareEvidence,
  ) {
    super(ErrorCodes.ROUND_ABORTED, message);
    this.name = "DkgFault";
    this.culpritIndex = culprit;
    this.kind = kind;
    this.evidence = evidence;
  }
}

/** What a participant keeps of a finished DKG (its share is the only secret). */
export interface ThresholdShare {
  suite: Suite["name"];
  t: number;
  n: number;
  sessionId: Uint8Array;
  index: number;
  identifiers: string[];
  identities: Uint8Array[];
  /** noble's public key package: commitments (group key first) and verifying shares. */
  public: FrostPublic;
  /** The signing share: secret. */
  signingShare: Uint8Array;
  /** The group key in the suite's standard encoding (groupKeyOf). */
  groupPublicKey: Uint8Array;
  /** secp256k1-tr: the BIP 86 output key signatures verify under. */
  outputKey?: Uint8Array;
  transcript: Uint8Array;
  /** All n confirmation signatures, in index order. */
  certificate: Uint8Array[];
}

/**
 * The group key in the suite's standard encoding: 32-byte x-only internal key (secp256k1-tr),
 * 32-byte Ed25519 key, 33-byte compressed P-256 key; and, for secp256k1-tr, the BIP 86 output key.
 */
export function groupKeyOf(
  suite: Suite["name"],
  pub: FrostPublic,
  packages: Pick<Round1Package, "commitment">[],
): { groupPublicKey: Uint8Array; outputKey?: Uint8Array } {
  const group = pub.commitments[0]!;
  if (suite !== "secp256k1-tr") return { groupPublicKey: group.slice() };
  const internal = internalKeyOf(packages);
  const outputKey = bip86OutputKey(internal);
  if (!Buffer.from(outputKey).equals(Buffer.from(xOnly(group)))) {
    throw new Error("groupKeyOf: noble's tweaked key is not the BIP 86 output key");
  }
  return { groupPublicKey: internal, outputKey };
}

/** secp256k1-tr: x(Σ constant-term commitments), the untweaked internal key. */
function internalKeyOf(packages: Pick<Round1Package, "commitment">[]): Uint8Array {
  const Point = secp256k1.Point;
  let sum = Point.ZERO;
  for (const p of packages) sum = sum.add(Point.fromBytes(p.commitment[0]!));
  return xOnly(sum.toBytes(true));
}

/** A participant's confirmation: its signature over the transcript and public package it derived. */
export interface Confirmation {
  transcript: Uint8Array;
  public: FrostPublic;
  signature: Uint8Array;
}

export interface ParticipantInit {
  params: DkgSessionParams;
  /** This participant's index (1..n) in params.identities. */
  index: number;
  identityKey: KeyObject;
  /** 32 random bytes for the ephemeral encryption key. */
  random: (bytes: number) => Uint8Array;
}

/** Checks the session parameters every party checks before acting on them. */
export function checkSessionParams(p: DkgSessionParams): void {
  suiteOf(p.suite);
  checkThreshold(p.t, p.n);
  if (p.identities.length !== p.n) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A DKG session lists n identities.");
  }
  const seen = new Set(p.identities.map((k) => Buffer.from(k).toString("hex")));
  if (seen.size !== p.n) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A DKG session lists an identity twice.");
  }
  if (!p.identities.every(isStrongEd25519Key)) {
    // A weak key (small order) lets its holder disown what it signed: no evidence, no session.
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A DKG session lists a weak identity key.");
  }
  if (p.nonce.length !== 32) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A DKG session nonce is 32 bytes.");
  }
}

/** The polynomial's deterministic generator: HMAC_DRBG(identity seed, session id). */
export function polynomialRng(seed: Uint8Array, sessionId: Uint8Array) {
  const drbg = new HmacDrbg(seed, sessionId, lengthPrefixed("dkeygen/v1/dkg-polynomial"));
  return (bytes = 32) => new Uint8Array(drbg.generate(bytes));
}

export class DkgParticipant {
  readonly params: DkgSessionParams;
  readonly index: number;
  readonly sessionId: Uint8Array;
  readonly identifiers: string[];
  readonly suite: Suite;
  readonly #identityKey: KeyObject;
  readonly #encryptionSecret: Uint8Array;
  readonly #ephemeralSecret: Uint8Array;
  #dkg: DKG_Secret | undefined;
  readonly #round1: Round1Package;
  #packages: Round1Package[] | undefined;
  #result: Omit<ThresholdShare, "certificate"> | undefined;
  #step: 1 | 2 | 3 | 4 = 1;

  constructor(init: ParticipantInit) {
    const { params, index } = init;
    checkSessionParams(params);
    if (!Number.isInteger(index) || index < 1 || index > params.n) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, "This participant is not in the session.");
    }
    this.params = params;
    this.index = index;
    this.suite = suiteOf(params.suite);
    this.sessionId = sessionIdOf(params);
    this.identifiers = identifiersOf(params.suite, this.sessionId, params.n);
    this.#identityKey = init.identityKey;
    const seed = identitySeed(init.identityKey);
    const encryption = encryptionKeyPair(seed);
    this.#encryptionSecret = encryption.secret;
    const { public: pub, secret } = this.suite.frost.DKG.round1(
      this.identifiers[index - 1]!,
      { min: params.t, max: params.n },
      undefined,
      polynomialRng(seed, this.sessionId),
    );
    seed.fill(0);
    this.#dkg = secret;
    const ephemeral = ephemeralKeyPair(init.random(32));
    this.#ephemeralSecret = ephemeral.secret;
    const unsigned = {
      index,
      commitment: pub.commitment.map((c) => c.slice()),
      proof: pub.proofOfKnowledge.slice(),
      encryptionKey: encryption.public,
      ephemeralKey: ephemeral.public,
    };
    this.#round1 = {
      ...unsigned,
      signature: signMessage(init.identityKey, round1SignedData(this.sessionId, unsigned)),
    };
  }

  /** This participant's signed round-1 package, to broadcast through the coordinator. */
  get round1(): Round1Package {
    return this.#round1;
  }

  /** Round 2: checks all n packages and seals one share to each other participant. */
  round2(packages: Round1Package[]): SealedShare[] {
    this.#expectStep(1);
    return this.#abortOnFault(() => this.#round2(packages));
  }

  #round2(packages: Round1Package[]): SealedShare[] {
    const sorted = checkPackages(this.params, this.sessionId, packages);
    const own = sorted[this.index - 1]!;
    if (!samePackage(own, this.#round1)) {
      throw new DkgFault(
        "coordinator",
        "equivocation",
        "The coordinator altered this participant's round-1 package.",
      );
    }
    const others = sorted.filter((p) => p.index !== this.index);
    let shares: Record<string, { signingShare: Uint8Array }>;
    try {
      shares = this.suite.frost.DKG.round2(
        this.#dkg!,
        others.map((p) => toNoble(this.identifiers, p)),
      );
    } catch {
      const culprit = findBadProof(this.params, this.identifiers, others);
      throw new DkgFault(
        culprit,
        "proof",
        `Participant ${culprit}'s proof of knowledge is invalid.`,
      );
    }
    this.#packages = sorted;
    this.#step = 2;
    return others.map((p) => {
      let key: Uint8Array;
      try {
        key = pairwiseKey(
          this.#ephemeralSecret,
          p.encryptionKey,
          this.sessionId,
          this.#round1.ephemeralKey,
          p.encryptionKey,
          this.index,
          p.index,
        );
      } catch {
        throw new DkgFault(
          p.index,
          "encryption-key",
          `Participant ${p.index}'s encryption key is not usable.`,
        );
      }
      const share = shares[this.identifiers[p.index - 1]!]!.signingShare;
      const ciphertext = sealShare(key, share, this.sessionId, this.index, p.index);
      key.fill(0);
      return {
        from: this.index,
        to: p.index,
        ciphertext,
        signature: signMessage(
          this.#identityKey,
          shareSignedData(this.sessionId, this.index, p.index, ciphertext),
        ),
      };
    });
  }

  /** Round 3: opens and checks the n - 1 shares sent to this participant; returns its confirmation. */
  round3(incoming: SealedShare[]): Confirmation {
    this.#expectStep(2);
    return this.#abortOnFault(() => this.#round3(incoming));
  }

  #round3(incoming: SealedShare[]): Confirmation {
    const packages = this.#packages!;
    const opened = openIncoming(
      this.params,
      this.sessionId,
      packages,
      this.index,
      this.#encryptionSecret,
      incoming,
    );
    const others = packages.filter((p) => p.index !== this.index);
    let key: Key;
    try {
      key = this.suite.frost.DKG.round3(
        this.#dkg!,
        others.map((p) => toNoble(this.identifiers, p)),
        opened.map((s) => ({ identifier: this.identifiers[s.from - 1]!, signingShare: s.share })),
      );
    } catch {
      throw blameShare(
        this.params,
        this.sessionId,
        this.identifiers,
        packages,
        this.index,
        this.#encryptionSecret,
        opened,
      );
    } finally {
      for (const s of opened) s.share.fill(0);
    }
    this.#dkg = undefined;
    const transcript = transcriptHash(this.sessionId, packages);
    const { groupPublicKey, outputKey } = groupKeyOf(this.params.suite, key.public, packages);
    this.#result = {
      suite: this.params.suite,
      t: this.params.t,
      n: this.params.n,
      sessionId: this.sessionId,
      index: this.index,
      identifiers: this.identifiers,
      identities: this.params.identities,
      public: key.public,
      signingShare: key.secret.signingShare,
      groupPublicKey,
      ...(outputKey === undefined ? {} : { outputKey }),
      transcript,
    };
    this.#step = 3;
    const publicHash = publicPackageHash(key.public, this.identifiers);
    return {
      transcript,
      public: key.public,
      signature: signMessage(
        this.#identityKey,
        confirmSignedData(this.sessionId, transcript, publicHash),
      ),
    };
  }

  /** The success certificate: all n signatures. Only with it does the share count. */
  finish(certificate: Uint8Array[]): ThresholdShare {
    this.#expectStep(3);
    const result = this.#result!;
    this.#abortOnFault(() =>
      checkCertificate(
        this.params,
        this.sessionId,
        result.transcript,
        publicPackageHash(result.public, this.identifiers),
        certificate,
      ),
    );
    this.#step = 4;
    this.#result = undefined;
    return { ...result, certificate };
  }

  /** Forgets the session's secrets (best effort: bigint copies may outlive this). */
  abort(): void {
    if (this.#dkg) this.suite.frost.DKG.clean(this.#dkg);
    this.#dkg = undefined;
    this.#result?.signingShare.fill(0);
    this.#result = undefined;
    this.#ephemeralSecret.fill(0);
    this.#encryptionSecret.fill(0);
    this.#step = 4;
  }

  /** Any failure of a step ends the session here: nothing half-made survives it. */
  #abortOnFault<T>(step: () => T): T {
    try {
      return step();
    } catch (error) {
      this.abort();
      throw error;
    }
  }

  #expectStep(step: 1 | 2 | 3): void {
    if (this.#step !== step) {
      throw new DkeygenError(ErrorCodes.WRONG_PHASE, "This DKG step is not expected now.");
    }
  }
}

function samePackage(a: Round1Package, b: Round1Package): boolean {
  const eq = (x: Uint8Array, y: Uint8Array) => Buffer.from(x).equals(Buffer.from(y));
  return (
    a.index === b.index &&
    a.commitment.length === b.commitment.length &&
    a.commitment.every((c, i) => eq(c, b.commitment[i]!)) &&
    eq(a.proof, b.proof) &&
    eq(a.encryptionKey, b.encryptionKey) &&
    eq(a.ephemeralKey, b.ephemeralKey) &&
    eq(a.signature, b.signature)
  );
}

export function toNoble(identifiers: string[], p: Round1Package): DKG_Round1 {
  return {
    identifier: identifiers[p.index - 1]!,
    commitment: p.commitment.map((c) => new Uint8Array(c)),
    proofOfKnowledge: new Uint8Array(p.proof),
  };
}

/**
 * Checks a full set of round-1 packages as relayed: one per index, each signed by its sender's
 * identity key (a bad signature: the coordinator relayed something the sender never signed),
 * with t well-formed commitments and usable encryption keys (else the sender signed garbage).
 * Returns them sorted by index.
 */
export function checkPackages(
  params: DkgSessionParams,
  sessionId: Uint8Array,
  packages: Round1Package[],
): Round1Package[] {
  if (packages.length !== params.n) {
    throw new DkgFault(
      "coordinator",
      "missing",
      `The coordinator relayed ${packages.length} of ${params.n} round-1 packages.`,
    );
  }
  const sorted = [...packages].sort((a, b) => a.index - b.index);
  sorted.forEach((p, i) => {
    if (p.index !== i + 1) {
      throw new DkgFault(
        "coordinator",
        "missing",
        "The relayed round-1 packages are not one per participant.",
      );
    }
  });
  for (const p of sorted) checkPackage(params, sessionId, p, "coordinator");
  return sorted;
}

/**
 * One round-1 package: its signature (a bad one is blamed on `signatureCulprit`: the coordinator
 * when relayed, the sender when received first-hand), then its form, blamed on its signer.
 */
export function checkPackage(
  params: DkgSessionParams,
  sessionId: Uint8Array,
  p: Round1Package,
  signatureCulprit: "coordinator" | "sender",
): void {
  const identity = params.identities[p.index - 1];
  if (identity === undefined)
    throw new DkgFault("coordinator", "missing", "A package names no participant.");
  if (!verifySignature(publicKeyFromRaw(identity), round1SignedData(sessionId, p), p.signature)) {
    const culprit = signatureCulprit === "coordinator" ? "coordinator" : p.index;
    throw new DkgFault(
      culprit,
      "signature",
      `Participant ${p.index}'s round-1 package is not signed by it.`,
    );
  }
  const suite = suiteOf(params.suite);
  if (p.commitment.length !== params.t || p.commitment.some((c) => c.length !== suite.pointBytes)) {
    throw new DkgFault(
      p.index,
      "commitment",
      `Participant ${p.index} committed to no polynomial of degree t - 1.`,
    );
  }
  if (p.proof.length !== suite.signatureBytes) {
    throw new DkgFault(
      p.index,
      "proof",
      `Participant ${p.index}'s proof of knowledge is malformed.`,
    );
  }
  if (p.encryptionKey.length !== 32 || p.ephemeralKey.length !== 32) {
    throw new DkgFault(
      p.index,
      "encryption-key",
      `Participant ${p.index}'s encryption keys are malformed.`,
    );
  }
}

/**
 * Which sender's proof of knowledge fails. noble checks proofs only inside round 2, over a full
 * set; each package is checked here on its own inside a throwaway (t, t) session whose other
 * t - 2 packages are known-good, so the first failure names its sender. Costs O(n·t) proof
 * checks; run only once round 2 has failed. Also checks the points noble would parse.
 */
export function findBadProof(
  params: DkgSessionParams,
  identifiers: string[],
  packages: Round1Package[],
): number {
  const { frost } = suiteOf(params.suite);
  const t = params.t;
  const signers = { min: t, max: t };
  const fillers = Array.from({ length: t - 1 }, (_, i) =>
    frost.DKG.round1(frost.Identifier.derive(`dkeygen/v1/dkg-filler/${i}`), signers),
  );
  try {
    for (const p of packages) {
      // A fresh copy of the probe each time: round 2 caches what it saw in its secret state.
      const probe = structuredClone(fillers[0]!.secret);
      const others = [toNoble(identifiers, p), ...fillers.slice(1).map((f) => f.public)];
      try {
        frost.DKG.round2(probe, others);
      } catch {
        return p.index;
      }
    }
  } finally {
    for (const f of fillers) frost.DKG.clean(f.secret);
  }
  throw new DkgFault("coordinator", "proof", "Round 2 failed but every proof of knowledge checks.");
}

/**
 * Opens the shares sent to participant `me`: one from each other index, signed by its sender
 * (else the coordinator altered or invented it) and decrypting (else the sender sealed garbage or
 * to another key — a complaint with the key as evidence). Whether each matches its sender's
 * commitment is noble's round 3 to check (it does, for every share); when it fails, blameShare
 * finds which one, so the check is not paid twice on the way that succeeds.
 */
export function openIncoming(
  params: DkgSessionParams,
  sessionId: Uint8Array,
  packages: Round1Package[],
  me: number,
  encryptionSecret: Uint8Array,
  incoming: SealedShare[],
): { from: number; share: Uint8Array }[] {
  const suite = suiteOf(params.suite);
  const expected = packages.filter((p) => p.index !== me);
  if (incoming.length !== expected.length) {
    throw new DkgFault(
      "coordinator",
      "missing",
      `The coordinator relayed ${incoming.length} of ${expected.length} shares.`,
    );
  }
  const mine = packages[me - 1]!;
  const sorted = [...incoming].sort((a, b) => a.from - b.from);
  const opened: { from: number; share: Uint8Array }[] = [];
  try {
    sorted.forEach((s, i) => {
      const sender = expected[i]!;
      if (s.from !== sender.index || s.to !== me) {
        throw new DkgFault(
          "coordinator",
          "missing",
          "The relayed shares are not one from each other participant.",
        );
      }
      const identity = publicKeyFromRaw(params.identities[s.from - 1]!);
      const signed = shareSignedData(sessionId, s.from, s.to, s.ciphertext);
      if (!verifySignature(identity, signed, s.signature)) {
        throw new DkgFault(
          "coordinator",
          "signature",
          `The share from participant ${s.from} is not signed by it.`,
        );
      }
      const key = shareKey(sessionId, sender, mine, me, encryptionSecret);
      const share = openShare(key, s.ciphertext, sessionId, s.from, me);
      if (share === undefined || share.length !== suite.scalarBytes) {
        share?.fill(0);
        throw new DkgFault(s.from, "share", `The share from participant ${s.from} does not open.`, {
          from: s.from,
          to: me,
          key,
        });
      }
      key.fill(0);
      opened.push({ from: s.from, share });
    });
    return opened;
  } catch (error) {
    for (const o of opened) o.share.fill(0);
    throw error;
  }
}

/** The key of the share `sender` sealed to participant `me` (share-box.ts), from me's side. */
function shareKey(
  sessionId: Uint8Array,
  sender: Round1Package,
  mine: Round1Package,
  me: number,
  encryptionSecret: Uint8Array,
): Uint8Array {
  return pairwiseKey(
    encryptionSecret,
    sender.ephemeralKey,
    sessionId,
    sender.ephemeralKey,
    mine.encryptionKey,
    sender.index,
    me,
  );
}

/**
 * After noble's round 3 refused the opened shares: the first whose sender's commitment it does
 * not match, blamed on that sender with the share's key as evidence (judgeComplaint re-checks it).
 */
export function blameShare(
  params: DkgSessionParams,
  sessionId: Uint8Array,
  identifiers: string[],
  packages: Round1Package[],
  me: number,
  encryptionSecret: Uint8Array,
  opened: { from: number; share: Uint8Array }[],
): DkgFault {
  for (const o of opened) {
    const sender = packages[o.from - 1]!;
    if (!shareMatchesCommitment(params, identifiers[me - 1]!, sender, o.share)) {
      const key = shareKey(sessionId, sender, packages[me - 1]!, me, encryptionSecret);
      return new DkgFault(
        o.from,
        "share",
        `The share from participant ${o.from} does not match its commitment.`,
        { from: o.from, to: me, key },
      );
    }
  }
  return new DkgFault("coordinator", "protocol", "Round 3 failed, yet every share checks.");
}

function shareMatchesCommitment(
  params: DkgSessionParams,
  identifier: string,
  sender: Round1Package,
  share: Uint8Array,
): boolean {
  try {
    suiteOf(params.suite).frost.validateSecret(
      { identifier, signingShare: share },
      {
        signers: { min: params.t, max: params.n },
        commitments: sender.commitment,
        verifyingShares: {},
      },
    );
    return true;
  } catch {
    return false;
  }
}

/**
 * The coordinator's (or anyone's) judgement of a share complaint from the evidence: the share's
 * key opens the sender's signed ciphertext to a share that fails the sender's commitment — the
 * sender is proven at fault; it opens to a good share — the accuser lied; it does not open —
 * unproven (the sender sealed to another key, or the accuser revealed a wrong key).
 */
export function judgeComplaint(
  params: DkgSessionParams,
  packages: Round1Package[],
  share: SealedShare,
  key: Uint8Array,
): { verdict: "sender" | "accuser" | "unproven" } {
  const sessionId = sessionIdOf(params);
  const identifiers = identifiersOf(params.suite, sessionId, params.n);
  const sender = packages.find((p) => p.index === share.from);
  if (!sender) return { verdict: "unproven" };
  // Only what the sender signed can prove it at fault: its round-1 package (the commitment) and
  // this ciphertext. Anything else may have been made by the accuser to frame it.
  const identity = params.identities[share.from - 1];
  if (
    identity === undefined ||
    !Number.isInteger(share.to) ||
    share.to < 1 ||
    share.to > params.n ||
    !verifySignature(
      publicKeyFromRaw(identity),
      round1SignedData(sessionId, sender),
      sender.signature,
    ) ||
    !verifySignature(
      publicKeyFromRaw(identity),
      shareSignedData(sessionId, share.from, share.to, share.ciphertext),
      share.signature,
    )
  ) {
    return { verdict: "unproven" };
  }
  const opened = openShare(key, share.ciphertext, sessionId, share.from, share.to);
  if (opened === undefined) return { verdict: "unproven" };
  const good =
    opened.length === suiteOf(params.suite).scalarBytes &&
    shareMatchesCommitment(params, identifiers[share.to - 1]!, sender, opened);
  opened.fill(0);
  return { verdict: good ? "accuser" : "sender" };
}

/** All n confirmations, each by its participant over the same transcript and group key. */
export function checkCertificate(
  params: Pick<DkgSessionParams, "n" | "identities">,
  sessionId: Uint8Array,
  transcript: Uint8Array,
  publicHash: Uint8Array,
  certificate: Uint8Array[],
): void {
  if (certificate.length !== params.n) {
    throw new DkgFault(
      "coordinator",
      "certificate",
      `The certificate has ${certificate.length} of ${params.n} signatures.`,
    );
  }
  const data = confirmSignedData(sessionId, transcript, publicHash);
  certificate.forEach((signature, i) => {
    if (!verifySignature(publicKeyFromRaw(params.identities[i]!), data, signature)) {
      throw new DkgFault(
        i + 1,
        "certificate",
        `Participant ${i + 1} did not confirm the same transcript and public key package.`,
      );
    }
  });
}
