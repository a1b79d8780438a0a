/**
 * Retention on the PostgreSQL store (issue 17): with `retainUsedMs` a sweep deletes the pool OTPs
 * that died — consumed, or unconsumed with their claim expired — before now − retainUsedMs, and
 * nothing else (a held one only withdrawn: consumed, version 10); the schema's delete trigger
 * (version 7, version 10) refuses every other delete. On a real,
 * throwaway PostgreSQL (test/helpers/postgres.ts), with the store's clock set by the test: the
 * records' times are in the past, so the database's own clock agrees that their claims expired.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import pg from "pg";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { DEFAULT_HOTP_WINDOWS } from "../../src/server/distribution/hotp-check.js";
import { MemoryAttemptStore } from "../../src/server/distribution/verification/memory-attempt-store.js";
import { StoreVerifier } from "../../src/server/distribution/verification/verifier.js";
import { encodeStoredSecret } from "../../src/server/stored-secret.js";
import { PostgresKeyStore, RETENTION_BATCH, SWEEP_BATCH } from "../../src/store/postgres.js";
import { applyMigrations, MIGRATIONS } from "../../src/store/postgres-schema.js";
import type { KeyStore, RecordInput } from "../../src/store/types.js";
import { input } from "../helpers/key-store-file.js";
import { startPostgres } from "../helpers/postgres.js";

const cluster = await startPostgres();
after(() => cluster.stop());

const HOUR = 3_600_000;
/** The store's "now" when the records are made: long past, by the database's clock too. */
const T0 = Date.parse("2024-03-01T12:00:00.000Z");

/** A database, its store key, and stores on it whose clock reads `clock.now`. */
async function database() {
  const url = await cluster.createDatabase();
  const storeKey = randomBytes(32);
  const clock = { now: T0 };
  const opened: PostgresKeyStore[] = [];
  const open = async (retainUsedMs?: number) => {
    const store = new PostgresKeyStore({
      url,
      storeKey,
      clock: () => new Date(clock.now),
      ...(retainUsedMs === undefined ? {} : { retainUsedMs }),
    });
    await store.open();
    opened.push(store);
    // The sweep open() started runs first; the test's own sweeps see only what the test made.
    assert.equal(await store.sweepRetention(), 0);
    return store;
  };
  const sql = <T = Record<string, unknown>>(text: string, values: unknown[] = []) =>
    cluster.admin<T>(text, values, new URL(url).pathname.slice(1));
  const closeAll = async () => {
    for (const store of opened) await store.close();
  };
  return { url, clock, open, sql, closeAll };
}

const claimOf = (n: number, expiresAt: number) => ({
  requester: "rq:svc",
  subject: `user-${n}`,
  requestId: `req-${n}`,
  expiresAt: new Date(expiresAt),
});

let claims = 0;
/** Puts one pool record of `purpose` and claims it (the pool holds no other), expiring then. */
async function claimed(store: KeyStore, expiresAt: number, extra: Partial<RecordInput> = {}) {
  const record = await store.put(input(extra));
  const got = await store.claimNext(record.purpose, claimOf(++claims, expiresAt));
  assert.equal(got?.id, record.id, "the record just put is the one claimed");
  return record.id;
}

/**
 * Inserts $1 pool OTPs made at $2 (as the superuser: faster than $1 puts), ids 0…01 to 0…$1,
 * consumed at `consumedAt` (SQL over the row number i and $2; NULL: not consumed).
 */
const bulkOtps = (consumedAt: string) =>
  "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, public, " +
  "secret_iv, secret_ct, secret_tag, consumed_at) SELECT '0' || lpad(i::text, 25, '0'), 'otp', " +
  "$2, 'r', '{a}', 'otp/v1', '{}', '\\x000000000000000000000000', '\\x00', " +
  `'\\x00000000000000000000000000000000', ${consumedAt} FROM generate_series(1, $1) i`;

async function ids(store: KeyStore): Promise<Set<string>> {
  return new Set((await store.list()).map((r) => r.id));
}

/** A record of round `roundId` put with round part `roundPart` instead of a secret of its own. */
function partOf(roundId: string, roundPart: number, extra: Partial<RecordInput> = {}): RecordInput {
  const { secret: _, ...rest } = input({ roundId, ...extra });
  return { ...rest, roundPart };
}

