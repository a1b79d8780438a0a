/**
 * A private key encrypted at rest with a passphrase: PKCS#8 EncryptedPrivateKeyInfo (RFC 5958 §3)
 * with PBES2 (RFC 8018 §6.2), scrypt as the key derivation (RFC 7914 §7) and AES-256-CBC
 * (RFC 8018 §B.2.5 / NIST SP 800-38A, OID from RFC 3565), in PEM "ENCRYPTED PRIVATE KEY"
 * (RFC 7468 §11). It is the shape `openssl pkcs8 -topk8 -scrypt -v2 aes-256-cbc` writes, and
 * OpenSSL (`openssl pkey -passin …`) and node:crypto's createPrivateKey read it. node:crypto can
 * only write PBES2 with PBKDF2 (2,048 iterations), so the DER is built here; scrypt and AES come
 * from node:crypto.
 *
 *   EncryptedPrivateKeyInfo ::= SEQUENCE {
 *     encryptionAlgorithm SEQUENCE { id-PBES2 (1.2.840.113549.1.5.13), SEQUENCE {
 *       keyDerivationFunc SEQUENCE { id-scrypt (1.3.6.1.4.1.11591.4.11),
 *         SEQUENCE { salt OCTET STRING (16 bytes), N INTEGER, r INTEGER, p INTEGER } },
 *       encryptionScheme  SEQUENCE { aes256-CBC (2.16.840.1.101.3.4.1.42), iv OCTET STRING (16) } } },
 *     encryptedData OCTET STRING }   -- AES-256-CBC, PKCS#7 padding, of the PKCS#8 PrivateKeyInfo
 *   key = scrypt(passphrase (UTF-8), salt, N, r, p, dkLen = 32)
 *
 * Parameters: N = 2^14, r = 8, p = 5. Why not N = 2^15, p = 1: OpenSSL 3 caps the memory of a
 * PBES2 scrypt it *reads* at 32 MiB, and N = 2^15, r = 8 needs 32 MiB plus 3 KiB, so neither
 * `openssl pkey` nor Node could open such a file. N = 2^14, r = 8, p = 5 needs 16 MiB, does 2.5
 * times the work of N = 2^15, p = 1 (and 1.25 times its memory × time), and is the setting OWASP's
 * Password Storage Cheat Sheet lists as equal to its scrypt minimum (N = 2^17, r = 8, p = 1).
 */
import { createCipheriv, type KeyObject, scrypt } from "node:crypto";
import { DkeygenError, ErrorCodes } from "../errors.js";
import {
  DerError,
  derChildren,
  derElements,
  derInteger,
  derOctetString,
  derOid,
  derReadInteger,
  derReadOctetString,
  derReadOid,
  derSequence,
} from "./der.js";
import { osRandom, type RandomSource } from "./random.js";

export const OID_PBES2 = "1.2.840.113549.1.5.13";
export const OID_SCRYPT = "1.3.6.1.4.1.11591.4.11";
export const OID_PBKDF2 = "1.2.840.113549.1.5.12";
export const OID_AES256_CBC = "2.16.840.1.101.3.4.1.42";

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

export const SCRYPT_PARAMS: ScryptParams = { N: 2 ** 14, r: 8, p: 5 };
const SALT_BYTES = 16;
const IV_BYTES = 16;
const KEY_BYTES = 32;

function deriveKey(passphrase: string, salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(
      passphrase,
      salt,
      KEY_BYTES,
      // Node refuses more than 32 MiB by default; one lane needs 128 · N · r bytes.
      { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r },
      (error, key) => (error ? reject(error) : resolve(key)),
    );
  });
}

function pem(der: Uint8Array): string {
  const lines =
    Buffer.from(der)
      .toString("base64")
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${lines.join("\n")}\n-----END ENCRYPTED PRIVATE KEY-----\n`;
}

/** `key` as PEM EncryptedPrivateKeyInfo under `passphrase` (see the module header). */
export async function encryptPrivateKeyScrypt(
  key: KeyObject,
  passphrase: string,
  options: { params?: ScryptParams; random?: RandomSource } = {},
): Promise<string> {
  if (typeof passphrase !== "string" || passphrase.length === 0) {
    throw new TypeError("encryptPrivateKeyScrypt: passphrase must be a non-empty string");
  }
  const params = options.params ?? SCRYPT_PARAMS;
  const random = options.random ?? osRandom;
  const salt = random(SALT_BYTES);
  const iv = random(IV_BYTES);
  const plain = key.export({ type: "pkcs8", format: "der" });
  const aesKey = await deriveKey(passphrase, salt, params);
  let encrypted: Buffer;
  try {
    const cipher = createCipheriv("aes-256-cbc", aesKey, iv);
    encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  } finally {
    aesKey.fill(0);
    plain.fill(0);
  }
  const algorithm = derSequence(
    derOid(OID_PBES2),
    derSequence(
      derSequence(
        derOid(OID_SCRYPT),
        derSequence(
          derOctetString(salt),
          derInteger(params.N),
          derInteger(params.r),
          derInteger(params.p),
        ),
      ),
      derSequence(derOid(OID_AES256_CBC), derOctetString(iv)),
    ),
  );
  return pem(derSequence(algorithm, derOctetString(encrypted)));
}

/** How a PEM EncryptedPrivateKeyInfo is protected (what it says; nothing is decrypted). */
export type KeyProtection =
  | { kdf: "scrypt"; params: ScryptParams; cipher: string }
  | { kdf: "pbkdf2"; iterations: number; cipher: string }
  | { kdf: "other"; algorithm: string };

export function protectionOf(pemText: string): KeyProtection {
  const match =
    /-----BEGIN ENCRYPTED PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END ENCRYPTED PRIVATE KEY-----/.exec(
      pemText,
    );
  if (!match) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "Not a PEM ENCRYPTED PRIVATE KEY.");
  }
  try {
    const [info] = derElements(Buffer.from(match[1]!.replace(/\s+/g, ""), "base64"));
    const [algorithm] = derChildren(info);
    const [algorithmOid, pbes2] = derChildren(algorithm);
    const oid = derReadOid(algorithmOid);
    if (oid !== OID_PBES2) return { kdf: "other", algorithm: oid };
    const [kdf, scheme] = derChildren(pbes2);
    const [kdfOid, kdfParams] = derChildren(kdf);
    const cipher = derReadOid(derChildren(scheme)[0]);
    const fields = derChildren(kdfParams);
    derReadOctetString(fields[0]);
    switch (derReadOid(kdfOid)) {
      case OID_SCRYPT:
        return {
          kdf: "scrypt",
          params: {
            N: derReadInteger(fields[1]),
            r: derReadInteger(fields[2]),
            p: derReadInteger(fields[3]),
          },
          cipher,
        };
      case OID_PBKDF2:
        return { kdf: "pbkdf2", iterations: derReadInteger(fields[1]), cipher };
      default:
        return { kdf: "other", algorithm: derReadOid(kdfOid) };
    }
  } catch (cause) {
    if (!(cause instanceof DerError)) throw cause;
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `The encrypted private key does not parse: ${cause.message}.`,
      { cause },
    );
  }
}

/** Whether a key protected like this is at least as costly to attack as SCRYPT_PARAMS. */
export function meetsScryptParams(protection: KeyProtection): boolean {
  return (
    protection.kdf === "scrypt" &&
    protection.cipher === OID_AES256_CBC &&
    protection.params.N * protection.params.r * protection.params.p >=
      SCRYPT_PARAMS.N * SCRYPT_PARAMS.r * SCRYPT_PARAMS.p &&
    protection.params.N >= SCRYPT_PARAMS.N
  );
}
