/**
 * Exactly which bytes every signature, MAC and AEAD associated data covers. Each is a canonical
 * length-prefixed encoding (src/crypto/canonical.ts) that starts with its own domain label, so a
 * signature made for one purpose can never be replayed as another. docs/PROTOCOL.md §"What is
 * signed" restates these definitions.
 */
import { type Field, lengthPrefixed } from "../crypto/canonical.js";
import { PROTOCOL_VERSION } from "./version.js";

const V = String(PROTOCOL_VERSION);

/** Signed by a contributor to join: proves it holds its identity key, for this connection only. */
export function joinSignedData(
  challenge: Uint8Array,
  serverFingerprint: string,
  identity: Uint8Array,
  token: string,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/join", V, challenge, serverFingerprint, identity, token);
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

/** MACed with the admin token (HMAC-SHA-256) to authenticate an admin connection. */
export function adminProofData(challenge: Uint8Array, serverFingerprint: string): Uint8Array {
  return lengthPrefixed("dkeygen/v1/admin", V, challenge, serverFingerprint);
}

/** The associated data of a secret part revealed to an admin (GCM AAD and OAEP label). */
export function revealAad(
  requestId: string,
  recordId: string,
  serverFingerprint: string,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/reveal", V, requestId, recordId, serverFingerprint);
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
export function deliveryAad(
  kind: "otp" | "totp" | "key",
  requestId: string,
  requesterFingerprint: string,
  recordId: string,
): Uint8Array {
  return lengthPrefixed("dkeygen/v1/delivery", V, kind, requestId, requesterFingerprint, recordId);
}
