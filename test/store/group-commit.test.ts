import assert from "node:assert/strict";
import { test } from "node:test";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { GroupCommitLog, type LogFile } from "../../src/store/group-commit.js";

function deferred() {
  let release!: () => void;
  const promise = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { promise, release };
}

/**
 * An in-memory file whose writes and syncs can be held at a gate (so tests decide what is in
 * flight, without timing) or made to fail.
 */
function fakeFile() {
  const state = {
    bytes: Buffer.alloc(0),
    writes: 0,
    syncs: 0,
    failWrite: false,
    failSync: false,
    writeGate: undefined as Promise<void> | undefined,
    syncGate: undefined as Promise<void> | undefined,
    /** Resolved whenever a write or sync starts waiting at its gate. */
    waiting: deferred(),
    events: [] as string[],
  };
  const hold = async (gate: Promise<void> | undefined) => {
    if (!gate) return;
    state.waiting.release();
    await gate;
  };
  const file: LogFile = {
    async write(data, position) {
      state.writes++;
      await hold(state.writeGate);
      if (state.failWrite) {
        const half = Buffer.from(data.subarray(0, data.length >> 1));
        state.bytes = Buffer.concat([state.bytes.subarray(0, position), half]);
        throw Object.assign(new Error("no space"), { code: "ENOSPC" });
      }
      state.bytes = Buffer.concat([state.bytes.subarray(0, position), data]);
    },
    async sync() {
      state.syncs++;
      await hold(state.syncGate);
      if (state.failSync) throw Object.assign(new Error("I/O error"), { code: "EIO" });
      state.events.push(`synced ${state.bytes.length}`);
    },
    async truncate(size) {
      state.events.push(`truncate ${size}`);
      state.bytes = state.bytes.subarray(0, size);
    },
  };
  return { file, state };
}

const line = (text: string) => Buffer.from(`${text}\n`);

test("appends made together share one write and one fsync, in order", async () => {
  const { file, state } = fakeFile();
  const log = new GroupCommitLog(file, 0, { name: "test" });
  const durable: number[] = [];
  await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      log.append(line(`line ${i}`), { onDurable: () => durable.push(i) }),
    ),
  );
  assert.equal(state.writes, 1);
  assert.equal(state.syncs, 1);
  assert.deepEqual(
    durable,
    Array.from({ length: 200 }, (_, i) => i),
  );
  assert.equal(state.bytes.toString().split("\n")[199], "line 199");
  assert.deepEqual(log.stats, { lines: 200, batches: 1, largestBatch: 200 });
  assert.equal(log.size, state.bytes.length);
});

test("appends arriving while an fsync is in flight form the next batch", async () => {
  const { file, state } = fakeFile();
  const gate = deferred();
  state.syncGate = gate.promise;
  const log = new GroupCommitLog(file, 0, { name: "test" });
  let firstDone = false;
  const first = log.append(line("first")).then(() => {
    firstDone = true;
  });
  await state.waiting.promise; // the first fsync is running now
  const rest = Array.from({ length: 50 }, (_, i) => log.append(line(`later ${i}`)));
  assert.equal(state.writes, 1, "nothing more is written while the fsync runs");
  state.syncGate = undefined;
  gate.release();
  await rest[0];
  assert.ok(firstDone);
  await Promise.all([first, ...rest]);
  assert.equal(state.syncs, 2);
  assert.deepEqual(log.stats, { lines: 51, batches: 2, largestBatch: 50 });
});

test("no append resolves before its fsync has returned", async () => {
  const { file, state } = fakeFile();
  const gate = deferred();
  state.syncGate = gate.promise;
  const log = new GroupCommitLog(file, 0, { name: "test" });
  let resolved = false;
  const done = log.append(line("x")).then(() => {
    resolved = true;
  });
  await state.waiting.promise;
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(state.syncs, 1);
  assert.equal(resolved, false, "resolved while the fsync was still running");
  gate.release();
  await done;
  assert.deepEqual(state.events, ["synced 2"]);
});

for (const failure of ["write", "fsync"] as const) {
  test(`a failed ${failure} rolls back every pending append, newest first, cuts the file back and fails the log`, async () => {
    const { file, state } = fakeFile();
    const failures: string[] = [];
    const log = new GroupCommitLog(file, 0, {
      name: "key_store",
      onFailure: (error) => failures.push(error.message),
    });
    await log.append(line("durable"));
    const goodSize = state.bytes.length;
    const gate = deferred();
    state.writeGate = gate.promise;
    if (failure === "write") state.failWrite = true;
    else state.failSync = true;
    const rolledBack: string[] = [];
    const batch = ["a", "b"].map((name) =>
      log.append(line(name), { onFailed: () => rolledBack.push(name) }),
    );
    await state.waiting.promise; // the batch's write is in flight: "c" queues behind it
    const queued = log.append(line("c"), { onFailed: () => rolledBack.push("c") });
    gate.release();
    const outcomes = await Promise.allSettled([...batch, queued]);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, "rejected");
      assert.ok(outcome.reason instanceof DkeygenError);
      assert.equal(outcome.reason.code, ErrorCodes.OPERATIONAL);
      assert.match(outcome.reason.message, failure === "write" ? /ENOSPC/ : /EIO/);
    }
    assert.deepEqual(rolledBack, ["c", "b", "a"]);
    assert.equal(state.bytes.length, goodSize, "the file is cut back to its durable size");
    assert.ok(state.events.includes(`truncate ${goodSize}`));
    assert.equal(failures.length, 1);
    state.failWrite = false;
    state.failSync = false;
    let refusedRolledBack = false;
    const writes = state.writes;
    await assert.rejects(
      log.append(line("d"), { onFailed: () => (refusedRolledBack = true) }),
      /refuses further writes/,
    );
    assert.ok(refusedRolledBack, "an append refused outright still runs its rollback");
    assert.equal(state.writes, writes, "nothing is written after a failure");
    assert.equal(log.failure?.code, ErrorCodes.OPERATIONAL);
  });
}

test("drain waits for every append in flight", async () => {
  const { file, state } = fakeFile();
  const gate = deferred();
  state.syncGate = gate.promise;
  const log = new GroupCommitLog(file, 0, { name: "test" });
  void log.append(line("a"));
  await state.waiting.promise;
  void log.append(line("b"));
  state.syncGate = undefined;
  let drained = false;
  const drain = log.drain().then(() => {
    drained = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(drained, false);
  gate.release();
  await drain;
  assert.equal(log.stats.lines, 2);
  assert.equal(state.bytes.toString(), "a\nb\n");
});
