/**
 * Merkle tree hashing of RFC 6962 §2.1 (unchanged in RFC 9162 §2.1) with SHA-256, and the
 * verification of inclusion proofs (RFC 9162 §2.1.3.2) and consistency proofs (RFC 9162
 * §2.1.4.2), step by step as the RFC writes them.
 *
 *   leaf hash   = SHA-256(0x00 || leaf bytes)
 *   node hash   = SHA-256(0x01 || left hash || right hash)
 *   MTH({})     = SHA-256("")   (the empty tree)
 *
 * Sizes and indexes are JavaScript numbers: safe integers, so a tree holds at most 2^53 - 1
 * leaves (the RFC allows 2^64). Arithmetic below uses division, not the 32-bit bit operators.
 *
 * Failures: arguments of the wrong shape (a hash that is not 32 bytes, a negative size) are
 * E_INVALID_INPUT; a proof that does not prove what it claims is E_BAD_SIGNATURE. Proofs come
 * from an untrusted log, so both are ordinary outcomes, never crashes.
 */
import * as nodeCrypto from "node:crypto";
import { DkeygenError, ErrorCodes } from "../errors.js";

/** SHA-256 output size; every hash in the tree has it. */
export const HASH_SIZE = 32;

/**
 * Longest proof we look at. A tree of 2^53 leaves has inclusion proofs of at most 53 hashes and
 * consistency proofs of at most 2·53; anything longer is refused before hashing.
 */
export const MAX_PROOF_HASHES = 128;

// node:crypto's one-shot hash (Node ≥ 20.12) is about twice as fast as createHash() for the
// 65-byte inputs of interior nodes; older Node 20 falls back to createHash.
const oneShot = (nodeCrypto as { hash?: typeof nodeCrypto.hash }).hash;
const digest: (data: Uint8Array) => Buffer =
  typeof oneShot === "function"
    ? (data) => oneShot("sha256", data, "buffer")
    : (data) => nodeCrypto.createHash("sha256").update(data).digest();
// Plain Uint8Array views (not Buffers), so hashes compare and serialize as the bytes they are.
const sha256 = (data: Uint8Array): Uint8Array => {
  const b = digest(data);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
};

/** MTH of the empty tree: SHA-256 of the empty string. */
export const EMPTY_ROOT: Uint8Array = sha256(new Uint8Array(0));

// Scratch buffers: hashing is synchronous, so one buffer per module is safe and saves an
// allocation per hash on the hot paths (appends, audits).
const nodeInput = new Uint8Array(1 + 2 * HASH_SIZE);
nodeInput[0] = 0x01;
let leafInput = new Uint8Array(1024);

/** Leaf hash of RFC 6962 §2.1: SHA-256(0x00 || data). */
export function hashLeaf(data: Uint8Array): Uint8Array {
  if (!(data instanceof Uint8Array)) throw invalid("leaf data must be a Uint8Array");
  if (leafInput.length < data.length + 1) {
    leafInput = new Uint8Array(Math.max(data.length + 1, 2 * leafInput.length));
  }
  leafInput[0] = 0x00;
  leafInput.set(data, 1);
  return sha256(leafInput.subarray(0, data.length + 1));
}

/** Interior node hash of RFC 6962 §2.1: SHA-256(0x01 || left || right). */
export function hashChildren(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    throw invalid(`child hashes must be ${HASH_SIZE} bytes`);
  }
  nodeInput.set(left, 1);
  nodeInput.set(right, 1 + HASH_SIZE);
  return sha256(nodeInput);
}

/** Constant-shape comparison of two hashes (public values; no timing secrecy needed). */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * MTH(D[0:n]) of RFC 6962 §2.1 from the leaf hashes, bottom-up: pair neighbours level by level and
 * carry an unpaired last node up unchanged. This builds the same tree as the RFC's split at the
 * largest power of two below n (the left subtree is always perfect, so only the right border has
 * unpaired nodes).
 */
