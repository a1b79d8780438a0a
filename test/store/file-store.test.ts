import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { appendFile, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fromBase64url } from "../../src/crypto/base64url.js";
import { lengthPrefixed } from "../../src/crypto/canonical.js";
import { aesGcmOpen } from "../../src/crypto/envelope.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { FileKeyStore } from "../../src/store/file.js";
import type { LogFile } from "../../src/store/group-commit.js";
import {
  bodies,
  claimInput,
  fresh,
  input,
  isCorrupt,
  lines,
  recordingLogger,
  seed,
  type Warning,
  writeChained,
} from "../helpers/key-store-file.js";
import { keyStoreCompliance } from "./compliance.js";

/** The compiled store module, for child processes (tests run from dist/test/store/). */
const STORE_MODULE = new URL("../../src/store/file.js", import.meta.url).href;

/** Runs an ES module script in a child `node`; resolves with its exit and output. */
function runNode(script: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  return { child, exited, output: () => ({ stdout, stderr }) };
}

keyStoreCompliance("file", async () => {
  const f = await fresh();
  return { store: f.make(), cleanup: f.remove, reopen: async () => f.make() };
});

test("no secret byte sequence of a stored record appears in the key_store file in plaintext (hex or base64)", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    const secrets: Buffer[] = [];
    for (const size of [16, 32, 32, 64, 64, 200, 1000]) {
      const secret = randomBytes(size);
      secrets.push(Buffer.from(secret));
      await store.put(input({ secret }));
    }
    // What the key generation server stores: JSON with the round secret in hex.
    const roundSecret = randomBytes(64);
    const payload = Buffer.from(JSON.stringify({ v: 1, roundSecret: roundSecret.toString("hex") }));
    secrets.push(roundSecret, Buffer.from(payload));
    await store.put(input({ secret: payload }));
    const first = (await store.list())[0]!;
    await store.claimNext("otp", claimInput(1));
    await store.consume(first.id);
    await store.close();

    const file = await readFile(f.path);
    const text = file.toString("latin1");
    const encodings = (bytes: Buffer) => [
      bytes.toString("hex"),
      bytes.toString("hex").toUpperCase(),
      bytes.toString("base64"),
      bytes.toString("base64").replace(/=+$/, ""),
      bytes.toString("base64url"),
    ];
    let windows = 0;
    for (const secret of secrets) {
      assert.equal(file.indexOf(secret), -1, "raw secret bytes in the file");
      for (const encoded of encodings(secret)) assert.ok(!text.includes(encoded));
      for (let i = 0; i + 16 <= secret.length; i++) {
        const window = secret.subarray(i, i + 16);
        assert.equal(file.indexOf(window), -1, `raw 16-byte window at ${i}`);
        for (const encoded of encodings(window)) {
          assert.ok(!text.includes(encoded), `a 16-byte window at ${i} appears encoded`);
        }
        windows++;
      }
    }
    assert.ok(windows > 1000);
  } finally {
    await f.remove();
  }
});

test("the key_store file, its lock and a torn-line copy are readable by the owner only (0600)", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    assert.equal((await stat(f.path)).mode & 0o777, 0o600);
    assert.equal((await stat(`${f.path}.lock`)).mode & 0o777, 0o600);
    await store.put(input());
    await store.close();
    assert.equal(existsSync(`${f.path}.lock`), false, "the lock goes on close");
    await appendFile(f.path, '{"mac":"00');
    const again = f.make({ logger: recordingLogger() });
    await again.open();
    await again.close();
    const torn = (await readdir(f.dir)).filter((name) => name.startsWith("key_store.torn-"));
    assert.equal(torn.length, 1);
    assert.equal((await stat(join(f.dir, torn[0]!))).mode & 0o777, 0o600);
  } finally {
    await f.remove();
  }
});

test("an existing key_store file open to others is set back to 0600, with a warning", async () => {
  const f = await fresh();
  try {
    await seed(f.make, 1);
    const { chmod } = await import("node:fs/promises");
    await chmod(f.path, 0o644);
    const logger = recordingLogger();
    const store = f.make({ logger });
    await store.open();
    await store.close();
    assert.equal((await stat(f.path)).mode & 0o777, 0o600);
    assert.equal(logger.warnings.length, 1);
  } finally {
    await f.remove();
  }
});

test("a torn last line is detected, preserved and ignored, and the store keeps working", async () => {
  for (const cut of ["middle", "all but the newline"] as const) {
    const f = await fresh();
    try {
      // The head file as it was after three lines: a torn fourth line was never acknowledged, so
      // no head ever named it.
      const ids = await seed(f.make, 3);
      const headOfThree = await readFile(`${f.path}.head`);
      ids.push(...(await seed(f.make, 1)));
      await writeFile(`${f.path}.head`, headOfThree);
      const original = await readFile(f.path);
      const all = await lines(f.path);
      const keep = Buffer.byteLength(all.slice(0, 3).join(""));
      const last = Buffer.from(all[3]!);
      const tornBytes =
        cut === "middle" ? last.subarray(0, 100) : last.subarray(0, last.length - 1);
      await writeFile(f.path, Buffer.concat([original.subarray(0, keep), tornBytes]));

      const logger = recordingLogger();
      const store = f.make({ logger, clock: () => new Date("2030-01-02T03:04:05.678Z") });
      await store.open();
      assert.deepEqual(
        (await store.list()).map((r) => r.id),
        ids.slice(0, 3),
        `${cut}: the torn record is not merged`,
      );
      assert.equal(await store.get(ids[3]!), undefined);
      assert.equal(logger.warnings.length, 1);
      const warning = logger.warnings[0]!;
      assert.equal(warning.fields.line, 4);
      assert.equal(warning.fields.bytes, tornBytes.length);
      const preserved = `${f.path}.torn-2030-01-02T03-04-05-678Z`;
      assert.equal(warning.fields.preservedAs, preserved);
      assert.deepEqual(
        await readFile(preserved),
        tornBytes,
        "the torn bytes are kept as they were",
      );
      assert.equal((await stat(f.path)).size, keep, "the torn tail is cut off");
      assert.ok(!JSON.stringify(warning).includes(tornBytes.toString("utf8")));

      const added = await store.put(input({ roundId: "after-crash" }));
      assert.equal((await store.claimNext("otp", claimInput(1)))?.id, ids[0]);
      await store.close();

      const reopened = f.make();
      await reopened.open();
      assert.deepEqual(
        (await reopened.list()).map((r) => r.id),
        [...ids.slice(0, 3), added.id],
      );
      assert.equal((await reopened.get(ids[0]!))?.claim?.subject, "subject-1");
      await reopened.close();
    } finally {
      await f.remove();
    }
  }
});

