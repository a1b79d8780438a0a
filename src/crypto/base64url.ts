/**
 * base64url without padding (RFC 4648 §5), the one binary-to-text encoding on dkeygen's wire.
 * Node's decoder silently skips characters outside the alphabet, so `fromBase64url` checks the
 * alphabet and the canonical form first: a malformed field is an error, never a silent truncation.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";

const ALPHABET = /^[A-Za-z0-9_-]*$/;

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