/** The rounds whose secret the database holds, in order. */
async function roundSecrets(sql: (text: string) => Promise<{ round_id: string }[]>) {
  return (await sql("SELECT round_id FROM round_secrets ORDER BY round_id")).map((r) => r.round_id);
}

test("retainUsedMs is a positive whole number of ms or Infinity", () => {
  const base = { url: "postgres://u@127.0.0.1:1/db", storeKey: new Uint8Array(32) };
  for (const bad of [0, -1, 1.5, Number.NaN, Number.NEGATIVE_INFINITY, 2 ** 53, "60000"]) {
    assert.throws(
      () => new PostgresKeyStore({ ...base, retainUsedMs: bad as number }),
      (error: unknown) => error instanceof TypeError && /retainUsedMs/.test(error.message),
      String(bad),
    );
  }
  for (const good of [undefined, 1, 86_400_000, Number.POSITIVE_INFINITY]) {
    assert.doesNotThrow(() => new PostgresKeyStore({ ...base, retainUsedMs: good }));
  }
});

test("a sweep deletes exactly the pool OTPs dead before now − retainUsedMs: dead 1 ms before the cutoff goes, dead at the cutoff stays, and nothing else is touched", async () => {
  const db = await database();
  try {
    const store = await db.open(HOUR);
    const cutoff = T0 + HOUR; // the sweep runs at T0 + 2 h
    const gone = new Set<string>();
    const kept = new Set<string>();

    // Consumed pool OTPs: dead at their consumption, whatever their claim says.
    const consumedBefore = await claimed(store, T0 + 10 * HOUR);
    await store.consume(consumedBefore, new Date(cutoff - 1));
    gone.add(consumedBefore);
    const consumedAt = await claimed(store, T0 + 10 * HOUR);
    await store.consume(consumedAt, new Date(cutoff));
    kept.add(consumedAt);
    const consumedLongAgo = await claimed(store, T0 + 60_000);
    await store.consume(consumedLongAgo, new Date(T0 - 30 * 24 * HOUR));
    gone.add(consumedLongAgo);
    const consumedAfterExpiry = await claimed(store, cutoff - 1);
    await store.consume(consumedAfterExpiry, new Date(cutoff));
    kept.add(consumedAfterExpiry);
    // Expired, never consumed: dead at the claim's expiry.
    const expiredBefore = await claimed(store, cutoff - 1);
    gone.add(expiredBefore);
    const expiredAt = await claimed(store, cutoff);
    kept.add(expiredAt);
    const live = await claimed(store, T0 + 3 * HOUR);
    kept.add(live);
    // Consumed without a claim (a void record copied from a key_store file is stored so).
    const unclaimedConsumed = (await store.put(input())).id;
    await store.consume(unclaimedConsumed, new Date(cutoff - 1));
    gone.add(unclaimedConsumed);

    // Withdrawn: consumed while held (its round not witnessed in time, schema version 10).
    const withdrawn = (await store.put(input({ held: true, roundId: "round-withdrawn" }))).id;
    await store.consume(withdrawn, new Date(cutoff - 1));
    gone.add(withdrawn);

    // Never deleted, however long dead: another purpose, an owned OTP, a held OTP not consumed.
    const nonce = await claimed(store, T0, { purpose: "nonce" });
    await store.consume(nonce, new Date(T0));
    kept.add(nonce);
    const owned = (await store.put(input({ owner: "rq:svc", subject: "carol" }))).id;
    await store.consume(owned, new Date(T0));
    kept.add(owned);
    const held = (await store.put(input({ held: true, roundId: "round-held" }))).id;
    kept.add(held);
    const totp = await store.put(
      input({ purpose: "totp", algorithm: "totp/v1", owner: "rq:svc", subject: "dave" }),
    );
    assert.equal(await store.useStep(totp.id, 42, new Date(T0)), true);
    kept.add(totp.id);
    // The pool itself.
    for (let i = 0; i < 3; i++) kept.add((await store.put(input())).id);
    await store.putRoundOpening("round-1", new Uint8Array([1, 2, 3]));
    assert.equal(await store.appendLogEntry(new Uint8Array([9])), 0);

    assert.deepEqual(await ids(store), new Set([...gone, ...kept]));
    db.clock.now = T0 + 2 * HOUR;
    assert.equal(await store.sweepRetention(), gone.size);
    assert.deepEqual(await ids(store), kept);
    for (const id of gone) assert.equal(await store.get(id), undefined);
    assert.deepEqual(await store.readRoundOpening("round-1"), new Uint8Array([1, 2, 3]));
    assert.deepEqual(await store.logEntries(0, 1), [new Uint8Array([9])]);
    assert.equal(await store.countUnclaimed("otp"), 3);
    assert.equal(await store.sweepRetention(), 0, "a second sweep finds nothing");

    // One millisecond later, what died exactly at the old cutoff is past the new one.
    db.clock.now += 1;
    assert.equal(await store.sweepRetention(), 3);
    for (const id of [consumedAt, consumedAfterExpiry, expiredAt]) {
      assert.equal(await store.get(id), undefined);
      kept.delete(id);
    }
    assert.deepEqual(await ids(store), kept);
  } finally {
    await db.closeAll();
  }
});

