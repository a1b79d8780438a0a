/**
 * Compaction of the key_store file (issue 17): the content before and after is the same (every
 * live record, claim, consumption, step, lease, held round, log entry and opening), records
 * retired past the retention are gone, a compaction runs while writes go on, a SIGKILL at each
 * of its steps leaves the old file or the new one whole, and the rollback check accepts a
 * compacted file while still refusing a truncated or restored one.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFile, readdir, readFile, stat, truncate, writeFile } from "node:fs/promises";
import { test } from "node:test";
import type { CompactionStep, FileKeyStore } from "../../src/store/file.js";
import {
  bodies,
  fresh,
  input,
  isCorrupt,
  lines,
  recordingLogger,
} from "../helpers/key-store-file.js";

const STORE_MODULE = new URL("../../src/store/file.js", import.meta.url).href;
const T0 = Date.parse("2030-01-01T00:00:00.000Z");
const TTL = 10_000;
const RETAIN = 60_000;

function clockAt(start: number) {
  let now = start;
  return { clock: () => new Date(now), set: (ms: number) => (now = ms) };
}

const claimFor = (n: number, expiresAt: number) => ({
  requester: "requester-1",
  subject: `subject-${n % 3}`,
  requestId: `request-${n}`,
  expiresAt: new Date(expiresAt),
});

/** Everything a store answers, secrets included, for comparing before and after. */
async function contents(store: FileKeyStore) {
  const records = await store.list();
  const secrets = [];
  for (const record of records) {
    secrets.push(Buffer.from(await store.readSecret(record.id)).toString("hex"));
  }
  const latest = [];
  for (let n = 0; n < 3; n++) {
    latest.push(
      (
        await store.list({ claimedBy: "requester-1", subject: `subject-${n}`, latestClaims: 4 })
      ).map((r) => r.id),
    );
  }
  return {
    records,
    secrets,
    latest,
    unclaimed: await store.countUnclaimed("otp"),
    log: (await store.logEntries(0, store.logSize())).map((leaf) =>
      Buffer.from(leaf).toString("hex"),
    ),
    opening: Buffer.from((await store.readRoundOpening("round-opened"))!).toString("hex"),
  };
}

/**
 * A store with some of everything: 40 OTPs (20 claimed and 8 of those consumed, 2 withdrawn,
 * reserved claims from a lease, one of them consumed in a consumes line with the 8th), a TOTP enrollment with a step, a held round released, log
 * entries and an opening; then 22 OTPs retired at T0 + TTL.
 */
async function populated(extra: Parameters<Awaited<ReturnType<typeof fresh>>["make"]>[0] = {}) {
  const time = clockAt(T0);
  const f = await fresh({
    clock: time.clock,
    retireEveryMs: 0,
    retireGraceMs: 0,
    retainUsedMs: RETAIN,
    compactAtBytes: Number.POSITIVE_INFINITY,
    leaseSize: 4,
    ...extra,
  });
  const store = f.make();
  await store.open();
  const otps = [];
  for (let i = 0; i < 40; i++) otps.push(await store.put(input({ public: { i } })));
  const claimed = [];
  for (let i = 0; i < 20; i++) claimed.push((await store.claimNext("otp", claimFor(i, T0 + TTL)))!);
  for (let i = 0; i < 7; i++) await store.consume(claimed[i]!.id);
  await store.consume(otps[38]!.id);
  await store.consume(otps[39]!.id);
  const totp = await store.put(input({ purpose: "totp", owner: "requester-1", subject: "acct" }));
  await store.useStep(totp.id, 100);
  await store.put(input({ roundId: "held-round", held: true }));
  await store.put(input({ roundId: "held-round", held: true }));
  await store.releaseHeld("held-round");
  await store.put(input({ roundId: "still-held", held: true }));
  await store.appendLogEntry(new Uint8Array([1, 2, 3]));
  await store.putRoundOpening("round-opened", new Uint8Array([9, 9, 9]));
  // Reserved claims (a lease line, then claims lines); they expire later and stay live.
  const reserved = [];
  for (let i = 20; i < 23; i++) {
    reserved.push(
      (await store.claimNext("otp", claimFor(i, T0 + 10 * RETAIN), { ack: "reserved" }))!,
    );
  }
  // One consumes line: a record that retires below, and a live one.
  await Promise.all([store.consume(claimed[7]!.id), store.consume(reserved[0]!.id)]);
  await store.appendLogEntry(new Uint8Array([4, 5, 6]));
  time.set(T0 + TTL);
  assert.equal(await store.retireDue(), 22, "20 claimed + 2 withdrawn retire");
  return { f, store, time, totp, keptConsumed: reserved[0]!.id };
}

