/**
 * The OTP pool (src/server/distribution/otp-pool.ts) hands out the code stored with each OTP record,
 * whether its refill's round handed the code over or it reads it from the store (an OTP made before
 * a restart); a refill's records are held in the store until its round is witnessed, so neither
 * this pool nor another claiming from the same store hands one out earlier.
 */
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { test } from "node:test";
import { batchOutputSecret } from "../../src/crypto/kdf.js";
import { derivePurpose } from "../../src/derive/index.js";
import { silentLogger } from "../../src/logging.js";
import { OtpPool } from "../../src/server/distribution/otp-pool.js";
import type { RoundRequest } from "../../src/server/keygen-server.js";
import { MAX_BATCH } from "../../src/server/round-request.js";
import {
  encodeRoundSecret,
  encodeStoredSecret,
  readStoredSecret,
} from "../../src/server/stored-secret.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import type { KeyRecord, KeyStore, SecretPart } from "../../src/store/types.js";
import { fresh } from "../helpers/key-store-file.js";

/**
 * Stands in for the key generation server's batch rounds: stores `count` OTP records held, as the
 * round runner does, hands over each one's code, then releases the round (witnessed at once).
 */
function roundsInto(store: KeyStore) {
  return {
    rounds: 0,
    async runBatchRound(request: RoundRequest): Promise<KeyRecord[]> {
      this.rounds++;
      const roundId = `refill-${this.rounds}`;
      const count = request.count ?? 1;
      const records = await Promise.all(
        Array.from({ length: count }, async (_, index) => {
          const code = String(randomInt(0, 1_000_000)).padStart(6, "0");
          const record = await putOtp(store, index, count, code, roundId);
          // As the key generation server does: the output, once the record is stored.
          request.onStored?.(record, { code });
          return record;
        }),
      );
      await store.releaseHeld(roundId);
      return records;
    },
  };
}

/** An OTP record; held (as a refill stores them) when a round id other than "round" is given. */
function putOtp(
  store: KeyStore,
  index = 0,
  size = 1,
  code = String(randomInt(0, 1_000_000)).padStart(6, "0"),
  roundId = "round",
): Promise<KeyRecord> {
  return store.put({
    purpose: "otp",
    roundId,
    ...(roundId === "round" ? {} : { held: true as const }),
    participants: ["a", "b"],
    algorithm: "otp/v1",
    public: { digits: 6 },
    secret: encodeStoredSecret({
      v: 1,
      derivationSecret: "00".repeat(64),
      batch: { index, size },
      params: { digits: 6 },
      output: { code },
    }),
  });
}

const claimFor = (n: number) => ({
  requester: "svc",
  subject: `user-${n}`,
  requestId: `req-${n}`,
  expiresAt: new Date(Date.now() + 60_000),
});

/** A memory store that counts decryptions of secret parts (own, or a round's secret). */
class CountingStore extends MemoryKeyStore {
  reads = 0;
  override async readSecret(id: string): Promise<Uint8Array> {
    this.reads++;
    return super.readSecret(id);
  }
  override async readSecretPart(id: string): Promise<SecretPart> {
    this.reads++;
    return super.readSecretPart(id);
  }
}

async function storedCode(store: KeyStore, id: string): Promise<string> {
  return String((await readStoredSecret(store, id)).output.code);
}