test("a tampered middle line makes open fail with E_STORE_CORRUPT", async () => {
  const f = await fresh();
  try {
    await seed(f.make, 4);
    const all = await lines(f.path);
    all[1] = all[1]!.replace('"purpose":"otp"', '"purpose":"oTp"');
    await writeFile(f.path, all.join(""));
    const before = await readFile(f.path);
    await assert.rejects(f.make().open(), isCorrupt(/line 2\b/));
    assert.deepEqual(await readFile(f.path), before, "a refused file is left exactly as it was");
    assert.equal(existsSync(`${f.path}.lock`), false, "a failed open releases the lock");

    // A line that is not even a key_store line.
    all[1] = "garbage\n";
    await writeFile(f.path, all.join(""));
    await assert.rejects(f.make().open(), isCorrupt(/line 2\b.*not a key_store line/));
  } finally {
    await f.remove();
  }
});

test("a complete last line that does not verify is corruption, not a torn write", async () => {
  const f = await fresh();
  try {
    await seed(f.make, 3);
    const all = await lines(f.path);
    all[2] = all[2]!.replace('"round-2"', '"round-X"');
    await writeFile(f.path, all.join(""));
    await assert.rejects(f.make().open(), isCorrupt(/line 3\b/));
  } finally {
    await f.remove();
  }
});

test("a deleted line breaks the chain and is detected", async () => {
  const f = await fresh();
  try {
    await seed(f.make, 4);
    const all = await lines(f.path);
    await writeFile(f.path, [all[0], all[2], all[3]].join(""));
    await assert.rejects(f.make().open(), isCorrupt(/line 2\b.*MAC does not verify/));
    // Reordered lines are caught the same way.
    await writeFile(f.path, [all[0], all[2], all[1], all[3]].join(""));
    await assert.rejects(f.make().open(), isCorrupt(/line 2\b/));
    // A line copied twice too.
    await writeFile(f.path, [all[0], all[1], all[1], all[2]].join(""));
    await assert.rejects(f.make().open(), isCorrupt(/line 3\b/));
  } finally {
    await f.remove();
  }
});

test("a wrong store key is refused, and told apart from an altered first line", async () => {
  const f = await fresh();
  try {
    await seed(f.make, 3);
    const before = await readFile(f.path);
    await assert.rejects(
      f.make({ storeKey: randomBytes(32) }).open(),
      isCorrupt(/store key does not match this key_store file/),
    );
    assert.deepEqual(await readFile(f.path), before);

    const all = await lines(f.path);
    all[0] = all[0]!.replace('"round-0"', '"round-9"');
    await writeFile(f.path, all.join(""));
    await assert.rejects(f.make().open(), isCorrupt(/tampered with at line 1\b/));
  } finally {
    await f.remove();
  }
});

test("a second store on the same file in the same process is refused", async () => {
  const f = await fresh();
  try {
    const first = f.make();
    await first.open();
    await assert.rejects(
      f.make().open(),
      (error: unknown) =>
        error instanceof DkeygenError &&
        error.code === ErrorCodes.OPERATIONAL &&
        error.message.includes("this process"),
    );
    await first.put(input());
    await first.close();
    const second = f.make();
    await second.open();
    assert.equal((await second.list()).length, 1);
    await second.close();
  } finally {
    await f.remove();
  }
});

test("a second process cannot open the same store", async () => {
  const f = await fresh();
  const store = f.make();
  try {
    await store.open();
    const run = runNode(
      `const { FileKeyStore } = await import(process.env.STORE_MODULE);
       const store = new FileKeyStore({ path: process.env.STORE_PATH,
         storeKey: Buffer.from(process.env.STORE_KEY, "hex") });
       try { await store.open(); console.log(JSON.stringify({ opened: true })); await store.close(); }
       catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`,
      { STORE_MODULE, STORE_PATH: f.path, STORE_KEY: f.storeKey.toString("hex") },
    );
    const { code } = await run.exited;
    assert.equal(code, 0, run.output().stderr);
    const result = JSON.parse(run.output().stdout) as { code: string; message: string };
    assert.equal(result.code, ErrorCodes.OPERATIONAL);
    assert.match(result.message, new RegExp(`already open in process ${process.pid}\\b`));
    await store.put(input());
  } finally {
    await store.close();
    await f.remove();
  }
});

test("a lock left by a process that died is taken over, with a warning", async () => {
  const f = await fresh();
  try {
    await seed(f.make, 2);
    const dead = runNode("", {});
    await dead.exited;
    const pid = dead.child.pid!;
    await writeFile(
      `${f.path}.lock`,
      `${JSON.stringify({ pid, host: hostname(), since: "2020-01-01T00:00:00.000Z" })}\n`,
    );
    const logger = recordingLogger();
    const store = f.make({ logger });
    await store.open();
    assert.equal((await store.list()).length, 2);
    assert.equal(logger.warnings.length, 1);
    assert.equal(logger.warnings[0]!.fields.stalePid, pid);
    await store.close();
    assert.equal(existsSync(`${f.path}.lock`), false);

    // A lock from another host cannot be checked, so it is honoured.
    await writeFile(
      `${f.path}.lock`,
      `${JSON.stringify({ pid, host: `not-${hostname()}`, since: "2020-01-01T00:00:00.000Z" })}\n`,
    );
    await assert.rejects(f.make().open(), /on host not-/);
  } finally {
    await f.remove();
  }
});

test("every record acknowledged before a SIGKILL is there after a restart, and a torn tail is survived", async () => {
  const f = await fresh();
  try {
    const run = runNode(
      `const { FileKeyStore } = await import(process.env.STORE_MODULE);
       const { createHash } = await import("node:crypto");
       const store = new FileKeyStore({ path: process.env.STORE_PATH,
         storeKey: Buffer.from(process.env.STORE_KEY, "hex") });
       await store.open();
       let next = 0;
       async function worker() {
         for (;;) {
           const i = next++;
           const secret = createHash("sha256").update("secret " + i).digest();
           const record = await store.put({ purpose: "otp", roundId: "round-" + i,
             participants: ["a", "b"], algorithm: "otp/v1", public: { i }, secret });
           if (i % 3 === 0) await store.claimNext("otp", { requester: "r", subject: "s" + i,
             requestId: "q" + i, expiresAt: new Date(Date.now() + 60000) });
           process.stdout.write(i + " " + record.id + "\\n");
         }
       }
       await Promise.all(Array.from({ length: 16 }, worker));`,
      { STORE_MODULE, STORE_PATH: f.path, STORE_KEY: f.storeKey.toString("hex") },
    );
    const acknowledged = new Map<number, string>();
    await new Promise<void>((resolve, reject) => {
      let buffer = "";
      run.child.stdout.on("data", (chunk: Buffer) => {
        buffer += chunk.toString("utf8");
        const parts = buffer.split("\n");
        buffer = parts.pop()!;
        for (const part of parts) {
          const [i, id] = part.split(" ");
          acknowledged.set(Number(i), id!);
        }
        if (acknowledged.size >= 400 && !run.child.killed) {
          run.child.kill("SIGKILL");
          resolve();
        }
      });
      run.exited.then(({ signal }) => {
        if (signal !== "SIGKILL") reject(new Error(`child ended early: ${run.output().stderr}`));
      });
    });
    const { signal } = await run.exited;
    assert.equal(signal, "SIGKILL");
    // A power cut can also leave a half-written line: add one on top of the kill.
    await appendFile(f.path, '{"mac":"0123456789abcdef","body":{"t":"record","v":1,"id":"01');

    const logger = recordingLogger();
    const store = f.make({ logger });
    await store.open();
    try {
      assert.ok(acknowledged.size >= 400);
      for (const [i, id] of acknowledged) {
        const record = await store.get(id);
        assert.ok(record, `acknowledged record ${i} (${id}) is lost`);
        assert.deepEqual(record.public, { i });
        const expected = createHash("sha256").update(`secret ${i}`).digest();
        assert.deepEqual(Buffer.from(await store.readSecret(id)), expected);
      }
      const messages = logger.warnings.map((w) => w.message).join("\n");
      assert.match(messages, /took over a stale lock of the key store/);
      assert.match(messages, /torn/);
      // The store writes on cleanly after the crash.
      const after = await store.put(input());
      assert.ok(after.id > [...acknowledged.values()].sort().at(-1)!);
    } finally {
      await store.close();
    }
    const reopened = f.make();
    await reopened.open();
    assert.ok((await reopened.list()).length >= acknowledged.size + 1);
    await reopened.close();
  } finally {
    await f.remove();
  }
});

