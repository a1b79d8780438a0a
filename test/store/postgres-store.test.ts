/**
 * The PostgreSQL key store on a real, throwaway PostgreSQL (test/helpers/postgres.ts: one cluster
 * for this file, one database per test): the compliance suite every store passes, then what only
 * a database shared by several processes has to prove — migrations applied once, secrets sealed
 * in the tables, hostile names kept as the key_store file keeps them, the rules held by the
 * schema itself, and claims and TOTP steps decided once across two stores on one database.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import pg from "pg";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { deriveStoreKeys, sealSecret } from "../../src/store/log-format.js";
import { listStatement, migratePostgresStore, PostgresKeyStore } from "../../src/store/postgres.js";
import { applyMigrations, MIGRATIONS, SCHEMA_VERSION } from "../../src/store/postgres-schema.js";
import { redactStoreUrl } from "../../src/store/postgres-url.js";
import type { KeyRecord, KeyStore, RecordInput } from "../../src/store/types.js";
import { claimInput, fresh, input } from "../helpers/key-store-file.js";
import { startPostgres } from "../helpers/postgres.js";
import { keyStoreCompliance } from "./compliance.js";

const cluster = await startPostgres();
after(() => cluster.stop());

keyStoreCompliance("postgres", async () => {
  const url = await cluster.createDatabase();
  const storeKey = randomBytes(32);
  const make = () => new PostgresKeyStore({ url, storeKey });
  return { store: make(), cleanup: async () => {}, reopen: async () => make() };
});

/** A database of its own, and stores on it sharing one store key. */
async function database() {
  const url = await cluster.createDatabase();
  const storeKey = randomBytes(32);
  const opened: KeyStore[] = [];
  const make = (extra: Partial<ConstructorParameters<typeof PostgresKeyStore>[0]> = {}) =>
    new PostgresKeyStore({ url, storeKey, ...extra });
  const open = async () => {
    const store = make();
    await store.open();
    opened.push(store);
    return store;
  };
  const sql = <T = Record<string, unknown>>(text: string, values: unknown[] = []) =>
    cluster.admin<T>(text, values, new URL(url).pathname.slice(1));
  const closeAll = async () => {
    for (const store of opened) await store.close();
  };
  return { url, storeKey, make, open, sql, closeAll };
}

function isCode(code: string, pattern?: RegExp) {
  return (error: unknown) =>
    error instanceof DkeygenError &&
    error.code === code &&
    (!pattern || pattern.test(error.message));
}

test("two stores opening one empty database at once apply each migration exactly once; a later open applies nothing", async () => {
  const db = await database();
  try {
    const a = db.make();
    const b = db.make();
    await Promise.all([a.open(), b.open()]);
    const applied = [a.migrated.length, b.migrated.length].sort();
    assert.deepEqual(applied, [0, MIGRATIONS.length], "one of them applied every version");
    const rows = await db.sql<{ version: number }>("SELECT version FROM schema_migrations");
    assert.deepEqual(
      rows.map((r) => r.version),
      MIGRATIONS.map((m) => m.version),
    );
    await a.close();
    await b.close();
    const again = await db.open();
    assert.equal((again as PostgresKeyStore).migrated.length, 0);
    assert.deepEqual(await migratePostgresStore(db.url), [], "store migrate has nothing to do");
    assert.equal((await db.sql("SELECT version FROM schema_migrations")).length, MIGRATIONS.length);
  } finally {
    await db.closeAll();
  }
});

test("store migrate on an empty database applies every version, and a store then opens without applying any", async () => {
  const db = await database();
  try {
    const applied = await migratePostgresStore(db.url);
    assert.deepEqual(
      applied.map((m) => m.version),
      MIGRATIONS.map((m) => m.version),
    );
    const store = (await db.open()) as PostgresKeyStore;
    assert.equal(store.migrated.length, 0);
  } finally {
    await db.closeAll();
  }
});