test("compaction keeps every live record, claim, consumption, step, lease, held round, log entry and opening; drops what retired before the cutoff; and a reopen finds the same", async () => {
  const { f, store, time, keptConsumed } = await populated();
  try {
    const before = await contents(store);
    assert.equal(
      (await bodies(f.path)).filter((b) => b.t === "consumes" && (b.ids as string[]).length === 2)
        .length,
      1,
    );
    const sizeBefore = (await stat(f.path)).size;
    time.set(T0 + TTL + RETAIN + 1);
    const report = await store.compact();
    assert.equal(report.dropped, 22);
    assert.equal(report.generation, 1);
    assert.ok(report.bytesAfter < sizeBefore, `${report.bytesAfter} < ${sizeBefore}`);
    assert.equal((await stat(f.path)).size, report.bytesAfter);
    assert.deepEqual(await contents(store), before, "the same after compaction");
    // Its writes go on, on the new chain.
    const after = await store.put(input({ public: { after: true } }));
    const written = await bodies(f.path);
    assert.equal(written[0]!.t, "compacted");
    assert.equal(written[0]!.generation, 1);
    assert.equal(written[0]!.dropped, 22);
    assert.equal(written[0]!.cutoff, new Date(T0 + TTL + 1).toISOString());
    assert.equal(written.filter((b) => b.t === "switched").length, 1);
    assert.equal(written.at(-1)!.id, after.id);
    assert.ok(!written.some((b) => b.t === "retire"), "every retired record was dropped");
    // The record line that had the participants for round-1's OTPs retired and was dropped: the
    // first one kept has them back; the others still leave them out.
    const recordLines = written.filter((b) => b.t === "record");
    assert.deepEqual(recordLines[0]!.participants, ["alice", "bob"]);
    assert.equal(recordLines[1]!.roundId, recordLines[0]!.roundId);
    assert.equal(recordLines[1]!.participants, undefined);
    assert.deepEqual(
      written.filter((b) => b.t === "consumes").map((b) => b.ids),
      [[keptConsumed]],
      "a consumes line keeps only its live records",
    );
    await store.close();

    const reopened = f.make();
    await reopened.open();
    try {
      const again = await contents(reopened);
      assert.deepEqual(again.records.slice(0, -1), before.records);
      assert.deepEqual(again.secrets.slice(0, -1), before.secrets);
      assert.deepEqual(
        { ...again, records: [], secrets: [] },
        // The record put after the compaction is one more to claim.
        { ...before, records: [], secrets: [], unclaimed: before.unclaimed + 1 },
      );
      // A consumed OTP stays consumed, a claimed one claimed, the held one held, the lease used.
      const [first] = await reopened.list({ claimed: true, consumed: false });
      assert.equal(await reopened.consume(first!.id), true);
      assert.equal(await reopened.consume(first!.id), false);
      assert.equal(
        (await reopened.list()).filter((r) => r.held).length,
        1,
        "still-held stays held",
      );
      // A second compaction counts on.
      const second = await reopened.compact();
      assert.equal(second.generation, 2);
      assert.equal(second.dropped, 0);
    } finally {
      await reopened.close();
    }
  } finally {
    await store.close();
    await f.remove();
  }
});

test("retention: a record retired exactly at the cutoff stays, one millisecond earlier it goes; forever keeps all", async () => {
  const { f, store, time } = await populated();
  try {
    time.set(T0 + TTL + RETAIN);
    assert.equal((await store.compact()).dropped, 0, "retired at the cutoff: kept");
    time.set(T0 + TTL + RETAIN + 1);
    assert.equal((await store.compact()).dropped, 22);
  } finally {
    await store.close();
    await f.remove();
  }
  const forever = await populated({ retainUsedMs: Number.POSITIVE_INFINITY });
  try {
    forever.time.set(T0 + 1000 * RETAIN);
    const report = await forever.store.compact();
    assert.equal(report.dropped, 0);
    assert.equal(
      (await bodies(forever.f.path)).filter((b) => b.t === "retire").length,
      1,
      "the retire line is kept",
    );
  } finally {
    await forever.store.close();
    await forever.f.remove();
  }
});