test("upgrading a v9 database to v10 lets the sweep remove the withdrawn OTPs v9 kept for good; a held OTP not consumed stays", async () => {
  const db = await database();
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const withdrawn = "01ARZ3NDEKTSV4RRFFQ69G5FA1";
  const held = "01ARZ3NDEKTSV4RRFFQ69G5FA2";
  try {
    assert.equal(MIGRATIONS[8]!.version, 9);
    await applyMigrations(client, MIGRATIONS.slice(0, 9));
    for (const [id, consumedAt] of [
      [withdrawn, new Date(T0 - 30 * 24 * HOUR)],
      [held, null],
    ] as const) {
      await client.query(
        "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, public, secret_iv, secret_ct, secret_tag, held, consumed_at) VALUES ($1, 'otp', $2, 'round-unwitnessed', '{a}', 'otp/v1', '{}', '\\x000000000000000000000000', '\\x00', '\\x00000000000000000000000000000000', true, $3)",
        [id, new Date(T0 - 31 * 24 * HOUR), consumedAt],
      );
    }
    // What v9 did with them: its guard refused the delete, however long ago the row was consumed.
    await assert.rejects(
      client.query("DELETE FROM key_records WHERE id = $1", [withdrawn]),
      (error: Error & { code?: string }) => error.code === "23514",
    );
  } finally {
    await client.end();
  }
  try {
    // The open migrates to v10 and its first sweep removes the withdrawn row (db.open checks that
    // a second sweep finds nothing left).
    const store = await db.open(HOUR);
    assert.deepEqual(
      store.migrated.map((m) => m.version),
      MIGRATIONS.slice(9).map((m) => m.version),
    );
    assert.equal(await store.get(withdrawn), undefined);
    assert.equal((await store.get(held))?.held, true);
    const index = await db.sql<{ indexdef: string }>(
      "SELECT indexdef FROM pg_indexes WHERE indexname = 'key_records_otp_dead'",
    );
    assert.equal(index.length, 1);
    assert.doesNotMatch(
      index[0]!.indexdef,
      /held/,
      "the death index no longer leaves held rows out",
    );
    await assert.rejects(
      db.sql("DELETE FROM key_records WHERE id = $1", [held]),
      (error: Error & { code?: string }) => error.code === "23514",
      "a held OTP not consumed is still kept",
    );
  } finally {
    await db.closeAll();
  }
});

