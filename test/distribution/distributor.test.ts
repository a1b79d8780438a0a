/**
 * A `dkeygen distributor`'s parts on a real PostgreSQL (src/server/distribution/distributor.ts):
 * its claim-only OTP pool (no rounds; it waits for another process's refill), the `logged` check
 * of records from before held records existed, read from the database's own log, and readiness
 * that reports the database.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { createLogger } from "../../src/logging.js";
import { startDistributor } from "../../src/server/distribution/distributor.js";
import { loggedInStore } from "../../src/server/distribution/logged-rounds.js";
import { OtpPool } from "../../src/server/distribution/otp-pool.js";
import { encodeStoredSecret } from "../../src/server/stored-secret.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import type { RecordInput } from "../../src/store/types.js";
import { startPostgres } from "../helpers/postgres.js";

const cluster = await startPostgres();
let stopped = false;
after(() => (stopped ? undefined : cluster.stop()));

const logger = createLogger({ level: "silent" });
const roundId = () => randomBytes(16).toString("base64url").slice(0, 22);

function otpRecord(round: string, code: string, held = false): RecordInput {
  return {
    purpose: "otp",
    roundId: round,
    participants: ["c1", "c2"],
    algorithm: "otp/v1",
    public: { digits: 6 },
    secret: encodeStoredSecret({
      v: 1,
      derivationSecret: "00".repeat(32),
      batch: { index: 0, size: 1 },
      params: { digits: 6 },
      output: { code },
    }),
    ...(held ? { held: true as const } : {}),
  };
}

const claim = (n: number) => ({
  requester: "requester-1",
  subject: `subject-${n}`,
  requestId: `request-${n}`,
  expiresAt: new Date(Date.now() + 300_000),
});

async function openStore(): Promise<PostgresKeyStore> {
  const store = new PostgresKeyStore({
    url: await cluster.createDatabase(),
    storeKey: randomBytes(32),
  });
  await store.open();
  return store;
}

test("a record from before held records is handed out by a distributor only when its round is in the database's log; the others are withdrawn", async () => {
  const store = await openStore();
  try {
    const [unlogged, logged] = [roundId(), roundId()];
    const withdrawn = await store.put(otpRecord(unlogged, "111111"));
    const served = await store.put(otpRecord(logged, "222222"));
    await store.appendLogEntry(Buffer.from(`{"type":"round","roundId":"${logged}"}`));
    const isLogged = loggedInStore(store);
    assert.equal(await isLogged(logged), true);
    assert.equal(await isLogged(unlogged), false);
    assert.equal(await isLogged("not a round id"), false);
    const pool = new OtpPool({ store, size: 0, digits: 6, logger, logged: isLogged });
    const got = await pool.claim(claim(1), 0);
    assert.equal(got.record.id, served.id);
    assert.equal(got.code, "222222");
    assert.ok((await store.get(withdrawn.id))?.consumedAt, "the unlogged one is withdrawn");
    await pool.stop();
  } finally {
    await store.close();
  }
});

test("a claim-only pool never runs a round: it waits for a refill another process stores, and names the server when none comes", async () => {
  const store = await openStore();
  try {
    const pool = new OtpPool({ store, size: 0, digits: 6, logger, pollMs: 50 });
    assert.equal(pool.refills, false);
    pool.start();
    const started = performance.now();
    await assert.rejects(pool.claim(claim(1), 300), (error: unknown) => {
      assert.ok(isDkeygenError(error, ErrorCodes.UNAVAILABLE));
      assert.match(error.message, /distributor only hands out OTPs the dkeygen server/);
      return true;
    });
    assert.ok(performance.now() - started >= 290, "it waited for the request's wait");
    // A refill by "the server": stored held, then released, while a request waits.
    const round = roundId();
    const waiting = pool.claim(claim(2), 5000);
    await store.put(otpRecord(round, "333333", true));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await store.releaseHeld(round);
    const got = await waiting;
    assert.equal(got.code, "333333");
    assert.equal(await store.countUnclaimed("otp"), 0);
    await pool.stop();
  } finally {
    await store.close();
  }
});

test("a distributor's readiness reports its database: 200 while it answers, 503 unreachable when it is down; it serves no /v1/log routes", async () => {
  const url = await cluster.createDatabase();
  const storeKey = randomBytes(32);
  // The store made by the key generation server in real life; here a first open makes the schema.
  const first = new PostgresKeyStore({ url, storeKey });
  await first.open();
  await first.close();
  const running = await startDistributor({ storeUrl: url, storeKey, port: 0, logger });
  try {
    const ready = await fetch(`${running.url}/v1/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), {
      status: "ready",
      store: "postgres",
      database: "reachable",
      otpPool: { available: 0, target: 0 },
    });
    assert.equal((await fetch(`${running.url}/v1/log/checkpoint`)).status, 404);
    const openapi = (await (await fetch(`${running.url}/v1/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    assert.ok(!Object.keys(openapi.paths).some((path) => path.startsWith("/v1/log/")));
    assert.ok("/v1/otp" in openapi.paths || Object.keys(openapi.paths).length > 5);
    await cluster.stop();
    stopped = true;
    const down = await fetch(`${running.url}/v1/ready`);
    assert.equal(down.status, 503);
    assert.equal(down.headers.get("retry-after"), "1");
    const body = (await down.json()) as Record<string, unknown>;
    assert.equal(body.status, "degraded");
    assert.equal(body.database, "unreachable");
    assert.equal(body.problem, "the key store's database cannot be reached");
    assert.ok(
      !JSON.stringify(body).includes("127.0.0.1"),
      "no address to an unauthenticated caller",
    );
  } finally {
    await running.stop().catch(() => {});
  }
});
