/**
 * Identity signatures: Ed25519 (RFC 8032) through node:crypto. Public keys travel as the raw
 * 32-byte encoding (base64url on the wire) and are stored as SPKI PEM; private keys as PKCS#8 PEM.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { toBase64url } from "./base64url.js";

export interface IdentityKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function generateIdentity(): IdentityKeyPair {
  return generateKeyPairSync("ed25519");
}

/** The raw 32-byte Ed25519 public key. */
export function rawPublicKey(key: KeyObject): Uint8Array {
  // A JWK export per call showed in every commit and cosignature the server checks: the bytes of
  // a key (KeyObjects are immutable) are remembered as long as the key lives.
  const known = rawKeys.get(key);
  if (known !== undefined) return known.slice();
  const publicKey = key.type === "private" ? createPublicKey(key) : key;
  const jwk = publicKey.export({ format: "jwk" });
  if (jwk.crv !== "Ed25519" || typeof jwk.x !== "string") {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "The identity key is not an Ed25519 key.");
  }
  const raw = new Uint8Array(Buffer.from(jwk.x, "base64url"));
  rawKeys.set(key, raw);
  return raw.slice();
}

const rawKeys = new WeakMap<KeyObject, Uint8Array>();

/**
 * A KeyObject for a raw 32-byte Ed25519 public key; throws INVALID_INPUT if it is not one. The
 * same keys recur (every participant of every round a witness checks): the KeyObjects are
 * remembered per key bytes, a bounded number of them, and only for bytes that imported.
 */
export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "An Ed25519 public key is 32 bytes.");
  }
  const x = toBase64url(raw);
  const known = importedKeys.get(x);
  if (known !== undefined) return known;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
  } catch (cause) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "Not a valid Ed25519 public key.", { cause });
  }
  if (importedKeys.size >= MAX_IMPORTED_KEYS) importedKeys.clear();
  importedKeys.set(x, key);
  return key;
}

const importedKeys = new Map<string, KeyObject>();
const MAX_IMPORTED_KEYS = 4096;

/**
 * Whether `raw` is a public key whose signatures can be evidence: the canonical RFC 8032 encoding
 * of a point of the prime-order subgroup, not of small order. OpenSSL accepts any point, and under
 * a small-order key (the all-zero key, the identity) trivial forgeries verify for a large share of
 * messages — a signer could certify such a key and later disown what it signed.
 */
export function isStrongEd25519Key(raw: Uint8Array): boolean {
  if (raw.length !== 32) return false;
  // The subgroup check is a scalar multiplication (milliseconds in JavaScript) and the same keys
  // recur (contributors' identities, in every round, DKG session and log entry): verdicts are
  // remembered per key, a bounded number of them.
  const key = Buffer.from(raw).toString("hex");
  let strong = strongKeys.get(key);
  if (strong === undefined) {
    strong = subgroupPoint(raw);
    if (strongKeys.size >= MAX_REMEMBERED_KEYS) strongKeys.clear();
    strongKeys.set(key, strong);
  }
  return strong;
}

const strongKeys = new Map<string, boolean>();
const MAX_REMEMBERED_KEYS = 65_536;

function subgroupPoint(raw: Uint8Array): boolean {
  try {
    const point = ed25519.Point.fromBytes(raw, false);
    if (point.isSmallOrder() || !point.isTorsionFree()) return false;
    return Buffer.compare(Buffer.from(point.toBytes()), Buffer.from(raw)) === 0;
  } catch {
    return false;
  }
}

export function signMessage(privateKey: KeyObject, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, privateKey));
}

/** True when `signature` is a valid Ed25519 signature of `message`; never throws on bad input. */
export function verifySignature(publicKey: KeyObject, message: Uint8Array, signature: Uint8Array) {
  if (signature.length !== 64) return false;
  try {
    return verify(null, message, publicKey, signature);
  } catch {
    return false;
  }
}

export function privateKeyFromPem(pem: string, passphrase?: string): KeyObject {
  return createPrivateKey(passphrase === undefined ? pem : { key: pem, passphrase });
}