test("200 concurrent claims are made durable in a handful of fsyncs (group commit)", async () => {
  const f = await fresh();
  const store = f.make();
  try {
    await store.open();
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => store.put(input({ roundId: `r${i}` }))),
    );
    const putStats = store.commitStats;
    assert.equal(putStats.lines, 200);
    assert.ok(putStats.batches <= 5, `200 concurrent puts took ${putStats.batches} fsyncs`);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => store.claimNext("otp", claimInput(i))),
    );
    assert.equal(new Set(results.map((r) => r?.id)).size, 200);
    const stats = store.commitStats;
    assert.equal(stats.lines, 400);
    assert.ok(
      stats.batches - putStats.batches <= 5,
      `claims took ${stats.batches - putStats.batches} fsyncs`,
    );
  } finally {
    await store.close();
    await f.remove();
  }
});

test("when a write fails, the change is rolled back, no half line is left and the store refuses further writes", async () => {
  let failNext = false;
  const wrap = (file: LogFile): LogFile => ({
    write: async (bytes, position) => {
      if (failNext) {
        // Half the bytes reach the file, then the disk fails.
        await file.write(bytes.subarray(0, Math.floor(bytes.length / 2)), position);
        throw Object.assign(new Error("simulated I/O error"), { code: "EIO" });
      }
      await file.write(bytes, position);
    },
    sync: () => file.sync(),
    truncate: (size) => file.truncate(size),
  });
  const logger = { ...recordingLogger(), errors: [] as Warning[] };
  const f = await fresh({ wrapLogFile: wrap });
  const store = f.make({
    logger: {
      warn: logger.warn,
      error: (fields, message) => {
        logger.errors.push({ fields, message });
      },
    },
  });
  try {
    await store.open();
    const [a, b] = [await store.put(input()), await store.put(input())];
    const stepAt = new Date("2030-01-01T00:00:00.000Z");
    assert.equal(await store.useStep(a.id, 3, stepAt), true);
    const sizeBefore = (await stat(f.path)).size;
    failNext = true;
    const outcomes = await Promise.allSettled([
      store.claimNext("otp", claimInput(1)),
      store.claimNext("otp", claimInput(2)),
      store.consume(b.id),
      store.put(input()),
      store.useStep(a.id, 5),
      store.useStep(a.id, 9),
      // A replay of a step whose write then fails: no answer is given from a lost write.
      store.useStep(a.id, 7),
      store.useStep(b.id, 0),
    ]);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, "rejected");
      assert.ok(outcome.reason instanceof DkeygenError);
      assert.equal(outcome.reason.code, ErrorCodes.OPERATIONAL);
      assert.match(outcome.reason.message, /EIO/);
    }
    assert.equal(logger.errors.length, 1);
    // Rolled back in memory...
    assert.equal((await store.get(a.id))?.claim, undefined);
    assert.deepEqual(await store.list({ subject: "subject-1" }), [], "no claim left in the index");
    assert.equal((await store.get(b.id))?.consumedAt, undefined);
    assert.equal((await store.get(a.id))?.lastStep, 3, "steps roll back to the last durable one");
    assert.equal((await store.get(a.id))?.lastStepAt, "2030-01-01T00:00:00.000Z");
    assert.equal((await store.get(b.id))?.lastStep, undefined);
    assert.equal((await store.get(b.id))?.lastStepAt, undefined);
    assert.equal(await store.countUnclaimed("otp"), 2);
    assert.equal((await store.list()).length, 2);
    // ...and on disk, and nothing more is written.
    assert.equal((await stat(f.path)).size, sizeBefore);
    failNext = false;
    await assert.rejects(store.put(input()), /refuses further writes/);
    await assert.rejects(store.claimNext("otp", claimInput(3)), /refuses further writes/);
    await assert.rejects(store.consume(a.id), /refuses further writes/);
    await assert.rejects(store.useStep(a.id, 10), /refuses further writes/);
    assert.deepEqual(
      (await store.list()).map((r) => r.id),
      [a.id, b.id],
      "reads still work",
    );
    await store.close();

    const reopened = f.make({ wrapLogFile: (file) => file });
    await reopened.open();
    assert.equal((await reopened.claimNext("otp", claimInput(4)))?.id, a.id);
    assert.equal((await reopened.get(a.id))?.lastStep, 3);
    assert.equal(await reopened.useStep(a.id, 4), true);
    await reopened.close();
  } finally {
    await store.close();
    await f.remove();
  }
});

