/**
 * The frontier of an append-only RFC 6962 Merkle tree (a "compact range" [0, n) in
 * github.com/transparency-dev/merkle's words): the roots of the perfect subtrees that the binary
 * digits of n cut the leaves into, left to right, largest first. A tree of n leaves has
 * popcount(n) of them, at most 53 here.
 *
 * Appending costs amortized one node hash (carry propagation, like incrementing a binary counter)
 * and the root is a right-to-left fold of the frontier, O(log n). An auditor recomputes a whole
 * log's root with it in O(log n) memory; a witness or log keeps it to sign new checkpoints.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";
import { assertHash, assertSize, EMPTY_ROOT, hashChildren } from "./merkle.js";

export class Frontier {
  #size = 0;
  /** Perfect subtree roots, left to right: heights are the set bits of #size, high to low. */
  readonly #nodes: Uint8Array[] = [];

  /** A frontier saved with `nodes()`; checks that there is one node per set bit of `size`. */
  static restore(size: number, nodes: readonly Uint8Array[]): Frontier {
    assertSize("tree size", size);
    for (const [i, h] of nodes.entries()) assertHash(`frontier node ${i}`, h);
    if (nodes.length !== popcount(size)) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        `A frontier of tree size ${size} has ${popcount(size)} nodes, not ${nodes.length}.`,
      );
    }
    const frontier = new Frontier();
    frontier.#size = size;
    frontier.#nodes.push(...nodes.map((h) => Uint8Array.from(h)));
    return frontier;
  }

  get size(): number {
    return this.#size;
  }

  /** Appends one leaf hash (RFC 6962 leaf hash, not leaf data). */
  append(leafHash: Uint8Array): void {
    assertHash("leaf hash", leafHash);
    if (this.#size === Number.MAX_SAFE_INTEGER) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, "The tree is full (2^53 - 1 leaves).");
    }
    // Each trailing 1 bit of the size is a perfect subtree of the same height as the one being
    // carried: merge them, as a binary counter carries.
    let carry = leafHash;
    let s = this.#size;
    while (s % 2 === 1) {
      carry = hashChildren(this.#nodes.pop()!, carry);
      s = (s - 1) / 2;
    }
    this.#nodes.push(carry);
    this.#size++;
  }

  /** MTH(D[0:size]): the frontier folded from the right. */
  root(): Uint8Array {
    const n = this.#nodes.length;
    if (n === 0) return EMPTY_ROOT;
    let h = this.#nodes[n - 1]!;
    for (let i = n - 2; i >= 0; i--) h = hashChildren(this.#nodes[i]!, h);
    return h;
  }

  /** Copies of the frontier's nodes, for `Frontier.restore`. */
  nodes(): Uint8Array[] {
    return this.#nodes.map((h) => Uint8Array.from(h));
  }
}

function popcount(n: number): number {
  let count = 0;
  while (n > 0) {
    count += n % 2;
    n = Math.floor(n / 2);
  }
  return count;
}
