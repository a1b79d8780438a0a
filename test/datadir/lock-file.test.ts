/**
 * The key store's lock file (src/datadir/lock-file.ts) against real processes: exactly one of many
 * processes racing to take over a stale lock wins; a lock's content appears whole; takeover tokens
 * of dead takers are passed over and live ones waited for.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LockFile, storeLockOptions } from "../../src/datadir/lock-file.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";

const LOCK_MODULE = new URL("../../src/datadir/lock-file.js", import.meta.url).href;

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "dkeygen-lock-"));
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((resolve) => child.on("exit", resolve));
  return child.pid!;
}

function staleLockText(pid: number): string {
  return `${JSON.stringify({ pid, host: hostname(), since: "2020-01-01T00:00:00.000Z", nonce: "ab" })}\n`;
}

function tokenName(lockPath: string, staleText: string, k: number): string {
  const generation = createHash("sha256").update(staleText).digest("hex").slice(0, 32);
  return `${lockPath}.takeover-${generation}-${k}`;
}

/**
 * A child process that says "ready", waits for "go" on stdin, tries to take the lock, prints the
 * outcome, and (if it won) holds the lock until its stdin closes.
 */
function acquirer(lockPath: string) {
  const script = `
    const { LockFile } = await import(process.env.LOCK_MODULE);
    const lines = [];
    let go;
    const started = new Promise((resolve) => { go = resolve; });
    let closed;
    const ended = new Promise((resolve) => { closed = resolve; });
    process.stdin.on("data", (d) => { if (String(d).includes("go")) go(); });
    process.stdin.on("end", () => closed());
    process.stdout.write("ready\\n");
    await started;
    try {
      const lock = await LockFile.acquire(process.env.LOCK_PATH, { what: "the key store test-store", busy: ["already open in", "only one process may write it"] });
      process.stdout.write(JSON.stringify({ won: true }) + "\\n");
      await ended;
      await lock.release();
    } catch (e) {
      process.stdout.write(JSON.stringify({ won: false, code: e.code, message: e.message }) + "\\n");
    }
    process.exit(0);`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, LOCK_MODULE, LOCK_PATH: lockPath },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  // "close" comes once the child's output has all been read; "exit" may come before it.
  const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));
  const until = async (pattern: RegExp) => {
    while (!pattern.test(stdout)) {
      if (child.exitCode !== null) {
        await closed;
        if (pattern.test(stdout)) return;
        throw new Error(`child exited early: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return {
    child,
    exited,
    ready: () => until(/ready\n/),
    outcome: async () => {
      await until(/\{.*\}\n/);
      return JSON.parse(/(\{.*\})\n/.exec(stdout)![1]!) as {
        won: boolean;
        code?: string;
        message?: string;
      };
    },
  };
}

test("of many processes taking over the same stale lock at once, exactly one wins and the others name it", async () => {
  const dir = await tempDir();
  try {
    const lockPath = join(dir, "key_store.lock");
    for (let round = 0; round < 4; round++) {
      await writeFile(lockPath, staleLockText(await deadPid()));
      const children = Array.from({ length: 10 }, () => acquirer(lockPath));
      try {
        await Promise.all(children.map((c) => c.ready()));
        for (const c of children) c.child.stdin.write("go\n");
        const outcomes = await Promise.all(children.map((c) => c.outcome()));
        const winners = children.filter((_, i) => outcomes[i]!.won);
        assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(outcomes)}`);
        const winnerPid = winners[0]!.child.pid!;
        for (const outcome of outcomes.filter((o) => !o.won)) {
          assert.equal(outcome.code, ErrorCodes.OPERATIONAL);
          assert.match(outcome.message!, new RegExp(`already open in process ${winnerPid}\\b`));
        }
        const held = JSON.parse(await readFile(lockPath, "utf8")) as { pid: number };
        assert.equal(held.pid, winnerPid, "the lock file names the winner");
      } finally {
        // Winners hold the lock until their stdin closes.
        for (const c of children) c.child.stdin.end();
        await Promise.all(children.map((c) => c.exited));
      }
      assert.equal(existsSync(lockPath), false, "the winner released it");
      assert.deepEqual(await readdir(dir), [], "no temporary file or takeover token is left");
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a lock file that names no owner is refused, naming it, and left in place", async () => {
  const dir = await tempDir();
  try {
    const lockPath = join(dir, "key_store.lock");
    for (const content of ["", "{", '{"pid":"x"}\n']) {
      await writeFile(lockPath, content);
      await assert.rejects(
        LockFile.acquire(lockPath, storeLockOptions("test-store")),
        (error: unknown) =>
          error instanceof DkeygenError &&
          error.code === ErrorCodes.OPERATIONAL &&
          error.message.includes(`names no owner`) &&
          error.message.includes(`remove ${lockPath}`),
      );
      assert.equal(await readFile(lockPath, "utf8"), content, "the file is not touched");
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a lock appears with its owner already in it, and release removes only the lock it holds", async () => {
  const dir = await tempDir();
  try {
    const lockPath = join(dir, "key_store.lock");
    const lock = await LockFile.acquire(lockPath, storeLockOptions("test-store"));
    const owner = JSON.parse(await readFile(lockPath, "utf8"));
    assert.deepEqual(Object.keys(owner), ["pid", "host", "since", "nonce"]);
    assert.equal(owner.pid, process.pid);
    assert.match(owner.nonce, /^[0-9a-f]{32}$/);
    assert.deepEqual(await readdir(dir), ["key_store.lock"], "no temporary file is left");
    // Someone replaced the lock (an operator removed it and another process took it): release
    // leaves that other lock alone.
    const other = staleLockText(process.pid);
    await writeFile(lockPath, other);
    await lock.release();
    assert.equal(await readFile(lockPath, "utf8"), other);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a takeover token left by a taker that died is passed over, and every token is removed", async () => {
  const dir = await tempDir();
  try {
    const lockPath = join(dir, "key_store.lock");
    const stale = staleLockText(await deadPid());
    await writeFile(lockPath, stale);
    await writeFile(tokenName(lockPath, stale, 1), staleLockText(await deadPid()));
    await writeFile(tokenName(lockPath, stale, 2), staleLockText(await deadPid()));
    const warnings: Record<string, unknown>[] = [];
    const lock = await LockFile.acquire(lockPath, {
      ...storeLockOptions("test-store"),
      log: { warn: (fields) => warnings.push(fields) },
    });
    assert.equal(JSON.parse(await readFile(lockPath, "utf8")).pid, process.pid);
    assert.equal(warnings.length, 1);
    assert.deepEqual(await readdir(dir), ["key_store.lock"]);
    await lock.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a takeover under way by a live process is waited for, never overtaken", async () => {
  const dir = await tempDir();
  try {
    const lockPath = join(dir, "key_store.lock");
    const stale = staleLockText(await deadPid());
    await writeFile(lockPath, stale);
    // A live taker (this process stands in for it) holds the token and never finishes.
    const token = tokenName(lockPath, stale, 1);
    await writeFile(token, staleLockText(process.pid));
    await assert.rejects(
      LockFile.acquire(lockPath, storeLockOptions("test-store")),
      (error: unknown) =>
        error instanceof DkeygenError && /takeover of it is stuck/.test(error.message),
    );
    assert.equal(await readFile(lockPath, "utf8"), stale, "the stale lock was left to its taker");
    // Once that taker is gone (its token removed), the stale lock is taken over.
    await rm(token);
    const lock = await LockFile.acquire(lockPath, storeLockOptions("test-store"));
    await lock.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
