/**
 * Inclusion and consistency proofs for every tree size up to 300, against the RFC 9162 definitions
 * computed naively (test/tlog/naive-merkle.ts), and tampering of every kind refused.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type ErrorCode, isDkeygenError } from "../../src/errors.js";
import { Frontier } from "../../src/tlog/frontier.js";
import { MemoryHashStore } from "../../src/tlog/hash-store.js";
import {
  hashLeaf,
  rootFromInclusionProof,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from "../../src/tlog/merkle.js";
import { hex, leafData, NaiveTree } from "./naive-merkle.js";

const MAX = 300;
const naive = new NaiveTree(MAX);
const store = new MemoryHashStore();
for (let i = 0; i < MAX; i++) store.append(hashLeaf(leafData(i)));
const roots = Array.from({ length: MAX + 1 }, (_, n) => naive.mth(0, n));

const refused = (fn: () => unknown, code: ErrorCode = "E_BAD_SIGNATURE") =>
  assert.throws(fn, (e: unknown) => isDkeygenError(e, code));
const sameProof = (a: readonly Uint8Array[], b: readonly Uint8Array[]) =>
  a.length === b.length && a.every((h, i) => hex(h) === hex(b[i]!));
const flip = (proof: readonly Uint8Array[], at: number, bit: number) =>
  proof.map((h, i) => {
    if (i !== at) return h;
    const copy = Uint8Array.from(h);
    copy[bit >> 3]! ^= 1 << (bit & 7);
    return copy;
  });

test("our leaf hashes are the naive reference's, and roots of every size up to 300 agree", () => {
  const frontier = new Frontier();
  for (let n = 0; n <= MAX; n++) {
    if (n > 0) {
      assert.equal(hex(hashLeaf(leafData(n - 1))), hex(naive.leaves[n - 1]!));
      frontier.append(naive.leaves[n - 1]!);
    }
    assert.equal(hex(store.root(n)), hex(roots[n]!), `store root of size ${n}`);
    assert.equal(hex(frontier.root()), hex(roots[n]!), `frontier root of size ${n}`);
    assert.equal(hex(rootOf(naive.leaves.slice(0, n))), hex(roots[n]!), `rootOf size ${n}`);
  }
});

test("every inclusion proof for every index of every tree size up to 300 is RFC 9162's PATH and verifies", () => {
  let proofs = 0;
  for (let n = 1; n <= MAX; n++) {
    for (let m = 0; m < n; m++) {
      const proof = store.inclusionProof(m, n);
      assert.ok(sameProof(proof, naive.path(m, 0, n)), `PATH(${m}, ${n})`);
      verifyInclusion(m, n, naive.leaves[m]!, proof, roots[n]!);
      proofs++;
    }
  }
  assert.equal(proofs, (MAX * (MAX + 1)) / 2);
});

test("every consistency proof between every pair of sizes up to 300 is RFC 9162's SUBPROOF and verifies", () => {
  let proofs = 0;
  for (let n = 1; n <= MAX; n++) {
    for (let m = 1; m <= n; m++) {
      const proof = store.consistencyProof(m, n);
      const expected = m === n ? [] : naive.subproof(m, 0, n, true);
      assert.ok(sameProof(proof, expected), `SUBPROOF(${m}, ${n})`);
      verifyConsistency(m, n, roots[m]!, roots[n]!, proof);
      proofs++;
    }
  }
  assert.equal(proofs, (MAX * (MAX + 1)) / 2);
});

test("an inclusion proof with any bit flipped is refused (every hash of every proof up to size 64, random bits beyond)", () => {
  for (let n = 2; n <= 64; n++) {
    for (let m = 0; m < n; m++) {
      const proof = store.inclusionProof(m, n);
      for (let at = 0; at < proof.length; at++) {
        const bit = (m * 31 + at * 7 + n) % 256;
        refused(() => verifyInclusion(m, n, naive.leaves[m]!, flip(proof, at, bit), roots[n]!));
      }
    }
  }
  fc.assert(
    fc.property(
      fc
        .integer({ min: 2, max: MAX })
        .chain((n) => fc.tuple(fc.constant(n), fc.nat(n - 1), fc.nat(), fc.nat(255))),
      ([n, m, pick, bit]) => {
        const proof = store.inclusionProof(m, n);
        const at = pick % proof.length;
        refused(() => verifyInclusion(m, n, naive.leaves[m]!, flip(proof, at, bit), roots[n]!));
        // The leaf and the root are checked as well.
        const leaf = flip([naive.leaves[m]!], 0, bit)[0]!;
        refused(() => verifyInclusion(m, n, leaf, proof, roots[n]!));
        refused(() =>
          verifyInclusion(m, n, naive.leaves[m]!, proof, flip([roots[n]!], 0, bit)[0]!),
        );
      },
    ),
    { numRuns: 2000 },
  );
});

/** The wrong-index and wrong-size claims for the inclusion proof of leaf m in tree size n. */
function inclusionMisuses(m: number, n: number, n2: number, j: number): void {
  const proof = store.inclusionProof(m, n);
  if (j !== m) {
    // The right leaf at the wrong index, and the wrong index's own leaf with m's proof.
    refused(() => verifyInclusion(j, n, naive.leaves[m]!, proof, roots[n]!));
    if (!sameProof(proof, store.inclusionProof(j, n))) {
      refused(() => verifyInclusion(j, n, naive.leaves[j]!, proof, roots[n]!));
    }
  }
  // Another size, with that size's true root: refused unless the proofs coincide.
  if (n2 > m && n2 !== n && !sameProof(proof, store.inclusionProof(m, n2))) {
    refused(() => verifyInclusion(m, n2, naive.leaves[m]!, proof, roots[n2]!));
  }
  refused(() => verifyInclusion(m, m, naive.leaves[m]!, proof, roots[n]!));
}

