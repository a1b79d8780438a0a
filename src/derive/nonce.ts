/**
 * Purpose `nonce`: randomness for digital signatures, from a round, so that a signature's
 * randomness comes from several parties rather than one machine. Its one output:
 *
 *   value   256 bits for general use, and the extra entropy of hedged signing
 *
 * drawn from the derivation's HMAC_DRBG after one discarded draw (below). `signWithRoundNonce`
 * signs with:
 *
 * - ECDSA (secp256k1, P-256): deterministic RFC 6979 nonces with the round value as the additional
 *   data k' of RFC 6979 §3.6 ("hedged" signing): the signature stays safe if either the private key
 *   handling or the round's randomness is sound, and the same (key, message, value) reproduces it.
 * - BIP340 Schnorr (secp256k1): the round value as the 32-byte auxiliary randomness a of BIP340's
 *   default signing algorithm.
 *
 * Knowing `value` does not give the signature's k away: RFC 6979 and BIP340 both mix in the private
 * key. Version 1 also offered a `scalar` in [1, n − 1] to use as the k itself; anyone who saw it
 * (the key store, an admin's reveal, the record's owner) could then compute the signer's private
 * key from one signature, so it is no longer output, stored or revealed. It is still drawn first
 * (FIPS 186-5 A.2.2 rejection sampling) and thrown away, so `value` keeps its known answer and
 * every nonce record made before stays reproducible.
 */
import { createPrivateKey, type JsonWebKey, type KeyObject } from "node:crypto";
import { p256 } from "@noble/curves/nist.js";
import { schnorr, secp256k1 } from "@noble/curves/secp256k1.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { assertRoundSecret, DeterministicGenerator } from "./drbg.js";
import { curveOrder, type WeierstrassCurve } from "./ecc.js";
import { checkKnownOptions, enumOption, type RawParams } from "./params.js";
import type { Derivation, DerivationResult } from "./types.js";

export const NONCE_LABEL = "dkeygen/v1/derive/nonce";
export const NONCE_CURVES = ["secp256k1", "p256"] as const satisfies readonly WeierstrassCurve[];
export type NonceCurve = (typeof NONCE_CURVES)[number];
export type SignatureScheme = "ecdsa" | "schnorr";

export interface NonceParams {
  /** Default secp256k1. */
  curve: NonceCurve;
}

const ECDSA = { secp256k1, p256 } as const;
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/**
 * Draws a round's nonce value from a derivation's generator: first the v1 scalar in [1, n − 1]
 * for `curve`, discarded (see the module header), then the 32-byte value.
 */
export function drawRoundNonce(generator: DeterministicGenerator, curve: NonceCurve): Uint8Array {
  generator.scalar(curveOrder(curve));
  return generator.bytes(32);
}

export interface SignOptions {
  /** Default "ecdsa". Schnorr (BIP340) is defined for secp256k1 only. */
  scheme?: SignatureScheme;
  /**
   * ECDSA only: hash the message with SHA-256 first (default true, as node:crypto and OpenSSL do);
   * false when `message` is already a 32-byte digest.
   */
  prehash?: boolean;
  /** ECDSA only: "compact" r ‖ s (default, 64 bytes) or "der". */
  format?: "compact" | "der";
}

function checkBytes(value: unknown, length: number, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new TypeError(`${name} must be a Uint8Array of ${length} bytes`);
  }
}

/**
 * Signs `message` with `privateKey` on `curve`, taking the signature's randomness from the round's
 * 32-byte `nonce` (its `value`) as described in the module header.
 */
export function signWithRoundNonce(
  message: Uint8Array,
  privateKey: Uint8Array,
  nonce: Uint8Array,
  curve: NonceCurve,
  options: SignOptions = {},
): Uint8Array {
  if (!(message instanceof Uint8Array)) throw new TypeError("message must be a Uint8Array");
  checkBytes(privateKey, 32, "privateKey");
  checkBytes(nonce, 32, "nonce");
  if (!NONCE_CURVES.includes(curve))
    throw new TypeError(`curve must be one of ${NONCE_CURVES.join(", ")}`);
  const scheme = options.scheme ?? "ecdsa";
  if (scheme === "schnorr") {
    if (curve !== "secp256k1")
      throw new TypeError("BIP340 Schnorr signatures are for secp256k1 only");
    return schnorr.sign(message, privateKey, nonce);
  }
  if (scheme !== "ecdsa") throw new TypeError('scheme must be "ecdsa" or "schnorr"');
  return ECDSA[curve].sign(message, privateKey, {
    extraEntropy: nonce,
    prehash: options.prehash ?? true,
    format: options.format ?? "compact",
  });
}

/** Verifies a signature made by `signWithRoundNonce` (same scheme, prehash and format options). */
export function verifyRoundSignature(
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
  curve: NonceCurve,
  options: SignOptions = {},
): boolean {
  try {
    if ((options.scheme ?? "ecdsa") === "schnorr") {
      if (curve !== "secp256k1") return false;
      const xOnly = publicKey.length === 33 ? publicKey.subarray(1) : publicKey;
      return schnorr.verify(signature, message, xOnly);
    }
    return ECDSA[curve].verify(signature, message, publicKey, {
      prehash: options.prehash ?? true,
      format: options.format ?? "compact",
    });
  } catch {
    return false;
  }
}

/**
 * The raw private key and curve of a PKCS#8 PEM (or KeyObject) on secp256k1 or P-256, for
 * `dkeygen sign`; throws E_INVALID_INPUT for any other key.
 */
export function signingKeyFromPem(key: string | KeyObject): {
  curve: NonceCurve;
  privateKey: Uint8Array;
} {
  let jwk: JsonWebKey;
  try {
    const keyObject = typeof key === "string" ? createPrivateKey(key) : key;
    jwk = keyObject.export({ format: "jwk" });
  } catch (cause) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "The signing key is not a readable private key.",
      {
        cause,
      },
    );
  }
  const curve = jwk.crv === "secp256k1" ? "secp256k1" : jwk.crv === "P-256" ? "p256" : undefined;
  if (curve === undefined || typeof jwk.d !== "string") {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "The signing key must be a secp256k1 or P-256 private key.",
    );
  }
  const privateKey = new Uint8Array(Buffer.from(jwk.d, "base64url"));
  if (privateKey.length !== 32)
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "Bad private key length.");
  return { curve, privateKey };
}

export const nonce: Derivation<NonceParams> = {
  purpose: "nonce",
  label: NONCE_LABEL,
  summary:
    "a signing nonce: a 256-bit value for hedged ECDSA (RFC 6979 §3.6) or BIP340 Schnorr signing (curve=secp256k1|p256)",
  parseParams(raw: RawParams): NonceParams {
    checkKnownOptions("nonce", raw, ["curve"]);
    return { curve: enumOption("nonce", raw, "curve", NONCE_CURVES, "secp256k1") };
  },
  paramsToJson: (p) => ({ curve: p.curve }),
  async derive(secret: Uint8Array, params: NonceParams): Promise<DerivationResult> {
    assertRoundSecret(secret);
    const { curve } = nonce.parseParams(nonce.paramsToJson(params));
    const value = drawRoundNonce(new DeterministicGenerator(secret, NONCE_LABEL, { curve }), curve);
    return {
      purpose: "nonce",
      algorithm: `nonce-${curve}/v1`,
      public: { curve, bits: 256 },
      secret: { value: hex(value) },
    };
  },
};
