/**
 * base64url without padding (RFC 4648 §5), the one binary-to-text encoding on dkeygen's wire.
 * Node's decoder silently skips characters outside the alphabet, so `fromBase64url` checks the
 * alphabet and the canonical form first: a malformed field is an error, never a silent truncation.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";

const ALPHABET = /^[A-Za-z0-9_-]*$/;

const CHAR = "[A-Za-z0-9_-]";
/**
 * The last character of a canonical encoding whose final group holds one byte (2 significant
 * bits, the other 4 zero) or two bytes (4 significant bits, 2 zero). Any other character there
 * decodes to the same bytes as one of these: a second spelling, which a canonical decoder refuses.
 */
const TAIL_ONE_BYTE = "[AQgw]";
const TAIL_TWO_BYTES = "[AEIMQUYcgkosw048]";

/**
 * A regular expression source matching exactly the canonical unpadded base64url encodings of
 * `bytes` bytes (with `upTo`, of 1 to `bytes` bytes): a string that matches always decodes with
 * `fromBase64url`, to that many bytes. Schemas use it so that what passes validation decodes.
 */
export function base64urlPattern(bytes: number, upTo = false): string {
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new TypeError("base64urlPattern: bytes must be a positive integer");
  }
  const tail = `(?:${CHAR}${TAIL_ONE_BYTE}|${CHAR}{2}${TAIL_TWO_BYTES})`;
  if (upTo) return `^(?:${CHAR}{4})*${tail}?$`;
  const groups = Math.floor(bytes / 3) * 4;
  const rest = bytes % 3;
  const last =
    rest === 1 ? `${CHAR}${TAIL_ONE_BYTE}` : rest === 2 ? `${CHAR}{2}${TAIL_TWO_BYTES}` : "";
  return `^${CHAR}{${groups}}${last}$`;
}

/** Length of the unpadded base64url encoding of `bytes` bytes. */
export function base64urlLength(bytes: number): number {
  return Math.ceil((bytes * 4) / 3);
}

export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}

/**
 * Decodes base64url; `field` names the input in the error. With `length`, the decoded byte length
 * must be exactly that.
 */
export function fromBase64url(text: string, field: string, length?: number): Uint8Array {
  // A length of 1 mod 4 can never be produced by an encoder.
  if (!ALPHABET.test(text) || text.length % 4 === 1) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, `${field} is not valid base64url.`);
  }
  const bytes = new Uint8Array(Buffer.from(text, "base64url"));
  if (toBase64url(bytes) !== text) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, `${field} is not canonical base64url.`);
  }
  if (length !== undefined && bytes.length !== length) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `${field} must be ${length} bytes, got ${bytes.length}.`,
    );
  }
  return bytes;
}
