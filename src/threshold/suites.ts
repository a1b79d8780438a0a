/**
 * The FROST ciphersuites dkeygen makes threshold keys for, each an @noble/curves RFC 9591 suite.
 * All group arithmetic, hashing to scalars, proofs and signing are noble's; this module only
 * names the suites and says how each one's group key is shown to people and other tools:
 *
 *   suite          noble suite                       group key shown as          signatures
 *   secp256k1-tr   FROST-secp256k1-SHA256-TR-v1      32-byte x-only (BIP 340)    BIP 340 Schnorr under
 *                  (schnorr_FROST)                   + BIP 86 output key and     the BIP 86 output key
 *                                                    its P2TR address
 *   ed25519        FROST-ED25519-SHA512-v1           32 bytes (RFC 8032)         RFC 8032 Ed25519
 *   p256           FROST-P256-SHA256-v1              33-byte compressed SEC1     FROST Schnorr over P-256
 *                                                                                (not ECDSA)
 *
 * For secp256k1-tr, noble tweaks a DKG's output with the empty Taproot merkle root (BIP 86), so
 * the FROST key package's group commitment is already the output key; the untweaked internal
 * key is the sum of the participants' constant-term commitments (taproot.ts).
 */
import type { FROST } from "@noble/curves/abstract/frost.js";
import { ed25519_FROST } from "@noble/curves/ed25519.js";
import { p256_FROST } from "@noble/curves/nist.js";
import { schnorr_FROST } from "@noble/curves/secp256k1.js";
import { DkeygenError, ErrorCodes } from "../errors.js";

export const SUITE_NAMES = ["secp256k1-tr", "ed25519", "p256"] as const;
export type SuiteName = (typeof SUITE_NAMES)[number];

export interface Suite {
  readonly name: SuiteName;
  /** The RFC 9591 context string of the noble suite. */
  readonly ciphersuite: string;
  readonly frost: FROST;
  /** Bytes of a serialized group element (a commitment, a verifying share). */
  readonly pointBytes: number;
  /** Bytes of a serialized scalar (a share, a proof's response). */
  readonly scalarBytes: number;
  /** Bytes of a full signature in the suite's standard encoding (and of a proof of knowledge). */
  readonly signatureBytes: number;
}

const SUITES: Readonly<Record<SuiteName, Suite>> = {
  "secp256k1-tr": {
    name: "secp256k1-tr",
    ciphersuite: "FROST-secp256k1-SHA256-TR-v1",
    frost: schnorr_FROST,
    pointBytes: 33,
    scalarBytes: 32,
    signatureBytes: 64,
  },
  ed25519: {
    name: "ed25519",
    ciphersuite: "FROST-ED25519-SHA512-v1",
    frost: ed25519_FROST,
    pointBytes: 32,
    scalarBytes: 32,
    signatureBytes: 64,
  },
  p256: {
    name: "p256",
    ciphersuite: "FROST-P256-SHA256-v1",
    frost: p256_FROST,
    pointBytes: 33,
    scalarBytes: 32,
    signatureBytes: 65,
  },
};

export function isSuiteName(name: unknown): name is SuiteName {
  return typeof name === "string" && (SUITE_NAMES as readonly string[]).includes(name);
}

export function suiteOf(name: string): Suite {
  if (!isSuiteName(name)) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `Unknown threshold suite; use one of ${SUITE_NAMES.join(", ")}.`,
    );
  }
  return SUITES[name];
}

/** Fewest and most holders a threshold key may have (n), and the smallest threshold (t). */
export const MIN_HOLDERS = 2;
export const MAX_HOLDERS = 64;
export const MIN_THRESHOLD = 2;

/** Refuses a (t, n) dkeygen does not make: 2 ≤ t ≤ n ≤ MAX_HOLDERS. */
export function checkThreshold(t: number, n: number): void {
  if (!Number.isInteger(t) || !Number.isInteger(n)) {
    throw new DkeygenError(ErrorCodes.USAGE, "t and n must be integers.");
  }
  if (n < MIN_HOLDERS || n > MAX_HOLDERS) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `n must be from ${MIN_HOLDERS} to ${MAX_HOLDERS} (it is ${n}).`,
    );
  }
  if (t < MIN_THRESHOLD || t > n) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `t must be from ${MIN_THRESHOLD} to n = ${n} (it is ${t}); a 1-of-n key is no threshold key.`,
    );
  }
}
