/**
 * Exactly which bytes every signature, MAC and AEAD associated data covers. Each is a canonical
 * length-prefixed encoding (src/crypto/canonical.ts) that starts with its own domain label, so a
 * signature made for one purpose can never be replayed as another, then the protocol version V.
 * Labels name a construction and keep their "v1" across protocol versions; V says which version.
 *
 * One rule for every item: challenges, keys, seeds, secrets and phrases are their raw bytes (the
 * decoded base64url); ids, fingerprints, names, tokens, purposes, times and numbers are their
 * strings as they appear on the wire, UTF-8 (a round id is its 22-character base64url string).
 * docs/PROTOCOL.md §5 restates these definitions.
 */
import { createHash } from "node:crypto";
import { type Field, lengthPrefixed } from "../crypto/canonical.js";
import { canonicalJson } from "../crypto/canonical-json.js";
import type { Json } from "../json.js";
import { PROTOCOL_VERSION } from "./version.js";

const V = String(PROTOCOL_VERSION);

function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

/**
 * Signed by a contributor to join: proves it holds its identity key, for this connection (the
 * server's challenge) and this server only; covers the name it asks to be shown under and the
 * challenge it chose for the server's own proof.
 */
export function joinSignedData(
  challenge: Uint8Array,
  serverFingerprint: string,
  identity: Uint8Array,
  token: string,
  name: string,
  clientChallenge: Uint8Array,
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/join",
    V,
    challenge,
    serverFingerprint,
    identity,
    token,
    name,
    clientChallenge,
  );
}

/**
 * Signed by the server (RSASSA-PSS, crypto/server-signature.ts) in `welcome`: it holds the key the
 * contributor pinned, on this connection (both challenges), and admitted this contributor so.
 */
export function welcomeProofData(
  serverChallenge: Uint8Array,
  clientChallenge: Uint8Array,
  serverFingerprint: string,
  contributorId: string,
  name: string,
  enrolled: boolean,
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/welcome",
    V,
    serverChallenge,
    clientChallenge,
    serverFingerprint,
    contributorId,
    name,
    enrolled ? "1" : "0",
  );
}

/** Signed by the server in `admin.ready`: it holds its key, on this admin connection. */
export function adminReadyProofData(
  serverChallenge: Uint8Array,
  clientChallenge: Uint8Array,
  serverFingerprint: string,
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/admin-ready",
    V,
    serverChallenge,
    clientChallenge,
    serverFingerprint,
  );
}

/** The two directions of an admin session, each with its own key and sequence numbers. */
export type AdminDirection = "to-server" | "to-admin";

/** HKDF info of an admin session key (admin-channel.ts). */
export function adminSessionKeyInfo(serverFingerprint: string, direction: AdminDirection) {
  return lengthPrefixed("dkeygen/v1/admin-session", V, serverFingerprint, direction);
}

/** MACed (HMAC-SHA-256 under the direction's session key) into every admin.frame. */
export function adminFrameMacData(direction: AdminDirection, seq: number, body: string) {
  return lengthPrefixed("dkeygen/v1/admin-frame", V, direction, String(seq), body);
}

/**
 * The server's commitment to its own secret for a round, sent in round.open:
 * SHA-256(LP("dkeygen/v1/server-secret", V, roundId, serverSecret)). The secret is 32 bytes from
 * the CSPRNG and never sent; the commitment binds the server to it before any contribution.
 */
export function serverSecretCommitment(roundId: string, serverSecret: Uint8Array): Uint8Array {
  return new Uint8Array(
    createHash("sha256")
      .update(lengthPrefixed("dkeygen/v1/server-secret", V, roundId, serverSecret))
      .digest(),
  );
}

/**
 * The hash of a round's parameters in round.open:
 * SHA-256(LP("dkeygen/v1/params", V, purpose, canonicalJson(params))), canonical JSON after
 * RFC 8785 (crypto/canonical-json.ts), so the invitation binds what the round will make.
 */
export function paramsHash(purpose: string, params: Json): Uint8Array {
  return sha256(lengthPrefixed("dkeygen/v1/params", V, purpose, canonicalJson(params)));
}

export interface RoundOpenFields {
  roundId: string;
  purpose: string;
  paramsHash: Uint8Array;
  seed: Uint8Array;
  serverCommitment: Uint8Array;
  roundKey: Uint8Array;
  commitDeadline: string;
  revealDeadline: string;
  invited: readonly string[];
}