test("a database whose schema is newer than this code is refused, and nothing is changed", async () => {
  const db = await database();
  try {
    await migratePostgresStore(db.url);
    await db.sql("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')", [
      SCHEMA_VERSION + 1,
    ]);
    await assert.rejects(
      db.make().open(),
      isCode(ErrorCodes.OPERATIONAL, new RegExp(`version ${SCHEMA_VERSION + 1}, newer`)),
    );
    assert.equal((await db.sql("SELECT * FROM store_key_check")).length, 0);
  } finally {
    await db.closeAll();
  }
});

test("a store key that is not the database's own is refused at open", async () => {
  const db = await database();
  try {
    const store = await db.open();
    await store.put(input());
    const other = db.make({ storeKey: randomBytes(32) });
    await assert.rejects(
      other.open(),
      isCode(ErrorCodes.STORE_CORRUPT, /store key does not match/),
    );
  } finally {
    await db.closeAll();
  }
});

test("no secret byte sequence of a record or a round opening appears in the database in plaintext (hex or base64)", async () => {
  const db = await database();
  try {
    const store = await db.open();
    const secrets: Buffer[] = [];
    for (const size of [16, 32, 64, 200, 1000]) {
      const secret = randomBytes(size);
      secrets.push(Buffer.from(secret));
      await store.put(input({ secret }));
    }
    const roundSecret = randomBytes(64);
    const payload = Buffer.from(JSON.stringify({ v: 1, roundSecret: roundSecret.toString("hex") }));
    secrets.push(roundSecret, Buffer.from(payload));
    await store.put(input({ secret: payload }));
    const opening = randomBytes(300);
    secrets.push(Buffer.from(opening));
    await store.putRoundOpening("round-1", opening);
    await store.claimNext("otp", claimInput(1));
    // Every table, every column, as the database gives it to anyone who dumps it.
    const tables = await db.sql<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    const chunks: Buffer[] = [];
    for (const { table_name } of tables) {
      for (const row of await db.sql<Record<string, unknown>>(`SELECT * FROM ${table_name}`)) {
        for (const value of Object.values(row)) {
          chunks.push(Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value) ?? ""));
        }
      }
    }
    const dump = Buffer.concat(chunks);
    assert.ok(dump.length > 2000, `the dump holds the sealed secrets (${dump.length} bytes)`);
    const text = dump.toString("latin1");
    const encodings = (bytes: Buffer) => [
      bytes.toString("hex"),
      bytes.toString("hex").toUpperCase(),
      bytes.toString("base64"),
      bytes.toString("base64").replace(/=+$/, ""),
      bytes.toString("base64url"),
    ];
    let windows = 0;
    for (const secret of secrets) {
      for (let i = 0; i + 16 <= secret.length; i++) {
        const window = secret.subarray(i, i + 16);
        assert.equal(dump.indexOf(window), -1, `raw 16-byte window at ${i}`);
        for (const encoded of encodings(window)) {
          assert.ok(!text.includes(encoded), `a 16-byte window at ${i} appears encoded`);
        }
        windows++;
      }
    }
    assert.ok(windows > 1000);
    // And what is there opens only under the store key.
    assert.deepEqual(await store.readRoundOpening("round-1"), new Uint8Array(opening));
  } finally {
    await db.closeAll();
  }
});

/** Names a hostile or careless caller may give: SQL, quotes, NUL, controls, lone surrogates. */
const HOSTILE = [
  "'); DROP TABLE key_records; --",
  "Robert'); DELETE FROM log_entries WHERE ('1'='1",
  'double "quotes" and \\backslashes\\',
  "nul\u0000inside",
  "\u0000",
  "controls \u0001\u0007\b\t\n\r\u001b[31m\u007f",
  "lone \ud800 high",
  "lone \udc00 low",
  "pair 🔑 and ünïcödé",
  "$1 $2 ::text %s %%",
  "x".repeat(1024),
];

/** What a store keeps of a record, without what differs between two stores (id, time). */
function kept(record: KeyRecord | undefined) {
  if (!record) return record;
  const { id: _id, createdAt: _c, claim, ...rest } = record;
  return { ...rest, claim: claim && { ...claim, claimedAt: "-", expiresAt: "-" } };
}