test("a round secret goes in the sweep that deletes its round's last record, not before; one put before its records survives a sweep between them", async () => {
  const db = await database();
  try {
    const store = await db.open(HOUR);
    const cutoff = T0 + HOUR; // the sweeps run at T0 + 2 h
    const secretA = new Uint8Array([0xa, 1, 2]);
    await store.putRoundSecret("round-A", secretA);
    // Round A: three pool OTPs sharing its secret; two die before the first sweep's cutoff.
    const a: string[] = [];
    for (let part = 0; part < 3; part++) {
      const record = await store.put(partOf("round-A", part));
      const claimedNow = await store.claimNext("otp", claimOf(++claims, T0 + 10 * HOUR));
      assert.equal(claimedNow?.id, record.id);
      a.push(record.id);
    }
    await store.consume(a[0]!, new Date(cutoff - 2));
    await store.consume(a[1]!, new Date(cutoff - 1));
    await store.consume(a[2]!, new Date(cutoff + HOUR));
    // Round B: its secret is put, its records are not yet.
    await store.putRoundSecret("round-B", new Uint8Array([0xb]));
    // Round C: records with secrets of their own only, dead long ago; no round secret.
    const own = await claimed(store, T0 + 60_000, { roundId: "round-C" });
    await store.consume(own, new Date(T0));

    db.clock.now = T0 + 2 * HOUR;
    assert.equal(await store.sweepRetention(), 3, "a[0], a[1] and the own-secret record");
    assert.deepEqual(await roundSecrets(db.sql<{ round_id: string }>), ["round-A", "round-B"]);
    assert.deepEqual(await store.readSecretPart(a[2]!), {
      kind: "round",
      roundSecret: secretA,
      roundPart: 2,
    });
    // Round B's records arrive after the sweep: its secret is still there for them.
    const b = await store.put(partOf("round-B", 0, { held: true }));
    assert.deepEqual(await store.readSecretPart(b.id), {
      kind: "round",
      roundSecret: new Uint8Array([0xb]),
      roundPart: 0,
    });
    // Round A's last record dies; the sweep that deletes it deletes the round's secret too.
    db.clock.now = T0 + 3 * HOUR + 1;
    assert.equal(await store.sweepRetention(), 1);
    assert.equal(await store.get(a[2]!), undefined);
    assert.deepEqual(await roundSecrets(db.sql<{ round_id: string }>), ["round-B"]);
    // A record put for round A now has no round secret to share.
    await assert.rejects(
      store.put(partOf("round-A", 3)),
      (error: unknown) =>
        error instanceof DkeygenError &&
        error.code === ErrorCodes.INVALID_INPUT &&
        /round-A has no round secret/.test(error.message),
    );
    assert.equal(await store.sweepRetention(), 0);
    assert.deepEqual(await roundSecrets(db.sql<{ round_id: string }>), ["round-B"]);
  } finally {
    await db.closeAll();
  }
});

test("a round secret stays while a record refers to it, whichever batch deletes the others; the database refuses deleting it or changing it", async () => {
  const db = await database();
  try {
    const store = await db.open(HOUR);
    await store.putRoundSecret("round-big", new Uint8Array([1]));
    await store.putRoundSecret("round-kept", new Uint8Array([2]));
    // RETENTION_BATCH + 1 records of one round, all consumed at one instant, and one of another
    // round consumed at the same time but owned (never swept).
    await db.sql(
      "INSERT INTO round_secrets (round_id, iv, ct, tag) VALUES ('round-unused', " +
        "'\\x000000000000000000000000', '\\x00', '\\x00000000000000000000000000000000')",
    );
    await db.sql(
      "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, " +
        "public, round_part, round_secret_id, consumed_at) SELECT '0' || lpad(i::text, 25, '0'), " +
        "'otp', $2, 'round-big', '{a}', 'otp/v1', '{}', i, 'round-big', $2 " +
        "FROM generate_series(1, $1) i",
      [RETENTION_BATCH + 1, new Date(T0)],
    );
    const owned = await store.put(partOf("round-kept", 0, { owner: "rq:svc" }));
    await store.consume(owned.id, new Date(T0));
    const refusedAs = async (code: string, what: string, text: string) => {
      await assert.rejects(
        db.sql(text),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, code, `${what}: ${error.message}`);
          return true;
        },
        what,
      );
    };
    await refusedAs(
      "23503",
      "a round secret records refer to",
      "DELETE FROM round_secrets WHERE round_id = 'round-big'",
    );
    await refusedAs(
      "23514",
      "a round secret changed",
      "UPDATE round_secrets SET ct = '\\x01' WHERE round_id = 'round-unused'",
    );
    db.clock.now = T0 + 2 * HOUR;
    assert.equal(await store.sweepRetention(), RETENTION_BATCH + 1, "two batches");
    assert.deepEqual(await roundSecrets(db.sql<{ round_id: string }>), [
      "round-kept",
      "round-unused",
    ]);
    await refusedAs(
      "23503",
      "the secret an owned record refers to",
      "DELETE FROM round_secrets WHERE round_id = 'round-kept'",
    );
    // One no record ever referred to may be deleted by hand (the sweep never touches it).
    assert.equal(
      (await db.sql("DELETE FROM round_secrets WHERE round_id = 'round-unused' RETURNING 1"))
        .length,
      1,
    );
  } finally {
    await db.closeAll();
  }
});