/** Signed by the server over a round's invitation (round.open), every field but the signature. */
export function roundOpenSignedData(open: RoundOpenFields): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/round-open",
    V,
    open.roundId,
    open.purpose,
    open.paramsHash,
    open.seed,
    open.serverCommitment,
    open.roundKey,
    open.commitDeadline,
    open.revealDeadline,
    String(open.invited.length),
    ...open.invited,
  );
}

/** The associated data of a contribution's envelope (GCM AAD and OAEP label). */
export function contributionAad(
  roundId: string,
  contributorId: string,
  serverFingerprint: string,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/contribution", V, roundId, contributorId, serverFingerprint);
}

export interface EnvelopeFields {
  alg: string;
  ek: string;
  iv: string;
  ct: string;
  tag: string;
}

/**
 * A contributor's commitment to the envelope it will reveal:
 * SHA-256(LP("dkeygen/v1/contribution-commitment", V, roundId, contributorId, serverFingerprint,
 * alg, ek, iv, ct, tag)) over the envelope's base64url strings exactly as they will be sent. An
 * envelope decrypts to at most one phrase, so the commitment binds the phrase; it is a hash of a
 * ciphertext, so it tells nothing about it.
 */
export function contributionCommitment(
  roundId: string,
  contributorId: string,
  serverFingerprint: string,
  envelope: EnvelopeFields,
): Uint8Array {
  return sha256(
    lengthPrefixed(
      "dkeygen/v1/contribution-commitment",
      V,
      roundId,
      contributorId,
      serverFingerprint,
      envelope.alg,
      envelope.ek,
      envelope.iv,
      envelope.ct,
      envelope.tag,
    ),
  );
}

/** Signed (Ed25519) by a contributor over its commitment (the `commit` message). */
export function commitSignedData(
  roundId: string,
  contributorId: string,
  serverFingerprint: string,
  commitment: Uint8Array,
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/commit",
    V,
    roundId,
    contributorId,
    serverFingerprint,
    commitment,
  );
}

export interface CommitEntry {
  contributorId: string;
  commitment: Uint8Array;
}

/** Orders a commit set: by contributor id, bytewise over UTF-8 (ids are ASCII). */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The hash of a commit set, its entries sorted by contributor id:
 * SHA-256(LP("dkeygen/v1/commit-set", V, roundId, serverFingerprint, decimal(n),
 * id_1, commitment_1, …, id_n, commitment_n)).
 */
export function commitSetHash(
  roundId: string,
  serverFingerprint: string,
  entries: readonly CommitEntry[],
): Uint8Array {
  const fields: Field[] = [
    "dkeygen/v1/commit-set",
    V,
    roundId,
    serverFingerprint,
    String(entries.length),
  ];
  for (const entry of entries) fields.push(entry.contributorId, entry.commitment);
  return sha256(lengthPrefixed(...fields));
}

/** Signed by the round key (Ed25519) over a commit set the server sends in round.commits. */
export function commitSetSignedData(roundId: string, setHash: Uint8Array): Uint8Array {
  return lengthPrefixed("dkeygen/v1/commit-set-signature", V, roundId, setHash);
}

/**
 * Signed (Ed25519) by a contributor over its reveal: the commit set it was shown (its
 * countersignature of that set) and the commitment of the envelope it reveals
 * (`contributionCommitment` of the reveal's envelope, 32 bytes), not the envelope's fields
 * themselves. The commitment is a domain-separated hash of exactly those fields, so the signature
 * binds the envelope as before; and a record that keeps the commitment and this signature but not
 * the ciphertext (a transparency log) still lets anyone check the countersignature.
 */
export function revealSignedData(
  roundId: string,
  contributorId: string,
  serverFingerprint: string,
  setHash: Uint8Array,
  commitment: Uint8Array,
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/contribution-reveal",
    V,
    roundId,
    contributorId,
    serverFingerprint,
    setHash,
    commitment,
  );
}

/**
 * Signed by the round key (Ed25519) in round.closed: how the round ended, against which commit set
 * (empty when it failed before one), and, when it aborted, whom it names.
 */
export function roundClosedSignedData(closed: {
  roundId: string;
  outcome: string;
  accepted: number;
  setHash: Uint8Array | undefined;
  missing: readonly string[];
}): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/round-closed",
    V,
    closed.roundId,
    closed.outcome,
    String(closed.accepted),
    closed.setHash ?? "",
    String(closed.missing.length),
    ...closed.missing,
  );
}

/** Signed by the round key (Ed25519) in round.receipt: the server received this reveal, which matched. */
export function revealReceiptSignedData(
  roundId: string,
  contributorId: string,
  setHash: Uint8Array,
  commitment: Uint8Array,
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/reveal-receipt",
    V,
    roundId,
    contributorId,
    setHash,
    commitment,
  );
}