test("hostile names (SQL, quotes, NUL, control characters, lone surrogates) are kept and refused exactly as the key_store file keeps and refuses them", async () => {
  const db = await database();
  const f = await fresh();
  const file = f.make();
  await file.open();
  try {
    const pg = await db.open();
    const outcome = async (store: KeyStore, run: (s: KeyStore) => Promise<unknown>) => {
      try {
        return { ok: await run(store) };
      } catch (error) {
        return {
          error: error instanceof DkeygenError ? error.code : (error as Error).constructor.name,
        };
      }
    };
    const both = async (what: string, run: (s: KeyStore) => Promise<unknown>) => {
      const [fromFile, fromPg] = [await outcome(file, run), await outcome(pg, run)];
      assert.deepEqual(fromPg, fromFile, what);
      return fromPg;
    };
    for (const [i, name] of HOSTILE.entries()) {
      const record: Partial<RecordInput> = {
        purpose: name,
        roundId: name,
        owner: name,
        subject: name,
        holders: [name, "second holder"],
        participants: [name],
        algorithm: name,
        public: { [name]: name },
        secret: new Uint8Array([i, 1, 2, 3]),
      };
      const put = await both(`put ${i}`, async (s) => kept(await s.put(input(record))));
      assert.ok("ok" in put, `name ${i} is stored`);
      await both(`list by subject ${i}`, async (s) => (await s.list({ subject: name })).map(kept));
      await both(`list by owner and purpose ${i}`, async (s) =>
        (await s.list({ owner: name, purpose: name })).map(kept),
      );
      // Pooled records of a hostile purpose, claimed for a hostile subject and requester.
      await both(`pooled ${i}`, async (s) =>
        kept(await s.put(input({ purpose: name, secret: new Uint8Array([i]) }))),
      );
      const claim = { ...claimInput(i), requester: name, subject: name, requestId: name };
      await both(`claim ${i}`, async (s) => kept(await s.claimNext(name, claim)));
      await both(`count ${i}`, (s) => s.countUnclaimed(name));
      await both(`latest claims ${i}`, async (s) =>
        (await s.list({ claimedBy: name, subject: name, latestClaims: 5 })).map(kept),
      );
      await both(`opening ${i}`, async (s) => {
        await s.putRoundOpening(name, new Uint8Array([i + 1]));
        return s.readRoundOpening(name);
      });
      await both(`secret ${i}`, async (s) => {
        const [first] = await s.list({ subject: name, limit: 1 });
        return s.readSecret(first!.id);
      });
    }
    // Names neither store takes.
    for (const [what, bad] of [
      ["empty purpose", { purpose: "" }],
      ["long purpose", { purpose: "x".repeat(1025) }],
      ["long owner", { owner: "o".repeat(1025) }],
      ["empty subject", { owner: "o", subject: "" }],
      ["subject without owner", { subject: "s" }],
      ["long holder", { owner: "o", holders: ["h".repeat(1025)] }],
    ] as const) {
      const result = await both(what, (s) => s.put(input(bad as Partial<RecordInput>)));
      assert.ok("error" in result, `${what} is refused`);
    }
    for (const id of [
      "'; DROP TABLE key_records; --",
      "\u0000",
      "01ARZ3NDEKTSV4RRFFQ69G5FA\u0000",
    ]) {
      await both(`get ${JSON.stringify(id)}`, (s) => s.get(id));
      await both(`consume ${JSON.stringify(id)}`, (s) => s.consume(id));
      await both(`useStep ${JSON.stringify(id)}`, (s) => s.useStep(id, 1));
      await both(`readSecret ${JSON.stringify(id)}`, (s) => s.readSecret(id));
    }
    await both("everything", async (s) => (await s.list()).map(kept));
    const tables = await db.sql<{ n: string }>(
      "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
    );
    // schema_migrations, key_records, round_openings, log_entries, store_key_check (v1),
    // verification_attempts (v2), requesters and requester_changes (v3), request_windows (v5),
    // round_secrets (v9).
    assert.equal(Number(tables[0]!.n), 10, "every table is still there");
  } finally {
    await file.close();
    await f.remove();
    await db.closeAll();
  }
});

