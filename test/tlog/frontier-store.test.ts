/**
 * The frontier (saved and restored) and the hash store's tlog-tiles view, against the
 * definitions in RFC 9162 §2.1 and C2SP tlog-tiles.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isDkeygenError } from "../../src/errors.js";
import { Frontier } from "../../src/tlog/frontier.js";
import { MemoryHashStore, readTile, TILE_WIDTH } from "../../src/tlog/hash-store.js";
import { hashLeaf, rootOf } from "../../src/tlog/merkle.js";
import { hex, leafData } from "./naive-merkle.js";

test("a frontier saved at any size and restored goes on to the same roots", () => {
  const leaves = Array.from({ length: 70 }, (_, i) => hashLeaf(leafData(i)));
  for (let cut = 0; cut <= 70; cut++) {
    const first = new Frontier();
    for (const leaf of leaves.slice(0, cut)) first.append(leaf);
    const saved = first.nodes();
    assert.equal(saved.length, cut.toString(2).replaceAll("0", "").length, `size ${cut}`);
    const restored = Frontier.restore(cut, saved);
    for (const leaf of leaves.slice(cut)) restored.append(leaf);
    assert.equal(restored.size, 70);
    assert.equal(hex(restored.root()), hex(rootOf(leaves)), `restored at ${cut}`);
  }
});

test("a frontier with the wrong number of nodes for its size, or a bad node, is refused", () => {
  const f = new Frontier();
  for (let i = 0; i < 6; i++) f.append(hashLeaf(leafData(i)));
  const nodes = f.nodes(); // 6 = 0b110: two nodes
  const invalid = (fn: () => unknown) =>
    assert.throws(fn, (e: unknown) => isDkeygenError(e, "E_INVALID_INPUT"));
  invalid(() => Frontier.restore(7, nodes));
  invalid(() => Frontier.restore(4, nodes));
  invalid(() => Frontier.restore(6, [nodes[0]!, nodes[1]!.subarray(1)]));
  invalid(() => Frontier.restore(-1, []));
  invalid(() => f.append(new Uint8Array(33)));
  assert.equal(hex(Frontier.restore(0, []).root()), hex(rootOf([])));
  // The saved nodes are copies: changing them changes nothing inside the frontier.
  nodes[0]!.fill(0);
  assert.equal(
    hex(f.root()),
    hex(rootOf(Array.from({ length: 6 }, (_, i) => hashLeaf(leafData(i))))),
  );
});

test("tlog-tiles: a tree of 70,000 leaves has exactly the tiles the spec lists, each hash the MTH it defines", () => {
  const size = 70_000;
  const leaves = Array.from({ length: size }, (_, i) => hashLeaf(leafData(i)));
  const store = new MemoryHashStore();
  for (const leaf of leaves) store.append(leaf);
  const widths = (level: number) => {
    const out: number[] = [];
    for (let n = 0; ; n++) {
      try {
        out.push(readTile(store, level, n).length / 32);
      } catch (e) {
        assert.ok(isDkeygenError(e, "E_NOT_FOUND"));
        return out;
      }
    }
  };
  // "273 full level 0 tiles, one partial level 0 tile of width 112, one full level 1 tile, one
  // partial level 1 tile of width 17, and one partial level 2 tile of width 1."
  assert.deepEqual(widths(0), [...Array(273).fill(TILE_WIDTH), 112]);
  assert.deepEqual(widths(1), [TILE_WIDTH, 17]);
  assert.deepEqual(widths(2), [1]);
  assert.deepEqual(widths(3), []);
  // Hash i of tile n at level l is MTH(D[(n·256 + i)·256^l : (n·256 + i + 1)·256^l]).
  const tileHash = (l: number, n: number, i: number) =>
    hex(readTile(store, l, n).subarray(i * 32, i * 32 + 32));
  const mth = (a: number, b: number) => hex(rootOf(leaves.slice(a, b)));
  assert.equal(tileHash(0, 273, 111), hex(leaves[273 * 256 + 111]!));
  assert.equal(tileHash(1, 0, 0), mth(0, 256));
  assert.equal(tileHash(1, 1, 16), mth((256 + 16) * 256, (256 + 17) * 256));
  assert.equal(tileHash(2, 0, 0), mth(0, 65_536));
  // An older tree size has its own partial tiles.
  assert.equal(readTile(store, 0, 1, 300).length, 44 * 32);
  assert.throws(
    () => readTile(store, 0, 2, 300),
    (e) => isDkeygenError(e, "E_NOT_FOUND"),
  );
  assert.throws(
    () => readTile(store, 1, 0, 255),
    (e) => isDkeygenError(e, "E_NOT_FOUND"),
  );
  assert.throws(
    () => readTile(store, 64, 0),
    (e) => isDkeygenError(e, "E_INVALID_INPUT"),
  );
  assert.throws(
    () => readTile(store, 0, 0, size + 1),
    (e) => isDkeygenError(e, "E_INVALID_INPUT"),
  );
});

test("the store's proofs for an old size stay the same as the log grows past chunk boundaries", () => {
  const store = new MemoryHashStore();
  for (let i = 0; i < 1000; i++) store.append(hashLeaf(leafData(i)));
  const root = hex(store.root());
  const proof = store.inclusionProof(777).map(hex);
  const consistency = store.consistencyProof(333).map(hex);
  for (let i = 1000; i < 9000; i++) store.append(hashLeaf(leafData(i)));
  assert.equal(hex(store.root(1000)), root);
  assert.deepEqual(store.inclusionProof(777, 1000).map(hex), proof);
  assert.deepEqual(store.consistencyProof(333, 1000).map(hex), consistency);
  assert.equal(store.size, 9000);
  assert.equal(store.append(hashLeaf(leafData(9000))), 9000);
});