test("the key_store lines follow the documented format: MAC chain and secret encryption recomputed from the store key", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    const secret = randomBytes(48);
    const record = await store.put(input({ secret: Buffer.from(secret), owner: "carol" }));
    await store.put(input({ purpose: "totp" }));
    await store.claimNext("totp", claimInput(1));
    const { head } = store.chain;
    await store.close();

    const kMac = Buffer.from(
      hkdfSync("sha256", f.storeKey, Buffer.alloc(0), "dkeygen/v1/store/line-mac", 32),
    );
    const kSecret = Buffer.from(
      hkdfSync("sha256", f.storeKey, Buffer.alloc(0), "dkeygen/v1/store/secret", 32),
    );
    const format = /^\{"mac":"([0-9a-f]{64})","body":(.*)\}\n$/;
    let previous = Buffer.alloc(32);
    const bodies: Record<string, unknown>[] = [];
    for (const line of await lines(f.path)) {
      const match = format.exec(line);
      assert.ok(match, line);
      const mac = createHmac("sha256", kMac).update(previous).update(match[2]!, "utf8").digest();
      assert.equal(mac.toString("hex"), match[1]);
      previous = mac;
      bodies.push(JSON.parse(match[2]!));
    }
    assert.equal(previous.toString("hex"), head, "FileKeyStore.chain gives the head");
    assert.deepEqual(
      bodies.map((b) => [b.t, b.v]),
      [
        ["record", 1],
        ["record", 1],
        ["claim", 1],
      ],
    );
    const body = bodies[0] as { secret: Record<string, string> } & Record<string, unknown>;
    assert.deepEqual(Object.keys(body), [
      "t",
      "v",
      "id",
      "purpose",
      "createdAt",
      "roundId",
      "participants",
      "algorithm",
      "public",
      "owner",
      "secret",
    ]);
    const aad = lengthPrefixed(
      "dkeygen/v1/store/secret",
      record.id,
      record.purpose,
      record.roundId,
    );
    const plain = aesGcmOpen(
      kSecret,
      fromBase64url(body.secret.iv!, "iv", 12),
      fromBase64url(body.secret.ct!, "ct"),
      fromBase64url(body.secret.tag!, "tag", 16),
      aad,
    );
    assert.deepEqual(Buffer.from(plain), secret);
    assert.deepEqual(Object.keys(bodies[2]!), [
      "t",
      "v",
      "id",
      "requester",
      "subject",
      "requestId",
      "claimedAt",
      "expiresAt",
    ]);
  } finally {
    await f.remove();
  }
});

test("a secret part moved to another record does not decrypt", async () => {
  const f = await fresh();
  try {
    await seed(f.make, 2);
    const store = f.make();
    await store.open();
    const [a, b] = await store.list();
    assert.ok(a && b);
    await store.close();
    // Swap the two secret parts and re-MAC the chain (and the head), so only the AAD (which
    // names the record id) stands between a secret part and the wrong record.
    const list = await bodies(f.path);
    [list[0]!.secret, list[1]!.secret] = [list[1]!.secret, list[0]!.secret];
    await writeChained(f.path, f.storeKey, list);
    const reopened = f.make();
    await reopened.open();
    await assert.rejects(reopened.readSecret(a.id), isCorrupt(/does not decrypt/));
    await reopened.close();
  } finally {
    await f.remove();
  }
});

test("opening in a folder that does not exist fails clearly", async () => {
  const store = new FileKeyStore({
    path: join(tmpdir(), `dkeygen-missing-${process.pid}-${Date.now()}`, "key_store"),
    storeKey: randomBytes(32),
  });
  await assert.rejects(store.open(), /does not exist/);
});

test("a store key that is not 32 bytes is refused", () => {
  assert.throws(() => new FileKeyStore({ path: "/tmp/x", storeKey: randomBytes(16) }), TypeError);
});

test("a record too large for one key_store line is refused and the store goes on", async () => {
  const f = await fresh();
  const store = f.make();
  try {
    await store.open();
    const huge = { blob: "x".repeat(5 * 1024 * 1024) };
    await assert.rejects(
      store.put(input({ public: huge })),
      (error: unknown) => error instanceof DkeygenError && error.code === ErrorCodes.INVALID_INPUT,
    );
    const record = await store.put(input());
    await store.close();
    const reopened = f.make();
    await reopened.open();
    assert.deepEqual(
      (await reopened.list()).map((r) => r.id),
      [record.id],
    );
    await reopened.close();
  } finally {
    await store.close();
    await f.remove();
  }
});

test("step lines are {t,v,id,step,at} in that order, and only winning steps are written, in increasing order", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    const [a, b] = [await store.put(input()), await store.put(input())];
    assert.equal(await store.useStep(a.id, 0, new Date("2030-01-01T00:00:00.000Z")), true);
    // Concurrent steps for two records, in a scrambled order; replays included.
    const calls: [string, number][] = [];
    for (let i = 0; i < 40; i++) {
      calls.push([a.id, (i * 17) % 41], [b.id, (i * 23) % 41], [a.id, (i * 17) % 41]);
    }
    const results = await Promise.all(calls.map(([id, step]) => store.useStep(id, step)));
    await store.close();

    const steps = (await bodies(f.path)).filter((body) => body.t === "step");
    for (const body of steps) assert.deepEqual(Object.keys(body), ["t", "v", "id", "step", "at"]);
    assert.deepEqual(steps[0], {
      t: "step",
      v: 1,
      id: a.id,
      step: 0,
      at: "2030-01-01T00:00:00.000Z",
    });
    for (const id of [a.id, b.id]) {
      const written = steps.filter((body) => body.id === id).map((body) => body.step as number);
      const won = calls.filter(([c], i) => c === id && results[i]).map(([, step]) => step);
      if (id === a.id) won.unshift(0);
      // The log is the decision order: each written step is above every step written before it.
      for (let i = 1; i < written.length; i++)
        assert.ok(written[i]! > written[i - 1]!, `${written}`);
      assert.deepEqual(
        [...written].sort((x, y) => x - y),
        [...won].sort((x, y) => x - y),
      );
    }

    const reopened = f.make();
    await reopened.open();
    assert.equal((await reopened.get(a.id))?.lastStep, 40);
    assert.equal((await reopened.get(b.id))?.lastStep, 40);
    await reopened.close();
  } finally {
    await f.remove();
  }
});

test("a step line not above its record's last step (replayed, lowered, reordered), for an unknown record, or off-schema makes open fail with E_STORE_CORRUPT naming the line", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    const a = await store.put(input());
    await store.put(input());
    assert.equal(await store.useStep(a.id, 5), true);
    assert.equal(await store.useStep(a.id, 7), true);
    await store.close();
    const good = await bodies(f.path); // record a, record b, step 5, step 7
    const [recA, recB, step5, step7] = good as [
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
    ];

    // Re-chained unchanged, the file opens: the helper itself is sound.
    await writeChained(f.path, f.storeKey, good);
    const sane = f.make();
    await sane.open();
    assert.equal((await sane.get(a.id))?.lastStep, 7);
    await sane.close();

    const cases: [string, unknown[], RegExp][] = [
      [
        "equal step",
        [recA, recB, step5, { ...step7, step: 5 }],
        /line 4\b.*step 5\b.*not above step 5\b/,
      ],
      [
        "lower step",
        [recA, recB, step5, { ...step7, step: 3 }],
        /line 4\b.*step 3\b.*not above step 5\b/,
      ],
      [
        "a step line replayed",
        [recA, recB, step5, step7, step5],
        /line 5\b.*step 5\b.*not above step 7\b/,
      ],
      ["steps reordered", [recA, recB, step7, step5], /line 4\b.*step 5\b.*not above step 7\b/],
      [
        "unknown record",
        [recA, recB, { ...step5, id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }],
        /line 3\b.*not stored before/,
      ],
      ["step before its record", [step5, recA], /line 1\b.*not stored before/],
      ["negative step", [recA, recB, { ...step5, step: -1 }], /line 3\b.*"step"/],
      ["fractional step", [recA, recB, { ...step5, step: 5.5 }], /line 3\b.*"step"/],
      ["unsafe step", [recA, recB, { ...step5, step: 2 ** 53 }], /line 3\b.*"step"/],
      ["string step", [recA, recB, { ...step5, step: "5" }], /line 3\b.*"step"/],
      [
        "missing step",
        [recA, recB, { t: "step", v: 1, id: a.id, at: step5.at }],
        /line 3\b.*"step"/,
      ],
      ["bad at", [recA, recB, { ...step5, at: "yesterday" }], /line 3\b.*"at"/],
      ["extra field", [recA, recB, { ...step5, otp: "123456" }], /line 3\b.*unknown field "otp"/],
    ];
    for (const [name, list, pattern] of cases) {
      await writeChained(f.path, f.storeKey, list);
      const before = await readFile(f.path);
      await assert.rejects(f.make().open(), isCorrupt(pattern), name);
      assert.deepEqual(await readFile(f.path), before, `${name}: the file is left as it was`);
    }

    // Edited in place without the store key, a step line breaks the chain.
    await writeChained(f.path, f.storeKey, good);
    const all = await lines(f.path);
    all[3] = all[3]!.replace('"step":7', '"step":8');
    await writeFile(f.path, all.join(""));
    await assert.rejects(f.make().open(), isCorrupt(/line 4\b.*MAC does not verify/));
  } finally {
    await f.remove();
  }
});

