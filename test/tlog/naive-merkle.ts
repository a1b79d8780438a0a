/**
 * A deliberately plain RFC 9162 §2.1 reference for the tests: MTH, PATH and SUBPROOF written as
 * the RFC's recursive definitions over an array of leaf hashes, hashed with @noble/hashes (not the
 * node:crypto path the code under test uses). Subtree hashes are memoized per [start, end) of one
 * fixed leaf sequence, so every tree size up to 300 can be checked exhaustively.
 */
import { sha256 } from "@noble/hashes/sha2.js";

export function naiveLeafHash(data: Uint8Array): Uint8Array {
  const input = new Uint8Array(data.length + 1);
  input.set(data, 1);
  return sha256(input);
}

export function naiveNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  const input = new Uint8Array(65);
  input[0] = 1;
  input.set(left, 1);
  input.set(right, 33);
  return sha256(input);
}

/** Leaf data i: four bytes of i and a byte of i mod 251, so every leaf differs. */
export function leafData(i: number): Uint8Array {
  return Uint8Array.of(i >>> 24, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff, i % 251);
}

export class NaiveTree {
  readonly leaves: Uint8Array[];
  readonly #memo = new Map<string, Uint8Array>();

  constructor(count: number) {
    this.leaves = Array.from({ length: count }, (_, i) => naiveLeafHash(leafData(i)));
  }

  /** MTH(D[start:end]) by the RFC's recursion. */
  mth(start: number, end: number): Uint8Array {
    if (end === start) return sha256(new Uint8Array(0));
    if (end - start === 1) return this.leaves[start]!;
    const key = `${start},${end}`;
    const cached = this.#memo.get(key);
    if (cached) return cached;
    const k = largestPowerOfTwoBelow(end - start);
    const h = naiveNodeHash(this.mth(start, start + k), this.mth(start + k, end));
    this.#memo.set(key, h);
    return h;
  }

  /** PATH(m, D[start:end]), m relative to start. */
  path(m: number, start: number, end: number): Uint8Array[] {
    const n = end - start;
    if (n === 1) return [];
    const k = largestPowerOfTwoBelow(n);
    return m < k
      ? [...this.path(m, start, start + k), this.mth(start + k, end)]
      : [...this.path(m - k, start + k, end), this.mth(start, start + k)];
  }

  /** SUBPROOF(m, D[start:end], b). */
  subproof(m: number, start: number, end: number, b: boolean): Uint8Array[] {
    const n = end - start;
    if (m === n) return b ? [] : [this.mth(start, end)];
    const k = largestPowerOfTwoBelow(n);
    return m <= k
      ? [...this.subproof(m, start, start + k, b), this.mth(start + k, end)]
      : [...this.subproof(m - k, start + k, end, false), this.mth(start, start + k)];
  }
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
export const fromHex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
export const fromBase64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
