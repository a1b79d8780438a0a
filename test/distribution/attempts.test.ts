/**
 * The lockout limiter (src/server/distribution/attempts.ts): attempts are reserved before a
 * verification does any work that may wait, so concurrent verifications of one subject cannot
 * check more wrong codes than the limit allows.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryAttemptLimiter } from "../../src/server/distribution/attempts.js";

const LOCK_MS = 60_000;
const limiter = () => new MemoryAttemptLimiter({ maxFailures: 3, lockMs: LOCK_MS });

test("attempts in progress count against the limit: concurrency buys no extra guesses", () => {
  const l = limiter();
  const starts = Array.from({ length: 10 }, () => l.begin("alice", 0));
  assert.deepEqual(
    starts.map((s) => (s.locked ? "locked" : s.busy ? "busy" : "reserved")),
    ["reserved", "reserved", "reserved", ...Array(7).fill("busy")],
  );
  assert.deepEqual(
    starts.slice(0, 3).map((s) => s.remaining),
    [3, 2, 1],
  );
  // The three reserved attempts all fail: the third locks.
  assert.equal(l.fail("alice", 1).locked, false);
  assert.equal(l.fail("alice", 2).remaining, 1);
  const third = l.fail("alice", 3);
  assert.equal(third.locked, true);
  assert.equal(third.lockedUntil, 3 + LOCK_MS);
  assert.deepEqual(l.begin("alice", 4), {
    locked: true,
    busy: false,
    remaining: 0,
    lockedUntil: 3 + LOCK_MS,
  });
  // Other subjects are untouched.
  assert.equal(l.begin("bob", 4).busy, false);
  // The lock ends: a fresh start.
  const after = l.begin("alice", 3 + LOCK_MS);
  assert.equal(after.locked, false);
  assert.equal(after.busy, false);
  assert.equal(after.remaining, 3);
});

test("an abandoned attempt is released uncounted; a success clears the failures", () => {
  const l = limiter();
  l.begin("alice", 0);
  l.begin("alice", 0);
  l.begin("alice", 0);
  assert.equal(l.begin("alice", 0).busy, true);
  l.abandon("alice");
  assert.equal(l.begin("alice", 0).busy, false, "the released attempt can be taken again");
  l.fail("alice", 1);
  l.fail("alice", 1);
  assert.equal(l.begin("alice", 2).busy, true, "two failed, one still in progress");
  l.succeed("alice");
  const next = l.begin("alice", 3);
  assert.equal(next.busy, false);
  assert.equal(next.remaining, 3, "a success forgets the failures");
});

test("an unlock lifts the lock and the failures, but attempts in progress stay reserved", () => {
  const l = limiter();
  for (let i = 0; i < 3; i++) l.begin("alice", 0);
  l.fail("alice", 1);
  l.fail("alice", 1);
  l.unlock("alice");
  // One attempt is still in progress: two are free.
  assert.equal(l.begin("alice", 2).remaining, 2);
  assert.equal(l.begin("alice", 2).remaining, 1);
  assert.equal(l.begin("alice", 2).busy, true);
  for (let i = 0; i < 3; i++) l.fail("alice", 3);
  assert.equal(l.begin("alice", 4).locked, true);
  l.unlock("alice");
  assert.equal(l.begin("alice", 5).remaining, 3);
});