test("every claimed OTP comes with the code stored for it: handed over by the refill's round (no decryption) or read from the store, also for claims that waited for the refill", async () => {
  const store = new CountingStore();
  await store.open();
  // Made "before a restart": in the store, never seen by this pool.
  const old = await Promise.all(Array.from({ length: 5 }, () => putOtp(store)));
  const rounds = roundsInto(store);
  const pool = new OtpPool({ store, rounds, size: 600, digits: 6, logger: silentLogger });
  try {
    // Claims race the refill: the pre-restart OTPs go at once, the rest wait for its release.
    const refill = pool.refill();
    const early = await Promise.all(
      Array.from({ length: 40 }, (_, i) => pool.claim(claimFor(i), 5000)),
    );
    await refill;
    const readsBefore = store.reads;
    const later = await Promise.all(
      Array.from({ length: 300 }, (_, i) => pool.claim(claimFor(100 + i), 5000)),
    );
    assert.equal(store.reads, readsBefore, "codes the refill handed over are not read again");
    const all = [...early, ...later];
    assert.equal(new Set(all.map((c) => c.record.id)).size, all.length, "no OTP twice");
    for (const claimed of all) {
      assert.equal(claimed.code, await storedCode(store, claimed.record.id));
      assert.ok(claimed.record.claim, "the record comes back claimed");
    }
    const oldIds = new Set(old.map((r) => r.id));
    assert.ok(
      all.some((c) => oldIds.has(c.record.id)),
      "the pre-restart OTPs were handed out too",
    );
    assert.ok(rounds.rounds >= 1);
  } finally {
    await pool.stop();
    await store.close();
  }
});