test("writes made while a compaction runs are all kept, on the old file or the new", async () => {
  const { f, store, time } = await populated();
  time.set(T0 + TTL + RETAIN + 1);
  const acknowledged: string[] = [];
  let writing = true;
  const writer = (async () => {
    let i = 0;
    while (writing) {
      const record = await store.put(input({ public: { during: i++ } }));
      acknowledged.push(record.id);
      await store.claimNext("otp", claimFor(i, T0 + 100 * RETAIN));
    }
  })();
  try {
    // Let some writes happen before, during and after.
    while (acknowledged.length < 20) await new Promise((resolve) => setImmediate(resolve));
    const report = await store.compact();
    assert.equal(report.dropped, 22);
    const during = acknowledged.length;
    while (acknowledged.length < during + 20) await new Promise((resolve) => setImmediate(resolve));
    writing = false;
    await writer;
    await store.close();
    const reopened = f.make();
    await reopened.open();
    try {
      for (const id of acknowledged) assert.ok(await reopened.get(id), `${id} kept`);
    } finally {
      await reopened.close();
    }
  } finally {
    writing = false;
    await writer.catch(() => {});
    await store.close();
    await f.remove();
  }
});

const STEPS: CompactionStep[] = ["scanned", "copied", "held", "synced", "renamed", "switched"];

