/**
 * Authenticated answers of the key distribution server (docs/PROTOCOL.md §12.8): every answer to
 * an authenticated request carries an HMAC-SHA-256 (RFC 2104) under a response key that the
 * server and the requesting client both derive, with HKDF-SHA-256 (RFC 5869), from the secret half
 * of the client's credential. A MAC rather than a signature per answer: one RSA-3072 signature
 * costs ~1.7 ms, an HMAC over an answer a few microseconds.
 *
 *   K_resp = HKDF-SHA-256(IKM = secret (its 43 base64url characters, UTF-8), salt = "",
 *                         info = LP("dkeygen/v1/response-key", V, name), L = 32)
 *   mac    = HMAC-SHA-256(K_resp, LP("dkeygen/v1/response", V, requestId, method, path,
 *                                    status, body))
 *
 * sent base64url in the `X-Dkeygen-Mac` header. `path` is the request target without its query,
 * as sent; `status` the decimal status code; `body` the answer's bytes exactly.
 */
import { createHmac, hkdfSync, type KeyObject, timingSafeEqual } from "node:crypto";
import { lengthPrefixed } from "../crypto/canonical.js";
import { PROTOCOL_VERSION } from "./version.js";

const V = String(PROTOCOL_VERSION);

/** The answer header carrying the MAC. */
export const ANSWER_MAC_HEADER = "x-dkeygen-mac";

/** The response key of the credential `dkr_<name>.<secret>` (32 bytes). */
export function deriveResponseKey(name: string, secret: string): Buffer {
  return Buffer.from(
    hkdfSync(
      "sha256",
      Buffer.from(secret, "utf8"),
      Buffer.alloc(0),
      lengthPrefixed("dkeygen/v1/response-key", V, name),
      32,
    ),
  );
}

/** The MAC of one answer, base64url (43 characters). */
export function answerMac(
  key: Buffer | KeyObject,
  requestId: string,
  method: string,
  path: string,
  status: number,
  body: string | Uint8Array,
): string {
  return createHmac("sha256", key)
    .update(lengthPrefixed("dkeygen/v1/response", V, requestId, method, path, String(status), body))
    .digest("base64url");
}

/**
 * The MAC of a delivery key (§12.4), made once per key and sent in every envelope sealed under it
 * (`km`): HMAC-SHA-256(K_resp, LP("dkeygen/v1/delivery-key-mac", V, requesterFingerprint, kid,
 * ek)), `kid` and `ek` as their base64url strings. Only the server and the requester know
 * K_resp, so a delivery key whose `km` verifies is the server's, and so is every payload that
 * opens under it (AES-GCM): that is what authenticates a delivery answer without a MAC of its own.
 */
export function deliveryKeyMac(
  key: Buffer | KeyObject,
  requesterFingerprint: string,
  kid: string,
  ek: string,
): Buffer {
  return createHmac("sha256", key)
    .update(lengthPrefixed("dkeygen/v1/delivery-key-mac", V, requesterFingerprint, kid, ek))
    .digest();
}

/** Whether `presented` (the header's value, if any) is the MAC of this answer; constant time. */
export function answerMacMatches(
  presented: string | null | undefined,
  key: Buffer | KeyObject,
  requestId: string,
  method: string,
  path: string,
  status: number,
  body: Uint8Array,
): boolean {
  if (typeof presented !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(presented)) return false;
  const expected = Buffer.from(answerMac(key, requestId, method, path, status, body), "utf8");
  return timingSafeEqual(expected, Buffer.from(presented, "utf8"));
}
