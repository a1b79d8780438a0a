/**
 * The AttemptStore compliance suite (src/server/distribution/verification/attempt-store.ts): what
 * every implementation of verification attempts and lockouts must do, memory today and PostgreSQL
 * next, so several distribution servers lock a subject after the configured total, not per
 * process. It uses only the interface and awaits every answer, so an implementation may answer
 * synchronously or not.
 *
 * A backend plugs in with a factory that returns a fresh, empty store with the given limits and a
 * `cleanup()` the suite calls after each test.
 */
import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import type { AttemptStore } from "../../src/server/distribution/verification/attempt-store.js";

export interface AttemptStoreFixture {
  store: AttemptStore;
  cleanup(): Promise<void>;
}

export type AttemptStoreFactory = (limits: {
  maxFailures: number;
  lockMs: number;
}) => Promise<AttemptStoreFixture>;

const MAX = 5;
const LOCK_MS = 60_000;
const T0 = 1_800_000_000_000;

export function attemptStoreCompliance(name: string, make: AttemptStoreFactory): void {
  describe(`AttemptStore compliance: ${name}`, () => {
    let fixture: AttemptStoreFixture | undefined;
    const open = async (limits = { maxFailures: MAX, lockMs: LOCK_MS }) => {
      fixture = await make(limits);
      return fixture.store;
    };
    afterEach(async () => {
      await fixture?.cleanup();
      fixture = undefined;
    });

    /** `n` attempts begun and failed one after the other; the last failure's answer. */
    const failTimes = async (store: AttemptStore, key: string, n: number, now = T0) => {
      let last: Awaited<ReturnType<AttemptStore["fail"]>> | undefined;
      for (let i = 0; i < n; i++) {
        const start = await store.begin(key, now);
        assert.equal(start.locked || start.busy, false, `attempt ${i + 1} is reserved`);
        last = await store.fail(key, now);
      }
      return last!;
    };

    test("a subject is locked by exactly the configured number of failures, not one sooner", async () => {
      const store = await open();
      const first = await store.begin("alice", T0);
      assert.deepEqual(first, { locked: false, busy: false, remaining: MAX });
      assert.deepEqual(await store.fail("alice", T0), { locked: false, remaining: MAX - 1 });
      const beforeLast = await failTimes(store, "alice", MAX - 2);
      assert.deepEqual(beforeLast, { locked: false, remaining: 1 });
      assert.deepEqual(await store.begin("alice", T0 + 1), {
        locked: false,
        busy: false,
        remaining: 1,
      });
      assert.deepEqual(await store.fail("alice", T0 + 2), {
        locked: true,
        remaining: 0,
        lockedUntil: T0 + 2 + LOCK_MS,
      });
      assert.deepEqual(await store.begin("alice", T0 + 3), {
        locked: true,
        busy: false,
        remaining: 0,
        lockedUntil: T0 + 2 + LOCK_MS,
      });
    });

    test("a lock ends exactly when its time is up, with every attempt given back", async () => {
      const store = await open();
      await failTimes(store, "alice", MAX);
      const lastMoment = await store.begin("alice", T0 + LOCK_MS - 1);
      assert.equal(lastMoment.locked, true, "still locked a millisecond before the end");
      assert.deepEqual(await store.begin("alice", T0 + LOCK_MS), {
        locked: false,
        busy: false,
        remaining: MAX,
      });
      // A fresh start: one failure does not lock again.
      assert.deepEqual(await store.fail("alice", T0 + LOCK_MS), {
        locked: false,
        remaining: MAX - 1,
      });
    });

    test("concurrent attempts reserve no more than the limit: the rest are busy, not extra guesses", async () => {
      const store = await open();
      const starts = await Promise.all(
        Array.from({ length: 3 * MAX }, () => store.begin("alice", T0)),
      );
      const reserved = starts.filter((s) => !s.locked && !s.busy);
      assert.equal(reserved.length, MAX);
      assert.deepEqual(
        reserved.map((s) => s.remaining).sort((a, b) => a - b),
        [1, 2, 3, 4, 5],
      );
      assert.ok(starts.filter((s) => s.busy).every((s) => s.remaining === 0 && !s.locked));
    });

    test("concurrent failures are counted exactly: the one that reaches the limit locks", async () => {
      const store = await open();
      await Promise.all(Array.from({ length: MAX }, () => store.begin("alice", T0)));
      const failures = await Promise.all(
        Array.from({ length: MAX }, () => store.fail("alice", T0)),
      );
      assert.deepEqual(
        failures.map((f) => f.remaining).sort((a, b) => a - b),
        [0, 1, 2, 3, 4],
      );
      assert.equal(failures.filter((f) => f.locked).length, 1);
      assert.equal((await store.begin("alice", T0 + 1)).locked, true);
    });

    test("subjects are isolated: locking one leaves others, even with a common prefix, untouched", async () => {
      const store = await open();
      await failTimes(store, "otp\u0000rq:a\u0000alice", MAX);
      assert.equal((await store.begin("otp\u0000rq:a\u0000alice", T0)).locked, true);
      for (const other of [
        "otp\u0000rq:a\u0000bob",
        "otp\u0000rq:b\u0000alice",
        "totp\u0000rq:a\u0000alice",
        "otp\u0000rq:a\u0000alice2",
        "otp\u0000rq:a\u0000alic",
      ]) {
        assert.deepEqual(
          await store.begin(other, T0),
          { locked: false, busy: false, remaining: MAX },
          JSON.stringify(other),
        );
      }
    });

    test("a success forgets the failures; an abandoned attempt is given back uncounted", async () => {
      const store = await open();
      await failTimes(store, "alice", MAX - 1);
      await store.begin("alice", T0);
      await store.abandon("alice");
      assert.equal((await store.begin("alice", T0)).remaining, 1, "the abandoned one is back");
      await store.succeed("alice");
      assert.deepEqual(await store.begin("alice", T0), {
        locked: false,
        busy: false,
        remaining: MAX,
      });
    });

    test("an unlock lifts the lock and the failures; attempts in progress stay reserved", async () => {
      const store = await open();
      await failTimes(store, "alice", MAX);
      await store.unlock("alice");
      assert.deepEqual(await store.begin("alice", T0 + 1), {
        locked: false,
        busy: false,
        remaining: MAX,
      });
      // That attempt is still in progress: one fewer is free.
      assert.equal((await store.begin("alice", T0 + 1)).remaining, MAX - 1);
      await store.unlock("alice");
      assert.equal((await store.begin("alice", T0 + 1)).remaining, MAX - 2);
      // Unlocking a subject never seen is harmless.
      await store.unlock("nobody");
      assert.equal((await store.begin("nobody", T0)).remaining, MAX);
    });

    test("the limits are the store's own: one failure allowed locks on the first", async () => {
      const store = await open({ maxFailures: 1, lockMs: 10 });
      assert.deepEqual(await store.begin("alice", T0), {
        locked: false,
        busy: false,
        remaining: 1,
      });
      assert.equal((await store.begin("alice", T0)).busy, true);
      assert.deepEqual(await store.fail("alice", T0), {
        locked: true,
        remaining: 0,
        lockedUntil: T0 + 10,
      });
      assert.equal((await store.begin("alice", T0 + 9)).locked, true);
      assert.equal((await store.begin("alice", T0 + 10)).locked, false);
    });
  });
}