test("two stores on one database (two processes): 200 concurrent claims split over both get 150 distinct records and 50 none", async () => {
  const db = await database();
  try {
    const [a, b] = [await db.open(), await db.open()];
    const ids: string[] = [];
    for (let i = 0; i < 150; i++)
      ids.push((await (i % 2 ? a : b).put(input({ roundId: `r${i}` }))).id);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).claimNext("otp", claimInput(i))),
    );
    const claimed = results.filter((r): r is KeyRecord => r !== undefined);
    assert.equal(claimed.length, 150);
    assert.equal(new Set(claimed.map((r) => r.id)).size, 150, "no record handed out twice");
    assert.deepEqual(claimed.map((r) => r.id).sort(), [...ids].sort());
    for (const record of claimed) {
      assert.deepEqual((await (record.id < ids[75]! ? a : b).get(record.id))?.claim, record.claim);
    }
    assert.equal(await a.countUnclaimed("otp"), 0);
    assert.equal(await b.claimNext("otp", claimInput(999)), undefined);
  } finally {
    await db.closeAll();
  }
});

test("two stores on one database: concurrent useStep calls with the same step over both give exactly one true, and consume likewise", async () => {
  const db = await database();
  try {
    const [a, b] = [await db.open(), await db.open()];
    const record = await a.put(input({ owner: "carol", subject: "alice", purpose: "totp" }));
    for (const step of [0, 1, 7, 59_000_000]) {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).useStep(record.id, step)),
      );
      assert.equal(results.filter(Boolean).length, 1, `step ${step}: ${results}`);
    }
    assert.equal((await b.get(record.id))?.lastStep, 59_000_000);
    assert.equal(await a.useStep(record.id, 58_999_999), false, "a lower step is a replay");
    const pooled = await b.put(input());
    const consumed = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).consume(pooled.id)),
    );
    assert.equal(consumed.filter(Boolean).length, 1);
  } finally {
    await db.closeAll();
  }
});

