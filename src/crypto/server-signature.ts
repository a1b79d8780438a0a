/**
 * The key generation server's signatures: RSASSA-PSS (RFC 8017 §8.1) with SHA-256, MGF1-SHA-256
 * and a 32-byte salt, by its RSA-3072 identity key. The server signs what a peer must be able to
 * attribute to it: its proof of possession in each handshake (welcome, admin.ready) and each
 * round's invitation (round.open). `openssl pkeyutl -verify -pkeyopt rsa_padding_mode:pss
 * -pkeyopt rsa_pss_saltlen:32 -pkeyopt digest:sha256` checks the same signatures.
 */
import { constants, createPublicKey, type KeyObject, sign, verify } from "node:crypto";

const PSS = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } as const;

export function serverSign(privateKey: KeyObject, data: Uint8Array): Uint8Array {
  return new Uint8Array(sign("sha256", data, { key: privateKey, ...PSS }));
}

/** True when `signature` is the server key's PSS signature of `data`; never throws on bad input. */
export function serverVerify(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array) {
  try {
    return verify("sha256", data, { key: publicKey, ...PSS }, signature);
  } catch {
    return false;
  }
}

/**
 * The server key in `spki` (DER SubjectPublicKeyInfo) if it is RSA of at least 3072 bits with
 * public exponent 65537, the only kind a dkeygen server has; undefined for anything else,
 * including bytes that are no key.
 */
export function rsaServerKey(spki: Uint8Array): KeyObject | undefined {
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    const e65537 = key.asymmetricKeyDetails?.publicExponent === 65537n;
    return key.asymmetricKeyType === "rsa" && bits >= 3072 && e65537 ? key : undefined;
  } catch {
    return undefined;
  }
}
