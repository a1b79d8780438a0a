/**
 * Purpose `ecc`: an elliptic-curve key pair on secp256k1 (SEC 2 §2.4.1), P-256 (FIPS 186-5,
 * SP 800-186 §3.2.1.3) or Ed25519 (RFC 8032).
 *
 * - secp256k1, P-256: the private scalar d is uniform in [1, n − 1], drawn from the derivation's
 *   HMAC_DRBG by rejection sampling (FIPS 186-5 Appendix A.2.2); Q = d·G by @noble/curves. The
 *   public key is given SEC 1 §2.3.3 compressed and uncompressed.
 * - Ed25519: the private key is a 32-byte seed from the DRBG (RFC 8032 §5.1.5 takes any 32 random
 *   bytes); the public key is its RFC 8032 encoding.
 *
 * PEMs (PKCS#8 for the private key, SPKI for the public key) and JWKs (RFC 7517/7518, RFC 8037 for
 * Ed25519) are produced by importing a JWK into node:crypto and exporting, so OpenSSL, node:crypto
 * and WebCrypto read them.
 */
import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { fingerprintOf } from "../crypto/fingerprint.js";
import type { JsonObject } from "../json.js";
import { assertRoundSecret, DeterministicGenerator } from "./drbg.js";
import { checkKnownOptions, enumOption, type RawParams } from "./params.js";
import type { Derivation, DerivationResult } from "./types.js";

export const ECC_LABEL = "dkeygen/v1/derive/ecc";
export const ECC_CURVES = ["secp256k1", "p256", "ed25519"] as const;
export type EccCurve = (typeof ECC_CURVES)[number];
/** The short-Weierstrass curves, on which private keys are scalars and ECDSA applies. */
export type WeierstrassCurve = "secp256k1" | "p256";

export interface EccParams {
  /** Default secp256k1. */
  curve: EccCurve;
}

/** The @noble/curves ECDSA object and the JWK curve name of each Weierstrass curve. */
export const WEIERSTRASS = {
  secp256k1: { ecdsa: secp256k1, jwkCurve: "secp256k1" },
  p256: { ecdsa: p256, jwkCurve: "P-256" },
} as const;

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const b64u = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");

/** The group order n of a Weierstrass curve. */
export function curveOrder(curve: WeierstrassCurve): bigint {
  return WEIERSTRASS[curve].ecdsa.Point.Fn.ORDER;
}

/** A private scalar in [1, n − 1] as 32 big-endian bytes, by FIPS 186-5 A.2.2 rejection sampling. */
export function drawPrivateScalar(generator: DeterministicGenerator, curve: WeierstrassCurve) {
  const d = generator.scalar(curveOrder(curve));
  return new Uint8Array(Buffer.from(d.toString(16).padStart(64, "0"), "hex"));
}

/** The private JWK (RFC 7518 §6.2 / RFC 8037 §2) for a raw private key on `curve`. */
export function privateJwk(curve: EccCurve, privateKey: Uint8Array): JsonObject {
  if (curve === "ed25519") {
    if (privateKey.length !== 32) throw new TypeError("An Ed25519 private key is a 32-byte seed.");
    return {
      kty: "OKP",
      crv: "Ed25519",
      x: b64u(ed25519.getPublicKey(privateKey)),
      d: b64u(privateKey),
    };
  }
  const { ecdsa, jwkCurve } = WEIERSTRASS[curve];
  if (privateKey.length !== 32 || !ecdsa.utils.isValidSecretKey(privateKey)) {
    throw new TypeError(`A ${curve} private key is a 32-byte scalar in [1, n − 1].`);
  }
  const point = ecdsa.getPublicKey(privateKey, false); // 0x04 ‖ x ‖ y
  return {
    kty: "EC",
    crv: jwkCurve,
    x: b64u(point.subarray(1, 33)),
    y: b64u(point.subarray(33, 65)),
    d: b64u(privateKey),
  };
}

/** A node:crypto private key for a raw private key (32-byte scalar or Ed25519 seed). */
export function eccPrivateKeyObject(curve: EccCurve, privateKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: privateJwk(curve, privateKey) as JsonWebKey, format: "jwk" });
}

/** The public and secret parts of a key pair on `curve` with the given raw private key. */
export function eccKeyPairParts(
  curve: EccCurve,
  privateKey: Uint8Array,
): { public: JsonObject; secret: JsonObject } {
  const jwk = privateJwk(curve, privateKey);
  const keyObject = createPrivateKey({ key: jwk as JsonWebKey, format: "jwk" });
  const publicKeyObject = createPublicKey(keyObject);
  const { d: _d, ...publicJwk } = jwk;
  const common = {
    spki: publicKeyObject.export({ type: "spki", format: "pem" }) as string,
    fingerprint: fingerprintOf(publicKeyObject),
    jwk: publicJwk,
  };
  const secret = {
    privateKey: hex(privateKey),
    pkcs8: keyObject.export({ type: "pkcs8", format: "pem" }) as string,
    jwk,
  };
  if (curve === "ed25519") {
    return {
      public: { curve, publicKey: hex(ed25519.getPublicKey(privateKey)), ...common },
      secret,
    };
  }
  const { ecdsa } = WEIERSTRASS[curve];
  return {
    public: {
      curve,
      publicKey: hex(ecdsa.getPublicKey(privateKey, true)),
      uncompressed: hex(ecdsa.getPublicKey(privateKey, false)),
      ...common,
    },
    secret,
  };
}

export const ecc: Derivation<EccParams> = {
  purpose: "ecc",
  label: ECC_LABEL,
  summary: "an elliptic-curve key pair (curve=secp256k1|p256|ed25519, default secp256k1)",
  parseParams(raw: RawParams): EccParams {
    checkKnownOptions("ecc", raw, ["curve"]);
    return { curve: enumOption("ecc", raw, "curve", ECC_CURVES, "secp256k1") };
  },
  paramsToJson: (p) => ({ curve: p.curve }),
  async derive(secret: Uint8Array, params: EccParams): Promise<DerivationResult> {
    assertRoundSecret(secret);
    const { curve } = ecc.parseParams(ecc.paramsToJson(params));
    const generator = new DeterministicGenerator(secret, ECC_LABEL, { curve });
    const privateKey =
      curve === "ed25519" ? generator.bytes(32) : drawPrivateScalar(generator, curve);
    return { purpose: "ecc", algorithm: `ecc-${curve}/v1`, ...eccKeyPairParts(curve, privateKey) };
  },
};
