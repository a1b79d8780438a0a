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
import type { DKG_Secret, FrostPublic, Key } from "@noble/curves/abstract/frost.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { lengthPrefixed } from "../crypto/canonical.js";
import { isStrongEd25519Key, signMessage } from "../crypto/signature.js";
import { HmacDrbg } from "../derive/drbg.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import {
  blameShare,
  checkCertificate,
  checkPackages,
  findBadProof,
  openIncoming,
  toNoble,
} from "./dkg-checks.js";
import { DkgFault } from "./dkg-fault.js";
import {
  encryptionKeyPair,
  ephemeralKeyPair,
  identitySeed,
  pairwiseKey,
  sealShare,
} from "./share-box.js";
import { checkThreshold, type Suite, suiteOf } from "./suites.js";
import { bip86OutputKey, xOnly } from "./taproot.js";

export * from "./dkg-checks.js";
export * from "./dkg-fault.js";

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
