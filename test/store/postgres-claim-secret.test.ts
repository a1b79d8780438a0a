/**
 * A claim on the PostgreSQL store returns the claimed row's sealed secret with it, so the
 * claimer's next `readSecret` of that record (the OTP pool reading the code it hands out) asks
 * the database nothing: one statement per OTP, not two. Shown by changing the row's sealed bytes
 * behind the store's back (triggers off, as the superuser): the first read after the claim still
 * opens the secret as claimed; a later read goes to the database and finds the damage.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { CLAIM_BATCH, PostgresKeyStore } from "../../src/store/postgres.js";
import { startPostgres } from "../helpers/postgres.js";

const cluster = await startPostgres();

/** A pool OTP record of round "round-1" with secret part `secret`. */
function putOtp(store: PostgresKeyStore, secret: Uint8Array) {
  return store.put({
    purpose: "otp",
    roundId: "round-1",
    participants: ["a", "b"],
    algorithm: "otp/v1",
    public: { digits: 6 },
    secret,
  });
}
after(() => cluster.stop());

test("the secret of a record just claimed is read without a query, once; a later read asks the database", async () => {
  const url = await cluster.createDatabase();
  const database = new URL(url).pathname.slice(1);
  const store = new PostgresKeyStore({ url, storeKey: randomBytes(32) });
  await store.open();
  try {
    const secret = new Uint8Array([7, 7, 7, 1, 2, 3]);
    await putOtp(store, secret);
    const claimed = await store.claimNext("otp", {
      requester: "svc",
      subject: "alice",
      requestId: "req-1",
      expiresAt: new Date(Date.now() + 60_000),
    });
    assert.ok(claimed);
    await cluster.admin("ALTER TABLE key_records DISABLE TRIGGER USER", [], database);
    await cluster.admin(
      "UPDATE key_records SET secret_ct = '\\x00'::bytea || secret_ct WHERE id = $1",
      [claimed.id],
      database,
    );
    assert.deepEqual(await store.readSecret(claimed.id), secret, "read with the claim");
    await assert.rejects(store.readSecret(claimed.id), (e) =>
      isDkeygenError(e, ErrorCodes.STORE_CORRUPT),
    );
  } finally {
    await store.close();
  }
});

test("a claim of a record sharing its round's secret brings the round's sealed secret with it: read without a query, once; readSecret refuses it and leaves it kept", async () => {
  const url = await cluster.createDatabase();
  const database = new URL(url).pathname.slice(1);
  const store = new PostgresKeyStore({ url, storeKey: randomBytes(32) });
  await store.open();
  try {
    const roundSecret = new Uint8Array(300).fill(0x5a);
    await store.putRoundSecret("round-1", roundSecret);
    await store.put({
      purpose: "otp",
      roundId: "round-1",
      participants: ["a", "b"],
      algorithm: "otp/v1",
      public: { digits: 6 },
      roundPart: 41,
    });
    const claimed = await store.claimNext("otp", {
      requester: "svc",
      subject: "alice",
      requestId: "req-1",
      expiresAt: new Date(Date.now() + 60_000),
    });
    assert.ok(claimed);
    await cluster.admin("ALTER TABLE round_secrets DISABLE TRIGGER USER", [], database);
    await cluster.admin(
      "UPDATE round_secrets SET ct = '\\x00'::bytea || ct WHERE round_id = 'round-1'",
      [],
      database,
    );
    await assert.rejects(store.readSecret(claimed.id), (e) =>
      isDkeygenError(e, ErrorCodes.INVALID_INPUT),
    );
    assert.deepEqual(
      await store.readSecretPart(claimed.id),
      { kind: "round", roundSecret, roundPart: 41 },
      "read with the claim",
    );
    await assert.rejects(store.readSecretPart(claimed.id), (e) =>
      isDkeygenError(e, ErrorCodes.STORE_CORRUPT),
    );
  } finally {
    await store.close();
  }
});

test("a claim walks the pool index, not the records claimed before it, even under statistics taken when all were poolable", async () => {
  const url = await cluster.createDatabase();
  const database = new URL(url).pathname.slice(1);
  const store = new PostgresKeyStore({ url, storeKey: randomBytes(32) });
  await store.open();
  try {
    for (let batch = 0; batch < 6; batch++) {
      await Promise.all(Array.from({ length: 100 }, () => putOtp(store, new Uint8Array(8))));
    }
    await cluster.admin("ANALYZE key_records", [], database);
    await cluster.admin("ALTER TABLE key_records SET (autovacuum_enabled = false)", [], database);
    for (let i = 0; i < 500; i++) {
      await store.claimNext("otp", {
        requester: "svc",
        subject: "s",
        requestId: `q${i}`,
        expiresAt: new Date(Date.now() + 60_000),
      });
    }
    const plan = await cluster.admin<{ "QUERY PLAN": unknown }>(
      `EXPLAIN (FORMAT JSON) ${CLAIM_BATCH}`,
      ["otp", 1, ["svc"], ["s"], ["q"], [new Date()], [new Date(Date.now() + 60_000)]],
      database,
    );
    const text = JSON.stringify(plan);
    assert.match(text, /"Index Name":"key_records_pool_order"/);
    assert.doesNotMatch(text, /"Index Name":"key_records_pkey"[^}]*"Filter"/);
  } finally {
    await store.close();
  }
});

test("claims made in one turn are one statement: oldest rows to the earliest calls, one transaction for all", async () => {
  const url = await cluster.createDatabase();
  const database = new URL(url).pathname.slice(1);
  const store = new PostgresKeyStore({ url, storeKey: randomBytes(32) });
  await store.open();
  try {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      ids.push((await putOtp(store, new Uint8Array([i]))).id);
    }
    const xid = async () =>
      Number(
        (await cluster.admin<{ x: string }>("SELECT txid_current() AS x", [], database))[0]!.x,
      );
    const before = await xid();
    const claimed = await Promise.all(
      Array.from({ length: 14 }, (_, i) =>
        store.claimNext("otp", {
          requester: "svc",
          subject: `user-${i}`,
          requestId: `req-${i}`,
          expiresAt: new Date(Date.now() + 60_000),
        }),
      ),
    );
    const after = await xid();
    assert.equal(after - before - 1, 1, "one writing transaction for the 14 claims");
    assert.deepEqual(
      claimed.map((r) => r?.id),
      [...ids, undefined, undefined],
    );
    claimed.slice(0, 12).forEach((r, i) => {
      assert.equal(r!.claim?.subject, `user-${i}`);
      assert.equal(r!.claim?.requestId, `req-${i}`);
    });
    // Each claim's secret comes with it.
    assert.deepEqual(await store.readSecret(ids[5]!), new Uint8Array([5]));
  } finally {
    await store.close();
  }
});
