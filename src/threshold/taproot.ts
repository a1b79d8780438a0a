/**
 * Taproot for threshold keys (BIP 340, BIP 341, BIP 86, BIP 350): the BIP 86 output key of an
 * internal key and its pay-to-Taproot address. Point arithmetic and tagged hashes are
 * @noble/curves'; this module only composes them as BIP 341 `taproot_tweak_pubkey` with an empty
 * script tree:
 *
 *   t = int(hash_TapTweak(x(P)))           (fails if t ≥ n)
 *   Q = lift_x(x(P)) + t·G                 output key = x(Q)
 *   address = bech32m(hrp, [1] ‖ 5-bit groups of x(Q))    (witness v1, 32-byte program)
 *
 * A FROST signature for a secp256k1-tr key made by dkeygen is a BIP 340 signature under x(Q),
 * so the address is a t-of-n wallet spendable by the key's holders and by nobody alone.
 */
import { schnorr } from "@noble/curves/secp256k1.js";
import { bech32m } from "@scure/base";
import { DkeygenError, ErrorCodes } from "../errors.js";

export type BitcoinNetwork = "mainnet" | "testnet" | "regtest";

const HRP: Readonly<Record<BitcoinNetwork, string>> = {
  mainnet: "bc",
  testnet: "tb",
  regtest: "bcrt",
};

const Point = schnorr.Point;
const N = Point.Fn.ORDER;

/** The x-only (32-byte) encoding of a 33-byte compressed or 32-byte x-only secp256k1 key. */
export function xOnly(key: Uint8Array): Uint8Array {
  if (key.length === 32) return key.slice();
  if (key.length === 33 && (key[0] === 2 || key[0] === 3)) return key.slice(1);
  throw new DkeygenError(ErrorCodes.INVALID_INPUT, "Not a secp256k1 public key encoding.");
}

/** The BIP 86 output key x(Q) of the x-only internal key `internal` (32 bytes). */
export function bip86OutputKey(internal: Uint8Array): Uint8Array {
  const x = xOnly(internal);
  const P = schnorr.utils.lift_x(bytesToBigInt(x));
  const t = bytesToBigInt(schnorr.utils.taggedHash("TapTweak", x));
  if (t >= N)
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "The TapTweak hash is out of range.");
  const Q = P.add(Point.BASE.multiply(t));
  return schnorr.utils.pointToBytes(Q);
}

/** The P2TR (witness v1) address of a 32-byte output key. */
export function p2trAddress(outputKey: Uint8Array, network: BitcoinNetwork = "mainnet"): string {
  if (outputKey.length !== 32) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A Taproot output key is 32 bytes.");
  }
  return bech32m.encode(HRP[network], [1, ...bech32m.toWords(outputKey)]);
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(bytes).toString("hex")}`);
}
