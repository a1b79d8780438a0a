/**
 * Contributor ids: the fingerprint (SHA-256 of the SubjectPublicKeyInfo) of the contributor's
 * Ed25519 identity key, the same form as server fingerprints (docs/PROTOCOL.md §2).
 */
import { fingerprintOf } from "../crypto/fingerprint.js";
import { publicKeyFromRaw } from "../crypto/signature.js";

/** The contributor id of a raw 32-byte Ed25519 identity key. */
export function contributorIdOf(identity: Uint8Array): string {
  return fingerprintOf(publicKeyFromRaw(identity));
}
