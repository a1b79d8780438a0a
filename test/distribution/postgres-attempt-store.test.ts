/**
 * The attempt store on PostgreSQL passes the AttemptStore compliance suite, and holds across
 * processes: two stores (two connection pools, as two distribution servers) on one database lock
 * a subject after the configured total of wrong codes between them, a reservation left by a
 * process that died stops counting after RESERVATION_MS, and no subject is stored in the clear.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import {
  PostgresAttemptStore,
  RESERVATION_MS,
} from "../../src/server/distribution/verification/postgres-attempt-store.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { startPostgres } from "../helpers/postgres.js";
import { attemptStoreCompliance } from "./attempt-store-compliance.js";

const cluster = await startPostgres();
after(() => cluster.stop());

/** `count` open key stores (each its own pool: a process each) on one new database. */
async function processes(count: number) {
  const url = await cluster.createDatabase();
  const storeKey = randomBytes(32);
  const stores: PostgresKeyStore[] = [];
  for (let i = 0; i < count; i++) {
    const store = new PostgresKeyStore({ url, storeKey });
    await store.open();
    stores.push(store);
  }
  const sql = <T = Record<string, unknown>>(text: string, values: unknown[] = []) =>
    cluster.admin<T>(text, values, new URL(url).pathname.slice(1));
  return { stores, sql, close: () => Promise.all(stores.map((s) => s.close())) };
}

attemptStoreCompliance("postgres", async (limits) => {
  const { stores, close } = await processes(1);
  return {
    store: new PostgresAttemptStore(stores[0]!, limits),
    cleanup: async () => void (await close()),
  };
});

const T0 = 1_800_000_000_000;

test("two distribution servers on one database: 40 wrong codes raced over both lock the subject after exactly 5", async () => {
  const { stores, close } = await processes(2);
  try {
    const limits = { maxFailures: 5, lockMs: 60_000 };
    const servers = stores.map((s) => new PostgresAttemptStore(s, limits));
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const store = servers[i % 2]!;
        const start = await store.begin("otp\u0000rq:a\u0000alice", T0);
        if (start.locked) return "locked";
        if (start.busy) return "busy";
        await store.fail("otp\u0000rq:a\u0000alice", T0);
        return "checked";
      }),
    );
    assert.equal(outcomes.filter((o) => o === "checked").length, 5, outcomes.join(","));
    const after = await servers[1]!.begin("otp\u0000rq:a\u0000alice", T0 + 1);
    assert.equal(after.locked, true);
    assert.equal(after.lockedUntil, T0 + limits.lockMs);
    // Another subject of the same requester is not locked.
    assert.equal((await servers[0]!.begin("otp\u0000rq:a\u0000bob", T0 + 1)).locked, false);
  } finally {
    await close();
  }
});

test("a reservation left by a process that died counts until RESERVATION_MS of quiet, then not", async () => {
  const { stores, close } = await processes(2);
  try {
    const limits = { maxFailures: 2, lockMs: 60_000 };
    const dead = new PostgresAttemptStore(stores[0]!, limits);
    const live = new PostgresAttemptStore(stores[1]!, limits);
    await dead.begin("carol", T0);
    await dead.begin("carol", T0); // both attempts reserved, never ended: the process died
    assert.equal((await live.begin("carol", T0 + RESERVATION_MS)).busy, true);
    assert.deepEqual(await live.begin("carol", T0 + RESERVATION_MS + 1), {
      locked: false,
      busy: false,
      remaining: 2,
    });
  } finally {
    await close();
  }
});

test("no subject is in the database in the clear, and a subject with nothing to remember leaves no row", async () => {
  const { stores, sql, close } = await processes(1);
  try {
    const store = new PostgresAttemptStore(stores[0]!, { maxFailures: 3, lockMs: 60_000 });
    const subject = `totp\u0000rq:x\u0000dave-${randomBytes(4).toString("hex")}@example.com`;
    await store.begin(subject, T0);
    await store.fail(subject, T0);
    const rows = await sql<{ key_hash: Buffer; failures: number }>(
      "SELECT key_hash, failures FROM verification_attempts",
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.failures, 1);
    const dump = JSON.stringify(rows.map((r) => [r.key_hash.toString("latin1"), r.failures]));
    assert.equal(dump.includes("dave"), false);
    await store.begin(subject, T0 + 1);
    await store.succeed(subject);
    assert.deepEqual(await sql("SELECT * FROM verification_attempts"), []);
  } finally {
    await close();
  }
});

test("verifications racing on one subject over two servers, each ending in success (the row deleted as idle), all start and end: no step finds its row gone", async () => {
  const { stores, close } = await processes(2);
  try {
    const limits = { maxFailures: 5, lockMs: 60_000 };
    const servers = stores.map((s) => new PostgresAttemptStore(s, limits));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 300 }, async (_, i) => {
        const server = servers[i % 2]!;
        const start = await server.begin("racer", T0);
        assert.equal(start.locked, false);
        await server.succeed("racer");
      }),
    );
    const failed = outcomes.filter((o) => o.status === "rejected");
    assert.deepEqual(
      failed.map((o) => String((o as PromiseRejectedResult).reason)).slice(0, 3),
      [],
    );
  } finally {
    await close();
  }
});
