/**
 * Purpose `multisig`: an M-of-N Bitcoin multisig set from one round. N independent secp256k1 key
 * pairs, one per holder, and the native segwit P2WSH output that any M of them can spend:
 *
 *   key i (0 ≤ i < N): d_i uniform in [1, n − 1] by rejection sampling (FIPS 186-5 A.2.2) from an
 *                       HMAC_DRBG of its own, personalized LP(label, {"key": i, "m": M, "n": N}),
 *                       so every key is domain-separated from every other
 *   witness script:     OP_M <compressed keys sorted bytewise> OP_N OP_CHECKMULTISIG  (BIP383)
 *   descriptor:         wsh(sortedmulti(M,<key_0>,...,<key_N−1>))#checksum     (BIP380/381/383)
 *   address:            bech32 witness v0 of SHA-256(witness script), HRP "bc"  (BIP141/BIP173)
 *
 * 1 ≤ M ≤ N ≤ 15: 15 keeps the script within every wallet's multisig limits (BIP383 allows 20 in
 * wsh(), but P2SH-era tools and hardware wallets stop at 15). Keys are listed in holder order in
 * the descriptor; sortedmulti() makes the script independent of that order. Private keys are
 * given as hex and as WIF (compressed, mainnet), which Bitcoin wallets import.
 */
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { createBase58check } from "@scure/base";
import type { JsonObject } from "../json.js";
import { multisigScript, withDescriptorChecksum } from "./descriptor.js";
import { assertRoundSecret, DeterministicGenerator } from "./drbg.js";
import { drawPrivateScalar } from "./ecc.js";
import { checkKnownOptions, intOption, invalidParam, type RawParams } from "./params.js";
import type { Derivation, DerivationResult } from "./types.js";
import { segwitV0Address } from "./wallet.js";

export const MULTISIG_LABEL = "dkeygen/v1/derive/multisig";
export const MAX_MULTISIG_KEYS = 15;

export interface MultisigParams {
  /** Signatures required (default 2). */
  m: number;
  /** Keys (default 3). */
  n: number;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const base58check = createBase58check(sha256);

/** A private key in Wallet Import Format, compressed-key flag set, mainnet (0x80). */
export function toWif(privateKey: Uint8Array): string {
  if (privateKey.length !== 32) throw new TypeError("A secp256k1 private key is 32 bytes.");
  return base58check.encode(Uint8Array.from([0x80, ...privateKey, 0x01]));
}

/** The 32-byte private key of a WIF string (mainnet or testnet, compressed or not). */
export function fromWif(wif: string): { privateKey: Uint8Array; compressed: boolean } {
  const bytes = base58check.decode(wif);
  if ((bytes[0] !== 0x80 && bytes[0] !== 0xef) || (bytes.length !== 33 && bytes.length !== 34)) {
    throw new TypeError("Not a WIF private key.");
  }
  if (bytes.length === 34 && bytes[33] !== 0x01) throw new TypeError("Not a WIF private key.");
  return { privateKey: bytes.slice(1, 33), compressed: bytes.length === 34 };
}

export interface MultisigOutput {
  witnessScript: Uint8Array;
  descriptor: string;
  address: string;
}

/** The P2WSH sortedmulti output of M of the given compressed public keys. */
export function p2wshSortedMulti(m: number, publicKeys: readonly Uint8Array[]): MultisigOutput {
  for (const key of publicKeys) {
    if (key.length !== 33) throw new TypeError("P2WSH multisig takes compressed public keys.");
    secp256k1.Point.fromBytes(key); // throws if the key is not on the curve
  }
  const witnessScript = multisigScript(m, publicKeys, { sorted: true });
  const descriptor = withDescriptorChecksum(
    `wsh(sortedmulti(${m},${publicKeys.map(hex).join(",")}))`,
  );
  return { witnessScript, descriptor, address: segwitV0Address(sha256(witnessScript)) };
}

/**
 * What holder `index` of a split set gets of its secret output (`{keys: [...]}`): its own key
 * alone, `{keys: [{index, privateKey, wif}]}`. Throws for an index the output has no key of.
 */
export function holderSecret(secret: JsonObject, index: number): JsonObject {
  const keys = secret.keys;
  const key = Array.isArray(keys) ? keys[index] : undefined;
  if (
    key === null ||
    typeof key !== "object" ||
    Array.isArray(key) ||
    key.index !== index ||
    !Number.isSafeInteger(index)
  ) {
    throw new TypeError(`holderSecret: the set has no key ${index}`);
  }
  return { keys: [{ ...key }] };
}

export const multisig: Derivation<MultisigParams> = {
  purpose: "multisig",
  label: MULTISIG_LABEL,
  summary:
    "M-of-N secp256k1 key pairs with their wsh(sortedmulti(M,…)) descriptor and P2WSH address (m=2, n=3, n ≤ 15)",
  parseParams(raw: RawParams): MultisigParams {
    checkKnownOptions("multisig", raw, ["m", "n"]);
    const n = intOption("multisig", raw, "n", { default: 3, min: 1, max: MAX_MULTISIG_KEYS });
    const m = intOption("multisig", raw, "m", {
      default: Math.min(2, n),
      min: 1,
      max: MAX_MULTISIG_KEYS,
    });
    if (m > n)
      throw invalidParam("multisig", `option "m" (${m}) must not exceed option "n" (${n}).`);
    return { m, n };
  },
  paramsToJson: (p) => ({ m: p.m, n: p.n }),
  async derive(secret: Uint8Array, params: MultisigParams): Promise<DerivationResult> {
    assertRoundSecret(secret);
    const { m, n } = multisig.parseParams(multisig.paramsToJson(params));
    const privateKeys: Uint8Array[] = [];
    for (let key = 0; key < n; key++) {
      const generator = new DeterministicGenerator(secret, MULTISIG_LABEL, { key, m, n });
      privateKeys.push(drawPrivateScalar(generator, "secp256k1"));
    }
    const publicKeys = privateKeys.map((d) => secp256k1.getPublicKey(d, true));
    const output = p2wshSortedMulti(m, publicKeys);
    return {
      purpose: "multisig",
      algorithm: "multisig-p2wsh/v1",
      public: {
        m,
        n,
        keys: publicKeys.map((publicKey, index) => ({ index, publicKey: hex(publicKey) })),
        descriptor: output.descriptor,
        witnessScript: hex(output.witnessScript),
        address: output.address,
      },
      secret: {
        keys: privateKeys.map((d, index) => ({ index, privateKey: hex(d), wif: toWif(d) })),
      },
    };
  },
};
