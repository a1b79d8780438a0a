/**
 * IdSet (src/store/id-set.ts), the compaction's set of dropped ids: the answers of a Set<string>
 * for every string, ULIDs packed and others beside them (fast-check against a Set), through
 * the table's growth, and its memory per id.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { IdSet } from "../../src/store/id-set.js";
import { UlidGenerator } from "../../src/store/record-id.js";
import { fuzzParameters } from "../helpers/fuzz.js";

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ulid = fc
  .tuple(
    fc.constantFrom(..."01234567"),
    fc.array(fc.constantFrom(...CROCKFORD), { minLength: 25, maxLength: 25 }),
  )
  .map(([first, rest]) => first + rest.join(""));
/** Near-ULIDs: one character changed to something else, or a length off by one. */
const nearUlid = fc.oneof(
  fc
    .tuple(ulid, fc.nat(25), fc.constantFrom(..."89ILOUabz-_ é\u0000"))
    .map(([id, at, char]) => id.slice(0, at) + char + id.slice(at + 1)),
  ulid.map((id) => id.slice(1)),
  ulid.map((id) => `${id}0`),
);
const anyId = fc.oneof({ weight: 4, arbitrary: ulid }, nearUlid, fc.string({ maxLength: 30 }));

test("IdSet answers as a Set<string> does, for ULIDs, near-ULIDs and any string (fast-check)", () => {
  fc.assert(
    fc.property(
      fc.array(anyId, { minLength: 1, maxLength: 300 }),
      fc.array(anyId, { maxLength: 100 }),
      (added, probes) => {
        const set = new IdSet();
        const model = new Set<string>();
        for (const id of added) {
          set.add(id);
          model.add(id);
          assert.equal(set.size, model.size);
        }
        for (const id of [...added, ...probes]) assert.equal(set.has(id), model.has(id), id);
        // Each ULID with one character changed is another id: never found unless added.
        for (const id of added) {
          const other = id.slice(0, -1) + (id.endsWith("0") ? "1" : "0");
          assert.equal(set.has(other), model.has(other), other);
        }
      },
    ),
    fuzzParameters(200, 0.01),
  );
});

test("IdSet: the smallest and largest ULIDs, and ids differing only in their first or last bit", () => {
  const set = new IdSet();
  const zero = "0".repeat(26);
  const top = `7${"Z".repeat(25)}`;
  assert.equal(set.has(zero), false);
  set.add(zero);
  assert.equal(set.has(zero), true);
  assert.equal(set.has(`${"0".repeat(25)}1`), false);
  assert.equal(set.has(`1${"0".repeat(25)}`), false);
  assert.equal(set.has(`4${"0".repeat(25)}`), false);
  set.add(top);
  assert.equal(set.has(top), true);
  assert.equal(set.has(`7${"Z".repeat(24)}Y`), false);
  assert.equal(set.has(`3${"Z".repeat(25)}`), false);
  assert.equal(set.has(`8${"0".repeat(25)}`), false, "not a canonical ULID, and not added");
  assert.equal(set.size, 2);
});

test("IdSet holds 200,000 generated ids (monotonic within a millisecond) through its growth, in less than 48 bytes each", () => {
  let i = 0;
  const generator = new UlidGenerator({ now: () => 1_900_000_000_000 + (i >> 6) });
  const ids: string[] = [];
  for (; i < 200_000; i++) ids.push(generator.next());
  const set = new IdSet();
  for (const id of ids.slice(0, 100_000)) set.add(id);
  assert.equal(set.size, 100_000);
  for (const id of ids.slice(0, 100_000)) assert.ok(set.has(id), id);
  for (const id of ids.slice(100_000)) assert.equal(set.has(id), false, id);
  for (const id of ids) set.add(id);
  assert.equal(set.size, 200_000);
  // The table is a power of two at most half full: 2^19 slots of 16 bytes for 200,000 ids.
  assert.ok(set.bytes < 48 * 200_000, `${set.bytes} bytes`);
});
