/**
 * The building blocks of every wire schema (messages.ts, threshold-messages.ts): canonical
 * base64url fields of exact or bounded length, ids, times, and the message envelope.
 */
import { type TSchema, Type } from "@sinclair/typebox";
import { base64urlLength, base64urlPattern } from "../crypto/base64url.js";
import { PROTOCOL_VERSION } from "./version.js";

/**
 * Canonical unpadded base64url of exactly `bytes` bytes: the length and the unused bits of the
 * last character are part of the pattern, so a field that passes the schema always decodes
 * (crypto/base64url.ts) to exactly that many bytes. A schema that checked only the alphabet and
 * the length once let a non-canonical `identity` through to a decoder that threw.
 */
export const Bytes = (bytes: number) => {
  const length = base64urlLength(bytes);
  return Type.String({ pattern: base64urlPattern(bytes), minLength: length, maxLength: length });
};
/**
 * Canonical unpadded base64url of 1 to `bytes` bytes; with `minBytes` 0, of 0 to `bytes` bytes
 * (the empty string being no bytes).
 */
export const BytesUpTo = (bytes: number, minBytes: 0 | 1 = 1) =>
  Type.String({
    pattern: base64urlPattern(bytes, true),
    minLength: minBytes === 0 ? 0 : 2,
    maxLength: base64urlLength(bytes),
  });

/** `SHA256:` and the 43 characters of canonical unpadded standard base64 of 32 bytes. */
export const FingerprintSchema = Type.String({
  pattern: "^SHA256:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]$",
});
/** Round ids: 16 random bytes, base64url. */
export const RoundIdSchema = Bytes(16);
export const RequestId = Type.String({ pattern: "^[A-Za-z0-9_-]{1,64}$" });
export const Name = Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$" });
export const Purpose = Type.String({ pattern: "^[a-z][a-z0-9-]{0,31}$" });
/** An instant as `Date.prototype.toISOString` writes it, in UTC: 2026-11-24T10:00:00.000Z. */
export const IsoTime = Type.String({
  pattern: "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$",
});
export const Version = Type.Literal(PROTOCOL_VERSION);
export const strict = { additionalProperties: false } as const;

export const message = <T extends string, P extends Record<string, TSchema>>(type: T, props: P) =>
  Type.Object({ type: Type.Literal(type), v: Version, ...props }, strict);

/** An RSASSA-PSS signature by the server's key (384 bytes for RSA-3072; up to RSA-4096). */
export const ServerSignature = BytesUpTo(512);
