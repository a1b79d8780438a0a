/**
 * FROST signing (RFC 9591 §5) with a dkeygen threshold key: the holder's two steps and the
 * coordinator's checks, all noble's. What this module adds is the verification each suite's
 * outside world uses (docs/PROTOCOL.md §16.6):
 *
 *   secp256k1-tr  BIP 340 (noble's schnorr.verify) under the 32-byte BIP 86 output key
 *   ed25519       RFC 8032 through node:crypto (OpenSSL)
 *   p256          noble's FROST verifier (a Schnorr signature over P-256; 65 bytes, R ‖ z; not ECDSA)
 */
import { verify as nodeVerify } from "node:crypto";
import type { FrostPublic, NonceCommitments, Nonces } from "@noble/curves/abstract/frost.js";
import { schnorr } from "@noble/curves/secp256k1.js";
import { publicKeyFromRaw } from "../crypto/signature.js";
import { type Suite, suiteOf } from "./suites.js";

/** What a signer holds of a key: its identifier and signing share. */
export interface SignerShare {
  suite: Suite["name"];
  identifier: string;
  signingShare: Uint8Array;
}

/**
 * Round 1: fresh nonces (secret, used once) and their public commitments. `rng` (32 bytes a
 * call: hiding's, then binding's random input of RFC 9591 nonce_generate) is for fixed test
 * vectors only; by default noble draws from the system's CSPRNG.
 */
export function commitNonces(
  share: SignerShare,
  rng?: (bytes?: number) => Uint8Array<ArrayBuffer>,
): {
  nonces: Nonces;
  commitments: NonceCommitments;
} {
  return suiteOf(share.suite).frost.commit(
    { identifier: share.identifier, signingShare: share.signingShare },
    rng,
  );
}

/** Round 2: the signature share; noble zeroes `nonces` once used. */
export function signShare(
  share: SignerShare,
  pub: FrostPublic,
  nonces: Nonces,
  commitments: NonceCommitments[],
  message: Uint8Array,
): Uint8Array {
  return suiteOf(share.suite).frost.signShare(
    { identifier: share.identifier, signingShare: share.signingShare },
    pub,
    nonces,
    commitments,
    message,
  );
}

export function verifySignatureShare(
  suite: Suite["name"],
  pub: FrostPublic,
  commitments: NonceCommitments[],
  message: Uint8Array,
  identifier: string,
  sigShare: Uint8Array,
): boolean {
  try {
    return suiteOf(suite).frost.verifyShare(pub, commitments, message, identifier, sigShare);
  } catch {
    return false;
  }
}

export function aggregateSignature(
  suite: Suite["name"],
  pub: FrostPublic,
  commitments: NonceCommitments[],
  message: Uint8Array,
  shares: Record<string, Uint8Array>,
): Uint8Array {
  return suiteOf(suite).frost.aggregate(pub, commitments, message, shares);
}

/**
 * Whether `signature` is valid for `message` under a threshold key, checked the way the suite's
 * ecosystem checks it. `key` is the output key (secp256k1-tr) or the group key (others).
 */
export function verifyThresholdSignature(
  suite: Suite["name"],
  signature: Uint8Array,
  message: Uint8Array,
  key: Uint8Array,
): boolean {
  try {
    if (suite === "secp256k1-tr") return schnorr.verify(signature, message, key);
    if (suite === "ed25519") return nodeVerify(null, message, publicKeyFromRaw(key), signature);
    return suiteOf(suite).frost.verify(signature, message, key);
  } catch {
    return false;
  }
}
