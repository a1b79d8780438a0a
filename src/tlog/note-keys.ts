/**
 * Keys of C2SP signed-note (https://c2sp.org/signed-note): key IDs, verifier keys ("vkeys") and
 * Ed25519 note signatures (signature type 0x01).
 *
 *   key ID = SHA-256(key name || 0x0A || signature type || public key)[:4], big-endian uint32
 *   vkey   = <key name>+<key ID as 8 lowercase hex digits>+<base64(signature type || public key)>
 *
 * Ed25519 is RFC 8032 through @noble/curves, verified strictly (zip215: false: canonical point
 * and scalar encodings only), so we accept exactly the signatures RFC 8032 verifiers accept.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import { base64 } from "@scure/base";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { isValidKeyName, type NoteSigner, type NoteVerifier } from "./note.js";

/** Signature type 0x01: Ed25519 over the note text. */
export const SIGNATURE_TYPE_ED25519 = 0x01;
/** Signature type 0x04: timestamped Ed25519 checkpoint cosignatures (c2sp.org/tlog-cosignature). */
export const SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04;

const ED25519_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;

export interface VerifierKey {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  readonly publicKey: Uint8Array;
}

/** SHA-256(name || 0x0A || type || publicKey)[:4] as an unsigned integer. */
export function noteKeyId(name: string, type: number, publicKey: Uint8Array): number {
  const digest = createHash("sha256")
    .update(name, "utf8")
    .update(Uint8Array.of(0x0a, type))
    .update(publicKey)
    .digest();
  return digest.readUInt32BE(0);
}

/** The verifier key string of a public key. */
export function formatVerifierKey(name: string, type: number, publicKey: Uint8Array): string {
  checkKey(name, type, publicKey);
  const material = new Uint8Array(1 + publicKey.length);
  material[0] = type;
  material.set(publicKey, 1);
  const id = noteKeyId(name, type, publicKey).toString(16).padStart(8, "0");
  return `${name}+${id}+${base64.encode(material)}`;
}

/**
 * Parses a verifier key string. The key ID must be the one the name, type and key give, the
 * type one we know (0x01 or 0x04) and the key 32 bytes. Throws E_INVALID_INPUT otherwise.
 */
export function parseVerifierKey(vkey: string): VerifierKey {
  if (typeof vkey !== "string") throw badKey("it is not a string");
  const parts = vkey.split("+");
  // The base64 may itself contain "+": rejoin everything after the second separator.
  const [name, hexId, ...rest] = parts;
  const encoded = rest.join("+");
  if (name === undefined || !isValidKeyName(name)) throw badKey("its key name is not valid");
  if (hexId === undefined || !/^[0-9a-f]{8}$/.test(hexId)) {
    throw badKey("its key ID is not 8 lowercase hex digits");
  }
  let material: Uint8Array;
  try {
    material = base64.decode(encoded);
  } catch {
    throw badKey("its key is not canonical base64");
  }
  if (material.length < 2) throw badKey("its key is empty");
  const type = material[0]!;
  const publicKey = material.slice(1);
  checkKey(name, type, publicKey);
  const keyId = Number.parseInt(hexId, 16);
  if (keyId !== noteKeyId(name, type, publicKey)) {
    throw badKey("its key ID is not the hash of its name and key");
  }
  return { name, keyId, type, publicKey };
}

/** A verifier of Ed25519 note signatures (type 0x01) from a verifier key string. */
export function ed25519NoteVerifier(vkey: string): NoteVerifier {
  const key = parseVerifierKey(vkey);
  if (key.type !== SIGNATURE_TYPE_ED25519) {
    throw badKey(`its type is 0x${hex2(key.type)}, not Ed25519 (0x01)`);
  }
  const { name, keyId, publicKey } = key;
  return {
    name,
    keyId,
    verify: (text, signature) => ed25519Verify(publicKey, text, signature),
  };
}

/**
 * A signer of Ed25519 note signatures (type 0x01) from a 32-byte RFC 8032 secret key. Its
 * `verifierKey` is the string verifiers are configured with.
 */
export function ed25519NoteSigner(
  name: string,
  secretKey: Uint8Array,
): NoteSigner & { verifierKey: string } {
  const publicKey = ed25519PublicKey(secretKey);
  checkKey(name, SIGNATURE_TYPE_ED25519, publicKey);
  return {
    name,
    keyId: noteKeyId(name, SIGNATURE_TYPE_ED25519, publicKey),
    verifierKey: formatVerifierKey(name, SIGNATURE_TYPE_ED25519, publicKey),
    sign: ed25519Signing(secretKey),
  };
}

/** RFC 8410's PKCS#8 prefix of a raw 32-byte Ed25519 secret key. */
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const ED25519_SPKI_PREFIX_BYTES = 12;