test("a lookup by owner and subject (an account's enrollment) reads key_records_subject_owner: neither the owner's other records nor other requesters' claims for the subject", async () => {
  const db = await database();
  try {
    const store = await db.open();
    const mine = await store.put(input({ purpose: "totp", owner: "carol", subject: "alice" }));
    for (const owner of ["dave", "erin"]) {
      await store.put(input({ purpose: "totp", owner, subject: "alice" }));
    }
    const columns =
      "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, " +
      "public, secret_iv, secret_ct, secret_tag, ";
    const rest =
      "now(), 'r', '{a}', 'x', '{}', '\\x000000000000000000000000', '\\x00', " +
      "'\\x00000000000000000000000000000000'";
    // Carol's enrollments of 2,000 other accounts.
    await db.sql(
      `${columns} owner, subject) SELECT '0' || lpad(i::text, 25, '0'), 'totp', ${rest}, ` +
        "'carol', 'user-' || i FROM generate_series(1, 2000) i",
    );
    // 20,000 OTPs other requesters claimed for alice.
    await db.sql(
      `${columns} claim_seq, claim_requester, claim_subject, claim_request_id, claimed_at, ` +
        `claim_expires_at) SELECT '1' || lpad(i::text, 25, '0'), 'otp', ${rest}, ` +
        "nextval('key_claim_seq'), 'requester-' || (i % 50), 'alice', 'q', now(), " +
        "now() + interval '1 hour' FROM generate_series(1, 20000) i",
    );
    await db.sql("ANALYZE key_records");
    const query = { purpose: "totp", owner: "carol", subject: "alice" };
    const { sql, values } = listStatement(query);
    const [row] = await db.sql<{ "QUERY PLAN": unknown }>(`EXPLAIN (FORMAT JSON) ${sql}`, values);
    const plan = JSON.stringify(row!["QUERY PLAN"]);
    assert.match(plan, /"Index Name":"key_records_subject_owner"/, plan);
    assert.doesNotMatch(plan, /Seq Scan|Bitmap|key_records_(claim_subject|owner|purpose)"/, plan);
    assert.deepEqual(
      (await store.list(query)).map((r) => r.id),
      [mine.id],
    );
  } finally {
    await db.closeAll();
  }
});

test("the schema holds the rules itself: a second claim or consumption, a lower step, a rewritten record, a subject without owner, a gap in the log are refused by the database", async () => {
  const db = await database();
  try {
    const store = await db.open();
    const record = await store.put(input());
    const owned = await store.put(input({ owner: "carol" }));
    await store.claimNext("otp", claimInput(1));
    await store.consume(record.id);
    await store.useStep(record.id, 5);
    await store.appendLogEntry(new Uint8Array([1]));
    await store.putRoundOpening("round-1", new Uint8Array([1]));
    const refused = async (what: string, text: string, values: unknown[] = []) => {
      await assert.rejects(
        db.sql(text, values),
        (error: Error & { code?: string }) => {
          assert.match(error.code ?? "", /^23/, `${what}: ${error.message}`);
          return true;
        },
        what,
      );
    };
    const id = [record.id];
    await refused(
      "a second claim",
      "UPDATE key_records SET claim_requester = 'mallory' WHERE id = $1",
      id,
    );
    await refused(
      "a claim removed",
      "UPDATE key_records SET claim_seq = NULL, claim_requester = NULL, claim_subject = NULL, claim_request_id = NULL, claimed_at = NULL, claim_expires_at = NULL WHERE id = $1",
      id,
    );
    await refused(
      "a second consumption",
      "UPDATE key_records SET consumed_at = now() WHERE id = $1",
      id,
    );
    await refused("a lower step", "UPDATE key_records SET last_step = 4 WHERE id = $1", id);
    await refused(
      "the same step again",
      "UPDATE key_records SET last_step_at = now() WHERE id = $1",
      id,
    );
    await refused(
      "a rewritten secret",
      "UPDATE key_records SET secret_ct = '\\x00' WHERE id = $1",
      id,
    );
    await refused(
      "a rewritten purpose",
      "UPDATE key_records SET purpose = 'totp' WHERE id = $1",
      id,
    );
    await refused(
      "a claim on an owned record",
      "UPDATE key_records SET claim_seq = 99, claim_requester = 'r', claim_subject = 's', claim_request_id = 'q', claimed_at = now(), claim_expires_at = now() WHERE id = $1",
      [owned.id],
    );
    await refused("half a claim", "UPDATE key_records SET claim_requester = 'r' WHERE id = $1", [
      (await store.put(input())).id,
    ]);
    // A consumed pool OTP may be deleted (retention, version 7: postgres-retention.test.ts).
    await refused("a deleted owned record", "DELETE FROM key_records WHERE id = $1", [owned.id]);
    await refused("a deleted pool record", "DELETE FROM key_records WHERE id = $1", [
      (await store.put(input())).id,
    ]);
    const insert =
      "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, public, owner, subject, holders, secret_iv, secret_ct, secret_tag) VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAV', 'otp', now(), 'r', '{a}', 'otp/v1', '{}', $1, $2, $3, '\\x000000000000000000000000', '\\x', '\\x00000000000000000000000000000000')";
    await refused("a subject without an owner", insert, [null, "alice", null]);
    await refused("holders without an owner", insert, [null, null, ["h"]]);
    await refused("repeated holders", insert, ["o", null, ["h", "h"]]);
    await refused("an empty owner", insert, ["", null, null]);
    await refused(
      "a gap in the log",
      "INSERT INTO log_entries (idx, prev, leaf) VALUES (2, 1, '\\x01')",
    );
    await refused("a log entry changed", "UPDATE log_entries SET leaf = '\\x02' WHERE idx = 0");
    await refused("a log entry removed", "DELETE FROM log_entries WHERE idx = 0");
    await refused(
      "a second opening",
      "INSERT INTO round_openings (round_id, iv, ct, tag) SELECT round_id, iv, ct, tag FROM round_openings",
    );
    await refused("an opening removed", "DELETE FROM round_openings");
    await refused(
      "a step above 2^53 - 1",
      "UPDATE key_records SET last_step = 9007199254740992, last_step_at = now() WHERE id = $1",
      id,
    );
    // Round secrets (version 9): a record has its own sealed secret or a round part, never both
    // nor neither; a round part needs its round's secret; neither is ever rewritten.
    await store.putRoundSecret("round-S", new Uint8Array([1]));
    const { secret: _, ...partInput } = input({ roundId: "round-S" });
    const part = await store.put({ ...partInput, roundPart: 7 });
    const withPart =
      "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, public, secret_iv, secret_ct, secret_tag, round_part, round_secret_id) VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAX', 'otp', now(), $1, '{a}', 'otp/v1', '{}', $2, $3, $4, $5, $6)";
    const iv = Buffer.alloc(12);
    const tag = Buffer.alloc(16);
    const ct = Buffer.alloc(1);
    await refused("a round part of a round without a secret", withPart, [
      "round-none",
      null,
      null,
      null,
      "0",
      "round-none",
    ]);
    await refused("a round part and a secret", withPart, ["round-S", iv, ct, tag, "0", "round-S"]);
    await refused("neither a round part nor a secret", withPart, [
      "round-S",
      null,
      null,
      null,
      null,
      null,
    ]);
    await refused("a third of a secret", withPart, ["round-S", iv, null, null, null, null]);
    await refused("a round part that names another round's secret", withPart, [
      "round-S",
      null,
      null,
      null,
      "0",
      "round-T",
    ]);
    await refused("a round part without its round's secret named", withPart, [
      "round-S",
      null,
      null,
      null,
      "0",
      null,
    ]);
    for (const bad of ["-1", "4294967296"]) {
      await refused(`round part ${bad}`, withPart, ["round-S", null, null, null, bad, "round-S"]);
    }
    await refused("a round part rewritten", "UPDATE key_records SET round_part = 8 WHERE id = $1", [
      part.id,
    ]);
    await refused(
      "a record moved to another round's secret",
      "UPDATE key_records SET round_id = 'round-T', round_secret_id = 'round-T' WHERE id = $1",
      [part.id],
    );
    await refused(
      "a record's own secret swapped for a round part",
      "UPDATE key_records SET secret_iv = NULL, secret_ct = NULL, secret_tag = NULL, round_part = 0, round_secret_id = round_id WHERE id = $1",
      [(await store.put(input({ roundId: "round-S" }))).id],
    );
    await refused("a round secret changed", "UPDATE round_secrets SET ct = '\\x02'");
    await refused("a round secret a record refers to removed", "DELETE FROM round_secrets");
    await refused(
      "a second round secret",
      "INSERT INTO round_secrets (round_id, iv, ct, tag) SELECT round_id, iv, ct, tag FROM round_secrets",
    );
    await refused(
      "a round secret over 64 KiB",
      "INSERT INTO round_secrets (round_id, iv, ct, tag) VALUES ('round-big', $1, $2, $3)",
      [iv, Buffer.alloc(65537), tag],
    );
    // What the store does is within the rules.
    assert.equal(await store.useStep(record.id, 6), true);
    assert.equal(await store.appendLogEntry(new Uint8Array([2])), 1);
    assert.deepEqual(await store.readSecretPart(part.id), {
      kind: "round",
      roundSecret: new Uint8Array([1]),
      roundPart: 7,
    });
  } finally {
    await db.closeAll();
  }
});

test("schema v4 holds records: a record stored under v3 is not held after the upgrade, a held row with an owner and a released row held again are refused, and two stores on one database never claim a held record", async () => {
  const db = await database();
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    // A v3 database with a pool record in it, as an older dkeygen left it.
    await applyMigrations(client, MIGRATIONS.slice(0, 3));
    await client.query(
      "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, public, secret_iv, secret_ct, secret_tag) VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAV', 'otp', now(), 'old', '{a}', 'otp/v1', '{}', '\\x000000000000000000000000', '\\x', '\\x00000000000000000000000000000000')",
    );
  } finally {
    await client.end();
  }
  try {
    const [a, b] = [await db.open(), await db.open()];
    assert.equal((await a.get("01ARZ3NDEKTSV4RRFFQ69G5FAV"))?.held, undefined);
    const held = await a.put(input({ roundId: "refill", held: true }));
    assert.equal(await b.countUnclaimed("otp"), 1);
    const claims = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).claimNext("otp", claimInput(i))),
    );
    assert.deepEqual(
      claims.flatMap((r) => (r ? [r.id] : [])),
      ["01ARZ3NDEKTSV4RRFFQ69G5FAV"],
      "only the old record, never the held one",
    );
    assert.equal(await b.releaseHeld("refill"), 1, "released by another process");
    assert.equal((await a.claimNext("otp", claimInput(99)))?.id, held.id);
    const refused = async (what: string, text: string, values: unknown[] = []) => {
      await assert.rejects(
        db.sql(text, values),
        (error: Error & { code?: string }) => {
          assert.match(error.code ?? "", /^23/, `${what}: ${error.message}`);
          return true;
        },
        what,
      );
    };
    await refused("held again once released", "UPDATE key_records SET held = true WHERE id = $1", [
      held.id,
    ]);
    await refused(
      "a held record with an owner",
      "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, public, owner, secret_iv, secret_ct, secret_tag, held) VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAW', 'otp', now(), 'r', '{a}', 'otp/v1', '{}', 'carol', '\\x000000000000000000000000', '\\x', '\\x00000000000000000000000000000000', true)",
    );
  } finally {
    await db.closeAll();
  }
});

