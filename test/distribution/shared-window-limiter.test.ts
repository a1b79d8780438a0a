/**
 * Request limits counted in PostgreSQL for every process on it (shared-window-limiter.ts,
 * `dkeygen_take_requests`, schema version 5): two processes (two stores on one database, each
 * with its own limiter) together admit exactly the limit in a window, concurrent requests
 * included; a spent window says how long to wait and is not asked about again; the next window
 * starts over; a limit of 0 is off. Real PostgreSQL.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  postgresTake,
  postgresWindows,
  SharedWindowLimiter,
  type TakeRequests,
} from "../../src/server/distribution/shared-window-limiter.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { startPostgres } from "../helpers/postgres.js";

const cluster = await startPostgres();
after(() => cluster.stop());

async function twoProcesses(): Promise<[PostgresKeyStore, PostgresKeyStore]> {
  const url = await cluster.createDatabase();
  const storeKey = randomBytes(32);
  const a = new PostgresKeyStore({ url, storeKey });
  await a.open();
  const b = new PostgresKeyStore({ url, storeKey });
  await b.open();
  return [a, b];
}

/** A TakeRequests that counts its calls. */
function counted(take: TakeRequests): TakeRequests & { calls: number } {
  const wrapped = Object.assign(
    async (...args: Parameters<TakeRequests>) => {
      wrapped.calls++;
      return take(...args);
    },
    { calls: 0 },
  );
  return wrapped;
}

test("two processes on one database admit exactly the limit in a window between them, concurrent requests included, with few queries", async () => {
  const [a, b] = await twoProcesses();
  try {
    const takeA = counted(postgresTake(a));
    const takeB = counted(postgresTake(b));
    const max = 640;
    // An hour's window: the test cannot straddle two of them unless it starts in its last second.
    const windowMs = 3_600_000;
    if (Date.now() % windowMs > windowMs - 5000) await sleep(windowMs - (Date.now() % windowMs));
    const onA = new SharedWindowLimiter({ name: "otp", max, windowMs, take: takeA });
    const onB = new SharedWindowLimiter({ name: "otp", max, windowMs, take: takeB });
    // 1,000 requests of one requester, 50 at a time, alternating between the processes.
    const waits: number[] = [];
    for (let batch = 0; batch < 20; batch++) {
      waits.push(
        ...(await Promise.all(
          Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? onA : onB).hit("svc", Date.now())),
        )),
      );
    }
    assert.equal(waits.filter((w) => w === 0).length, max, "exactly the limit admitted");
    for (const w of waits.filter((w) => w > 0)) assert.ok(w >= 1 && w <= 3600, `wait ${w}`);
    // Chunks of max/64 = 10: about 64 grants in all, not one query per request.
    assert.ok(takeA.calls + takeB.calls <= 80, `${takeA.calls + takeB.calls} queries`);
    // Spent: refusals come from memory, without asking again.
    const calls = takeA.calls;
    for (let i = 0; i < 20; i++) assert.ok((await onA.hit("svc", Date.now())) > 0);
    assert.equal(takeA.calls, calls);
    // Another requester has its own window.
    assert.equal(await onB.hit("other", Date.now()), 0);
  } finally {
    await a.close();
    await b.close();
  }
});

test("a spent window is open again in the next one; a limit of 0 is off; the factory names its windows", async () => {
  const [a, b] = await twoProcesses();
  try {
    const windows = postgresWindows(a);
    const short = windows("credential", 3, 1000);
    const other = postgresWindows(b)("credential", 3, 1000);
    // Start just after a second begins: all eight fall in one window.
    await sleep(1000 - (Date.now() % 1000) + 20);
    let admitted = 0;
    for (let i = 0; i < 8; i++) {
      if ((await (i % 2 ? short : other).hit("svc", Date.now())) === 0) admitted++;
    }
    assert.equal(admitted, 3);
    const wait = await short.hit("svc", Date.now());
    assert.equal(wait, 1);
    await sleep(1100);
    assert.equal(await other.hit("svc", Date.now()), 0, "a new window");
    // Each name is its own window.
    assert.equal(await windows("otp", 3, 60_000).hit("svc", Date.now()), 0);
    const rows = await cluster.admin<{ name: string; used: number }>(
      "SELECT name, used FROM request_windows WHERE key = 'svc' ORDER BY name",
      [],
      (a.shownUrl.split("/").pop() ?? "").split("?")[0],
    );
    assert.deepEqual(
      rows.map((r) => r.name),
      ["credential", "otp"],
    );
    const off = windows("otp", 0, 60_000);
    for (let i = 0; i < 10; i++) assert.equal(off.hit("svc", Date.now()), 0);
  } finally {
    await a.close();
    await b.close();
  }
});