const RESERVED = { ack: "reserved" } as const;

/** Claims until the store has nothing left to hand out; the ids, in order. */
async function claimAll(
  store: FileKeyStore,
  from: number,
  options: { ack?: "durable" | "reserved" } = {},
): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const next = await store.claimNext("otp", claimInput(from + ids.length), options);
    if (!next) return ids;
    ids.push(next.id);
  }
}

test("reserved claims: concurrent claims never share a record, are written as claims lines after leases, survive a reopen, and a clean close releases the unclaimed leased records", async () => {
  const f = await fresh({ leaseSize: 8 });
  try {
    const store = f.make();
    await store.open();
    await Promise.all(Array.from({ length: 30 }, (_, i) => store.put(input({ roundId: `r${i}` }))));
    const claimed = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.claimNext("otp", claimInput(i), RESERVED)),
    );
    const ids = claimed.map((record) => record!.id);
    assert.equal(new Set(ids).size, 20, "no record is handed out twice");
    assert.equal(await store.countUnclaimed("otp"), 10);
    // Ordinary (durable) claims and reserved ones share the records without overlap.
    const durable = await store.claimNext("otp", claimInput(100));
    assert.ok(durable && !ids.includes(durable.id));
    await store.close();

    const kinds = (await bodies(f.path)).map((body) => body.t);
    assert.ok(kinds.includes("lease") && kinds.includes("claims") && kinds.at(-1) === "release");
    assert.ok(!kinds.slice(0, kinds.indexOf("lease")).includes("claims"), "a lease comes first");
    const leased = (await bodies(f.path))
      .filter((body) => body.t === "lease")
      .flatMap((body) => body.ids as string[]);
    for (const id of ids) assert.ok(leased.includes(id), `${id} was leased before it was claimed`);

    const reopened = f.make();
    await reopened.open();
    try {
      for (const [i, id] of ids.entries()) {
        const record = await reopened.get(id);
        assert.equal(record?.claim?.requestId, `request-${i}`);
        assert.equal(record?.claim?.subject, `subject-${i}`);
      }
      // Released, not void: every record no claim took can still be handed out.
      assert.equal(await reopened.countUnclaimed("otp"), 9);
      const rest = await claimAll(reopened, 200, RESERVED);
      assert.equal(rest.length, 9);
    } finally {
      await reopened.close();
    }
  } finally {
    await f.remove();
  }
});

test("consumptions one turn makes at the same time are one consumes line, after the turn's claims line; a lone one is a consume line; each resolves once durable and a reopened store has them all", async () => {
  const now = Date.parse("2030-01-01T00:00:00.000Z");
  const f = await fresh({ leaseSize: 4, clock: () => new Date(now) });
  try {
    const store = f.make();
    await store.open();
    const [a, b, c, d, e] = await Promise.all(
      Array.from({ length: 5 }, (_, i) => store.put(input({ roundId: `r${i}` }))),
    );
    // Leases a to d and claims a; its claims line is written after that turn.
    assert.equal((await store.claimNext("otp", claimInput(0), RESERVED))!.id, a!.id);
    await new Promise((resolve) => setImmediate(resolve));
    const before = (await bodies(f.path)).length;
    // One turn: a consumption queued first, then a reserved claim of b (its claims line is
    // queued after it), b consumed, one at a time of the caller's, and a repeat.
    const lone = new Date(now - 1000);
    const first = store.consume(a!.id);
    const claimed = store.claimNext("otp", claimInput(1), RESERVED);
    const rest = [store.consume(b!.id), store.consume(e!.id, lone), store.consume(a!.id)];
    assert.equal((await claimed)!.id, b!.id);
    assert.deepEqual(await Promise.all([first, ...rest]), [true, true, true, false]);
    await store.close();

    const written = (await bodies(f.path)).slice(before);
    assert.deepEqual(
      written.map((body) => body.t),
      ["claims", "consumes", "consume", "release"],
    );
    // Claimed and consumed in one turn: the claims line first, or replay would refuse the claim.
    assert.deepEqual(
      (written[0]!.claims as { id: string }[]).map((entry) => entry.id),
      [b!.id],
    );
    assert.deepEqual(written[1], {
      t: "consumes",
      v: 1,
      at: new Date(now).toISOString(),
      ids: [a!.id, b!.id],
    });
    assert.deepEqual(written[2], { t: "consume", v: 1, id: e!.id, at: lone.toISOString() });
    assert.deepEqual(written[3]!.ids, [c!.id, d!.id]);

    const reopened = f.make();
    await reopened.open();
    try {
      for (const [record, at] of [
        [a, now],
        [b, now],
        [e, lone.getTime()],
      ] as const) {
        assert.equal((await reopened.get(record!.id))?.consumedAt, new Date(at).toISOString());
      }
      assert.equal((await reopened.get(c!.id))?.consumedAt, undefined);
      assert.equal(await reopened.consume(a!.id), false);
    } finally {
      await reopened.close();
    }
  } finally {
    await f.remove();
  }
});