test("without retainUsedMs (the default) or with Infinity nothing is ever deleted", async () => {
  const db = await database();
  try {
    const writer = await db.open();
    const dead = await claimed(writer, T0 + 60_000);
    await writer.consume(dead, new Date(T0));
    await claimed(writer, T0 + 60_000); // expired, unconsumed
    db.clock.now = T0 + 1000 * 24 * HOUR;
    assert.equal(await writer.sweepRetention(), 0);
    const forever = await db.open(Number.POSITIVE_INFINITY);
    assert.equal(await forever.sweepRetention(), 0);
    assert.equal((await db.sql("SELECT id FROM key_records")).length, 2);
  } finally {
    await db.closeAll();
  }
});

test("a sweep deletes in batches until fewer than a batch are left, rows dead at one instant included", async () => {
  const db = await database();
  try {
    const store = await db.open(HOUR);
    const n = 2 * RETENTION_BATCH + 7;
    await db.sql(bulkOtps("$2"), [n, new Date(T0)]); // all consumed at one instant
    db.clock.now = T0 + HOUR + 1;
    assert.equal(await store.sweepRetention(), n);
    assert.equal((await db.sql("SELECT id FROM key_records")).length, 0);
  } finally {
    await db.closeAll();
  }
});

test("a sweep finds the dead through their own index, not by reading the records kept", async () => {
  const db = await database();
  try {
    await db.open();
    // 10,000 pool OTPs, 78 of them consumed.
    await db.sql(bulkOtps("CASE WHEN i % 128 = 0 THEN $2::timestamptz END"), [
      10_000,
      new Date(T0),
    ]);
    await db.sql("ANALYZE key_records");
    const [row] = await db.sql<{ "QUERY PLAN": unknown }>(`EXPLAIN (FORMAT JSON) ${SWEEP_BATCH}`, [
      new Date(T0 + HOUR),
      "-infinity",
      RETENTION_BATCH,
    ]);
    const plan = JSON.stringify(row!["QUERY PLAN"]);
    assert.match(plan, /"Index Name":"key_records_otp_dead"/, plan);
    assert.doesNotMatch(plan, /Seq Scan|Bitmap/, plan);
  } finally {
    await db.closeAll();
  }
});

test("a sweep looks for the records still referring to a round secret through their index, one probe per round, not by reading the records", async () => {
  const db = await database();
  try {
    await db.open();
    // 500 rounds with a secret, 20 round-part pool OTPs each, one in 8 consumed.
    await db.sql(
      "INSERT INTO round_secrets (round_id, iv, ct, tag) SELECT 'r' || i, " +
        "'\\x000000000000000000000000', '\\x00', '\\x00000000000000000000000000000000' " +
        "FROM generate_series(1, 500) i",
    );
    await db.sql(
      "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, " +
        "public, round_part, round_secret_id, consumed_at) SELECT '0' || lpad(i::text, 25, '0'), " +
        "'otp', $1, 'r' || (i % 500 + 1), '{a}', 'otp/v1', '{}', i, 'r' || (i % 500 + 1), " +
        "CASE WHEN i % 8 = 0 THEN $1::timestamptz END FROM generate_series(1, 10000) i",
      [new Date(T0)],
    );
    await db.sql("ANALYZE key_records");
    await db.sql("ANALYZE round_secrets");
    const [row] = await db.sql<{ "QUERY PLAN": unknown }>(`EXPLAIN (FORMAT JSON) ${SWEEP_BATCH}`, [
      new Date(T0 + HOUR),
      "-infinity",
      RETENTION_BATCH,
    ]);
    const plan = JSON.stringify(row!["QUERY PLAN"]);
    assert.match(plan, /"Index Name":"key_records_otp_dead"/, plan);
    assert.match(plan, /"Index Name":"key_records_round_secret_id"/, plan);
    assert.doesNotMatch(plan, /Seq Scan/, plan);
    // A bitmap scan, if any, reads one round's entries of that index.
    assert.doesNotMatch(
      plan,
      /"Node Type":"Bitmap Index Scan"[^{}]*"Index Name":"(?!key_records_round_secret_id")/,
      plan,
    );
  } finally {
    await db.closeAll();
  }
});

