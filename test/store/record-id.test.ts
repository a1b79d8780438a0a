import assert from "node:assert/strict";
import { test } from "node:test";
import { isUlid, UlidGenerator, ulidTime } from "../../src/store/record-id.js";

const fill = (byte: number) => (length: number) => new Uint8Array(length).fill(byte);

test("a ULID encodes its millisecond time as in the ULID spec's example", () => {
  const ids = new UlidGenerator({ now: () => 1469918176385, random: fill(0) });
  const id = ids.next();
  assert.equal(id, "01ARYZ6S410000000000000000");
  assert.equal(id.length, 26);
  assert.ok(isUlid(id));
  assert.equal(ulidTime(id), 1469918176385);
});

test("the 80 random bits come from the injected random source, in Crockford base32", () => {
  assert.equal(
    new UlidGenerator({ now: () => 0, random: fill(0xff) }).next(),
    "0000000000ZZZZZZZZZZZZZZZZ",
  );
  let calls = 0;
  const counting = (length: number) => {
    calls++;
    return new Uint8Array(length).map((_, i) => i * 25);
  };
  const id = new UlidGenerator({ now: () => 1, random: counting }).next();
  assert.equal(calls, 1);
  // bytes 00 19 32 4b 64 7d 96 af c8 e1 as 5-bit groups
  assert.equal(id.slice(10), "00CK4JV4FPBAZJ71");
});

test("ids made in the same millisecond, or after the clock stepped back, still increase", () => {
  let now = 1_700_000_000_000;
  const ids = new UlidGenerator({ now: () => now, random: fill(7) });
  const a = ids.next();
  const b = ids.next();
  now -= 5_000;
  const c = ids.next();
  assert.ok(a < b && b < c);
  assert.equal(b.slice(0, 10), a.slice(0, 10));
  assert.equal(c.slice(0, 10), a.slice(0, 10), "a clock that went back does not move ids back");
  now += 10_000;
  const d = ids.next();
  assert.ok(c < d);
  assert.equal(ulidTime(d), now);
});

test("a random part at its maximum rolls over into the next millisecond instead of failing", () => {
  const ids = new UlidGenerator({ now: () => 1000, random: fill(0xff) });
  const a = ids.next();
  const b = ids.next();
  assert.ok(a < b);
  assert.equal(ulidTime(b), 1001);
});

test("observe makes later ids greater than an id loaded from disk", () => {
  const ids = new UlidGenerator({ now: () => 1000, random: fill(0) });
  const loaded = "01ARYZ6S41TSV4RRFFQ69G5FAV";
  ids.observe(loaded);
  const next = ids.next();
  assert.ok(next > loaded);
  assert.equal(next, "01ARYZ6S41TSV4RRFFQ69G5FAW");
  ids.observe("00000000000000000000000000"); // older ids change nothing
  assert.ok(ids.next() > next);
});

test("ids from the OS random source sort in the order they were made", () => {
  const ids = new UlidGenerator();
  const made = Array.from({ length: 5000 }, () => ids.next());
  assert.deepEqual([...made].sort(), made);
  assert.equal(new Set(made).size, made.length);
  assert.ok(made.every(isUlid));
});

test("malformed ids are not ULIDs", () => {
  for (const bad of [
    "",
    "01ARYZ6S41TSV4RRFFQ69G5FA",
    "81ARYZ6S41TSV4RRFFQ69G5FAV",
    "01ARYZ6S41TSV4RRFFQ69G5FAI",
    "01aryz6s41tsv4rrffq69g5fav",
    42,
  ]) {
    assert.equal(isUlid(bad), false, String(bad));
  }
  assert.throws(() => ulidTime("nope"), TypeError);
  assert.throws(() => new UlidGenerator({ now: () => -1 }).next(), RangeError);
  assert.throws(() => new UlidGenerator({ random: () => new Uint8Array(3) }).next(), TypeError);
});