test("an inclusion proof presented for another index or another tree size is refused", () => {
  // Every index and every other size exhaustively up to size 32, random ones up to 300.
  for (let n = 1; n <= 32; n++) {
    for (let m = 0; m < n; m++) {
      for (let j = 0; j < Math.max(n, 40); j++) inclusionMisuses(m, n, j + 1, Math.min(j, n - 1));
    }
  }
  fc.assert(
    fc.property(
      fc
        .integer({ min: 1, max: MAX })
        .chain((n) =>
          fc.tuple(fc.constant(n), fc.nat(n - 1), fc.integer({ min: 1, max: MAX }), fc.nat(n - 1)),
        ),
      ([n, m, n2, j]) => inclusionMisuses(m, n, n2, j),
    ),
    { numRuns: 3000 },
  );
});

test("an inclusion proof with a hash added or removed is refused", () => {
  for (let n = 1; n <= 100; n++) {
    for (let m = 0; m < n; m++) {
      const proof = store.inclusionProof(m, n);
      const leaf = naive.leaves[m]!;
      refused(() => verifyInclusion(m, n, leaf, [...proof, roots[n]!], roots[n]!));
      refused(() => verifyInclusion(m, n, leaf, [leaf, ...proof], roots[n]!));
      if (proof.length > 0) {
        refused(() => verifyInclusion(m, n, leaf, proof.slice(1), roots[n]!));
        refused(() => verifyInclusion(m, n, leaf, proof.slice(0, -1), roots[n]!));
      }
    }
  }
});

/** Tampered forms of the consistency proof from m to n. */
function consistencyTampered(m: number, n: number, bit: number): void {
  const proof = store.consistencyProof(m, n);
  for (let at = 0; at < proof.length; at++) {
    refused(() => verifyConsistency(m, n, roots[m]!, roots[n]!, flip(proof, at, bit)));
  }
  refused(() => verifyConsistency(m, n, flip([roots[m]!], 0, bit)[0]!, roots[n]!, proof));
  refused(() => verifyConsistency(m, n, roots[m]!, flip([roots[n]!], 0, bit)[0]!, proof));
  refused(() => verifyConsistency(m, n, roots[m]!, roots[n]!, [...proof, roots[m]!]));
  refused(() => verifyConsistency(m, n, roots[m]!, roots[n]!, proof.slice(1)));
  refused(() => verifyConsistency(m, n, roots[m]!, roots[n]!, proof.slice(0, -1)));
  refused(() => verifyConsistency(m, n, roots[n]!, roots[m]!, proof));
}