test("the delete trigger refuses removing a live, pooled, owned, held or other-purpose record, a log entry or an opening, and allows a used, expired or withdrawn pool OTP", async () => {
  const db = await database();
  try {
    db.clock.now = Date.now();
    const store = await db.open();
    const refused = async (what: string, text: string, values: unknown[] = []) => {
      await assert.rejects(
        db.sql(text, values),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, "23514", `${what}: ${error.message}`);
          return true;
        },
        what,
      );
    };
    const remove = "DELETE FROM key_records WHERE id = $1";
    await refused("a claimed OTP whose claim is live", remove, [
      await claimed(store, Date.now() + HOUR),
    ]);
    const owned = (await store.put(input({ owner: "rq:svc", subject: "carol" }))).id;
    await store.consume(owned);
    await refused("a consumed owned OTP", remove, [owned]);
    const held = (await store.put(input({ held: true, roundId: "round-held" }))).id;
    await refused("a held OTP not consumed", remove, [held]);
    const withdrawn = (await store.put(input({ held: true, roundId: "round-withdrawn" }))).id;
    await store.consume(withdrawn);
    const nonce = await claimed(store, Date.now() - 1, { purpose: "nonce" });
    await store.consume(nonce);
    await refused("a consumed record of another purpose", remove, [nonce]);
    const totp = await store.put(input({ purpose: "totp", owner: "rq:svc", subject: "dave" }));
    await refused("a TOTP enrollment", remove, [totp.id]);
    await store.appendLogEntry(new Uint8Array([1]));
    await refused("a log entry", "DELETE FROM log_entries WHERE idx = 0");
    await store.putRoundOpening("round-1", new Uint8Array([1]));
    await refused("an opening", "DELETE FROM round_openings");
    const used = await claimed(store, Date.now() + HOUR);
    await store.consume(used);
    const expired = await claimed(store, Date.now() - 1);
    const pooled = (await store.put(input())).id;
    await refused("a pooled OTP", remove, [pooled]);
    await refused("every record at once", "DELETE FROM key_records");
    assert.equal(
      (
        await db.sql("DELETE FROM key_records WHERE id = ANY($1) RETURNING id", [
          [used, expired, withdrawn],
        ])
      ).length,
      3,
    );
    assert.equal(
      (await db.sql("SELECT id FROM key_records")).length,
      6,
      "the refused ones are all there",
    );
  } finally {
    await db.closeAll();
  }
});

/** An OTP record's secret part as the OTP pool stores it, with code `code`. */
const otpSecret = (code: string) =>
  encodeStoredSecret({
    v: 1,
    derivationSecret: "00".repeat(64),
    batch: { index: 0, size: 1 },
    params: {},
    output: { code },
  });

test("verifying the code of an OTP the sweep removed answers as for an unknown code, also when it goes between the lookup and the read", async () => {
  const db = await database();
  try {
    const store = await db.open(HOUR);
    const attempts = new MemoryAttemptStore({ maxFailures: 100, lockMs: 60_000 });
    const verifier = new StoreVerifier({ store, attempts, hotp: DEFAULT_HOTP_WINDOWS });
    const issue = async (code: string) => {
      const record = await store.put(input({ secret: otpSecret(code) }));
      await store.claimNext("otp", {
        requester: "rq:svc",
        subject: "alice",
        requestId: `req-${code}`,
        expiresAt: new Date(T0 + 60_000),
      });
      return record.id;
    };
    const used = await issue("111111");
    assert.deepEqual(await verifier.verifyOtp("rq:svc", "alice", "111111", T0 + 1000), {
      valid: true,
      otpId: used,
    });
    await issue("222222"); // expires unused
    const reason = async (code: string, now: number) => {
      const verdict = await verifier.verifyOtp("rq:svc", "alice", code, now);
      assert.equal(verdict.valid, false);
      return (verdict as { reason: string }).reason;
    };
    assert.equal(await reason("111111", T0 + 2000), "used");
    assert.equal(await reason("222222", T0 + 120_000), "expired");

    // The lookup lists both; the sweep removes them before their codes are read.
    db.clock.now = T0 + 2 * HOUR;
    const list = store.list.bind(store);
    let sweptInBetween = 0;
    store.list = async (query) => {
      const found = await list(query);
      sweptInBetween += await store.sweepRetention();
      return found;
    };
    assert.equal(await reason("111111", db.clock.now), "invalid");
    assert.equal(sweptInBetween, 2);
    store.list = list;
    for (const code of ["111111", "222222", "999999"]) {
      assert.equal(await reason(code, db.clock.now), "invalid", code);
    }
  } finally {
    await db.closeAll();
  }
});

