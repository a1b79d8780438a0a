/**
 * The hybrid envelope: a fresh AES-256-GCM key (NIST SP 800-38D) encrypts the payload, and
 * RSA-OAEP (RFC 8017 §7.1, SHA-256 with MGF1-SHA-256) wraps that key to the recipient's public key.
 * The associated data binds the envelope to its context twice: as the GCM AAD and as the OAEP
 * label, so neither the payload nor the wrapped key can be moved to another context.
 *
 * Opening never tells the sender why it failed. A wrapped key that does not decrypt is replaced by
 * a random key (implicit rejection) and the same GCM step runs and fails, so every failure takes
 * the same path and raises the same error: no padding oracle.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  type KeyObject,
  privateDecrypt,
  publicEncrypt,
} from "node:crypto";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { osRandom, type RandomSource } from "./random.js";

export const ENVELOPE_ALG = "RSA-OAEP-256/A256GCM";
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** An envelope's fields as bytes. The wire form (base64url strings) lives in protocol/. */
export interface SealedEnvelope {
  wrappedKey: Uint8Array;
  iv: Uint8Array;
  ciphertext: Uint8Array;
  tag: Uint8Array;
}

export function rsaOaepEncrypt(publicKey: KeyObject, plaintext: Uint8Array, label: Uint8Array) {
  return new Uint8Array(
    publicEncrypt(
      {
        key: publicKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: "sha256",
        oaepLabel: label,
      },
      plaintext,
    ),
  );
}

/** RSA-OAEP-SHA-256 decryption; throws (with OpenSSL's message) on any failure. */
export function rsaOaepDecrypt(privateKey: KeyObject, ciphertext: Uint8Array, label: Uint8Array) {
  return new Uint8Array(
    privateDecrypt(
      {
        key: privateKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: "sha256",
        oaepLabel: label,
      },
      ciphertext,
    ),
  );
}

/**
 * AES-256-GCM encryption with a 96-bit IV and a 128-bit tag. A key used many times is best given
 * as a KeyObject (crypto.createSecretKey), which spares re-importing it on every call.
 */
export function aesGcmSeal(
  key: Uint8Array | KeyObject,
  iv: Uint8Array,
  plaintext: Uint8Array,
  associatedData: Uint8Array,
): { ciphertext: Uint8Array; tag: Uint8Array } {
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData);
  const ciphertext = new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final()]));
  return { ciphertext, tag: new Uint8Array(cipher.getAuthTag()) };
}

/** AES-256-GCM decryption; throws if the tag does not verify. */
export function aesGcmOpen(
  key: Uint8Array | KeyObject,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  associatedData: Uint8Array,
): Uint8Array {
  const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(associatedData);
  decipher.setAuthTag(tag);
  return new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
}

export function sealEnvelope(
  recipient: KeyObject,
  plaintext: Uint8Array,
  associatedData: Uint8Array,
  random: RandomSource = osRandom,
): SealedEnvelope {
  const contentKey = random(KEY_BYTES);
  const iv = random(IV_BYTES);
  try {
    const { ciphertext, tag } = aesGcmSeal(contentKey, iv, plaintext, associatedData);
    const wrappedKey = rsaOaepEncrypt(recipient, contentKey, associatedData);
    return { wrappedKey, iv, ciphertext, tag };
  } finally {
    contentKey.fill(0);
  }
}

const decryptionFailed = () =>
  new DkeygenError(ErrorCodes.DECRYPTION_FAILED, "The envelope could not be decrypted.");

export function openEnvelope(
  privateKey: KeyObject,
  envelope: SealedEnvelope,
  associatedData: Uint8Array,
  random: RandomSource = osRandom,
): Uint8Array {
  const { plaintext, contentKey } = openEnvelopeWithKey(
    privateKey,
    envelope,
    associatedData,
    random,
  );
  contentKey.fill(0);
  return plaintext;
}

/**
 * `openEnvelope`, also handing back the content key K the envelope opened under (32 bytes, the
 * caller wipes it): with K anyone can check that the ciphertext opens to the plaintext, without
 * the private key (an opening of a commitment, docs/PROTOCOL.md §15.6). Fails exactly as
 * `openEnvelope` does; K is returned only when the envelope opened.
 */
export function openEnvelopeWithKey(
  privateKey: KeyObject,
  envelope: SealedEnvelope,
  associatedData: Uint8Array,
  random: RandomSource = osRandom,
): { plaintext: Uint8Array; contentKey: Uint8Array } {
  if (envelope.iv.length !== IV_BYTES || envelope.tag.length !== TAG_BYTES) {
    throw decryptionFailed();
  }
  let contentKey: Uint8Array;
  try {
    contentKey = rsaOaepDecrypt(privateKey, envelope.wrappedKey, associatedData);
    if (contentKey.length !== KEY_BYTES) contentKey = random(KEY_BYTES);
  } catch {
    contentKey = random(KEY_BYTES);
  }
  try {
    const plaintext = aesGcmOpen(
      contentKey,
      envelope.iv,
      envelope.ciphertext,
      envelope.tag,
      associatedData,
    );
    return { plaintext, contentKey };
  } catch {
    contentKey.fill(0);
    throw decryptionFailed();
  }
}
