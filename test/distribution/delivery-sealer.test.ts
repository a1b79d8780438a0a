/**
 * The delivery sealer and its sealing thread (src/server/distribution/delivery.ts, seal-worker.ts):
 * deliveries sealed on the thread open with the requester's private key only as the answer to
 * their own request; a busy turn's deliveries go in one batch; fresh keys per delivery work; a
 * closed sealer refuses with E_OPERATIONAL.
 */
import assert from "node:assert/strict";
import { createSecretKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { test } from "node:test";
import { DeliveryOpener } from "../../src/client/delivery-opener.js";
import { fingerprintOf } from "../../src/crypto/fingerprint.js";
import { osRandom } from "../../src/crypto/random.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { DeliverySealer } from "../../src/server/distribution/delivery.js";
import type { Requester } from "../../src/server/requesters.js";

function requester(name: string) {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 3072 });
  const fingerprint = fingerprintOf(publicKey);
  const responseKey = randomBytes(32);
  const who: Requester = { id: `rq:${name}`, name, fingerprint, publicKey, responseKey };
  return { who, opener: new DeliveryOpener(privateKey, fingerprint, createSecretKey(responseKey)) };
}

test("200 deliveries to two requesters, sealed on the thread at once, each open with its own requester's key and request only", async () => {
  const alice = requester("alice");
  const bob = requester("bob");
  const sealer = new DeliverySealer({ ttlMs: 60_000, random: osRandom, clock: Date.now });
  try {
    const jobs = Array.from({ length: 200 }, (_, i) => ({
      to: i % 2 === 0 ? alice : bob,
      requestId: `req-${i}`,
      recordId: `rec-${i}`,
      payload: { code: String(100000 + i), n: i },
    }));
    const envelopes = await Promise.all(
      jobs.map((job) => sealer.seal(job.to.who, "otp", job.requestId, job.recordId, job.payload)),
    );
    const ivs = new Set(envelopes.map((e) => e.iv));
    assert.equal(ivs.size, 200, "every delivery has its own IV");
    // One delivery key per requester for the whole burst.
    assert.equal(new Set(envelopes.map((e) => e.kid)).size, 2);
    for (const [i, job] of jobs.entries()) {
      const opened = job.to.opener.open("otp", job.requestId, job.recordId, envelopes[i]!);
      assert.deepEqual(opened, job.payload);
      const other = job.to === alice ? bob : alice;
      // The other requester's response key does not authenticate this delivery key (km).
      assert.throws(
        () => other.opener.open("otp", job.requestId, job.recordId, envelopes[i]!),
        (error: unknown) =>
          error instanceof DkeygenError && error.code === ErrorCodes.ANSWER_NOT_AUTHENTIC,
        "another requester cannot open it",
      );
      assert.throws(
        () => job.to.opener.open("otp", `req-${i + 1}`, job.recordId, envelopes[i]!),
        (error: unknown) =>
          error instanceof DkeygenError && error.code === ErrorCodes.DECRYPTION_FAILED,
        "it is no answer to another request",
      );
    }
  } finally {
    await sealer.close();
  }
});

test("with a delivery key lifetime of 0 every delivery has its own key, and each still opens", async () => {
  const alice = requester("alice");
  const sealer = new DeliverySealer({ ttlMs: 0, random: osRandom, clock: Date.now });
  try {
    const envelopes = await Promise.all(
      Array.from({ length: 5 }, (_, i) => sealer.seal(alice.who, "key", `q${i}`, `r${i}`, { i })),
    );
    assert.equal(new Set(envelopes.map((e) => e.kid)).size, 5);
    assert.equal(new Set(envelopes.map((e) => e.ek)).size, 5);
    // Sealed again later (the earlier keys are forgotten by the thread by now).
    envelopes.push(await sealer.seal(alice.who, "key", "q5", "r5", { i: 5 }));
    for (const [i, envelope] of envelopes.entries()) {
      assert.deepEqual(alice.opener.open("key", `q${i}`, `r${i}`, envelope), { i });
    }
  } finally {
    await sealer.close();
  }
});

test("an expired delivery key is replaced and the new one works; a closed sealer fails what was under way and refuses more with E_OPERATIONAL", async () => {
  const alice = requester("alice");
  let now = 1_000_000;
  const sealer = new DeliverySealer({ ttlMs: 1000, random: osRandom, clock: () => now });
  const first = await sealer.seal(alice.who, "otp", "q1", "r1", { n: 1 });
  now += 1001;
  const second = await sealer.seal(alice.who, "otp", "q2", "r2", { n: 2 });
  assert.notEqual(first.kid, second.kid);
  assert.deepEqual(alice.opener.open("otp", "q2", "r2", second), { n: 2 });
  // A delivery still on its way when the sealer closes fails; it does not hang.
  const underWay = sealer.seal(alice.who, "otp", "q4", "r4", { n: 4 });
  await sealer.close();
  await assert.rejects(
    underWay,
    (error: unknown) => error instanceof DkeygenError && error.code === ErrorCodes.OPERATIONAL,
  );
  await assert.rejects(
    sealer.seal(alice.who, "otp", "q3", "r3", { n: 3 }),
    (error: unknown) => error instanceof DkeygenError && error.code === ErrorCodes.OPERATIONAL,
  );
});