test("the records of one round put in one turn share records lines of at most 256 in put order; an owned record, a large one and a lone one get record lines; a reopened store reads every record and secret", async () => {
  const now = Date.parse("2030-01-01T00:00:00.000Z");
  const f = await fresh({ clock: () => new Date(now) });
  try {
    const store = f.make();
    await store.open();
    const inputs = [
      ...Array.from({ length: 300 }, (_, i) => input({ roundId: "R", public: { i } })),
      input({ roundId: "R", owner: "rq:owner" }),
      input({ roundId: "R", public: { big: "x".repeat(9000) } }),
    ];
    const put = await Promise.all(inputs.map((one) => store.put(one)));
    const lone = await store.put(input({ roundId: "R" }));
    await store.close();

    const written = await bodies(f.path);
    assert.deepEqual(
      written.map((body) => body.t),
      ["records", "records", "record", "record", "record"],
    );
    const entries = (body: Record<string, unknown>) =>
      (body.records as { id: string }[]).map((entry) => entry.id);
    assert.deepEqual(
      entries(written[0]!),
      put.slice(0, 256).map((r) => r.id),
    );
    assert.deepEqual(
      entries(written[1]!),
      put.slice(256, 300).map((r) => r.id),
    );
    assert.deepEqual(Object.keys(written[0]!), [
      "t",
      "v",
      "purpose",
      "createdAt",
      "roundId",
      "participants",
      "algorithm",
      "records",
    ]);
    assert.deepEqual(Object.keys((written[0]!.records as object[])[0]!), [
      "id",
      "public",
      "secret",
    ]);
    // The second line and the rest are of the round and participants the first named.
    assert.deepEqual(
      written.map((body) => body.participants !== undefined),
      [true, false, false, false, false],
    );
    assert.deepEqual(
      written.slice(2).map((body) => body.id),
      [put[300]!.id, put[301]!.id, lone.id],
    );

    const reopened = f.make();
    await reopened.open();
    try {
      assert.deepEqual(await reopened.list(), [...put, lone]);
      for (const [i, one] of inputs.entries()) {
        assert.deepEqual(Buffer.from(await reopened.readSecret(put[i]!.id)), one.secret);
      }
      assert.equal(await reopened.countUnclaimed("otp"), 302);
    } finally {
      await reopened.close();
    }
  } finally {
    await f.remove();
  }
});

test('held records put in one turn share a records line with "held": true; the round\'s unhold line releases them all', async () => {
  const now = Date.parse("2030-01-01T00:00:00.000Z");
  const f = await fresh({ clock: () => new Date(now) });
  try {
    const store = f.make();
    await store.open();
    const put = await Promise.all(
      Array.from({ length: 3 }, () => store.put(input({ roundId: "refill", held: true }))),
    );
    assert.equal(await store.countUnclaimed("otp"), 0);
    await store.releaseHeld("refill");
    assert.equal(await store.countUnclaimed("otp"), 3);
    await store.close();
    const written = await bodies(f.path);
    assert.deepEqual(
      written.map((body) => body.t),
      ["records", "unhold"],
    );
    assert.equal(written[0]!.held, true);
    assert.deepEqual(Object.keys(written[0]!).slice(-2), ["held", "records"]);
    const reopened = f.make();
    await reopened.open();
    try {
      assert.equal(await reopened.countUnclaimed("otp"), 3);
      assert.deepEqual(
        (await reopened.list()).map((r) => r.id),
        put.map((r) => r.id),
      );
    } finally {
      await reopened.close();
    }
  } finally {
    await f.remove();
  }
});

test("a record line leaves its participants out when the last record line with participants is of its round and has the same; a reopened store has every record's participants", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    const team = ["SHA256:aaa", "SHA256:bbb", "SHA256:ccc"];
    const records = [];
    for (const [roundId, participants] of [
      ["R", team],
      ["R", team],
      ["R", team],
      ["S", team], // another round: has them
      ["R", team], // the last line with them is S's: has them
      ["R", team],
      ["R", ["SHA256:aaa"]], // other participants: has them
      ["R", team],
    ] as const) {
      records.push(await store.put(input({ roundId, participants: [...participants] })));
    }
    await store.close();
    const written = (await bodies(f.path)).filter((body) => body.t === "record");
    assert.deepEqual(
      written.map((body) => body.participants !== undefined),
      [true, false, false, true, true, false, true, true],
    );
    // Left out in place: the documented order, less "participants".
    assert.deepEqual(Object.keys(written[1]!), [
      "t",
      "v",
      "id",
      "purpose",
      "createdAt",
      "roundId",
      "algorithm",
      "public",
      "secret",
    ]);
    const reopened = f.make();
    await reopened.open();
    try {
      for (const record of records) {
        assert.deepEqual((await reopened.get(record.id))?.participants, record.participants);
      }
      // The reopened store goes on from the file's last line with participants.
      const next = await reopened.put(input({ roundId: "R", participants: team }));
      assert.deepEqual(next.participants, team);
    } finally {
      await reopened.close();
    }
    const last = (await bodies(f.path)).at(-1)!;
    assert.equal(last.participants, undefined);
  } finally {
    await f.remove();
  }
});

test("a crash voids leased records whose claims were not written: none is handed out again, none is counted, and the rest stay usable", async () => {
  const f = await fresh({ leaseSize: 4 });
  try {
    const logger = recordingLogger();
    const store = f.make({ logger });
    await store.open();
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.put(input({ roundId: `r${i}` }))));
    const first = await store.claimNext("otp", claimInput(1), RESERVED);
    // The claim's line is written after this turn; the lease before it is already durable. The
    // file now is what a crash at this moment would leave (every write is O_DSYNC). Read at once,
    // before the event loop turns and writes the claim.
    const image = readFileSync(f.path);
    const headImage = readFileSync(`${f.path}.head`);
    const second = await store.claimNext("otp", claimInput(2), RESERVED);
    await store.close();
    await writeFile(f.path, image);
    await writeFile(`${f.path}.head`, headImage);
    await rm(`${f.path}.lock`, { force: true });

    const recovered = f.make({ logger });
    await recovered.open();
    try {
      assert.match(logger.warnings.map((w) => w.message).join("\n"), /void/);
      const warning = logger.warnings.find((w) => /void/.test(w.message))!;
      assert.equal(warning.fields.records, 4, "the whole lease in flight is void");
      for (const handedOut of [first!, second!]) {
        const record = await recovered.get(handedOut.id);
        assert.ok(record, "the record itself is kept");
        assert.equal(record.claim, undefined, "its claim was lost in the crash");
      }
      assert.equal(await recovered.countUnclaimed("otp"), 6);
      const after = await claimAll(recovered, 10, RESERVED);
      assert.equal(after.length, 6);
      assert.ok(!after.includes(first!.id) && !after.includes(second!.id));
      assert.equal(await recovered.claimNext("otp", claimInput(99)), undefined);
    } finally {
      await recovered.close();
    }
    // Still void after another clean reopen: the release line names only live leases.
    const again = f.make();
    await again.open();
    assert.equal(await again.countUnclaimed("otp"), 0);
    await again.close();
  } finally {
    await f.remove();
  }
});

