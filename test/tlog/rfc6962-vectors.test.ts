/**
 * Outside test vectors for the Merkle tree (sources in test/vectors/tlog/README.md): the RFC 6962
 * reference tree of Certificate Transparency, transparency-dev/merkle's inclusion and consistency
 * probes (happy paths and every kind of tampering), and the accumulated subtree vectors of
 * draft-ietf-plants-merkle-tree-certs.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { isDkeygenError } from "../../src/errors.js";
import { Frontier } from "../../src/tlog/frontier.js";
import { MemoryHashStore } from "../../src/tlog/hash-store.js";
import {
  EMPTY_ROOT,
  hashLeaf,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from "../../src/tlog/merkle.js";
import { readVector } from "../helpers/paths.js";
import { fromBase64, fromHex, hex } from "./naive-merkle.js";

interface ReferenceTree {
  leafInputs: string[];
  nodeHashesByLevel: string[][];
  rootHashesBySize: string[];
  hasher: { emptyRoot: string; emptyLeafHash: string; leaf: { dataHex: string; hash: string } };
}
const reference = readVector<ReferenceTree>("tlog/rfc6962-reference-tree.json");

test("RFC 6962 hashing: the empty tree, the empty leaf and a known leaf", () => {
  assert.equal(hex(EMPTY_ROOT), reference.hasher.emptyRoot);
  assert.equal(hex(rootOf([])), reference.hasher.emptyRoot);
  assert.equal(hex(hashLeaf(new Uint8Array(0))), reference.hasher.emptyLeafHash);
  assert.equal(hex(hashLeaf(fromHex(reference.hasher.leaf.dataHex))), reference.hasher.leaf.hash);
  // The scratch buffer grows for long leaves and is not left dirty for short ones after.
  const long = new Uint8Array(5000).fill(7);
  const expected = createHash("sha256").update(Uint8Array.of(0)).update(long).digest("hex");
  assert.equal(hex(hashLeaf(long)), expected);
  assert.equal(hex(hashLeaf(new Uint8Array(0))), reference.hasher.emptyLeafHash);
});

test("the RFC 6962 reference tree: every root from size 0 to 8 and every node hash", () => {
  const leaves = reference.leafInputs.map((d) => hashLeaf(fromHex(d)));
  const store = new MemoryHashStore();
  const frontier = new Frontier();
  assert.equal(hex(store.root()), reference.rootHashesBySize[0]);
  for (const [i, leaf] of leaves.entries()) {
    store.append(leaf);
    frontier.append(leaf);
    const want = reference.rootHashesBySize[i + 1];
    assert.equal(hex(store.root()), want, `store, size ${i + 1}`);
    assert.equal(hex(frontier.root()), want, `frontier, size ${i + 1}`);
    assert.equal(hex(rootOf(leaves.slice(0, i + 1))), want, `rootOf, size ${i + 1}`);
  }
  for (let size = 0; size <= 8; size++) {
    assert.equal(hex(store.root(size)), reference.rootHashesBySize[size], `older size ${size}`);
  }
  for (const [level, hashes] of reference.nodeHashesByLevel.entries()) {
    for (const [i, h] of hashes.entries()) assert.equal(hex(store.node(level, i)), h);
  }
});

interface InclusionProbe {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}
interface ConsistencyProbe {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

/**
 * Probes the upstream verifier accepts and we refuse, on purpose: they compare placeholder
 * "hashes" that are not 32 bytes ("don't care 1"), which our verifier refuses as malformed
 * before comparing anything.
 */
const STRICTER = new Set([
  "testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json",
]);

function outcome(fn: () => void): "accepted" | "refused" {
  try {
    fn();
    return "accepted";
  } catch (e) {
    assert.ok(
      isDkeygenError(e, "E_BAD_SIGNATURE") || isDkeygenError(e, "E_INVALID_INPUT"),
      `refused with a DkeygenError, not ${String(e)}`,
    );
    return "refused";
  }
}

test("transparency-dev/merkle's 98 inclusion probes: happy paths accepted, every tampering refused", () => {
  const probes = readVector<Record<string, InclusionProbe>>("tlog/transparency-dev-inclusion.json");
  let accepted = 0;
  for (const [path, p] of Object.entries(probes)) {
    const got = outcome(() =>
      verifyInclusion(
        p.leafIdx,
        p.treeSize,
        fromBase64(p.leafHash),
        (p.proof ?? []).map(fromBase64),
        fromBase64(p.root),
      ),
    );
    assert.equal(got, p.wantErr ? "refused" : "accepted", `${path}: ${p.desc}`);
    if (got === "accepted") accepted++;
  }
  assert.equal(Object.keys(probes).length, 98);
  assert.equal(accepted, 6);
});

test("transparency-dev/merkle's 98 consistency probes: happy paths accepted, every tampering refused", () => {
  const probes = readVector<Record<string, ConsistencyProbe>>(
    "tlog/transparency-dev-consistency.json",
  );
  let accepted = 0;
  for (const [path, p] of Object.entries(probes)) {
    const got = outcome(() =>
      verifyConsistency(
        p.size1,
        p.size2,
        fromBase64(p.root1),
        fromBase64(p.root2),
        (p.proof ?? []).map(fromBase64),
      ),
    );
    const want = p.wantErr || STRICTER.has(path) ? "refused" : "accepted";
    assert.equal(got, want, `${path}: ${p.desc}`);
    if (got === "accepted") accepted++;
  }
  assert.equal(Object.keys(probes).length, 98);
  assert.equal(accepted, 5);
});

interface Accumulated {
  maxSize: number;
  subtreeHashes: { sha256: string };
  subtreeInclusionProofs: { sha256: string };
}

/** A subtree [start, end) of draft-ietf-plants-merkle-tree-certs: aligned to its bit ceiling. */
function validSubtree(start: number, end: number): boolean {
  if (start === 0 || start === end) return true;
  let ceil = 1;
  while (ceil < end - start) ceil *= 2;
  return start % ceil === 0;
}

test("draft-ietf-plants-merkle-tree-certs accumulated vectors: every subtree hash and inclusion proof up to 130 leaves", () => {
  const v = readVector<Accumulated>("tlog/plants-subtree-accumulated.json");
  const leaves = Array.from({ length: v.maxSize }, (_, i) => hashLeaf(Uint8Array.of(i)));
  const hashes = createHash("sha256");
  const proofs = createHash("sha256");
  let subtrees = 0;
  for (let end = 0; end <= v.maxSize; end++) {
    for (let start = 0; start <= end; start++) {
      if (!validSubtree(start, end)) continue;
      // A valid subtree is a tree of its own: its hash and proofs are those of D[start:end].
      const store = new MemoryHashStore();
      for (const leaf of leaves.slice(start, end)) store.append(leaf);
      hashes.update(`[${start}, ${end}) ${hex(store.root())}\n`);
      for (let index = start; index < end; index++) {
        const proof = store.inclusionProof(index - start);
        proofs.update(`${index} [${start}, ${end})${proof.map((h) => ` ${hex(h)}`).join("")}\n`);
      }
      subtrees++;
    }
  }
  assert.equal(subtrees, 712);
  assert.equal(hashes.digest("hex"), v.subtreeHashes.sha256);
  assert.equal(proofs.digest("hex"), v.subtreeInclusionProofs.sha256);
});
