/**
 * The record index's id lists (src/store/record-index.ts IdList): there is one per subject and
 * per (requester, subject), and OTPs leave them as they retire. A list must answer exactly its
 * present ids whatever the order of adds and removals, and must not keep what left: at most
 * about twice its live ids plus LIST_COMPACT_AFTER slots, and no retired id held before its head
 * (a list that waited for 1024 removed ids kept up to 1024 retired ids per subject, which a soak
 * over 100,000 subjects saw as a heap growing ≈ 50 B per request).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { IdList, LIST_COMPACT_AFTER } from "../../src/store/record-index.js";

const idOf = (n: number) => `01J${String(n).padStart(23, "0")}`;

/** The list's invariants against the set of ids present. */
function check(list: IdList, present: Set<string>): void {
  const has = (id: string) => present.has(id);
  const expected = [...present].sort();
  assert.deepEqual([...list.live(has)], expected);
  assert.equal(list.length, present.size);
  assert.deepEqual(list.last(3, has), expected.slice(-3));
  assert.ok(
    list.ids.length <= 2 * present.size + LIST_COMPACT_AFTER,
    `${list.ids.length} slots for ${present.size} live ids`,
  );
  assert.ok(
    list.ids.slice(0, list.head).every((slot) => slot === ""),
    "no id kept before the head",
  );
}

test("a subject's list with one live OTP at a time, through 10,000 retirements, never holds more than LIST_COMPACT_AFTER + 2 slots nor any retired id before its head", () => {
  const list = new IdList();
  const present = new Set<string>();
  let most = 0;
  for (let n = 0; n < 10_000; n++) {
    const id = idOf(n);
    list.insertSorted(id);
    present.add(id);
    if (n > 0) {
      present.delete(idOf(n - 1));
      list.removed((x) => present.has(x));
    }
    most = Math.max(most, list.ids.length);
    check(list, present);
  }
  assert.ok(most <= LIST_COMPACT_AFTER + 2, `at most ${most} slots`);
  assert.ok(most >= LIST_COMPACT_AFTER, "it is cut down only once LIST_COMPACT_AFTER are dead");
});

test("any sequence of adds (ascending or not) and removals: the list answers exactly its present ids and stays within twice them plus LIST_COMPACT_AFTER", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ add: fc.integer({ min: 0, max: 500 }) }),
          fc.record({ remove: fc.nat() }),
        ),
        { maxLength: 400 },
      ),
      (ops) => {
        const list = new IdList();
        const present = new Set<string>();
        const ever = new Set<string>();
        for (const op of ops) {
          if ("add" in op) {
            const id = idOf(op.add);
            if (ever.has(id)) continue; // ids are never reused
            ever.add(id);
            present.add(id);
            list.insertSorted(id);
          } else if (present.size > 0) {
            // Mostly the oldest, as retirement goes; sometimes another.
            const sorted = [...present].sort();
            const id = op.remove % 3 === 0 ? sorted[op.remove % sorted.length]! : sorted[0]!;
            present.delete(id);
            list.removed((x) => present.has(x));
          }
          check(list, present);
        }
      },
    ),
    { numRuns: 300 },
  );
});
