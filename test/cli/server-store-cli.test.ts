/**
 * `dkeygen server` and its key store: the start-up output shows the store's head; a rolled-back
 * key_store is refused with both heads named; `--accept-store-rollback` opens it and the store
 * records it; `--store-head` keeps the head file elsewhere.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fromBase64url } from "../../src/crypto/base64url.js";
import { FileKeyStore } from "../../src/store/file.js";
import { tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli, serverArgs } from "../helpers/cli.js";

function storeServerArgs(dataDir: string, extra: string[] = []): string[] {
  return serverArgs(dataDir, extra, { http: false });
}

/** Puts `n` records into the data folder's key_store (no server running). */
async function addRecords(dataDir: string, n: number, headPath?: string): Promise<void> {
  const storeKey = fromBase64url(
    (await readFile(join(dataDir, "store.key"), "utf8")).trim(),
    "store.key",
    32,
  );
  const store = new FileKeyStore({
    path: join(dataDir, "key_store"),
    storeKey,
    ...(headPath ? { headPath } : {}),
  });
  await store.open();
  for (let i = 0; i < n; i++) {
    await store.put({
      purpose: "otp",
      roundId: `r${i}`,
      participants: ["a", "b"],
      algorithm: "otp/v1",
      public: {},
      secret: randomBytes(32),
    });
  }
  await store.close();
}

/** Starts a server, waits for its start-up summary on standard output, and stops it. */
async function startAndStop(args: string[]): Promise<CliProcess> {
  const server = new CliProcess(args);
  // The summary ends with the store head row, or the closing brace of the JSON.
  const done = args.includes("--json") ? /^\}$/m : /store head .*\n/;
  const deadline = Date.now() + 30_000;
  while (!done.test(server.stdout)) {
    if (server.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`no start-up summary: ${server.stdout}\n${server.stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  await server.stop();
  return server;
}

test("the server's start-up output shows the store's head, human and --json", async () => {
  const dir = await tempDir();
  try {
    const dataDir = join(dir.path, "server");
    await startAndStop(storeServerArgs(dataDir));
    await addRecords(dataDir, 3);
    const human = await startAndStop(storeServerArgs(dataDir));
    const lines = (await readFile(join(dataDir, "key_store"), "utf8")).trim().split("\n");
    const lastMac = /"mac":"([0-9a-f]{64})"/.exec(lines.at(-1)!)![1]!;
    assert.match(human.stdout, new RegExp(`store head\\s+3 lines, ${lastMac.slice(0, 16)}…`));

    const json = await startAndStop(storeServerArgs(dataDir, ["--json"]));
    const summary = JSON.parse(json.stdout);
    assert.deepEqual(summary.storeHead, { lines: 3, head: lastMac });
  } finally {
    await dir.remove();
  }
});

test("dkeygen server refuses a rolled-back key_store naming both heads; --accept-store-rollback opens it and the store records it", async () => {
  const dir = await tempDir();
  try {
    const dataDir = join(dir.path, "server");
    await startAndStop(storeServerArgs(dataDir));
    await addRecords(dataDir, 4);
    const path = join(dataDir, "key_store");
    const all = (await readFile(path, "utf8")).split(/(?<=\n)/).filter(Boolean);
    const macs = all.map((line) => /"mac":"([0-9a-f]{64})"/.exec(line)![1]!);
    await writeFile(path, all.slice(0, 2).join(""));

    const refused = await runCli(storeServerArgs(dataDir, ["--json"]));
    assert.equal(refused.status, 1);
    const error = JSON.parse(refused.stdout).error;
    assert.equal(error.code, "E_STORE_CORRUPT");
    assert.ok(error.message.includes(`has 2 lines, chain head ${macs[1]!.slice(0, 16)}…`));
    assert.ok(error.message.includes(`says it had 4 lines, chain head ${macs[3]!.slice(0, 16)}…`));
    assert.match(error.message, /--accept-store-rollback/);
    assert.equal(
      (await readFile(path, "utf8")).length,
      all.slice(0, 2).join("").length,
      "the file is not changed",
    );

    const accepted = await startAndStop(storeServerArgs(dataDir, ["--accept-store-rollback"]));
    assert.match(accepted.stdout, /store head\s+3 lines/);
    assert.match(accepted.stderr, /does not match its head file/);
    const last = (await readFile(path, "utf8")).trim().split("\n").at(-1)!;
    assert.match(last, /"body":\{"t":"rollback","v":1,.*"reason":"shorter"/);
    await startAndStop(storeServerArgs(dataDir)); // the head followed: no override needed now
  } finally {
    await dir.remove();
  }
});

test("--store-head keeps the head file elsewhere, so a restore of the whole data folder is noticed", async () => {
  const dir = await tempDir();
  try {
    const dataDir = join(dir.path, "server");
    const headPath = join(dir.path, "anchor.head");
    await startAndStop(storeServerArgs(dataDir, ["--store-head", headPath]));
    assert.ok(existsSync(headPath));
    assert.equal(existsSync(join(dataDir, "key_store.head")), false);
    const backup = await readFile(join(dataDir, "key_store"));
    await addRecords(dataDir, 2, headPath);
    await writeFile(join(dataDir, "key_store"), backup); // the folder restored from a backup
    const refused = await runCli(storeServerArgs(dataDir, ["--store-head", headPath]));
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /has 0 lines.*says it had 2 lines/);
  } finally {
    await dir.remove();
  }
});
