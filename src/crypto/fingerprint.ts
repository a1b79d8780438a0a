/**
 * Key fingerprints: SHA-256 over the DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), shown the way
 * OpenSSH shows them: `SHA256:` followed by unpadded standard base64. `openssl pkey -pubin -outform
 * DER | openssl dgst -sha256 -binary | base64` gives the same digits (plus padding).
 */
import { createHash, createPublicKey, type KeyObject } from "node:crypto";

export function spkiDer(key: KeyObject): Buffer {
  const publicKey = key.type === "private" ? createPublicKey(key) : key;
  return publicKey.export({ type: "spki", format: "der" });
}

export function fingerprintOfSpki(der: Uint8Array): string {
  const digest = createHash("sha256").update(der).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

export function fingerprintOf(key: KeyObject): string {
  return fingerprintOfSpki(spkiDer(key));
}

/** Canonical: the last of the 43 characters carries 4 bits and 2 zero bits. */
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]$/;

export function isFingerprint(text: string): boolean {
  return FINGERPRINT.test(text);
}