test("reserved claims handed out before a SIGKILL are never handed out again after the restart", async () => {
  const f = await fresh();
  try {
    const seedStore = f.make();
    await seedStore.open();
    await Promise.all(
      Array.from({ length: 600 }, (_, i) => seedStore.put(input({ roundId: `r${i}` }))),
    );
    await seedStore.close();
    const run = runNode(
      `const { FileKeyStore } = await import(process.env.STORE_MODULE);
       const store = new FileKeyStore({ path: process.env.STORE_PATH,
         storeKey: Buffer.from(process.env.STORE_KEY, "hex"), leaseSize: 64 });
       await store.open();
       let n = 0;
       async function worker() {
         for (;;) {
           const i = n++;
           const record = await store.claimNext("otp", { requester: "r", subject: "s",
             requestId: "q" + i, expiresAt: new Date(Date.now() + 60000) }, { ack: "reserved" });
           if (!record) return;
           process.stdout.write(record.id + "\\n");
           await new Promise((r) => setImmediate(r));
         }
       }
       await Promise.all(Array.from({ length: 8 }, worker));
       await new Promise(() => {});`,
      { STORE_MODULE, STORE_PATH: f.path, STORE_KEY: f.storeKey.toString("hex") },
    );
    const handedOut = new Set<string>();
    await new Promise<void>((resolve, reject) => {
      let buffer = "";
      run.child.stdout.on("data", (chunk: Buffer) => {
        buffer += chunk.toString("utf8");
        const parts = buffer.split("\n");
        buffer = parts.pop()!;
        for (const id of parts) handedOut.add(id);
        if (handedOut.size >= 300 && !run.child.killed) {
          run.child.kill("SIGKILL");
          resolve();
        }
      });
      run.exited.then(({ signal }) => {
        if (signal !== "SIGKILL") reject(new Error(`child ended early: ${run.output().stderr}`));
      });
    });
    await run.exited;
    const store = f.make();
    await store.open();
    try {
      const again = await claimAll(store, 0);
      const twice = again.filter((id) => handedOut.has(id));
      assert.deepEqual(twice, [], "a record handed out before the crash was handed out again");
      // Nothing lost beyond the leases in flight: at most two leases of 64 were void.
      assert.ok(handedOut.size + again.length >= 600 - 128, `${handedOut.size} + ${again.length}`);
    } finally {
      await store.close();
    }
  } finally {
    await f.remove();
  }
});

test("lease, release and claims lines that break the event rules, or their schema, make open fail with E_STORE_CORRUPT naming the line", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    const a = await store.put(input());
    const b = await store.put(input());
    await store.close();
    const [recA, recB] = (await bodies(f.path)) as [
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    const claim = (id: string) => ({
      id,
      requester: "r",
      subject: "s",
      requestId: "q",
      claimedAt: "2030-01-01T00:00:00.000Z",
      expiresAt: "2030-01-01T00:05:00.000Z",
    });
    const lease = (...ids: string[]) => ({ t: "lease", v: 1, ids });
    const release = (...ids: string[]) => ({ t: "release", v: 1, ids });
    const claims = (...list: unknown[]) => ({ t: "claims", v: 1, claims: list });

    // Sound: lease a and b, claim a, release b; then b can be handed out and a cannot.
    await writeChained(f.path, f.storeKey, [
      recA,
      recB,
      lease(a.id, b.id),
      claims(claim(a.id)),
      release(b.id),
    ]);
    const sane = f.make();
    await sane.open();
    assert.equal((await sane.get(a.id))?.claim?.requestId, "q");
    assert.equal(await sane.countUnclaimed("otp"), 1);
    await sane.close();

    const ghost = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    const cases: [string, unknown[], RegExp][] = [
      ["lease of an unknown record", [recA, lease(ghost)], /line 2\b.*leases record .*not stored/],
      ["lease twice", [recA, lease(a.id), lease(a.id)], /line 3\b.*leased already/],
      ["lease of a claimed record", [recA, claims(claim(a.id)), lease(a.id)], /line 3\b.*claimed/],
      ["release not leased", [recA, release(a.id)], /line 2\b.*not leased/],
      [
        "release after claim",
        [recA, lease(a.id), claims(claim(a.id)), release(a.id)],
        /line 4\b.*not leased/,
      ],
      [
        "claimed twice in one line",
        [recA, claims(claim(a.id), claim(a.id))],
        /line 2\b.*claimed a second time/,
      ],
      ["claims of an unknown record", [recA, claims(claim(ghost))], /line 2\b.*not stored before/],
      ["empty lease", [recA, lease()], /line 2\b.*"ids"/],
      ["duplicate ids", [recA, recB, lease(a.id, a.id)], /line 3\b.*"ids"/],
      ["empty claims", [recA, claims()], /line 2\b.*"claims"/],
      [
        "unknown field in a claim",
        [recA, claims({ ...claim(a.id), extra: 1 })],
        /line 2\b.*unknown field "extra"/,
      ],
      [
        "bad time in a claim",
        [recA, claims({ ...claim(a.id), expiresAt: "soon" })],
        /line 2\b.*"expiresAt"/,
      ],
    ];
    for (const [name, list, pattern] of cases) {
      await writeChained(f.path, f.storeKey, list);
      const before = await readFile(f.path);
      await assert.rejects(f.make().open(), isCorrupt(pattern), name);
      assert.deepEqual(await readFile(f.path), before, `${name}: the file is left as it was`);
    }
  } finally {
    await f.remove();
  }
});

test("tlog lines whose index skips, repeats or reorders an entry, or that break their schema, make open fail with E_STORE_CORRUPT naming the line", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    await store.appendLogEntry(new Uint8Array([1, 2, 3]));
    await store.put(input());
    await store.appendLogEntry(new Uint8Array([4]));
    await store.close();
    const good = await bodies(f.path); // entry 0, record, entry 1
    const [e0, rec, e1] = good as [
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    await writeChained(f.path, f.storeKey, good);
    const sane = f.make();
    await sane.open();
    assert.deepEqual(await sane.logEntries(0, 2), [new Uint8Array([1, 2, 3]), new Uint8Array([4])]);
    await sane.close();

    const cases: [string, unknown[], RegExp][] = [
      ["an entry skipped", [rec, e1], /line 2\b.*entry 1 where entry 0 is due/],
      ["an entry repeated", [e0, rec, e0], /line 3\b.*entry 0 where entry 1 is due/],
      ["entries reordered", [e1, rec, e0], /line 1\b.*entry 1 where entry 0 is due/],
      ["negative index", [{ ...e0, index: -1 }], /line 1\b.*"index"/],
      ["string index", [{ ...e0, index: "0" }], /line 1\b.*"index"/],
      ["empty leaf", [{ ...e0, leaf: "" }], /line 1\b.*"leaf"/],
      ["non-canonical leaf", [{ ...e0, leaf: "AQID=" }], /line 1\b.*"leaf"/],
      ["extra field", [{ ...e0, hash: "x" }], /line 1\b.*unknown field "hash"/],
    ];
    for (const [name, list, pattern] of cases) {
      await writeChained(f.path, f.storeKey, list);
      await assert.rejects(f.make().open(), isCorrupt(pattern), name);
    }
  } finally {
    await f.remove();
  }
});

