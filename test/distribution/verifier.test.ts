/**
 * The verifier (src/server/distribution/verification/verifier.ts) ends every attempt it reserves
 * exactly once: a verification the store could not finish is given back, not counted, so an
 * outage cannot lock users out, and a locked subject is refused before the store is asked.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { DEFAULT_HOTP_WINDOWS } from "../../src/server/distribution/hotp-check.js";
import { MemoryAttemptStore } from "../../src/server/distribution/verification/memory-attempt-store.js";
import { StoreVerifier } from "../../src/server/distribution/verification/verifier.js";
import { MemoryKeyStore } from "../../src/store/memory.js";

const MAX = 3;

async function fixture() {
  const store = new MemoryKeyStore();
  await store.open();
  let failing = false;
  const list = store.list.bind(store);
  store.list = async (query) => {
    if (failing) throw new DkeygenError(ErrorCodes.OPERATIONAL, "the store is down");
    return list(query);
  };
  const attempts = new MemoryAttemptStore({ maxFailures: MAX, lockMs: 60_000 });
  const verifier = new StoreVerifier({ store, attempts, hotp: DEFAULT_HOTP_WINDOWS });
  return { store, attempts, verifier, fail: (on: boolean) => (failing = on) };
}

test("a verification the store cannot finish gives its attempt back uncounted", async () => {
  const { verifier, fail } = await fixture();
  fail(true);
  for (let i = 0; i < MAX + 2; i++) {
    await assert.rejects(verifier.verifyOtp("rq:a", "alice", "123456", 0), /the store is down/);
    await assert.rejects(
      verifier.verifyTwoFactor("rq:a", "alice", "123456", 0),
      /the store is down/,
    );
  }
  fail(false);
  // Had the errors counted, the subject would be locked; it has every attempt but this one left.
  const verdict = await verifier.verifyOtp("rq:a", "alice", "123456", 1);
  assert.deepEqual(verdict, { valid: false, reason: "invalid", attemptsLeft: MAX - 1 });
  assert.equal(
    (await verifier.verifyTwoFactor("rq:a", "alice", "123456", 1).catch((e) => e)).code,
    ErrorCodes.NOT_FOUND,
  );
});

test("wrong OTPs lock the subject at the limit; a locked subject is refused before the store is read", async () => {
  const { verifier, fail } = await fixture();
  for (let left = MAX - 1; left > 0; left--) {
    assert.deepEqual(await verifier.verifyOtp("rq:a", "alice", "000000", 0), {
      valid: false,
      reason: "invalid",
      attemptsLeft: left,
    });
  }
  assert.deepEqual(await verifier.verifyOtp("rq:a", "alice", "000000", 0), {
    valid: false,
    reason: "invalid",
    attemptsLeft: 0,
    lockedUntil: new Date(60_000).toISOString(),
  });
  fail(true);
  await assert.rejects(
    verifier.verifyOtp("rq:a", "alice", "000000", 1_000),
    (error: unknown) =>
      error instanceof DkeygenError &&
      error.code === ErrorCodes.LOCKED &&
      error.retryAfterSeconds === 59,
  );
  fail(false);
  // Another subject, and the same subject's two-factor lock, are untouched; an unlock lifts it.
  assert.equal((await verifier.verifyOtp("rq:a", "bob", "000000", 1_000)).valid, false);
  await verifier.unlockOtp("rq:a", "alice");
  assert.deepEqual(await verifier.verifyOtp("rq:a", "alice", "000000", 1_000), {
    valid: false,
    reason: "invalid",
    attemptsLeft: MAX - 1,
  });
});