for (const step of STEPS) {
  test(`a SIGKILL at compaction step "${step}" leaves the old file or the new one whole`, async () => {
    const { f, store, time } = await populated();
    const before = await contents(store);
    await store.close();
    const sizeBefore = (await stat(f.path)).size;
    time.set(T0 + TTL + RETAIN + 1);
    const child = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const { FileKeyStore } = await import(process.env.STORE_MODULE);
         const store = new FileKeyStore({ path: process.env.STORE_PATH,
           storeKey: Buffer.from(process.env.STORE_KEY, "hex"), retireEveryMs: 0,
           retireGraceMs: 0, retainUsedMs: ${RETAIN}, compactAtBytes: Infinity,
           clock: () => new Date(${T0 + TTL + RETAIN + 1}),
           onCompactionStep: (step) => {
             if (step === process.env.KILL_AT) process.kill(process.pid, "SIGKILL");
           } });
         await store.open();
         await store.compact();
         process.exit(3);`,
      ],
      {
        env: {
          ...process.env,
          STORE_MODULE,
          STORE_PATH: f.path,
          STORE_KEY: f.storeKey.toString("hex"),
          KILL_AT: step,
        },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const signal = await new Promise((resolve) => child.on("exit", (_code, sig) => resolve(sig)));
    assert.equal(signal, "SIGKILL", stderr);
    const logger = recordingLogger();
    const reopened = f.make({ clock: () => new Date(T0 + TTL + RETAIN + 1), logger });
    await reopened.open();
    try {
      // Never taken for a rollback: no rollback line, no warning of one.
      assert.ok(!(await bodies(f.path)).some((b) => b.t === "rollback"), "no rollback line");
      assert.ok(
        !logger.warnings.some((w) => /rollback|does not match its head/.test(w.message)),
        JSON.stringify(logger.warnings),
      );
      assert.deepEqual(
        await contents(reopened),
        before,
        `the same content after a kill at ${step}`,
      );
      const first = (await bodies(f.path))[0]!;
      const compacted = ["renamed", "switched"].includes(step);
      assert.equal(first.t === "compacted", compacted, "old file before the rename, new after");
      if (!compacted) assert.equal((await stat(f.path)).size, sizeBefore);
      // It writes on and compacts again.
      await reopened.put(input());
      assert.equal((await reopened.compact()).generation, compacted ? 2 : 1);
    } finally {
      await reopened.close();
      await f.remove();
    }
  });
}

test("the rollback check accepts a compacted file and still refuses it truncated, or the old file restored", async () => {
  const { f, store, time } = await populated();
  const old = `${f.path}.old`;
  try {
    await store.close();
    await copyFile(f.path, old);
    const compacting = f.make();
    await compacting.open();
    time.set(T0 + TTL + RETAIN + 1);
    await compacting.compact();
    await compacting.put(input());
    await compacting.close();

    const fine = f.make();
    await fine.open();
    await fine.close();

    // Truncated by its last line (an attacker hiding the latest write).
    const all = await lines(f.path);
    const compacted = await readFile(f.path);
    await truncate(f.path, compacted.length - all.at(-1)!.length);
    await assert.rejects(f.make().open(), isCorrupt(/shorter|head/));
    await writeFile(f.path, compacted);

    // The pre-compaction file put back.
    await copyFile(old, f.path);
    await assert.rejects(f.make().open(), isCorrupt(/head|diverged|shorter|does not/));
    await writeFile(f.path, compacted);
    const again = f.make();
    await again.open();
    await again.close();
  } finally {
    await f.remove();
  }
});

test("compaction runs by itself once enough retired records are past retention, and logs its report", async () => {
  const reports: Record<string, unknown>[] = [];
  const f = await fresh({
    retireEveryMs: 20,
    retireGraceMs: 0,
    retainUsedMs: 0,
    compactAtBytes: 1,
    logger: {
      ...recordingLogger(),
      info: (fields, message) => {
        if (message === "key store compacted") reports.push(fields);
      },
    },
  });
  const store = f.make();
  await store.open();
  try {
    for (let i = 0; i < 20; i++) await store.put(input());
    for (let i = 0; i < 20; i++) await store.claimNext("otp", claimFor(i, Date.now() + 20));
    const deadline = Date.now() + 10_000;
    let first: Record<string, unknown> | undefined;
    while (Date.now() < deadline) {
      first = (await bodies(f.path))[0];
      if (first?.t === "compacted" && reports.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(first?.t, "compacted", "compacted by itself");
    assert.equal(first?.dropped, 20);
    assert.equal(store.liveRecords, 0);
    assert.equal(reports[0]?.dropped, 20);
    assert.equal(reports[0]?.path, f.path);
    assert.equal(typeof reports[0]?.heldMs, "number");
  } finally {
    await store.close();
    await f.remove();
  }
});

test("a held round whose records all retired leaves no unhold line behind (the reopen would refuse it)", async () => {
  const time = clockAt(T0);
  const f = await fresh({ clock: time.clock, retireEveryMs: 0, retireGraceMs: 0, retainUsedMs: 0 });
  const store = f.make();
  await store.open();
  try {
    for (let i = 0; i < 3; i++) await store.put(input({ roundId: "batch", held: true }));
    await store.put(input({ roundId: "kept", held: true }));
    await store.releaseHeld("batch");
    await store.releaseHeld("kept");
    for (let i = 0; i < 3; i++) await store.claimNext("otp", claimFor(i, T0 + TTL));
    time.set(T0 + TTL);
    assert.equal(await store.retireDue(), 3);
    time.set(T0 + TTL + 1);
    assert.equal((await store.compact()).dropped, 3);
    const written = await bodies(f.path);
    assert.deepEqual(
      written.filter((b) => b.t === "unhold").map((b) => b.roundId),
      ["kept"],
    );
    await store.close();
    const reopened = f.make();
    await reopened.open();
    assert.equal(reopened.liveRecords, 1);
    await reopened.close();
  } finally {
    await store.close();
    await f.remove();
  }
});

test("a held round withdrawn before its release (not witnessed in time) retires at its consumption: memory, a reopen and a compaction all let it go; a held round not consumed stays", async () => {
  const time = clockAt(T0);
  const f = await fresh({ clock: time.clock, retireEveryMs: 0, retireGraceMs: 0, retainUsedMs: 0 });
  const store = f.make();
  await store.open();
  try {
    const withdrawn = [];
    for (let i = 0; i < 3; i++) {
      withdrawn.push(await store.put(input({ roundId: "withdrawn", held: true })));
    }
    await store.put(input({ roundId: "waiting", held: true }));
    for (const record of withdrawn) assert.equal(await store.consume(record.id), true);
    time.set(T0 + 1);
    assert.equal(await store.retireDue(), 3);
    assert.equal(store.liveRecords, 1);
    assert.equal(await store.get(withdrawn[0]!.id), undefined);
    assert.equal(await store.releaseHeld("withdrawn"), 0);
    await store.close();
    const reopened = f.make();
    await reopened.open();
    try {
      assert.equal(reopened.liveRecords, 1, "the retire line is accepted on replay");
      time.set(T0 + 2);
      assert.equal((await reopened.compact()).dropped, 3);
      assert.equal(reopened.liveRecords, 1);
      assert.equal(await reopened.releaseHeld("waiting"), 1);
      assert.equal(await reopened.countUnclaimed("otp"), 1);
    } finally {
      await reopened.close();
    }
  } finally {
    await store.close();
    await f.remove();
  }
});

test("round openings and log entries stay on disk: read back from the file (also after a compaction), and a line changed under the running store is refused, not served", async () => {
  const { f, store, time } = await populated();
  try {
    time.set(T0 + TTL + RETAIN + 1);
    await store.compact();
    assert.deepEqual([...(await store.readRoundOpening("round-opened"))!], [9, 9, 9]);
    assert.deepEqual(
      (await store.logEntries(0, 2)).map((leaf) => [...leaf]),
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
    );
    // Flip one character of the second log entry's line in place (same length).
    const text = await readFile(f.path, "utf8");
    const at = text.indexOf('"t":"tlog","v":1,"index":1');
    assert.ok(at > 0);
    const changed = `${text.slice(0, at + 30)}${text[at + 30] === "A" ? "B" : "A"}${text.slice(at + 31)}`;
    await writeFile(f.path, changed);
    await assert.rejects(store.logEntries(1, 2), isCorrupt(/not the one written|does not hold/));
    assert.deepEqual([...(await store.logEntries(0, 1))[0]!], [1, 2, 3]);
  } finally {
    await store.close();
    await f.remove();
  }
});

test("closing the store stops a compaction still copying: the close does not wait for it, the old file stays and no new file is left", async () => {
  const { f, store, time } = await populated();
  const many = [];
  for (let i = 0; i < 600; i++) many.push(store.put(input()));
  await Promise.all(many);
  time.set(T0 + TTL + RETAIN + 1);
  let closing: Promise<void> | undefined;
  const reopenedAt = f.make({
    onCompactionStep: (step) => {
      if (step === "scanned") closing = reopenedAt.close();
    },
  });
  await store.close();
  await reopenedAt.open();
  const sizeBefore = (await stat(f.path)).size;
  try {
    const compaction = reopenedAt.compact();
    // The close began at "scanned" (inside the compaction), so wait for the compaction first.
    await assert.rejects(compaction, /closing/);
    await closing;
    assert.equal((await stat(f.path)).size, sizeBefore);
    await assert.rejects(stat(`${f.path}.compact`), /ENOENT/);
  } finally {
    await reopenedAt.close();
    await f.remove();
  }
});

test("a line changed on disk under the running store fails the compaction on its thread: refused naming the line, the file unchanged, no new file left, and the store goes on serving", async () => {
  const { f, store, time } = await populated();
  try {
    time.set(T0 + TTL + RETAIN + 1);
    // Flip one character inside the first record line's body (same length): its MAC no longer
    // verifies, and only the compaction thread reads it again.
    const text = await readFile(f.path, "utf8");
    const at = text.indexOf('"t":"record","v":1,"id":"');
    assert.ok(at > 0);
    const flip = at + 40;
    const changed = `${text.slice(0, flip)}${text[flip] === "A" ? "B" : "A"}${text.slice(flip + 1)}`;
    await writeFile(f.path, changed);
    const before = await readFile(f.path);
    await assert.rejects(store.compact(), isCorrupt(/Compacting .*line \d+ does not verify/));
    assert.deepEqual(await readFile(f.path), before);
    await assert.rejects(stat(`${f.path}.compact`), /ENOENT/);
    // The store's own memory is untouched: it still takes writes and answers reads.
    const more = await store.put(input());
    assert.equal((await store.get(more.id))?.id, more.id);
  } finally {
    await store.close();
    await f.remove();
  }
});

test("compaction keeps a records line's live records only, their participants put back when the line that had them was dropped; a claims line keeps its live entries, the first with every field", async () => {
  const time = clockAt(T0);
  const f = await fresh({
    clock: time.clock,
    retireEveryMs: 0,
    retireGraceMs: 0,
    retainUsedMs: RETAIN,
    compactAtBytes: Number.POSITIVE_INFINITY,
    leaseSize: 16,
  });
  const store = f.make();
  await store.open();
  try {
    // Two turns of round B's records: a records line with the participants, one without.
    const first = await Promise.all(
      Array.from({ length: 6 }, (_, i) => store.put(input({ roundId: "B", public: { i } }))),
    );
    const second = await Promise.all(
      Array.from({ length: 4 }, (_, i) => store.put(input({ roundId: "B", public: { i: 6 + i } }))),
    );
    // One turn of reserved claims: the first line's six expire soon, the seventh much later.
    const claimed = await Promise.all(
      Array.from({ length: 7 }, (_, i) =>
        store.claimNext("otp", claimFor(i, i < 6 ? T0 + TTL : T0 + 10 * RETAIN), {
          ack: "reserved",
        }),
      ),
    );
    assert.deepEqual(
      claimed.map((r) => r!.id),
      [...first, second[0]!].map((r) => r.id),
    );
    await Promise.all(first.map((r) => store.consume(r.id)));
    const before = await bodies(f.path);
    assert.deepEqual(
      before.filter((b) => b.t === "records").map((b) => (b.participants ? "named" : "carried")),
      ["named", "carried"],
    );
    const claimsLine = before.find((b) => b.t === "claims")!;
    assert.equal((claimsLine.claims as unknown[]).length, 7);
    assert.equal((claimsLine.claims as Record<string, unknown>[])[6]!.requester, undefined);
    time.set(T0 + TTL);
    assert.equal(await store.retireDue(), 6);
    const live = await store.list();
    const secrets = await Promise.all(live.map((r) => store.readSecret(r.id)));
    time.set(T0 + TTL + RETAIN + 1);
    assert.equal((await store.compact()).dropped, 6);

    const after = await bodies(f.path);
    const records = after.filter((b) => b.t === "records");
    assert.equal(records.length, 1, "the first records line, all retired, is gone");
    assert.deepEqual(records[0]!.participants, ["alice", "bob"], "put back");
    assert.deepEqual(
      (records[0]!.records as { id: string }[]).map((entry) => entry.id),
      second.map((r) => r.id),
    );
    const claims = after.filter((b) => b.t === "claims");
    assert.equal(claims.length, 1);
    assert.deepEqual(claims[0]!.claims, [
      {
        id: second[0]!.id,
        requester: "requester-1",
        subject: "subject-0",
        requestId: "request-6",
        claimedAt: new Date(T0).toISOString(),
        expiresAt: new Date(T0 + 10 * RETAIN).toISOString(),
      },
    ]);
    assert.ok(!after.some((b) => b.t === "consumes" || b.t === "consume"));
    await store.close();

    const reopened = f.make();
    await reopened.open();
    try {
      assert.deepEqual(await reopened.list(), live);
      assert.deepEqual(await Promise.all(live.map((r) => reopened.readSecret(r.id))), secrets);
      assert.equal((await reopened.get(second[0]!.id))?.claim?.requestId, "request-6");
      assert.equal(await reopened.countUnclaimed("otp"), 3);
    } finally {
      await reopened.close();
    }
  } finally {
    await store.close();
    await f.remove();
  }
});

test("a round's secret stays while a record with a part of it is in the file, leaves memory with its last live record (named on that retire line), and leaves the file with that retire line once past the retention", async () => {
  const time = clockAt(T0);
  const f = await fresh({
    clock: time.clock,
    retireEveryMs: 0,
    retireGraceMs: 0,
    retainUsedMs: RETAIN,
    compactAtBytes: Number.POSITIVE_INFINITY,
  });
  let store = f.make();
  await store.open();
  const partOf = (roundId: string, roundPart: number) => {
    const { secret: _, ...rest } = input({ roundId });
    return store.put({ ...rest, roundPart });
  };
  const secretLines = async () =>
    (await bodies(f.path)).filter((b) => b.t === "roundsecret").map((b) => b.roundId);
  const roundsNamed = async () =>
    (await bodies(f.path)).filter((b) => b.t === "retire").map((b) => b.rounds ?? []);
  try {
    await store.putRoundSecret("batch", new Uint8Array([1, 2, 3]));
    await store.putRoundSecret("other", new Uint8Array([4, 5]));
    const batch = [await partOf("batch", 0), await partOf("batch", 1), await partOf("batch", 2)];
    const kept = await partOf("other", 9);
    await store.claimNext("otp", claimFor(0, T0 + TTL));
    await store.claimNext("otp", claimFor(1, T0 + TTL));
    await store.claimNext("otp", claimFor(2, T0 + 2 * TTL));
    await store.consume(batch[1]!.id);
    // Two of the batch retire first: its secret stays for the third.
    time.set(T0 + TTL);
    assert.equal(await store.retireDue(), 2);
    assert.deepEqual(await roundsNamed(), [[]]);
    assert.equal((await store.readSecretPart(batch[2]!.id)).kind, "round");
    time.set(T0 + 2 * TTL);
    assert.equal(await store.retireDue(), 1);
    assert.deepEqual(
      await roundsNamed(),
      [[], ["batch"]],
      "the retire line that let the batch's last record go names its round",
    );
    // Gone from memory: no record can take a part of it any more.
    await assert.rejects(partOf("batch", 3), /has no round secret/);
    assert.deepEqual(await store.readSecretPart(kept.id), {
      kind: "round",
      roundSecret: new Uint8Array([4, 5]),
      roundPart: 9,
    });
    // Past the first two's retention, not the third's: the batch's secret stays in the file.
    time.set(T0 + TTL + RETAIN + 1);
    assert.equal((await store.compact()).dropped, 2);
    assert.deepEqual(await secretLines(), ["batch", "other"]);
    assert.deepEqual(await roundsNamed(), [["batch"]]);
    await store.close();
    store = f.make();
    await store.open();
    assert.deepEqual(
      (await store.list()).map((r) => r.id),
      [kept.id],
    );
    // Past the third's: its retire line and the batch's secret leave the file together.
    time.set(T0 + 2 * TTL + RETAIN + 1);
    assert.equal((await store.compact()).dropped, 1);
    assert.deepEqual(await secretLines(), ["other"], "the batch's secret left the file");
    assert.deepEqual(await roundsNamed(), []);
    await store.close();
    store = f.make();
    await store.open();
    assert.deepEqual(
      (await store.list()).map((r) => r.id),
      [kept.id],
    );
    assert.deepEqual(await store.readSecretPart(kept.id), {
      kind: "round",
      roundSecret: new Uint8Array([4, 5]),
      roundPart: 9,
    });
  } finally {
    await store.close();
    await f.remove();
  }
});

/** The nice value of each of this process's threads (Linux: /proc/self/task/TID/stat). */
async function threadNices(): Promise<Map<string, number>> {
  const nices = new Map<string, number>();
  for (const tid of await readdir("/proc/self/task")) {
    const stat = await readFile(`/proc/self/task/${tid}/stat`, "utf8").catch(() => undefined);
    if (stat === undefined) continue; // the thread ended meanwhile
    // After "pid (comm) ": state is field 3; nice is field 19 (index 16 from state).
    nices.set(tid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]));
  }
  return nices;
}

test("the compaction thread runs at a lower CPU priority than the serving thread (nice +10), and only it", async (t) => {
  const base = (await threadNices()).get(String(process.pid))!;
  if (base >= 19) return t.skip("this process already runs at the lowest priority");
  const seen: Map<string, number>[] = [];
  const { f, store, time } = await populated({
    onCompactionStep: async (step) => {
      if (step === "scanned") seen.push(await threadNices());
    },
  });
  try {
    time.set(T0 + TTL + RETAIN + 1);
    await store.compact();
    assert.equal(seen.length, 1);
    const lowered = [...seen[0]!].filter(([, nice]) => nice !== base);
    assert.deepEqual(
      lowered.map(([, nice]) => nice),
      [Math.min(19, base + 10)],
      "exactly one thread, niced by 10",
    );
    assert.equal(seen[0]!.get(String(process.pid)), base, "the serving thread keeps its priority");
  } finally {
    await store.close();
    await f.remove();
  }
});