test("under steady claims the pool refills in large batches, not in small rounds back to back: after the first, a round runs only when the pool is below half or a full batch is missing", async () => {
  const store = new MemoryKeyStore();
  await store.open();
  const inner = roundsInto(store);
  const counts: number[] = [];
  // Each round takes a little while, so claims go on during it (as they do under load).
  const rounds = {
    async runBatchRound(request: RoundRequest): Promise<KeyRecord[]> {
      counts.push(request.count ?? 1);
      await new Promise((resolve) => setTimeout(resolve, 5));
      return inner.runBatchRound(request);
    },
  };
  const pool = new OtpPool({ store, rounds, size: 100, digits: 6, logger: silentLogger });
  try {
    await pool.refill();
    assert.deepEqual(counts, [100], "the first fill is one round of the whole pool");
    // Steady claims, a few during each round, as under load that the pool keeps up with: every
    // claim looks whether a refill is due.
    for (let i = 0; i < 400; i++) {
      await pool.claim(claimFor(i), 5000);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await pool.stop();
    // Only rounds of more than half the pool, started below half (the test's claims never wait:
    // the pool never runs dry, so no round was sized for a waiting request).
    const small = counts.filter((count) => count <= 50);
    assert.deepEqual(small, [], `rounds: ${counts.join(" ")}`);
    assert.ok(counts.length <= 1 + Math.ceil(400 / 51), `rounds: ${counts.join(" ")}`);
  } finally {
    await pool.stop();
    await store.close();
  }
});

test("a refill is due exactly when more than half the pool is missing, or a full round's batch (MAX_BATCH) is", async () => {
  for (const [size, due] of [
    [100, 51],
    [3 * MAX_BATCH, MAX_BATCH],
  ] as const) {
    const store = new MemoryKeyStore();
    await store.open();
    const inner = roundsInto(store);
    const counts: number[] = [];
    const rounds = {
      runBatchRound(request: RoundRequest): Promise<KeyRecord[]> {
        counts.push(request.count ?? 1);
        return inner.runBatchRound(request);
      },
    };
    const pool = new OtpPool({ store, rounds, size, digits: 6, logger: silentLogger });
    try {
      await pool.refill();
      const filled = counts.length;
      for (let i = 0; i < due - 1; i++) await pool.claim(claimFor(i), 0);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(counts.length, filled, `${size}: no round with ${due - 1} missing`);
      await pool.claim(claimFor(due), 0);
      for (let waited = 0; counts.length === filled && waited < 2000; waited += 10) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.deepEqual(counts.slice(filled), [due], `${size}: one round with ${due} missing`);
    } finally {
      await pool.stop();
      await store.close();
    }
  }
});

test("OTPs that keep their part of their round's secret (a refill before a restart) are handed out with the codes derived from it", async () => {
  const store = new CountingStore();
  await store.open();
  const roundSecret = new Uint8Array(randomBytes(64));
  await store.putRoundSecret(
    "refill-before",
    encodeRoundSecret({ roundSecret, purpose: "otp", size: 3, params: { digits: 6 } }),
  );
  const expected = new Map<string, string>();
  for (let index = 0; index < 3; index++) {
    const record = await store.put({
      purpose: "otp",
      roundId: "refill-before",
      participants: ["a", "b"],
      algorithm: "otp/v1",
      public: { digits: 6 },
      roundPart: index,
    });
    const derived = await derivePurpose("otp", batchOutputSecret(roundSecret, "otp", index), {
      digits: 6,
    });
    expected.set(record.id, String(derived.secret.code));
  }
  const pool = new OtpPool({
    store,
    rounds: roundsInto(store),
    size: 0,
    digits: 6,
    logger: silentLogger,
  });
  try {
    for (let n = 0; n < 3; n++) {
      const reads = store.reads;
      const claimed = await pool.claim(claimFor(n), 0);
      assert.equal(claimed.code, expected.get(claimed.record.id));
      assert.equal(store.reads, reads + 1, "read from the store: this pool never saw the round");
    }
  } finally {
    await pool.stop();
    await store.close();
  }
});

/**
 * A refill's round that stores its records held, then waits for the test to say whether it was
 * witnessed (PROTOCOL §15.5): released, or withdrawn (consumed, as the round runner does).
 */
function heldRounds(store: KeyStore) {
  let round = 0;
  let finish: ((witnessed: boolean) => void) | undefined;
  const stored: KeyRecord[] = [];
  return {
    stored,
    finish: (witnessed: boolean) => finish!(witnessed),
    get waiting() {
      return finish !== undefined;
    },
    async runBatchRound(request: RoundRequest): Promise<KeyRecord[]> {
      const count = request.count ?? 1;
      const roundId = `refill-${++round}`;
      const records: KeyRecord[] = [];
      for (let index = 0; index < count; index++) {
        const code = String(randomInt(0, 1_000_000)).padStart(6, "0");
        const record = await putOtp(store, index, count, code, roundId);
        request.onStored?.(record, { code });
        records.push(record);
      }
      stored.push(...records);
      const witnessed = await new Promise<boolean>((resolve) => {
        finish = resolve;
      });
      finish = undefined;
      if (witnessed) {
        await store.releaseHeld(roundId);
        return records;
      }
      for (const r of records) await store.consume(r.id);
      throw new Error("not witnessed");
    },
  };
}

for (const kind of ["memory", "file"] as const) {
  test(`(${kind} store) no claim, from this pool or another on the same store (a second process), takes a record of a refill whose round is not yet witnessed; one not witnessed is never handed out`, async () => {
    const file = kind === "file" ? await fresh() : undefined;
    const store: KeyStore = file ? file.make() : new MemoryKeyStore();
    await store.open();
    try {
      // Two released OTPs from before, then a refill of 4 that waits to be witnessed.
      const before = [await putOtp(store), await putOtp(store)];
      const rounds = heldRounds(store);
      const pool = new OtpPool({ store, rounds, size: 6, digits: 6, logger: silentLogger });
      // Another pool on the same store that runs no rounds itself, as a distributor would: it
      // knows nothing of the refill in flight.
      const other = new OtpPool({
        store,
        rounds: { runBatchRound: () => Promise.reject(new Error("no rounds here")) },
        size: 0,
        digits: 6,
        logger: silentLogger,
      });
      const refill = pool.refill();
      while (!rounds.waiting) await new Promise((r) => setTimeout(r, 5));
      assert.equal(rounds.stored.length, 4);
      // Many claims at once from both: only the two released records go out.
      const claims = await Promise.allSettled([
        ...Array.from({ length: 6 }, (_, n) => pool.claim(claimFor(n), 50)),
        ...Array.from({ length: 6 }, (_, n) => other.claim(claimFor(100 + n), 0)),
      ]);
      const got = claims.flatMap((c) => (c.status === "fulfilled" ? [c.value.record.id] : []));
      assert.deepEqual(got.sort(), before.map((r) => r.id).sort());
      // Not witnessed: its records are consumed, and never handed out.
      rounds.finish(false);
      await refill;
      assert.equal(await store.countUnclaimed("otp"), 0);
      await assert.rejects(pool.claim(claimFor(10), 0), /No OTP is ready/);
      // The next refill is witnessed: its records are released to claims.
      const next = pool.refill();
      while (!rounds.waiting) await new Promise((r) => setTimeout(r, 5));
      await assert.rejects(pool.claim(claimFor(11), 0), /No OTP is ready/);
      await assert.rejects(other.claim(claimFor(111), 0), /No OTP is ready/);
      rounds.finish(true);
      await next;
      const released = await pool.claim(claimFor(12), 0);
      assert.ok(rounds.stored.slice(4).some((r) => r.id === released.record.id));
      assert.equal(released.code, await storedCode(store, released.record.id));
      const elsewhere = await other.claim(claimFor(112), 0);
      assert.ok(rounds.stored.slice(4).some((r) => r.id === elsewhere.record.id));
      assert.equal(elsewhere.code, await storedCode(store, elsewhere.record.id));
      await other.stop();
      await pool.stop();
    } finally {
      await store.close();
      await file?.remove();
    }
  });
}

test("an OTP stored before held records existed whose round never reached the transparency log is withdrawn when claimed, never handed out", async () => {
  const store = new MemoryKeyStore();
  await store.open();
  // As an older dkeygen left it after a crash between storing a round's records (not held) and
  // logging the round: claimable, in no log entry.
  const unlogged = await putOtp(store, 0, 1, "111111");
  const logged = await store.put({
    purpose: "otp",
    roundId: "logged-round",
    participants: ["a", "b"],
    algorithm: "otp/v1",
    public: { digits: 6 },
    secret: encodeStoredSecret({
      v: 1,
      derivationSecret: "00".repeat(64),
      batch: { index: 0, size: 1 },
      params: { digits: 6 },
      output: { code: "222222" },
    }),
  });
  const pool = new OtpPool({
    store,
    rounds: roundsInto(store),
    size: 0,
    digits: 6,
    logger: silentLogger,
    logged: async (roundId) => roundId === "logged-round",
  });
  const claimed = await pool.claim(claimFor(1), 0);
  assert.equal(claimed.record.id, logged.id);
  assert.equal(claimed.code, "222222");
  const withdrawn = await store.get(unlogged.id);
  assert.ok(withdrawn?.consumedAt !== undefined, "the unlogged OTP is consumed, unseen");
  assert.equal(await store.countUnclaimed("otp"), 0);
  await assert.rejects(pool.claim(claimFor(2), 0), /No OTP is ready/);
  await store.close();
});

test("a refilling pool on a shared store sees other processes' claims within its watch interval, refills, and keeps no codes in memory", async () => {
  const store = new CountingStore();
  await store.open();
  const rounds = roundsInto(store);
  const pool = new OtpPool({
    store,
    rounds,
    size: 20,
    digits: 6,
    logger: silentLogger,
    shared: true,
    watchMs: 50,
  });
  // Another process claiming from the same store (a distributor): its claims never pass `pool`.
  const elsewhere = new OtpPool({ store, size: 0, digits: 6, logger: silentLogger });
  try {
    pool.start();
    const until = async (what: string, check: () => Promise<boolean>) => {
      const end = Date.now() + 1000; // well within the 5 s retry interval of an unshared pool
      while (!(await check())) {
        assert.ok(Date.now() < end, `${what} within a second`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    await until("the first refill", async () => (await pool.available()) === 20);
    for (let i = 0; i < 15; i++) await elsewhere.claim(claimFor(i), 1000);
    await until("a refill after the claims elsewhere", async () => rounds.rounds === 2);
    await until("the stock back", async () => (await pool.available()) === 20);
    const reads = store.reads;
    const mine = await pool.claim(claimFor(99), 1000);
    assert.equal(store.reads, reads + 1, "the code is read from the store, not kept in memory");
    assert.equal(mine.code, await storedCode(store, mine.record.id));
  } finally {
    await pool.stop();
    await elsewhere.stop();
    await store.close();
  }
});