test("opening lines: a changed one, one repeated for its round, one off its schema, or one moved to another round make open fail with E_STORE_CORRUPT naming the line (or fail to decrypt)", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    await store.put(input());
    await store.putRoundOpening("round-1", new Uint8Array(Buffer.from("the opening")));
    await store.putRoundOpening("round-2", new Uint8Array([9]));
    await store.close();
    const good = await bodies(f.path); // record, opening 1, opening 2
    const [rec, o1, o2] = good as [
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    assert.equal(o1.t, "opening");
    assert.deepEqual(Object.keys(o1), ["t", "v", "roundId", "secret"]);
    // Sealed: the plaintext is nowhere in the file.
    assert.ok(!(await readFile(f.path, "utf8")).includes("the opening"));
    // Under K_secret with AAD LP("dkeygen/v1/store/round-opening", roundId), as documented.
    const kSecret = Buffer.from(
      hkdfSync("sha256", f.storeKey, Buffer.alloc(0), "dkeygen/v1/store/secret", 32),
    );
    const sealed = o1.secret as { iv: string; ct: string; tag: string };
    assert.equal(
      Buffer.from(
        aesGcmOpen(
          kSecret,
          fromBase64url(sealed.iv, "iv"),
          fromBase64url(sealed.ct, "ct"),
          fromBase64url(sealed.tag, "tag"),
          lengthPrefixed("dkeygen/v1/store/round-opening", "round-1"),
        ),
      ).toString(),
      "the opening",
    );

    // One changed byte on disk: the MAC names the line.
    const text = await readFile(f.path, "utf8");
    const at = text.indexOf('"ct":"', text.indexOf('"t":"opening"')) + 6;
    const flipped = text.slice(0, at) + (text[at] === "A" ? "B" : "A") + text.slice(at + 1);
    await writeFile(f.path, flipped);
    await assert.rejects(f.make().open(), isCorrupt(/line 2\b.*MAC does not verify/));

    const cases: [string, unknown[], RegExp][] = [
      [
        "a round's opening twice",
        [rec, o1, o2, o1],
        /line 4\b.*round-1's opening appears a second time/,
      ],
      ["no roundId", [rec, { ...o1, roundId: "" }], /line 2\b.*"roundId"/],
      ["no secret", [rec, { ...o1, secret: undefined }], /line 2\b.*"secret"/],
      [
        "a short tag",
        [rec, { ...o1, secret: { ...sealed, tag: "AAAA" } }],
        /line 2\b.*"secret.tag"/,
      ],
      ["extra field", [rec, { ...o1, recordId: "x" }], /line 2\b.*unknown field "recordId"/],
    ];
    for (const [name, list, pattern] of cases) {
      await writeChained(f.path, f.storeKey, list);
      await assert.rejects(f.make().open(), isCorrupt(pattern), name);
    }

    // Moved to another round (re-MACed by someone holding the store key): it opens, but the
    // opening does not decrypt under the other round's associated data.
    await writeChained(f.path, f.storeKey, [rec, { ...o1, roundId: "round-9" }]);
    const moved = f.make();
    await moved.open();
    try {
      await assert.rejects(moved.readRoundOpening("round-9"), isCorrupt(/round round-9/));
    } finally {
      await moved.close();
    }
  } finally {
    await f.remove();
  }
});

test("held records and unhold lines: a record line carries held:true before secret, an unhold line is {t,v,roundId,at}, and unhold, lease or claim lines that break the hold rules make open fail with E_STORE_CORRUPT naming the line", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    const a = await store.put(input({ roundId: "refill", held: true }));
    const b = await store.put(input({ roundId: "refill", held: true }));
    const old = await store.put(input({ roundId: "old" }));
    assert.equal(await store.releaseHeld("refill"), 2);
    assert.equal(await store.releaseHeld("refill"), 0, "no second line");
    await store.close();
    const written = await bodies(f.path);
    const [recA, recB, recOld] = written as [
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    assert.deepEqual(Object.keys(recA).slice(-2), ["held", "secret"]);
    assert.equal(recA.held, true);
    assert.equal("held" in recOld, false, "a record not held has no held field");
    const unholds = written.filter((body) => body.t === "unhold");
    assert.equal(unholds.length, 1);
    assert.deepEqual(Object.keys(unholds[0]!), ["t", "v", "roundId", "at"]);
    assert.equal(unholds[0]!.roundId, "refill");

    const unhold = (roundId: string) => ({
      t: "unhold",
      v: 1,
      roundId,
      at: "2030-01-01T00:00:00.000Z",
    });
    // Sound: a held, consumed, then its round released; b released and claimable.
    await writeChained(f.path, f.storeKey, [
      recA,
      recB,
      recOld,
      { t: "consume", v: 1, id: a.id, at: "2030-01-01T00:00:00.000Z" },
      unhold("refill"),
    ]);
    const sane = f.make();
    await sane.open();
    assert.equal(await sane.countUnclaimed("otp"), 2);
    assert.equal((await sane.claimNext("otp", claimInput(1)))?.id, b.id);
    assert.equal((await sane.claimNext("otp", claimInput(2)))?.id, old.id);
    await sane.close();
    // Without the unhold line the round stays held: only the old record is claimable.
    await writeChained(f.path, f.storeKey, [recA, recB, recOld]);
    const unreleased = f.make();
    await unreleased.open();
    assert.equal(await unreleased.countUnclaimed("otp"), 1);
    assert.equal((await unreleased.get(b.id))?.held, true);
    await unreleased.close();

    const claim = (id: string) => ({
      id,
      requester: "r",
      subject: "s",
      requestId: "q",
      claimedAt: "2030-01-01T00:00:00.000Z",
      expiresAt: "2030-01-01T00:05:00.000Z",
    });
    const cases: [string, unknown[], RegExp][] = [
      ["unhold of a round with nothing held", [recOld, unhold("old")], /line 2\b.*no held record/],
      ["unhold twice", [recA, unhold("refill"), unhold("refill")], /line 3\b.*no held record/],
      [
        "lease of a held record",
        [recA, { t: "lease", v: 1, ids: [a.id] }],
        /line 2\b.*leases record/,
      ],
      ["claim of a held record", [recA, { t: "claim", v: 1, ...claim(a.id) }], /line 2\b.*claim/],
      ["held with an owner", [{ ...recA, owner: "carol" }], /line 1\b.*"held"/],
      ["held false", [{ ...recA, held: false }], /line 1\b.*"held"/],
      ["unhold without a time", [recA, { t: "unhold", v: 1, roundId: "refill" }], /line 2\b.*"at"/],
      [
        "unhold with an extra field",
        [recA, { ...unhold("refill"), ids: [] }],
        /line 2\b.*unknown field "ids"/,
      ],
    ];
    for (const [name, list, pattern] of cases) {
      await writeChained(f.path, f.storeKey, list);
      const before = await readFile(f.path);
      await assert.rejects(f.make().open(), isCorrupt(pattern), name);
      assert.deepEqual(await readFile(f.path), before, `${name}: the file is left as it was`);
    }
  } finally {
    await f.remove();
  }
});
