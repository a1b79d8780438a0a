/**
 * The per-process memo of verified log entries (src/client/verified-entries.ts): an entry's
 * signatures are checked once per leaf and server key, a refusal is never remembered, another
 * server key or other bytes are checked afresh, and the memo stays bounded.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import {
  MAX_VERIFIED,
  verifiedEntries,
  verifyEntryOnce,
} from "../../src/client/verified-entries.js";

function counter(fails = false) {
  const c = {
    calls: 0,
    verify: () => {
      c.calls++;
      if (fails) throw new Error("bad entry");
    },
  };
  return c;
}

test("an entry verified once against a server key is not verified again; other bytes or another key are", () => {
  const leaf = randomBytes(200);
  const ok = counter();
  verifyEntryOnce(leaf, "SHA256:server-a", ok.verify);
  verifyEntryOnce(Uint8Array.from(leaf), "SHA256:server-a", ok.verify);
  assert.equal(ok.calls, 1);
  verifyEntryOnce(leaf, "SHA256:server-b", ok.verify);
  assert.equal(ok.calls, 2, "another server key: checked afresh");
  const other = Uint8Array.from(leaf);
  other[199]! ^= 1;
  verifyEntryOnce(other, "SHA256:server-a", ok.verify);
  assert.equal(ok.calls, 3, "one bit changed: checked afresh");
});

test("a refused entry is refused every time, never remembered", () => {
  const leaf = randomBytes(100);
  const bad = counter(true);
  assert.throws(() => verifyEntryOnce(leaf, "SHA256:server-a", bad.verify), /bad entry/);
  assert.throws(() => verifyEntryOnce(leaf, "SHA256:server-a", bad.verify), /bad entry/);
  assert.equal(bad.calls, 2);
});

test(`the memo holds at most ${MAX_VERIFIED} entries, letting the oldest go first`, () => {
  const first = randomBytes(50);
  const ok = counter();
  verifyEntryOnce(first, "SHA256:bounded", ok.verify);
  for (let i = 0; i < MAX_VERIFIED - 1; i++)
    verifyEntryOnce(randomBytes(50), "SHA256:bounded", ok.verify);
  assert.ok(verifiedEntries() <= MAX_VERIFIED);
  verifyEntryOnce(first, "SHA256:bounded", ok.verify);
  assert.equal(ok.calls, MAX_VERIFIED, "still remembered after MAX_VERIFIED - 1 others");
  verifyEntryOnce(randomBytes(50), "SHA256:bounded", ok.verify);
  assert.equal(verifiedEntries(), MAX_VERIFIED);
  verifyEntryOnce(first, "SHA256:bounded", ok.verify);
  assert.equal(ok.calls, MAX_VERIFIED + 2, "let go once MAX_VERIFIED newer ones came");
});
