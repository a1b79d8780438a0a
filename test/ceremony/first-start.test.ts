/**
 * A server's first start on its data folder: the store lock is taken before any key file is made,
 * key files are created exclusively, and a store whose key is missing is refused rather than given
 * a new key.
 */
import assert from "node:assert/strict";
import { createPublicKey, randomBytes } from "node:crypto";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fingerprintOf } from "../../src/crypto/fingerprint.js";
import { ensureDataDir } from "../../src/datadir/files.js";
import { LockFile, storeLockOptions } from "../../src/datadir/lock-file.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { loadOrCreateServerIdentity } from "../../src/server/identity.js";
import { startServer } from "../../src/server/runtime.js";
import { captureLogger, tempDir } from "../helpers/ceremony.js";
import { CliProcess, serverArgs } from "../helpers/cli.js";

async function quietStart(dataDir: string, extra: Partial<Parameters<typeof startServer>[0]> = {}) {
  return startServer({
    dataDir,
    port: 0,
    logger: captureLogger().logger,
    http: false,
    otpPool: { size: 0 },
    ...extra,
  });
}

test("two servers started at once on one empty data folder: exactly one runs, the other fails naming it, and the key files are the winner's", async () => {
  const dir = await tempDir();
  try {
    for (let round = 0; round < 3; round++) {
      const dataDir = join(dir.path, `server-${round}`);
      const both = [new CliProcess(serverArgs(dataDir)), new CliProcess(serverArgs(dataDir))];
      try {
        // The loser exits; the winner prints where it listens.
        const deadline = Date.now() + 60_000;
        const done = () =>
          both.some((p) => p.child.exitCode !== null) &&
          both.some((p) => /listening\s+ws:/.test(p.stdout));
        while (!done()) {
          assert.ok(Date.now() < deadline, `round ${round}: ${both.map((p) => p.stderr)}`);
          assert.ok(
            both.some((p) => p.child.exitCode === null),
            `both exited: ${both.map((p) => p.stderr)}`,
          );
          await new Promise((r) => setTimeout(r, 25));
        }
        const winner = both.find((p) => p.child.exitCode === null)!;
        const loser = both.find((p) => p !== winner)!;
        assert.equal(loser.child.exitCode, 1);
        assert.match(loser.stderr, new RegExp(`already open in process ${winner.child.pid}\\b`));
        const [, fingerprint] = await winner.waitFor(/fingerprint\s+(SHA256:\S+)/);
        const onDisk = createPublicKey(await readFile(join(dataDir, "server-key.pem")));
        assert.equal(fingerprintOf(onDisk), fingerprint, "server-key.pem is the running key");
        const published = createPublicKey(await readFile(join(dataDir, "server-key.pub.pem")));
        assert.equal(fingerprintOf(published), fingerprint);
        assert.deepEqual(
          (await readdir(dataDir)).filter((name) => name.endsWith(".tmp")),
          [],
          "no temporary file is left",
        );
      } finally {
        for (const p of both) await p.stop();
      }
    }
  } finally {
    await dir.remove();
  }
});

test("a server start that finds its store locked fails before it makes any key file", async () => {
  const dir = await tempDir();
  try {
    const dataDir = join(dir.path, "server");
    await ensureDataDir(dataDir);
    const storePath = join(dataDir, "key_store");
    const lock = await LockFile.acquire(`${storePath}.lock`, storeLockOptions(storePath));
    try {
      await assert.rejects(
        quietStart(dataDir),
        (error: unknown) =>
          error instanceof DkeygenError &&
          error.code === ErrorCodes.OPERATIONAL &&
          /already open in process \d+ \(this process\)/.test(error.message),
      );
      assert.deepEqual(await readdir(dataDir), ["key_store.lock"], "nothing else was made");
    } finally {
      await lock.release();
    }
    // Once the lock is free, the server starts, and gives the lock back when it stops.
    const running = await quietStart(dataDir);
    await running.stop();
    assert.ok(!(await readdir(dataDir)).includes("key_store.lock"));
  } finally {
    await dir.remove();
  }
});

test("concurrent first loads of the server key agree on one key, made once", async () => {
  const dir = await tempDir();
  try {
    const results = await Promise.all(
      Array.from({ length: 3 }, () => loadOrCreateServerIdentity(dir.path)),
    );
    assert.equal(results.filter((r) => r.created).length, 1);
    const onDisk = fingerprintOf(createPublicKey(await readFile(join(dir.path, "server-key.pem"))));
    for (const result of results) assert.equal(result.identity.fingerprint, onDisk);
  } finally {
    await dir.remove();
  }
});

test("a key_store with records but no store.key is refused, and no new key is made", async () => {
  const dir = await tempDir();
  try {
    const dataDir = join(dir.path, "server");
    const keyElsewhere = join(dir.path, "elsewhere.key");
    for (const storeKeyFile of [undefined, keyElsewhere]) {
      await rm(dataDir, { recursive: true, force: true });
      const options = storeKeyFile ? { storeKeyFile } : {};
      const first = await quietStart(dataDir, options);
      await first.store.put({
        purpose: "otp",
        roundId: "r",
        participants: ["a", "b"],
        algorithm: "otp/v1",
        public: {},
        secret: randomBytes(32),
      });
      await first.stop();
      const keyPath = storeKeyFile ?? join(dataDir, "store.key");
      const before = await readFile(join(dataDir, "key_store"));
      await rm(keyPath);
      await assert.rejects(
        quietStart(dataDir, options),
        (error: unknown) =>
          error instanceof DkeygenError &&
          error.code === ErrorCodes.STORE_CORRUPT &&
          error.message.includes("restore store.key") &&
          error.message.includes(keyPath),
      );
      assert.ok(!(await readdir(dir.path)).includes("elsewhere.key"), "no key was made");
      assert.ok(!(await readdir(dataDir)).includes("store.key"), "no key was made");
      assert.deepEqual(await readFile(join(dataDir, "key_store")), before);
      assert.ok(!(await readdir(dataDir)).includes("key_store.lock"), "the lock was released");
    }
    // An empty key_store with its head file: the head is bound to the lost key, so refused too.
    await rm(dataDir, { recursive: true, force: true });
    const fresh = await quietStart(dataDir);
    await fresh.stop();
    await rm(join(dataDir, "store.key"));
    await assert.rejects(quietStart(dataDir), /restore store\.key/);
    // Without a head file either (nothing was ever stored), a new key is made.
    await rm(join(dataDir, "key_store.head"));
    const again = await quietStart(dataDir);
    await again.stop();
    assert.ok((await readdir(dataDir)).includes("store.key"));
  } finally {
    await dir.remove();
  }
});
