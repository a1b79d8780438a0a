/**
 * Round-2 shares travel sealed from sender to recipient, so the coordinating server relays only
 * ciphertexts (docs/PROTOCOL.md §16.3):
 *
 *   every participant has a static X25519 key derived from its identity secret
 *     sk_enc = HKDF-SHA-256(ikm = Ed25519 seed, salt = "", info = "dkeygen/v1/dkg-encryption-key")
 *   and a fresh ephemeral X25519 key per session; both public keys are in its signed round-1
 *   package. Sender s seals its share for each other participant r (its own share it re-derives:
 *   its polynomial comes from its identity key, dkg.ts) under
 *     K = HKDF-SHA-256(ikm = X25519(eph_s, enc_r), salt = session id,
 *                      info = LP("dkeygen/v1/dkg-share-key", eph_s, enc_r, s, r))
 *   with AES-256-GCM, a zero IV (each K seals exactly one message) and
 *     AAD = LP("dkeygen/v1/dkg-share", session id, s, r).
 *
 * The recipient computes the same K from its static secret and the sender's ephemeral key, so
 * its identity key alone, with the public transcript, opens every share sent to it (recovery).
 * Revealing one K (a complaint) opens exactly one share and nothing else.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  type KeyObject,
} from "node:crypto";
import { lengthPrefixed } from "../crypto/canonical.js";
import { DkeygenError, ErrorCodes } from "../errors.js";

const ZERO_IV = new Uint8Array(12);

/**
 * X25519 (RFC 7748) through node:crypto (OpenSSL): ten times faster than a JavaScript ladder, and
 * a DKG does 2(n − 1) of them per participant. Raw keys travel as their 32 bytes; these DER
 * prefixes make them the PKCS#8 and SPKI OpenSSL takes (RFC 8410).
 */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

function x25519Private(secret: Uint8Array): KeyObject {
  return createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, secret]),
    format: "der",
    type: "pkcs8",
  });
}

function x25519PublicOf(secret: Uint8Array): Uint8Array {
  const spki = createPublicKey(x25519Private(secret)).export({ format: "der", type: "spki" });
  return new Uint8Array(spki.subarray(X25519_SPKI_PREFIX.length));
}

/** X25519(secret, peer); OpenSSL refuses a low-order peer key (an all-zero shared secret). */
function x25519Shared(secret: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  if (peerPublic.length !== 32) throw new RangeError("An X25519 public key is 32 bytes.");
  const publicKey = createPublicKey({
    key: Buffer.concat([X25519_SPKI_PREFIX, peerPublic]),
    format: "der",
    type: "spki",
  });
  return new Uint8Array(diffieHellman({ privateKey: x25519Private(secret), publicKey }));
}
const TAG_BYTES = 16;

/** The raw 32-byte Ed25519 seed of an identity private key. */
export function identitySeed(privateKey: KeyObject): Uint8Array {
  const jwk = privateKey.export({ format: "jwk" });
  if (jwk.crv !== "Ed25519" || typeof jwk.d !== "string") {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "The identity key is not an Ed25519 key.");
  }
  return new Uint8Array(Buffer.from(jwk.d, "base64url"));
}

function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array | string, bytes = 32) {
  return new Uint8Array(hkdfSync("sha256", ikm, salt, info, bytes));
}

/** The participant's static X25519 key pair, from its identity seed. */
export function encryptionKeyPair(seed: Uint8Array): { secret: Uint8Array; public: Uint8Array } {
  const secret = hkdf(seed, new Uint8Array(0), "dkeygen/v1/dkg-encryption-key");
  return { secret, public: x25519PublicOf(secret) };
}

/** A fresh X25519 key pair from 32 random bytes. */
export function ephemeralKeyPair(random32: Uint8Array): { secret: Uint8Array; public: Uint8Array } {
  return { secret: random32, public: x25519PublicOf(random32) };
}

/** K for the share from `from` to `to`; `secret` is either side's X25519 secret. */
export function pairwiseKey(
  secret: Uint8Array,
  peerPublic: Uint8Array,
  sessionId: Uint8Array,
  ephemeralPublic: Uint8Array,
  encryptionPublic: Uint8Array,
  from: number,
  to: number,
): Uint8Array {
  let shared: Uint8Array;
  try {
    shared = x25519Shared(secret, peerPublic);
  } catch (cause) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A DKG encryption key is not usable.", {
      cause,
    });
  }
  try {
    return hkdf(
      shared,
      sessionId,
      lengthPrefixed(
        "dkeygen/v1/dkg-share-key",
        ephemeralPublic,
        encryptionPublic,
        String(from),
        String(to),
      ),
    );
  } finally {
    shared.fill(0);
  }
}

function aad(sessionId: Uint8Array, from: number, to: number): Uint8Array {
  return lengthPrefixed("dkeygen/v1/dkg-share", sessionId, String(from), String(to));
}

/** AES-256-GCM of `share` under K: ciphertext ‖ tag. */
export function sealShare(
  key: Uint8Array,
  share: Uint8Array,
  sessionId: Uint8Array,
  from: number,
  to: number,
): Uint8Array {
  const cipher = createCipheriv("aes-256-gcm", key, ZERO_IV);
  cipher.setAAD(aad(sessionId, from, to));
  const body = Buffer.concat([cipher.update(share), cipher.final(), cipher.getAuthTag()]);
  return new Uint8Array(body);
}

/** Opens a sealed share; undefined when it does not authenticate under K. */
export function openShare(
  key: Uint8Array,
  sealed: Uint8Array,
  sessionId: Uint8Array,
  from: number,
  to: number,
): Uint8Array | undefined {
  if (sealed.length <= TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, ZERO_IV);
    decipher.setAAD(aad(sessionId, from, to));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const body = Buffer.concat([
      decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)),
      decipher.final(),
    ]);
    return new Uint8Array(body);
  } catch {
    return undefined;
  }
}