test("a store whose clock runs ahead of the database's deletes no claim the database still sees live, and the sweep goes on", async () => {
  const db = await database();
  try {
    db.clock.now = Date.now();
    const writer = await db.open();
    const aheadOfDb = await claimed(writer, Date.now() + 30 * 60_000);
    const used = await claimed(writer, Date.now() + 30 * 60_000);
    await writer.consume(used, new Date(Date.now() - 2 * HOUR));
    db.clock.now = Date.now() + 2 * HOUR; // cutoff: the database's now + 1 h
    const sweeper = await db.open(HOUR); // its sweep at open deletes the used one
    assert.equal(await sweeper.get(used), undefined);
    assert.ok(await sweeper.get(aheadOfDb), "its claim is live by the database's clock");
    assert.equal(await sweeper.sweepRetention(), 0);
  } finally {
    await db.closeAll();
  }
});

test("with retainUsedMs the store sweeps at open and then by itself; a failed sweep is logged at warn and the next one tries again; close waits for a sweep in flight", async () => {
  const url = await cluster.createDatabase();
  const database = new URL(url).pathname.slice(1);
  const storeKey = randomBytes(32);
  const clock = { now: T0 };
  const warnings: { fields: Record<string, unknown>; message: string }[] = [];
  const logger = {
    warn: (fields: Record<string, unknown>, message: string) =>
      void warnings.push({ fields, message }),
  };
  const writer = new PostgresKeyStore({ url, storeKey, clock: () => new Date(clock.now) });
  await writer.open();
  const gone = async (id: string) => {
    const rows = await cluster.admin("SELECT 1 FROM key_records WHERE id = $1", [id], database);
    return rows.length === 0;
  };
  const until = async (what: string, ok: () => Promise<boolean>) => {
    for (let waited = 0; !(await ok()); waited += 50) {
      assert.ok(waited < 5000, `${what} within 5 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  let sweeper: PostgresKeyStore | undefined;
  try {
    const before = await claimed(writer, T0 + 1000);
    clock.now = T0 + 10_000;
    // 4 s retention: a sweep every second.
    sweeper = new PostgresKeyStore({
      url,
      storeKey,
      clock: () => new Date(clock.now),
      retainUsedMs: 4000,
      logger,
    });
    await sweeper.open();
    await until("the sweep at open", () => gone(before));

    await cluster.admin("REVOKE DELETE ON key_records FROM dkeygen", [], database);
    const later = await claimed(writer, clock.now + 1000);
    clock.now += 10_000;
    await until("a failed sweep logged", async () => warnings.length > 0);
    assert.match(warnings[0]!.message, /retention sweep failed/);
    assert.match(String(warnings[0]!.fields.err), /permission denied/);
    assert.equal(await gone(later), false);
    await cluster.admin("GRANT DELETE ON key_records TO dkeygen", [], database);
    await until("the next timed sweep", () => gone(later));

    // Close while a sweep is in flight: close resolves after it.
    let settled = false;
    const sweep = sweeper.sweepRetention().finally(() => {
      settled = true;
    });
    await sweeper.close();
    assert.equal(settled, true, "the sweep ended before close resolved");
    assert.equal(await sweep, 0);
  } finally {
    await sweeper?.close();
    await writer.close();
  }
});
