/**
 * An in-memory store of every perfect-subtree hash of an append-only RFC 6962 log, kept as one
 * array per tree level, from which roots and proofs for any tree size up to the current one are
 * computed (src/tlog/prove.ts).
 *
 * Why level arrays, and not C2SP tlog-tiles (https://c2sp.org/tlog-tiles) as the in-memory form:
 * - A lookup is one array read, so an inclusion proof at 1,000,000 leaves is about 20 reads and
 *   at most about 20 hashes (the one right-border node), tens of microseconds against the 2 ms
 *   budget. A tile store keeps only levels 0, 8, 16, … and rehashes up to 255 hashes inside
 *   each tile a proof touches, about a thousand hashes per proof: a few milliseconds here.
 * - An append writes the leaf hash and, amortized, one interior node: two hashes and two 32-byte
 *   copies, far beyond 1,000 appends per second.
 * - The cost is memory: 2n hashes, 64 MiB at 1,000,000 leaves.
 * Levels 0, 8, 16, … are exactly the contents of tlog-tiles' tiles, so `readTile` serves tiles
 * from this store, and a durable store can persist tiles (or only leaf hashes) and rebuild the
 * levels on load by appending.
 *
 * Storage is chunked (4,096 hashes, 128 KiB per chunk) so that appending never copies what is
 * already stored.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";
import { assertHash, assertSize, HASH_SIZE, hashChildren } from "./merkle.js";
import { consistencyProof, type HashReader, inclusionProof, treeRoot } from "./prove.js";

const CHUNK_HASHES = 4096;
const CHUNK_BYTES = CHUNK_HASHES * HASH_SIZE;

/** Width of a full tlog-tiles tile, in hashes; a tile at tile level L holds tree level 8·L. */
export const TILE_WIDTH = 256;
const TILE_HEIGHT = 8;

interface Level {
  chunks: Uint8Array[];
  count: number;
}

export class MemoryHashStore implements HashReader {
  readonly #levels: Level[] = [];

  /** Number of leaves. */
  get size(): number {
    return this.#levels[0]?.count ?? 0;
  }

  /** Appends a leaf hash; returns its index. */
  append(leafHash: Uint8Array): number {
    assertHash("leaf hash", leafHash);
    const index = this.size;
    if (index === Number.MAX_SAFE_INTEGER) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, "The tree is full (2^53 - 1 leaves).");
    }
    this.#push(0, leafHash);
    // A node at an odd index completes its parent: hash the pair into the level above, and go on
    // while the parent in turn is a right child.
    let level = 0;
    let i = index;
    while (i % 2 === 1) {
      const parent = hashChildren(this.node(level, i - 1), this.node(level, i));
      level++;
      i = (i - 1) / 2;
      this.#push(level, parent);
    }
    return index;
  }

  node(level: number, index: number): Uint8Array {
    const stored = this.#levels[level];
    if (
      stored === undefined ||
      !Number.isSafeInteger(index) ||
      index < 0 ||
      index >= stored.count
    ) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        `The log has no complete subtree at level ${level}, index ${index}.`,
      );
    }
    const offset = (index % CHUNK_HASHES) * HASH_SIZE;
    return stored.chunks[Math.floor(index / CHUNK_HASHES)]!.subarray(offset, offset + HASH_SIZE);
  }

  /** MTH(D[0:size]), by default of the whole log. */
  root(size: number = this.size): Uint8Array {
    return treeRoot(this, size);
  }

  /** RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves (default: all). */
  inclusionProof(index: number, size: number = this.size): Uint8Array[] {
    return inclusionProof(this, index, size);
  }

  /** RFC 9162 consistency proof from tree size `size1` to `size2` (default: all). */
  consistencyProof(size1: number, size2: number = this.size): Uint8Array[] {
    return consistencyProof(this, size1, size2);
  }

  #push(level: number, hash: Uint8Array): void {
    let stored = this.#levels[level];
    if (stored === undefined) {
      stored = { chunks: [], count: 0 };
      this.#levels[level] = stored;
    }
    const offset = (stored.count % CHUNK_HASHES) * HASH_SIZE;
    if (offset === 0) stored.chunks.push(new Uint8Array(CHUNK_BYTES));
    stored.chunks[stored.chunks.length - 1]!.set(hash, offset);
    stored.count++;
  }
}

/**
 * The tile at tile level `tileLevel` and index `n` of the tree of `size` leaves, as tlog-tiles
 * serves it: the concatenated hashes MTH(D[(n·256 + i)·256^L : (n·256 + i + 1)·256^L]) for i
 * from 0 to width - 1, where width is 256 for a full tile and floor(size / 256^L) mod 256 for
 * the rightmost, partial one. Tiles a tree of `size` leaves does not have are refused.
 */
export function readTile(
  reader: HashReader,
  tileLevel: number,
  n: number,
  size: number = reader.size,
): Uint8Array {
  assertSize("tile index", n);
  assertSize("tree size", size);
  if (!Number.isInteger(tileLevel) || tileLevel < 0 || tileLevel > 63) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A tile level is an integer from 0 to 63.");
  }
  if (size > reader.size) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `Tree size ${size} is beyond the ${reader.size} leaves the log holds.`,
    );
  }
  const level = TILE_HEIGHT * tileLevel;
  const hashesAtLevel = Math.floor(size / 2 ** level);
  const width = Math.min(TILE_WIDTH, hashesAtLevel - n * TILE_WIDTH);
  if (width <= 0) {
    throw new DkeygenError(
      ErrorCodes.NOT_FOUND,
      `A tree of ${size} leaves has no tile ${n} at tile level ${tileLevel}.`,
    );
  }
  const tile = new Uint8Array(width * HASH_SIZE);
  for (let i = 0; i < width; i++) {
    tile.set(reader.node(level, n * TILE_WIDTH + i), i * HASH_SIZE);
  }
  return tile;
}