/** The consistency proof from m to n used for sizes m2 → n or m → n2. */
function consistencyOtherSizes(m: number, n: number, m2: number, n2: number): void {
  const proof = store.consistencyProof(m, n);
  // Other sizes, with those sizes' true roots: refused unless the proofs coincide.
  if (m2 < n && m2 !== m && !sameProof(proof, store.consistencyProof(m2, n))) {
    refused(() => verifyConsistency(m2, n, roots[m2]!, roots[n]!, proof));
  }
  if (n2 > m && n2 !== n && !sameProof(proof, store.consistencyProof(m, n2))) {
    refused(() => verifyConsistency(m, n2, roots[m]!, roots[n2]!, proof));
  }
}

test("a consistency proof with any bit flipped, or for other sizes, or with a hash added or removed is refused", () => {
  // Every pair of sizes and every other size exhaustively up to 24, random ones up to 300.
  for (let n = 2; n <= 24; n++) {
    for (let m = 1; m < n; m++) {
      consistencyTampered(m, n, (m * 13 + n) % 256);
      for (let other = 1; other <= 32; other++) consistencyOtherSizes(m, n, other, other);
    }
  }
  fc.assert(
    fc.property(
      fc
        .integer({ min: 2, max: MAX })
        .chain((n) =>
          fc.tuple(
            fc.constant(n),
            fc.integer({ min: 1, max: n - 1 }),
            fc.integer({ min: 1, max: MAX }),
            fc.integer({ min: 1, max: MAX }),
            fc.nat(255),
          ),
        ),
      ([n, m, m2, n2, bit]) => {
        consistencyTampered(m, n, bit);
        consistencyOtherSizes(m, n, m2, n2);
      },
    ),
    { numRuns: 2000 },
  );
});

test("consistency at the edges: equal sizes need an empty proof and equal roots; size 0 and shrinking are refused", () => {
  verifyConsistency(7, 7, roots[7]!, roots[7]!, []);
  refused(() => verifyConsistency(7, 7, roots[7]!, roots[6]!, []));
  refused(() => verifyConsistency(7, 7, roots[7]!, roots[7]!, [roots[7]!]));
  refused(() => verifyConsistency(0, 5, roots[0]!, roots[5]!, []));
  refused(() => verifyConsistency(0, 0, roots[0]!, roots[0]!, []));
  refused(() => verifyConsistency(6, 5, roots[6]!, roots[5]!, store.consistencyProof(5, 6)));
  refused(() => verifyConsistency(5, 6, roots[5]!, roots[6]!, []));
  assert.throws(
    () => store.consistencyProof(0, 5),
    (e) => isDkeygenError(e, "E_INVALID_INPUT"),
  );
  assert.throws(
    () => store.consistencyProof(6, 5),
    (e) => isDkeygenError(e, "E_INVALID_INPUT"),
  );
  assert.deepEqual(store.consistencyProof(5, 5), []);
});

test("malformed arguments are E_INVALID_INPUT, never a crash", () => {
  const leaf = naive.leaves[0]!;
  const proof = store.inclusionProof(0, 8);
  const invalid = (fn: () => unknown) => refused(fn, "E_INVALID_INPUT");
  invalid(() => verifyInclusion(0, 8, leaf.subarray(1), proof, roots[8]!));
  invalid(() => verifyInclusion(0, 8, leaf, proof, roots[8]!.subarray(0, 31)));
  invalid(() => verifyInclusion(0, 8, leaf, [...proof.slice(1), new Uint8Array(33)], roots[8]!));
  invalid(() => verifyInclusion(-1, 8, leaf, proof, roots[8]!));
  invalid(() => verifyInclusion(0.5, 8, leaf, proof, roots[8]!));
  invalid(() => verifyInclusion(0, 2 ** 53, leaf, proof, roots[8]!));
  invalid(() => verifyInclusion(0, 8, leaf, Array(129).fill(leaf), roots[8]!));
  invalid(() => verifyConsistency(1, 8, leaf, roots[8]!, "x" as never));
  invalid(() => rootFromInclusionProof(0, 8, "leaf" as never, proof));
  invalid(() => store.inclusionProof(8, 8));
  invalid(() => store.inclusionProof(0, MAX + 1));
  invalid(() => store.root(MAX + 1));
  invalid(() => store.node(0, MAX));
  invalid(() => store.node(20, 0));
  invalid(() => store.append(new Uint8Array(31)));
  // A 128-hash proof is looked at (and refused as a proof), a 129-hash one is not.
  refused(() => verifyInclusion(0, 8, leaf, Array(128).fill(leaf), roots[8]!));
});
