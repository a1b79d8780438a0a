/**
 * Proof generation over a store of perfect-subtree hashes: tree roots (RFC 9162 §2.1.1 MTH),
 * inclusion proofs (RFC 9162 §2.1.3.1 PATH) and consistency proofs (RFC 9162 §2.1.4.1 SUBPROOF)
 * for any tree size up to the store's, following the RFC's recursive definitions.
 *
 * Every subtree these definitions visit is either perfect (its hash is one stored node) or lies on
 * the right border of the tree it belongs to; a right-border subtree [start, end) is hashed by
 * folding the perfect nodes that the binary digits of end - start cut it into (O(log n) hashes).
 * An inclusion proof needs at most one such node, so it costs O(log n) reads and O(log n) hashes.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";
import { assertSize, EMPTY_ROOT, hashChildren, splitPoint } from "./merkle.js";

/** Read access to a log's perfect-subtree hashes. */
export interface HashReader {
  /** Number of leaves stored. */
  readonly size: number;
  /**
   * MTH(D[index·2^level : (index+1)·2^level]), the root of an aligned perfect subtree; level 0
   * holds the leaf hashes. Only subtrees wholly inside [0, size) exist. Such a node never
   * changes once the log has it, so it serves every later tree size; callers must not modify the
   * returned bytes.
   */
  node(level: number, index: number): Uint8Array;
}

/** MTH(D[0:size]) for any size up to the reader's. */
export function treeRoot(reader: HashReader, size: number): Uint8Array {
  assertSize("tree size", size);
  checkWithin(reader, size);
  return size === 0 ? EMPTY_ROOT : rangeHash(reader, 0, size);
}

/** PATH(index, D[0:size]) of RFC 9162 §2.1.3.1: sibling hashes from the leaf up to the root. */
export function inclusionProof(reader: HashReader, index: number, size: number): Uint8Array[] {
  assertSize("leaf index", index);
  assertSize("tree size", size);
  checkWithin(reader, size);
  if (index >= size) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `Leaf index ${index} is not below tree size ${size}.`,
    );
  }
  const out: Uint8Array[] = [];
  path(reader, index, 0, size, out);
  return out.reverse();
}

/**
 * SUBPROOF(size1, D[0:size2], true) of RFC 9162 §2.1.4.1, for 0 < size1 ≤ size2 (empty when the
 * sizes are equal). A proof from size 0 is not defined: every tree extends the empty tree.
 */
export function consistencyProof(reader: HashReader, size1: number, size2: number): Uint8Array[] {
  assertSize("first tree size", size1);
  assertSize("second tree size", size2);
  checkWithin(reader, size2);
  if (size1 === 0 || size1 > size2) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `A consistency proof needs 0 < first size ≤ second size, not ${size1} and ${size2}.`,
    );
  }
  const out: Uint8Array[] = [];
  if (size1 < size2) subproof(reader, size1, 0, size2, true, out);
  return out.reverse();
}

// Both recursions push the sibling of each level after the deeper ones would have been pushed in
// the RFC's order (PATH(m, D[0:k]) : MTH(D[k:n])); pushing top-down and reversing once avoids
// array concatenation. Depth is at most 53.

function path(reader: HashReader, m: number, start: number, end: number, out: Uint8Array[]): void {
  while (end - start > 1) {
    const { k, level } = splitPoint(end - start);
    if (m < start + k) {
      out.push(rangeHash(reader, start + k, end));
      end = start + k;
    } else {
      out.push(reader.node(level, start / k));
      start += k;
    }
  }
}

function subproof(
  reader: HashReader,
  m: number,
  start: number,
  end: number,
  complete: boolean,
  out: Uint8Array[],
): void {
  // m counts leaves from `start`; `complete` is the RFC's b (the subtree is the old tree itself).
  while (m !== end - start) {
    const { k, level } = splitPoint(end - start);
    if (m <= k) {
      out.push(rangeHash(reader, start + k, end));
      end = start + k;
    } else {
      out.push(reader.node(level, start / k));
      m -= k;
      start += k;
      complete = false;
    }
  }
  if (!complete) out.push(rangeHash(reader, start, end));
}

/**
 * MTH(D[start:end]) for a subtree the recursions visit: start is a multiple of the smallest power
 * of two ≥ end - start, so the binary digits of end - start, high to low, cut it into aligned
 * perfect subtrees whose hashes the reader has; fold them from the right.
 */
function rangeHash(reader: HashReader, start: number, end: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let width = 1;
  let level = 0;
  while (width * 2 <= end - start) {
    width *= 2;
    level++;
  }
  let pos = start;
  for (; level >= 0; level--, width /= 2) {
    if (end - pos >= width) {
      parts.push(reader.node(level, pos / width));
      pos += width;
    }
  }
  let h = parts[parts.length - 1]!;
  for (let i = parts.length - 2; i >= 0; i--) h = hashChildren(parts[i]!, h);
  return h;
}

function checkWithin(reader: HashReader, size: number): void {
  if (size > reader.size) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `Tree size ${size} is beyond the ${reader.size} leaves the log holds.`,
    );
  }
}
