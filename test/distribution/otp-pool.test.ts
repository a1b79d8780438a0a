/**
 * The OTP pool (src/server/distribution/otp-pool.ts) hands out the code stored with each OTP record,
 * whether its refill's round handed the code over, it reads it from the store (an OTP made before
 * a restart), or the OTP was claimed while its refill was still running.
 */
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { test } from "node:test";
import { silentLogger } from "../../src/logging.js";
import { OtpPool } from "../../src/server/distribution/otp-pool.js";
import type { RoundRequest } from "../../src/server/keygen-server.js";
import { decodeStoredSecret, encodeStoredSecret } from "../../src/server/stored-secret.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import type { KeyRecord, KeyStore } from "../../src/store/types.js";

/** Stands in for the key generation server's batch rounds: stores `count` OTP records. */
function roundsInto(store: KeyStore) {
  return {
    rounds: 0,
    async runBatchRound(request: RoundRequest): Promise<KeyRecord[]> {
      this.rounds++;
      const count = request.count ?? 1;
      return Promise.all(
        Array.from({ length: count }, async (_, index) => {
          const code = String(randomInt(0, 1_000_000)).padStart(6, "0");
          const record = await putOtp(store, index, count, code);
          // As the key generation server does: the output, once the record is stored.
          request.onStored?.(record, { code });
          return record;
        }),
      );
    },
  };
}

function putOtp(
  store: KeyStore,
  index = 0,
  size = 1,
  code = String(randomInt(0, 1_000_000)).padStart(6, "0"),
): Promise<KeyRecord> {
  return store.put({
    purpose: "otp",
    roundId: "round",
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

/** A memory store that counts decryptions of secret parts. */
class CountingStore extends MemoryKeyStore {
  reads = 0;
  override async readSecret(id: string): Promise<Uint8Array> {
    this.reads++;
    return super.readSecret(id);
  }
}

async function storedCode(store: KeyStore, id: string): Promise<string> {
  return String(decodeStoredSecret(await store.readSecret(id)).output.code);
}

test("every claimed OTP comes with the code stored for it: handed over by the refill's round (no decryption), read from the store, or claimed while the refill was still running", async () => {
  const store = new CountingStore();
  await store.open();
  // Made "before a restart": in the store, never seen by this pool.
  const old = await Promise.all(Array.from({ length: 5 }, () => putOtp(store)));
  const rounds = roundsInto(store);
  const pool = new OtpPool({ store, rounds, size: 600, digits: 6, logger: silentLogger });
  try {
    // Claims race the refill (its records are claimable before it finishes reading codes).
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
