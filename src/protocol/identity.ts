/**
 * Contributor ids: the fingerprint (SHA-256 of the SubjectPublicKeyInfo) of the contributor's
 * Ed25519 identity key, the same form as server fingerprints (docs/PROTOCOL.md §2).
 */
import { fingerprintOf } from "../crypto/fingerprint.js";
import { publicKeyFromRaw } from "../crypto/signature.js";

/**
 * The contributor id of a raw 32-byte Ed25519 identity key. A witness computes one per participant
 * of each round it checks, an SPKI export and a hash each: ids are remembered per key bytes, a
 * bounded number of them (a key that does not import throws and is not remembered).
 */
export function contributorIdOf(identity: Uint8Array): string {
  const hex = Buffer.from(identity).toString("hex");
  let id = ids.get(hex);
  if (id === undefined) {
    id = fingerprintOf(publicKeyFromRaw(identity));
    if (ids.size >= MAX_REMEMBERED_IDS) ids.clear();
    ids.set(hex, id);
  }
  return id;
}

const ids = new Map<string, string>();
const MAX_REMEMBERED_IDS = 4096;