test("schema v9 keeps the records of a v8 database as they were (each with its own secret), and from then on refuses what v9 refuses", async () => {
  const db = await database();
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const secretKey = deriveStoreKeys(db.storeKey).secret;
  const old = [
    { id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", roundId: "round-old", secret: new Uint8Array([8, 8]) },
    { id: "01ARZ3NDEKTSV4RRFFQ69G5FAW", roundId: "round-old", secret: new Uint8Array([9]) },
  ];
  try {
    // A v8 database with two sealed pool records, one of them claimed and consumed, as the
    // dkeygen before round secrets left it.
    assert.equal(MIGRATIONS[7]!.version, 8);
    await applyMigrations(client, MIGRATIONS.slice(0, 8));
    for (const { id, roundId, secret } of old) {
      const sealed = sealSecret(secretKey, randomBytes, { id, purpose: "otp", roundId }, secret);
      await client.query(
        "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, public, secret_iv, secret_ct, secret_tag) VALUES ($1, 'otp', now(), $2, '{a}', 'otp/v1', '{}', $3, $4, $5)",
        [id, roundId, sealed.iv, sealed.ct, sealed.tag],
      );
    }
    await client.query(
      "UPDATE key_records SET claim_seq = nextval('key_claim_seq'), claim_requester = 'r', claim_subject = 's', claim_request_id = 'q', claimed_at = now(), claim_expires_at = now() + interval '1 hour', consumed_at = now() WHERE id = $1",
      [old[1]!.id],
    );
  } finally {
    await client.end();
  }
  try {
    const store = (await db.open()) as PostgresKeyStore;
    assert.deepEqual(
      store.migrated.map((m) => m.version),
      MIGRATIONS.slice(8).map((m) => m.version),
    );
    for (const { id, secret } of old) {
      assert.deepEqual(await store.readSecret(id), secret);
      assert.deepEqual(await store.readSecretPart(id), { kind: "own", secret });
    }
    assert.equal((await store.get(old[1]!.id))?.consumedAt !== undefined, true);
    assert.equal((await store.claimNext("otp", claimInput(1)))?.id, old[0]!.id);
    // The constraints v9 added hold for the rows it found (validated, not taken on trust).
    const constraints = await db.sql<{ conname: string; convalidated: boolean }>(
      "SELECT conname, convalidated FROM pg_constraint WHERE conname IN " +
        "('key_records_secret_or_part', 'key_records_round_secret_id_of_part', " +
        "'key_records_round_secret') ORDER BY conname",
    );
    assert.deepEqual(constraints, [
      { conname: "key_records_round_secret", convalidated: true },
      { conname: "key_records_round_secret_id_of_part", convalidated: true },
      { conname: "key_records_secret_or_part", convalidated: true },
    ]);
    await assert.rejects(
      db.sql(
        "UPDATE key_records SET round_part = 0, round_secret_id = round_id, secret_iv = NULL, secret_ct = NULL, secret_tag = NULL WHERE id = $1",
        [old[0]!.id],
      ),
      (error: Error & { code?: string }) => error.code === "23514",
    );
    // Round secrets work on the migrated database, beside the old rows of the same round.
    await store.putRoundSecret("round-old", new Uint8Array([5]));
    const { secret: _, ...rest } = input({ roundId: "round-old" });
    const part = await store.put({ ...rest, roundPart: 1 });
    assert.deepEqual(await store.readSecretPart(part.id), {
      kind: "round",
      roundSecret: new Uint8Array([5]),
      roundPart: 1,
    });
    assert.deepEqual(await store.readSecret(old[0]!.id), old[0]!.secret);
  } finally {
    await db.closeAll();
  }
});

test("two stores on one database (two processes) putting one round's secret at once: exactly one is kept, the other refused", async () => {
  const db = await database();
  try {
    const [a, b] = [await db.open(), await db.open()];
    for (let round = 0; round < 10; round++) {
      const results = await Promise.allSettled(
        [a, b, a, b].map((store, i) =>
          store.putRoundSecret(`round-${round}`, new Uint8Array([round, i])),
        ),
      );
      const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
      assert.equal(won.length, 1, `round ${round}: ${results.map((r) => r.status)}`);
      for (const r of results) {
        if (r.status === "rejected") assert.ok(isCode(ErrorCodes.INVALID_INPUT)(r.reason));
      }
      const { secret: _, ...rest } = input({ roundId: `round-${round}` });
      const record = await a.put({ ...rest, roundPart: 0 });
      assert.deepEqual(await b.readSecretPart(record.id), {
        kind: "round",
        roundSecret: new Uint8Array([round, won[0]!]),
        roundPart: 0,
      });
    }
  } finally {
    await db.closeAll();
  }
});

test("a log entry appended by another store makes this one's next append fail instead of forking the log", async () => {
  const db = await database();
  try {
    const [a, b] = [await db.open(), await db.open()];
    assert.equal(await a.appendLogEntry(new Uint8Array([1])), 0);
    await assert.rejects(
      b.appendLogEntry(new Uint8Array([2])),
      isCode(ErrorCodes.OPERATIONAL, /another process/),
    );
    assert.deepEqual(await a.logEntries(0, 1), [new Uint8Array([1])]);
  } finally {
    await db.closeAll();
  }
});

test("the database password is never shown: not in an error for a wrong password, an unreachable server or a bad URL, nor in a log line", async () => {
  const db = await database();
  const secretWord = "Sup3r-S3cret-pa55";
  const lines: string[] = [];
  const logger = {
    warn: (fields: Record<string, unknown>, message: string) =>
      lines.push(JSON.stringify(fields) + message),
    error: (fields: Record<string, unknown>, message: string) =>
      lines.push(JSON.stringify(fields) + message),
  };
  const wrong = new URL(db.url);
  wrong.password = secretWord;
  const unreachable = new URL(wrong);
  unreachable.port = "1";
  const inQuery = new URL(db.url);
  inQuery.password = "";
  inQuery.searchParams.set("password", secretWord);
  const messages: string[] = [];
  for (const url of [wrong.href, unreachable.href, `${wrong.href}?sslmode=nonsense`]) {
    const store = new PostgresKeyStore({ url, storeKey: randomBytes(32), logger });
    const error = await store.open().then(
      () => assert.fail("opened"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof DkeygenError, String(error));
    messages.push(error.message, JSON.stringify(error), String(error.stack));
    assert.ok(!store.shownUrl.includes(secretWord));
    assert.match(store.shownUrl, /:\*\*\*@/);
  }
  assert.match(messages[0]!, /password authentication failed/);
  for (const bad of [`mysql://u:${secretWord}@h/db`, `postgres://u:${secretWord}@h`]) {
    assert.throws(
      () => new PostgresKeyStore({ url: bad, storeKey: randomBytes(32) }),
      (e: unknown) => {
        messages.push((e as Error).message);
        return isCode(ErrorCodes.INVALID_INPUT)(e);
      },
    );
  }
  assert.ok(!redactStoreUrl(inQuery.href).includes(secretWord));
  await assert.rejects(migratePostgresStore(wrong.href), (e: Error) => {
    messages.push(e.message);
    return true;
  });
  for (const text of [...messages, ...lines]) {
    assert.ok(!text.includes(secretWord), `the password shows in: ${text}`);
    assert.ok(!text.includes(cluster.password), `the password shows in: ${text}`);
  }
  assert.ok(messages.length >= 10);
});
