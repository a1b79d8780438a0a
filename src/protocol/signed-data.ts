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
import { PROTOCOL_VERSION } from "./version.js";

const V = String(PROTOCOL_VERSION);

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

/** Signed by the server over a round's invitation (round.open), every field but the signature. */
export function roundOpenSignedData(open: {
  roundId: string;
  purpose: string;
  seed: Uint8Array;
  serverCommitment: Uint8Array;
  deadline: string;
  participants: number;
}): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/round-open",
    V,
    open.roundId,
    open.purpose,
    open.seed,
    open.serverCommitment,
    open.deadline,
    String(open.participants),
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

/** Signed by a contributor over its whole contribution, envelope included (encrypt-then-sign). */
export function contributionSignedData(
  roundId: string,
  contributorId: string,
  serverFingerprint: string,
  envelope: EnvelopeFields,
): Uint8Array {
  const fields: Field[] = [
    "dkeygen/v1/contribution-signature",
    V,
    roundId,
    contributorId,
    serverFingerprint,
    envelope.alg,
    envelope.ek,
    envelope.iv,
    envelope.ct,
    envelope.tag,
  ];
  return lengthPrefixed(...fields);
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
export type DeliveryKind = "otp" | "totp" | "key" | "derivation-secret";

export function deliveryAad(
  kind: DeliveryKind,
  requestId: string,
  requesterFingerprint: string,
  recordId: string,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/delivery", V, kind, requestId, requesterFingerprint, recordId);
}
