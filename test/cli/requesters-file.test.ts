/**
 * requesters.json under concurrent change: `requester add` and `requester remove` run as real
 * child processes at once lose no update (each read-modify-write holds the lock file), a lock
 * left by a dead process is taken over, and a live one is waited for, then named.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile, stat, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadOrCreateRequesterKeys } from "../../src/client/requester-state.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { addRequester, listRequesters, removeRequester } from "../../src/server/requesters.js";
import { tempDir } from "../helpers/ceremony.js";
import { runCli } from "../helpers/cli.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
let pem: string;
let pemFile: string;

before(async () => {
  dir = await tempDir();
  const keys = await loadOrCreateRequesterKeys(join(dir.path, "requester"));
  pem = keys.publicKey.export({ type: "spki", format: "pem" }) as string;
  pemFile = keys.publicKeyPath;
});
after(() => dir.remove());

test("24 concurrent requester add and remove processes lose no update", async () => {
  const serverDir = join(dir.path, "concurrent");
  const removed = Array.from({ length: 12 }, (_, i) => `old${i}`);
  const added = Array.from({ length: 12 }, (_, i) => `new${i}`);
  for (const name of removed) await addRequester(serverDir, name, pem);
  // 24 CLI processes starting at once on a loaded 2-core machine can take a while each.
  const slow = { timeoutMs: 120_000 };
  const runs = await Promise.all([
    ...removed.map((name) =>
      runCli(["requester", "remove", name, "--data-dir", serverDir, "--json"], slow),
    ),
    ...added.map((name) =>
      runCli(
        ["requester", "add", name, "--public-key", pemFile, "--data-dir", serverDir, "--json"],
        slow,
      ),
    ),
  ]);
  for (const run of runs) assert.equal(run.status, 0, run.stderr);
  const list = await listRequesters(serverDir);
  assert.deepEqual(list.requesters.map((r) => r.name).sort(), [...added].sort());
  assert.deepEqual(list.removed.map((t) => t.name).sort(), [...removed].sort());
  assert.equal((await stat(join(serverDir, "requesters.json"))).mode & 0o777, 0o600);
  await assert.rejects(stat(join(serverDir, "requesters.json.lock")), { code: "ENOENT" });
});

/** The pid of a process that has exited (so certainly not holding anything). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((resolve) => child.once("exit", resolve));
  return child.pid!;
}

test("a lock left by a process that died is taken over", async () => {
  const serverDir = join(dir.path, "stale");
  await addRequester(serverDir, "first", pem);
  const lock = join(serverDir, "requesters.json.lock");
  const pid = await deadPid();
  await writeFile(
    lock,
    JSON.stringify({ pid, host: hostname(), since: new Date().toISOString(), nonce: "x" }),
  );
  await addRequester(serverDir, "second", pem, { lockTimeoutMs: 2000 });
  assert.deepEqual((await listRequesters(serverDir)).requesters.map((r) => r.name).sort(), [
    "first",
    "second",
  ]);
  await assert.rejects(stat(lock), { code: "ENOENT" });
});

test("a lock held by a live process is waited for, and named if it is not released in time", async () => {
  const serverDir = join(dir.path, "live");
  await addRequester(serverDir, "first", pem);
  const lock = join(serverDir, "requesters.json.lock");
  // This test process is alive: its lock is honoured.
  const held = JSON.stringify({
    pid: process.pid,
    host: hostname(),
    since: "2026-01-01T00:00:00.000Z",
    nonce: "held",
  });
  await writeFile(lock, held);
  const started = Date.now();
  await assert.rejects(
    removeRequester(serverDir, "first", { lockTimeoutMs: 300 }),
    (e: unknown) =>
      isDkeygenError(e, ErrorCodes.OPERATIONAL) &&
      e.message.includes(`process ${process.pid}`) &&
      e.message.includes(lock),
  );
  assert.ok(Date.now() - started >= 300, "it waited for the holder first");
  assert.equal(await readFile(lock, "utf8"), held, "a live holder's lock is left alone");
  assert.equal((await listRequesters(serverDir)).requesters.length, 1);

  // Released while a change waits: the change goes through.
  const waiting = removeRequester(serverDir, "first", { lockTimeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 100));
  await unlink(lock);
  await waiting;
  assert.equal((await listRequesters(serverDir)).requesters.length, 0);
});