/**
 * RFC 8032 signing with a 32-byte secret key, through node:crypto (OpenSSL): ≈ 20× noble's
 * speed, and the log signs a checkpoint after every batch of appends. Ed25519 signatures are
 * deterministic, so the bytes are noble's exactly (checked once here, and by the vectors' tests).
 * Verification (`ed25519Verify`) gives noble's strict verdict, through OpenSSL where that is sure.
 */
export function ed25519Signing(secretKey: Uint8Array): (message: Uint8Array) => Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== ED25519_KEY_BYTES) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "An Ed25519 secret key is 32 bytes.");
  }
  const key = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, secretKey]),
    format: "der",
    type: "pkcs8",
  });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  if (
    !spki.subarray(ED25519_SPKI_PREFIX_BYTES).equals(Buffer.from(ed25519.getPublicKey(secretKey)))
  ) {
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      "OpenSSL and RFC 8032 disagree on an Ed25519 key.",
    );
  }
  return (message) => new Uint8Array(nodeSign(null, message, key));
}

/** The RFC 8032 public key of a 32-byte secret key. */
export function ed25519PublicKey(secretKey: Uint8Array): Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== ED25519_KEY_BYTES) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "An Ed25519 secret key is 32 bytes.");
  }
  return ed25519.getPublicKey(secretKey);
}

/**
 * RFC 8032 verification, strict encodings; any malformed input is simply "does not verify". The
 * verdict is always noble's (zip215: false: canonical encodings of A and R, S < L, A not of small
 * order, the cofactored equation), but found in ≈ 1/10 of its time for a signature that verifies:
 * OpenSSL checks S < L and the cofactorless equation [S]B = R + [k]A, comparing the canonical
 * encoding of [S]B - [k]A with R's bytes. When it accepts and A decodes strictly and is not of
 * small order (noble's own checks, remembered per key), the cofactored equation holds too, so noble
 * would accept. Whatever OpenSSL refuses (a forgery, a torsion component) goes to noble.
 */
export function ed25519Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  if (publicKey.length === ED25519_KEY_BYTES) {
    const fast = verifyingKey(publicKey);
    if (fast !== undefined) {
      try {
        if (nodeVerify(null, message, fast, signature)) return true;
      } catch {
        // noble decides below
      }
    }
  }
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * An OpenSSL key for `publicKey` when noble's strict verification accepts it as A (a canonical
 * encoding of a point not of small order), else undefined. Checkpoints are verified under the
 * same few witness keys again and again: keys and verdicts are remembered, a bounded number.
 */
function verifyingKey(publicKey: Uint8Array): KeyObject | undefined {
  const hex = Buffer.from(publicKey).toString("hex");
  const known = verifyingKeys.get(hex);
  if (known !== undefined) return known === false ? undefined : known;
  let key: KeyObject | false = false;
  try {
    const point = ed25519.Point.fromBytes(publicKey, false);
    if (!point.isSmallOrder()) {
      key = createPublicKey({
        key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]),
        format: "der",
        type: "spki",
      });
    }
  } catch {
    key = false;
  }
  if (verifyingKeys.size >= MAX_VERIFYING_KEYS) verifyingKeys.clear();
  verifyingKeys.set(hex, key);
  return key === false ? undefined : key;
}

const verifyingKeys = new Map<string, KeyObject | false>();
const MAX_VERIFYING_KEYS = 4096;
/** RFC 8410's SPKI prefix of a raw 32-byte Ed25519 public key. */
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

function checkKey(name: string, type: number, publicKey: Uint8Array): void {
  if (!isValidKeyName(name)) throw badKey("its key name is not valid");
  if (type !== SIGNATURE_TYPE_ED25519 && type !== SIGNATURE_TYPE_COSIGNATURE_V1) {
    throw badKey(`its signature type 0x${hex2(type)} is not one we support (0x01, 0x04)`);
  }
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_KEY_BYTES) {
    throw badKey("its Ed25519 public key is not 32 bytes");
  }
  // A key that is not a canonically encoded point, or is of small order (a key for which one
  // "signature" verifies for every message), is no one's key.
  let point: ReturnType<typeof ed25519.Point.fromBytes>;
  try {
    point = ed25519.Point.fromBytes(publicKey, false);
  } catch {
    throw badKey("its public key is not a canonically encoded Ed25519 point");
  }
  if (point.isSmallOrder()) throw badKey("its public key is a point of small order");
}

const hex2 = (n: number) => n.toString(16).padStart(2, "0");

function badKey(why: string): DkeygenError {
  return new DkeygenError(ErrorCodes.INVALID_INPUT, `Bad note verifier key: ${why}.`);
}
