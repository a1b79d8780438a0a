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
import { createCipheriv, createDecipheriv, hkdfSync, type KeyObject } from "node:crypto";
import { x25519 } from "@noble/curves/ed25519.js";
import { lengthPrefixed } from "../crypto/canonical.js";
import { DkeygenError, ErrorCodes } from "../errors.js";

const ZERO_IV = new Uint8Array(12);
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
  return { secret, public: x25519.getPublicKey(secret) };
}

/** A fresh X25519 key pair from 32 random bytes. */
export function ephemeralKeyPair(random32: Uint8Array): { secret: Uint8Array; public: Uint8Array } {
  return { secret: random32, public: x25519.getPublicKey(random32) };
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
    // noble refuses a low-order peer key (an all-zero shared secret).
    shared = x25519.getSharedSecret(secret, peerPublic);
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