export function rootOf(leafHashes: readonly Uint8Array[]): Uint8Array {
  for (const [i, h] of leafHashes.entries()) assertHash(`leaf hash ${i}`, h);
  if (leafHashes.length === 0) return EMPTY_ROOT;
  let level: Uint8Array[] = [...leafHashes];
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(hashChildren(level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
  }
  return level[0]!;
}

/**
 * The root that an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1–4 and the sn = 0 test of
 * step 5), for the leaf hash at `index` in a tree of `size` leaves.
 */
export function rootFromInclusionProof(
  index: number,
  size: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  assertSize("tree size", size);
  assertSize("leaf index", index);
  assertHash("leaf hash", leafHash);
  assertProof(proof);
  // 1. leaf_index >= tree_size fails.
  if (index >= size) throw bad(`leaf index ${index} is not below tree size ${size}`);
  // 2., 3.
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  // 4.
  for (const p of proof) {
    if (sn === 0) throw bad("the inclusion proof has more hashes than the tree has levels");
    if (fn % 2 === 1 || fn === sn) {
      r = hashChildren(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = hashChildren(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 5. (first half)
  if (sn !== 0) throw bad("the inclusion proof has fewer hashes than the tree has levels");
  return r;
}

/**
 * RFC 9162 §2.1.3.2: checks that `leafHash` is the leaf at `index` of the tree of `size` leaves
 * whose root is `root`. Throws E_BAD_SIGNATURE if it is not.
 */
export function verifyInclusion(
  index: number,
  size: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  assertHash("root hash", root);
  const computed = rootFromInclusionProof(index, size, leafHash, proof);
  if (!hashesEqual(computed, root)) {
    throw bad(
      `the inclusion proof of leaf ${index} does not lead to the root of tree size ${size}`,
    );
  }
}

/**
 * RFC 9162 §2.1.4.2: checks that the tree of `size1` leaves with root `root1` is a prefix of the
 * tree of `size2` leaves with root `root2`. Throws E_BAD_SIGNATURE if the proof does not show it.
 *
 * Beyond the RFC's 0 < size1 < size2: size1 = size2 needs an empty proof and equal roots;
 * size1 = 0 is refused, because a proof from the empty tree proves nothing (every tree extends
 * it — a caller that accepts "old size 0", like a witness, decides that without a proof). Both
 * as in github.com/transparency-dev/merkle, whose test vectors we pass.
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: readonly Uint8Array[],
): void {
  assertSize("first tree size", size1);
  assertSize("second tree size", size2);
  assertHash("first root hash", root1);
  assertHash("second root hash", root2);
  assertProof(proof);
  if (size2 < size1) throw bad(`tree size ${size2} is smaller than the earlier size ${size1}`);
  if (size1 === 0) throw bad("a consistency proof from the empty tree proves nothing");
  if (size1 === size2) {
    if (proof.length !== 0) throw bad("a consistency proof between equal sizes must be empty");
    if (!hashesEqual(root1, root2)) throw bad(`two different roots for tree size ${size1}`);
    return;
  }
  // 1.
  if (proof.length === 0) throw bad("the consistency proof is empty");
  // 2.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  // 3.
  let fn = size1 - 1;
  let sn = size2 - 1;
  // 4.
  while (fn % 2 === 1) {
    fn = (fn - 1) / 2;
    sn = Math.floor(sn / 2);
  }
  // 5.
  let fr = path[0]!;
  let sr = path[0]!;
  // 6.
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) throw bad("the consistency proof has more hashes than the trees need");
    if (fn % 2 === 1 || fn === sn) {
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = hashChildren(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 7.
  if (sn !== 0) throw bad("the consistency proof has fewer hashes than the trees need");
  if (!hashesEqual(fr, root1)) {
    throw bad(`the consistency proof does not lead to the root of tree size ${size1}`);
  }
  if (!hashesEqual(sr, root2)) {
    throw bad(`the consistency proof does not lead to the root of tree size ${size2}`);
  }
}

export function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

/** The largest power of two strictly below n (n ≥ 2): the RFC's split point k, with log2(k). */
export function splitPoint(n: number): { k: number; level: number } {
  let k = 1;
  let level = 0;
  while (k * 2 < n) {
    k *= 2;
    level++;
  }
  return { k, level };
}

export function assertHash(what: string, value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
    throw invalid(`${what} must be ${HASH_SIZE} bytes`);
  }
}

export function assertSize(what: string, value: unknown): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${what} must be an integer from 0 to 2^53 - 1`);
  }
}

function assertProof(proof: readonly Uint8Array[]): void {
  if (!Array.isArray(proof)) throw invalid("a proof must be an array of hashes");
  if (proof.length > MAX_PROOF_HASHES) {
    throw invalid(`a proof has at most ${MAX_PROOF_HASHES} hashes, not ${proof.length}`);
  }
  for (const [i, h] of proof.entries()) assertHash(`proof hash ${i}`, h);
}

function bad(message: string): DkeygenError {
  return new DkeygenError(ErrorCodes.BAD_SIGNATURE, `Merkle proof refused: ${message}.`);
}

function invalid(message: string): DkeygenError {
  return new DkeygenError(ErrorCodes.INVALID_INPUT, `${message}.`);
}
