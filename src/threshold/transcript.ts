/**
 * What a DKG session is bound to, and exactly which bytes its signatures cover
 * (docs/PROTOCOL.md §16.2). LP is the length-prefixed encoding of crypto/canonical.ts.
 *
 *   session id  = SHA-256(LP("dkeygen/v1/dkg-session", suite, t, n, server fingerprint, nonce,
 *                            identity_1, …, identity_n))
 *   identifier_i = noble's Identifier.derive("dkeygen/v1/dkg/" ‖ hex(session id) ‖ "/" ‖ i)
 *
 * Participants are numbered 1..n in the order the server lists them. Because every FROST
 * identifier is derived from the session id, every proof of knowledge (its challenge hashes the
 * identifier) and every share is bound to this session: a package from another session fails
 * its proof here (the mistake of tss-lib's CVE-2022-47930).
 */
import { createHash } from "node:crypto";
import { lengthPrefixed } from "../crypto/canonical.js";
import { type Suite, suiteOf } from "./suites.js";

export interface DkgSessionParams {
  suite: Suite["name"];
  t: number;
  n: number;
  serverFingerprint: string;
  /** 32 fresh bytes from the server. */
  nonce: Uint8Array;
  /** The participants' raw Ed25519 identity keys, in session order (index i at position i - 1). */
  identities: Uint8Array[];
}

/** A participant's signed round-1 package (PROTOCOL §16.3). */
export interface Round1Package {
  index: number;
  /** t serialized points: the commitment to the sender's polynomial. */
  commitment: Uint8Array[];
  /** noble's proof of knowledge of the constant term (bound to the session by the identifier). */
  proof: Uint8Array;
  /** Static X25519 key (share-box.ts). */
  encryptionKey: Uint8Array;
  /** Ephemeral X25519 key of this session. */
  ephemeralKey: Uint8Array;
  /** Ed25519 by the sender's identity key over round1SignedData. */
  signature: Uint8Array;
}

/** One sealed round-2 share, signed by its sender. */
export interface SealedShare {
  from: number;
  to: number;
  ciphertext: Uint8Array;
  /** Ed25519 by the sender's identity key over shareSignedData. */
  signature: Uint8Array;
}

function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

export function sessionIdOf(p: DkgSessionParams): Uint8Array {
  return sha256(
    lengthPrefixed(
      "dkeygen/v1/dkg-session",
      p.suite,
      String(p.t),
      String(p.n),
      p.serverFingerprint,
      p.nonce,
      ...p.identities,
    ),
  );
}

/** The FROST identifiers of the session's participants, index 1..n at positions 0..n-1. */
export function identifiersOf(suite: Suite["name"], sessionId: Uint8Array, n: number): string[] {
  const { frost } = suiteOf(suite);
  const hex = Buffer.from(sessionId).toString("hex");
  return Array.from({ length: n }, (_, i) =>
    frost.Identifier.derive(`dkeygen/v1/dkg/${hex}/${i + 1}`),
  );
}

export function round1SignedData(sessionId: Uint8Array, p: Omit<Round1Package, "signature">) {
  return lengthPrefixed(
    "dkeygen/v1/dkg-round1",
    sessionId,
    String(p.index),
    p.encryptionKey,
    p.ephemeralKey,
    p.proof,
    String(p.commitment.length),
    ...p.commitment,
  );
}

export function shareSignedData(sessionId: Uint8Array, from: number, to: number, ct: Uint8Array) {
  return lengthPrefixed("dkeygen/v1/dkg-share", sessionId, String(from), String(to), ct);
}

/**
 * The transcript every participant signs at the end: the session id and every round-1 package
 * as it was shown to it. A coordinator that showed different packages to different participants
 * gets signatures over different hashes, and no certificate.
 */
export function transcriptHash(sessionId: Uint8Array, packages: Round1Package[]): Uint8Array {
  const fields: Uint8Array[] = [];
  for (const p of [...packages].sort((a, b) => a.index - b.index)) {
    fields.push(round1SignedData(sessionId, p), p.signature);
  }
  return sha256(lengthPrefixed("dkeygen/v1/dkg-transcript", sessionId, ...fields));
}

/**
 * The hash of a key's public package as noble's round 3 derives it: the group commitment
 * (commitments[0] is the group key as noble serializes it) and every verifying share, in index order.
 */
export function publicPackageHash(
  pub: { commitments: Uint8Array[]; verifyingShares: Record<string, Uint8Array> },
  identifiers: string[],
): Uint8Array {
  const shares = identifiers.map((id) => {
    const share = pub.verifyingShares[id];
    if (share === undefined)
      throw new RangeError("publicPackageHash: a verifying share is missing");
    return share;
  });
  return sha256(
    lengthPrefixed(
      "dkeygen/v1/dkg-public",
      String(pub.commitments.length),
      ...pub.commitments,
      ...shares,
    ),
  );
}

/**
 * Signed by every participant once its key checks: its part of the success certificate, over the
 * transcript it saw and the public package (group key, verifying shares) it derived.
 */
export function confirmSignedData(
  sessionId: Uint8Array,
  transcript: Uint8Array,
  publicHash: Uint8Array,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/dkg-confirm", sessionId, transcript, publicHash);
}