/**
 * MACed with the admin token (HMAC-SHA-256) to authenticate an admin connection; covers the
 * challenge the admin chose for the server's own proof.
 */
export function adminProofData(
  challenge: Uint8Array,
  serverFingerprint: string,
  clientChallenge: Uint8Array,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/admin", V, challenge, serverFingerprint, clientChallenge);
}

/** The associated data of a secret part revealed to an admin (GCM AAD and OAEP label). */
export function revealAad(
  requestId: string,
  recordId: string,
  serverFingerprint: string,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/reveal", V, requestId, recordId, serverFingerprint);
}

/**
 * The GCM associated data of a derivation secret exported to an admin (`admin.export`): like a
 * reveal's, under its own label, so neither answer can be taken for the other.
 */
export function exportAad(
  requestId: string,
  recordId: string,
  serverFingerprint: string,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/derivation-secret", V, requestId, recordId, serverFingerprint);
}

/**
 * The GCM associated data of a record opening sent to an admin (`admin.opening`, §15.6): like an
 * export's, under its own label, so no answer can be taken for another.
 */
export function openingAad(
  requestId: string,
  recordId: string,
  serverFingerprint: string,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/opening", V, requestId, recordId, serverFingerprint);
}

/** The OAEP label of a delivery key wrapped to a requesting client (distribution/delivery.ts). */
export function deliveryKeyLabel(requesterFingerprint: string, kid: string): Uint8Array {
  return lengthPrefixed("dkeygen/v1/delivery-key", V, requesterFingerprint, kid);
}

/**
 * The GCM associated data of something the distribution server delivers to a requesting client:
 * what it is, the request it answers, the requester's key fingerprint
 * and the record it comes from. A delivery cannot be replayed as the answer to another request or
 * to another requester.
 */
export type DeliveryKind = "otp" | "totp" | "key" | "derivation-secret" | "opening" | "signature";

export function deliveryAad(
  kind: DeliveryKind,
  requestId: string,
  requesterFingerprint: string,
  recordId: string,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/delivery", V, kind, requestId, requesterFingerprint, recordId);
}

/**
 * Signed by the server (RSASSA-PSS) in `dkg.open`: it invites these participants, in this order,
 * to this DKG session (threshold/transcript.ts binds the session id to the same values).
 */
export function dkgOpenSignedData(
  serverFingerprint: string,
  sessionId: Uint8Array,
  suite: string,
  t: number,
  n: number,
  nonce: Uint8Array,
  participants: Uint8Array[],
  deadline: string,
  owner: string,
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/dkg-open",
    V,
    serverFingerprint,
    sessionId,
    suite,
    String(t),
    String(n),
    nonce,
    deadline,
    owner,
    ...participants,
  );
}

/**
 * Signed by the server (RSASSA-PSS) in `sign.request`: it asks these signers, for this requester,
 * to sign this message (its raw bytes) with this threshold key, in this attempt.
 */
export function signRequestSignedData(
  serverFingerprint: string,
  signId: Uint8Array,
  keyId: string,
  message: Uint8Array,
  requester: string,
  signers: number[],
  deadline: string,
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/sign-request",
    V,
    serverFingerprint,
    signId,
    keyId,
    message,
    requester,
    deadline,
    ...signers.map(String),
  );
}

/**
 * Signed by the server (RSASSA-PSS) in `refresh.open`: it asks these holders of key `keyId`, with
 * these dealers, to refresh the key's shares (threshold/refresh.ts binds the session id alike).
 */
export function refreshOpenSignedData(
  serverFingerprint: string,
  sessionId: Uint8Array,
  keyId: string,
  nonce: Uint8Array,
  dealers: number[],
  publicHash: Uint8Array,
  deadline: string,
  participants: Uint8Array[],
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/refresh-open",
    V,
    serverFingerprint,
    sessionId,
    keyId,
    nonce,
    publicHash,
    deadline,
    String(dealers.length),
    ...dealers.map(String),
    ...participants,
  );
}

/**
 * Signed by the server (RSASSA-PSS) in `dkg.recovery` (PROTOCOL §16.8): the whole message but its
 * `signature`, as RFC 8785 canonical JSON, hashed — it is too nested for a flat field list, and
 * every field (the recipient's index, the owner, the recovery data) is bound.
 */
export function recoverySignedData(serverFingerprint: string, unsigned: object): Uint8Array {
  const digest = createHash("sha256")
    .update(canonicalJson(unsigned as Json), "utf8")
    .digest();
  return lengthPrefixed("dkeygen/v1/dkg-recovery", V, serverFingerprint, digest);
}
