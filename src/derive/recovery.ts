/**
 * Recovery codes of a two-factor enrollment: single-use codes a user writes down for the day the
 * authenticator is lost. They come from the enrollment round's secret S by their own
 * domain-separated draw (src/derive/drbg.ts), so they are as unpredictable as the TOTP/HOTP secret
 * and independent of it:
 *
 *   G       = DeterministicGenerator(S, "dkeygen/v1/derive/recovery-codes", {})
 *   tagKey  = G.bytes(32)                      the key of the lookup tags below
 *   code_i  = G.bytes(10), each byte b → ALPHABET[b & 31], for i = 0 .. n−1 in order
 *
 * ALPHABET is Crockford's base32 (0-9 a-z without i, l, o, u), lower case, so a code carries
 * exactly 50 bits (256 is a multiple of 32: `b & 31` is uniform). Code i does not depend on n.
 * Shown as "xxxxx-xxxxx". Typed codes are normalised the Crockford way: case, hyphens and spaces do
 * not matter, o reads as 0 and i, l as 1.
 *
 * The lookup tag of a code is HMAC-SHA-256(tagKey, normalised code) cut to its first 8 bytes (16
 * hex digits): with it a server finds which stored code was typed without trying every stored hash
 * (src/server/recovery-codes.ts). Without tagKey (a secret of the round) a tag says nothing.
 */
import { createHmac } from "node:crypto";
import { assertRoundSecret, DeterministicGenerator } from "./drbg.js";

export const RECOVERY_LABEL = "dkeygen/v1/derive/recovery-codes";
export const RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
/** Characters of a code (without its hyphen): 10 × 5 = 50 bits. */
export const RECOVERY_CODE_LENGTH = 10;
/** The most codes one enrollment may have. */
export const MAX_RECOVERY_CODES = 20;
/** What an enrollment gets when nobody says how many. */
export const DEFAULT_RECOVERY_CODES = 10;
const TAG_BYTES = 8;

export interface RecoveryCodeSet {
  /** The key of the lookup tags; the caller wipes it. */
  tagKey: Uint8Array;
  /** The codes, normalised (10 characters of RECOVERY_ALPHABET, no hyphen). */
  codes: string[];
}

/** The first `count` recovery codes of round secret `secret`, and the tag key. */
export function deriveRecoveryCodes(secret: Uint8Array, count: number): RecoveryCodeSet {
  assertRoundSecret(secret);
  if (!Number.isInteger(count) || count < 0 || count > MAX_RECOVERY_CODES) {
    throw new TypeError(`count must be a whole number from 0 to ${MAX_RECOVERY_CODES}`);
  }
  const generator = new DeterministicGenerator(secret, RECOVERY_LABEL, {});
  const tagKey = generator.bytes(32);
  const codes: string[] = [];
  for (let i = 0; i < count; i++) {
    const draw = generator.bytes(RECOVERY_CODE_LENGTH);
    codes.push(Array.from(draw, (b) => RECOVERY_ALPHABET[b & 31]).join(""));
    draw.fill(0);
  }
  return { tagKey, codes };
}

/** Only the tag key of `secret`'s recovery codes (what verification needs). */
export function recoveryTagKey(secret: Uint8Array): Uint8Array {
  return deriveRecoveryCodes(secret, 0).tagKey;
}

/**
 * A typed code in its normal form, or null when it cannot be one: hyphens and spaces dropped, lower
 * case, o → 0, i and l → 1, then exactly 10 characters of RECOVERY_ALPHABET.
 */
export function normaliseRecoveryCode(text: string): string | null {
  if (typeof text !== "string" || text.length > 64) return null;
  const plain = text.replace(/[-\s]/g, "").toLowerCase().replace(/o/g, "0").replace(/[il]/g, "1");
  if (plain.length !== RECOVERY_CODE_LENGTH) return null;
  for (const c of plain) if (!RECOVERY_ALPHABET.includes(c)) return null;
  return plain;
}

/** "xxxxx-xxxxx", how a normalised code is shown. */
export function formatRecoveryCode(code: string): string {
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

/** The lookup tag of a normalised code: 16 hex digits. */
export function recoveryTag(tagKey: Uint8Array, code: string): string {
  return createHmac("sha256", tagKey)
    .update(code, "utf8")
    .digest()
    .subarray(0, TAG_BYTES)
    .toString("hex");
}
