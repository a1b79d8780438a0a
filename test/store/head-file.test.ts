/**
 * The key store notices rollbacks (src/store/head-file.ts, PROTOCOL.md §10 "Head file"): a
 * key_store cut back (at or through a line of every kind, LINE_KINDS) or replaced by another copy
 * is refused at open naming both ends, a compacted one too (§10.2); a crash
 * between a write and its head write is not; an operator's override opens it and is recorded in
 * the store.
 */
import assert from "node:assert/strict";
import { createHmac, hkdfSync, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { lengthPrefixed } from "../../src/crypto/canonical.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import type { FileKeyStore } from "../../src/store/file.js";
import { LINE_KINDS } from "../../src/store/log-format.js";
import {
  bodies,
  claimInput,
  fresh,
  input,
  isCorrupt,
  lines,
  recordingLogger,
  writeChained,
  writeHead,
} from "../helpers/key-store-file.js";

const RESERVED = { ack: "reserved" } as const;

/** The chain MAC (hex) a key_store line carries. */
const macOf = (line: string) => /^\{"mac":"([0-9a-f]{64})"/.exec(line)![1]!;
const prefix = (hex: string) => hex.slice(0, 16);

/** Opening must fail with E_STORE_CORRUPT matching `pattern`, leaving both files as they were. */
async function refused(store: FileKeyStore, pattern: RegExp, what: string): Promise<void> {
  const file = existsSync(store.path) ? await readFile(store.path) : undefined;
  const head = existsSync(store.headPath) ? await readFile(store.headPath) : undefined;
  await assert.rejects(store.open(), isCorrupt(pattern), what);
  assert.deepEqual(
    existsSync(store.path) ? await readFile(store.path) : undefined,
    file,
    `${what}: the key_store is left as it was`,
  );
  assert.deepEqual(
    existsSync(store.headPath) ? await readFile(store.headPath) : undefined,
    head,
    `${what}: the head file is left as it was`,
  );
  assert.equal(existsSync(`${store.path}.lock`), false, `${what}: the lock is released`);
}

const T0 = Date.parse("2030-01-01T00:00:00.000Z");
const HOUR = 3_600_000;
const claimUntil = (n: number, expiresAt: number) => ({
  ...claimInput(n),
  expiresAt: new Date(expiresAt),
});
/** A file's lines, each with its newline. */
const linesOf = (bytes: Buffer) =>
  bytes
    .toString("utf8")
    .split(/(?<=\n)/)
    .filter(Boolean);

/**
 * A closed store whose file holds a line of every kind the format has (LINE_KINDS), none of them
 * only as its last line: a compacted file (compacted; the record, unhold, tlog, opening, claim,
 * step, consume and retire lines the compaction copied, a record written while it copied;
 * switched), then a rollback, a lease, a claims line, a release, a records line, a consumes line
 * and a record. Also what a crash
 * right after the compaction's rename leaves (PROTOCOL §10.2): the compacted file with the head
 * file still naming the old file's end, and that old file.
 */
async function storeWithEveryLineKind() {
  let now = T0;
  const f = await fresh({
    leaseSize: 2,
    clock: () => new Date(now),
    retireEveryMs: 0,
    retireGraceMs: 0,
    retainUsedMs: HOUR,
    compactAtBytes: Number.POSITIVE_INFINITY,
  });
  const crash = { old: Buffer.alloc(0), head: Buffer.alloc(0), compacted: Buffer.alloc(0) };
  const store: FileKeyStore = f.make({
    onCompactionStep: async (step) => {
      // Written to the old file after the scan: copied at the switch, between the compacted
      // line's point and the switched line's.
      if (step === "copied") await store.put(input({ roundId: "during" }));
      if (step === "synced") {
        crash.old = await readFile(f.path);
        crash.head = await readFile(f.headPath);
      }
      if (step === "renamed") crash.compacted = await readFile(f.path);
    },
  });
  await store.open();
  const otps = [];
  for (let i = 0; i < 4; i++) otps.push(await store.put(input({ roundId: `r${i}` })));
  await store.put(input({ roundId: "held", held: true }));
  assert.equal(await store.releaseHeld("held"), 1);
  await store.appendLogEntry(new Uint8Array([1, 2, 3]));
  await store.putRoundOpening("r0", new Uint8Array([9, 9, 9]));
  const owned = await store.put(input({ purpose: "totp", owner: "carol" }));
  await store.claimNext("otp", claimUntil(1, T0 + 60_000));
  await store.useStep(owned.id, 7);
  // A withdrawn OTP retires at once: this one before the compaction's cutoff (dropped, and its
  // retire line with it), the next one after (kept, with the expired claim's record).
  await store.consume(otps[3]!.id);
  assert.equal(await store.retireDue(), 1);
  now = T0 + 2 * HOUR;
  await store.consume(otps[2]!.id);
  assert.equal(await store.retireDue(), 2);
  assert.equal((await store.compact()).dropped, 1);
  await store.close();

  // On the new file: a record cut off and the cut accepted (a rollback line), a reserved claim
  // (lease, claims), the unclaimed leased record handed back at close (release), a record.
  const cut = f.make();
  await cut.open();
  await cut.put(input({ roundId: "cut" }));
  await cut.close();
  await writeFile(f.path, (await lines(f.path)).slice(0, -1).join(""));
  const accepted = f.make({ acceptRollback: true, logger: recordingLogger() });
  await accepted.open();
  await accepted.claimNext("otp", claimUntil(2, now + 60_000), RESERVED);
  await new Promise((resolve) => setImmediate(resolve)); // the turn's claims line
  await accepted.close();
  const last = f.make();
  await last.open();
  // Put in one turn, of one round: a records line.
  const both = await Promise.all([
    last.put(input({ roundId: "both" })),
    last.put(input({ roundId: "both" })),
  ]);
  // Consumed in one turn at one time: a consumes line.
  assert.deepEqual(await Promise.all(both.map((r) => last.consume(r.id))), [true, true]);
  // A round's secret, and a record with a part of it.
  await last.putRoundSecret("parts", new Uint8Array([5]));
  const { secret: _, ...parted } = input({ roundId: "parts" });
  await last.put({ ...parted, roundPart: 0 });
  await last.put(input({ roundId: "last" }));
  await last.close();
  const reopened = f.make();
  await reopened.open();
  const chain = reopened.chain;
  await reopened.close();
  return { f, chain, crash };
}
/** The tests below share one such store (making it compacts it, on a thread of its own). */
let everyKind: ReturnType<typeof storeWithEveryLineKind> | undefined;
const withEveryLineKind = () => {
  everyKind ??= storeWithEveryLineKind();
  return everyKind;
};
after(async () => {
  if (everyKind) await (await everyKind).f.remove();
});

test("a key_store cut back to right after a line of any kind, or through one, is refused at open naming both ends; a torn tail past the head is the usual crash recovery", async () => {
  const { f, chain } = await withEveryLineKind();
  const all = await lines(f.path);
  const kinds = (await bodies(f.path)).map((body) => body.t as string);
  const every = [...LINE_KINDS].sort();
  assert.deepEqual(
    [...new Set(kinds.slice(0, -1))].sort(),
    every,
    "the file has every kind of line the format has, each before its last line",
  );
  assert.equal(all.length, chain.lines);
  const headAfter = await readFile(f.headPath);
  const cutAfter = new Set<string>();
  const cutThrough = new Set<string>();
  for (let i = 0; i < all.length; i++) {
    const kept = all.slice(0, i).join("");
    const found = i === 0 ? "0".repeat(16) : prefix(macOf(all[i - 1]!));
    const names = new RegExp(
      `has ${i} lines, chain head ${found}….*says it had ${all.length} lines, chain head ` +
        `${prefix(chain.head)}…`,
    );
    await writeFile(f.path, kept);
    await refused(f.make(), names, `cut after line ${i} (${kinds[i - 1] ?? "none"})`);
    if (i > 0) cutAfter.add(kinds[i - 1]!);
    // A torn line never counts, whatever its kind: cut through the first line of each kind (an
    // open costs tens of ms; every line would triple the test's time for the same check).
    if (cutThrough.has(kinds[i]!)) continue;
    const line = Buffer.from(all[i]!);
    await writeFile(f.path, Buffer.concat([Buffer.from(kept), line.subarray(0, line.length >> 1)]));
    await refused(f.make(), names, `cut through line ${i + 1} (${kinds[i]})`);
    await writeFile(f.path, Buffer.concat([Buffer.from(kept), line.subarray(0, line.length - 1)]));
    await refused(f.make(), names, `line ${i + 1} (${kinds[i]}) without its newline`);
    cutThrough.add(kinds[i]!);
  }
  assert.deepEqual([...cutAfter].sort(), every, "cut right after a line of every kind");
  assert.deepEqual([...cutThrough].sort(), every, "cut through a line of every kind");
  assert.deepEqual(await readFile(f.headPath), headAfter);

  // Whole, plus a torn line the head never named: opens, and the torn bytes are set aside.
  await writeFile(f.path, `${all.join("")}{"mac":"00`);
  const logger = recordingLogger();
  const store = f.make({ logger });
  await store.open();
  assert.deepEqual(store.chain, chain);
  assert.match(logger.warnings.map((w) => w.message).join("\n"), /torn/);
  await store.close();
});

test("a compacted file whose head file still names the old file's end (a crash after the rename) opens, its switched line naming exactly that end; cut before or through its switched line, or under a head naming another point, it is refused naming both ends", async () => {
  const { f, crash } = await withEveryLineKind();
  const old = linesOf(crash.old);
  const oldEnd = { lines: old.length, head: macOf(old.at(-1)!) };
  const compacted = linesOf(crash.compacted);
  const compactedBodies = compacted.map((line) => JSON.parse(/"body":(.*)\}\n$/.exec(line)![1]!));
  const kinds = compactedBodies.map((body) => body.t as string);
  assert.equal(kinds[0], "compacted");
  assert.equal(kinds.at(-1), "switched");
  assert.deepEqual(compactedBodies.at(-1).from, oldEnd, "the switched line names the old end");
  assert.ok(
    compactedBodies[0].from.lines < oldEnd.lines,
    "a line written while it copied: the compacted line's point is not the switched line's",
  );
  // Fewer lines than the old file: every cut below is refused as "shorter".
  assert.ok(compacted.length < old.length, `${compacted.length} < ${old.length}`);

  const crashImage = async () => {
    await writeFile(f.path, crash.compacted);
    await writeFile(f.headPath, crash.head);
  };
  // As the crash left it: opens, records no rollback, and the head catches up with the file.
  await crashImage();
  const logger = recordingLogger();
  const store = f.make({ logger });
  await store.open();
  assert.deepEqual(store.chain, { lines: compacted.length, head: macOf(compacted.at(-1)!) });
  await store.close();
  assert.deepEqual(await readFile(f.path), crash.compacted, "no line added");
  assert.deepEqual(logger.warnings, []);
  assert.notDeepEqual(await readFile(f.headPath), crash.head, "the head caught up");

  // Cut after any line before the switched line (the cuts through a line are the first test's),
  // or through the switched line, or that line without its newline: the head's point is nowhere
  // in the file.
  await crashImage();
  const switchedLine = Buffer.from(compacted.at(-1)!);
  const cuts: [string, number, Buffer][] = compacted.map((_, i) => [
    `cut after line ${i} (${kinds[i - 1] ?? "none"})`,
    i,
    Buffer.alloc(0),
  ]);
  cuts.push(
    ["cut through the switched line", compacted.length - 1, switchedLine.subarray(0, 90)],
    [
      "the switched line without its newline",
      compacted.length - 1,
      switchedLine.subarray(0, switchedLine.length - 1),
    ],
  );
  for (const [what, i, tail] of cuts) {
    const found = i === 0 ? "0".repeat(16) : prefix(macOf(compacted[i - 1]!));
    await writeFile(f.path, Buffer.concat([Buffer.from(compacted.slice(0, i).join("")), tail]));
    await refused(
      f.make(),
      new RegExp(
        `has ${i} lines, chain head ${found}….*says it had ${oldEnd.lines} lines, chain head ` +
          `${prefix(oldEnd.head)}…`,
      ),
      `compacted file, ${what}`,
    );
  }

  // Whole, but the head names another point: one line earlier in the old file, or the old
  // file's line count under another chain head ("shorter" or "diverged", by the line counts;
  // either names both ends).
  const earlier = { lines: old.length - 1, head: Buffer.from(macOf(old.at(-2)!), "hex") };
  const otherHead = { lines: old.length, head: randomBytes(32) };
  for (const [what, point] of [
    ["the old file's line before its end", earlier],
    ["the old file's length, another chain head", otherHead],
  ] as const) {
    await writeFile(f.path, crash.compacted);
    await writeHead(f.path, f.storeKey, point.lines, point.head);
    await refused(
      f.make(),
      new RegExp(
        `${compacted.length} lines, chain head ${prefix(macOf(compacted.at(-1)!))}….*says.*` +
          `${point.lines} lines, chain head ${prefix(point.head.toString("hex"))}…`,
      ),
      `a head naming ${what}`,
    );
  }
});

test("a key_store restored from an earlier copy is refused, and so is another history of the same length, naming the head's line", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    for (let i = 0; i < 3; i++) await store.put(input({ roundId: `a${i}` }));
    const copy = `${f.dir}/copy`;
    await copyFile(f.path, copy);
    await copyFile(f.headPath, `${f.dir}/other.head`);
    for (let i = 3; i < 6; i++) await store.put(input({ roundId: `a${i}` }));
    const chain = store.chain;
    await store.close();
    const current = await readFile(f.path);

    await copyFile(copy, f.path);
    await refused(f.make(), /has 3 lines.*says it had 6 lines/, "an earlier copy");

    // The copy written on elsewhere (its own head file) to the same length: another history.
    const other = f.make({ headPath: `${f.dir}/other.head` });
    await other.open();
    for (let i = 3; i < 6; i++) await other.put(input({ roundId: `b${i}` }));
    const otherChain = other.chain;
    await other.close();
    assert.equal(otherChain.lines, 6);
    await refused(
      f.make(),
      new RegExp(
        `Line 6 of the key store .* has chain head ${prefix(otherChain.head)}… where its head ` +
          `file .* says ${prefix(chain.head)}…`,
      ),
      "another history",
    );
    // Longer than the head but diverging before its line: refused too.
    const longer = f.make({ headPath: `${f.dir}/other.head` });
    await longer.open();
    await longer.put(input());
    await longer.close();
    await refused(f.make(), /Line 6 of the key store .*\(7 lines/, "a longer other history");

    await writeFile(f.path, current);
    const again = f.make();
    await again.open();
    await again.close();
  } finally {
    await f.remove();
  }
});

test("a key_store edited at the head's line and re-chained with the store key is refused", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    for (let i = 0; i < 3; i++) await store.put(input({ roundId: `r${i}` }));
    await store.close();
    const list = await bodies(f.path);
    list[2] = { ...list[2], purpose: "totp" };
    await writeChained(f.path, f.storeKey, list, { head: false });
    await refused(f.make(), /Line 3 of the key store/, "an edited head line");
  } finally {
    await f.remove();
  }
});

test("a new store gets a head file; a non-empty key_store without one, an unreadable one, or a head file without its key_store is refused", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    assert.ok(existsSync(f.headPath), "made at the first open");
    assert.equal((await stat(f.headPath)).mode & 0o777, 0o600);
    await store.put(input());
    await store.close();
    const head = await readFile(f.headPath);

    await rm(f.headPath);
    await refused(f.make(), /has no head file .*--accept-store-rollback/, "no head file");
    assert.equal(existsSync(f.headPath), false);

    for (const [what, bytes] of [
      ["random bytes", randomBytes(512)],
      ["a short file", head.subarray(0, 300)],
      ["another store key's", await headUnderAnotherKey()],
      ["its slots swapped", Buffer.concat([head.subarray(256), head.subarray(0, 256)])],
    ] as const) {
      await writeFile(f.headPath, bytes);
      await refused(f.make(), /does not verify under the store key/, what);
    }

    // A head file naming a line, but the key_store is gone: refused, and not created.
    await writeFile(f.headPath, head);
    await rm(f.path);
    await refused(f.make(), /has 0 lines.*says it had 1 lines/, "no key_store");
    assert.equal(existsSync(f.path), false, "the key_store is not created");
  } finally {
    await f.remove();
  }
});

async function headUnderAnotherKey(): Promise<Buffer> {
  const other = await fresh();
  try {
    const store = other.make();
    await store.open();
    await store.put(input());
    await store.close();
    return await readFile(other.headPath);
  } finally {
    await other.remove();
  }
}

test("accepting a rollback opens the store, records it in a rollback line naming both ends, and the head follows the file from there", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    for (let i = 0; i < 4; i++) await store.put(input({ roundId: `r${i}` }));
    const [first] = await store.list();
    await store.consume(first!.id);
    const before = store.chain;
    await store.close();
    const all = await lines(f.path);
    await writeFile(f.path, all.slice(0, 3).join(""));

    const logger = recordingLogger();
    const accepted = f.make({
      acceptRollback: true,
      logger,
      clock: () => new Date("2031-02-03T04:05:06.007Z"),
    });
    await accepted.open();
    // The consumption was in the lost tail: that record can be consumed again. This is what the
    // refusal protects against, and what the operator accepted.
    assert.equal((await accepted.get(first!.id))?.consumedAt, undefined);
    await accepted.close();
    const rollback = (await bodies(f.path)).at(-1);
    assert.deepEqual(rollback, {
      t: "rollback",
      v: 1,
      at: "2031-02-03T04:05:06.007Z",
      reason: "shorter",
      found: { lines: 3, head: macOf(all[2]!) },
      expected: { lines: before.lines, head: before.head },
    });
    assert.match(
      logger.warnings.map((w) => w.message).join("\n"),
      /does not match its head file.*rollback line records it/,
    );

    // From here the head names the new file: it opens without the override.
    const reopened = f.make();
    await reopened.open();
    assert.equal(reopened.chain.lines, 4);
    await reopened.close();

    // A store without a head file (one made before head files existed) is adopted the same way.
    await rm(f.headPath);
    const adopted = f.make({ acceptRollback: true, logger: recordingLogger() });
    await adopted.open();
    await adopted.close();
    const adoption = (await bodies(f.path)).at(-1)!;
    assert.equal(adoption.reason, "missing");
    assert.equal(adoption.expected, undefined);
    const plain = f.make();
    await plain.open();
    await plain.close();

    // The override changes nothing when the file matches its head.
    const size = (await stat(f.path)).size;
    const unused = f.make({ acceptRollback: true });
    await unused.open();
    await unused.close();
    assert.equal((await stat(f.path)).size, size);
  } finally {
    await f.remove();
  }
});

test("rollback lines that do not describe the lines before them, or break their schema, are refused at open naming the line", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    await store.put(input());
    await store.put(input());
    await store.close();
    const [a, b] = await bodies(f.path);
    const all = await lines(f.path);
    const after2 = macOf(all[1]!);
    const at = "2031-01-01T00:00:00.000Z";
    const rollback = (extra: Record<string, unknown>) => ({
      t: "rollback",
      v: 1,
      at,
      reason: "shorter",
      found: { lines: 2, head: after2 },
      expected: { lines: 5, head: "ab".repeat(32) },
      ...extra,
    });
    await writeChained(f.path, f.storeKey, [a, b, rollback({})]);
    const sane = f.make();
    await sane.open();
    await sane.close();

    const cases: [string, unknown[], RegExp][] = [
      [
        "wrong line count",
        [a, b, rollback({ found: { lines: 1, head: after2 } })],
        /line 3\b.*describe/,
      ],
      [
        "wrong head",
        [a, b, rollback({ found: { lines: 2, head: "00".repeat(32) } })],
        /line 3\b.*describe/,
      ],
      ["first line", [rollback({ found: { lines: 0, head: after2 } }), a], /line 1\b.*describe/],
      [
        "shorter, not shorter",
        [a, b, rollback({ expected: { lines: 2, head: after2 } })],
        /line 3\b.*"expected.lines"/,
      ],
      ["diverged, shorter", [a, b, rollback({ reason: "diverged" })], /line 3\b.*"expected.lines"/],
      ["missing, with expected", [a, b, rollback({ reason: "missing" })], /line 3\b.*"expected"/],
      ["shorter, no expected", [a, b, rollback({ expected: undefined })], /line 3\b.*"expected"/],
      ["unknown reason", [a, b, rollback({ reason: "oops" })], /line 3\b.*"reason"/],
      ["bad time", [a, b, rollback({ at: "now" })], /line 3\b.*"at"/],
      [
        "uppercase head",
        [a, b, rollback({ found: { lines: 2, head: after2.toUpperCase() } })],
        /line 3\b.*"found.head"/,
      ],
      ["extra field", [a, b, rollback({ by: "me" })], /line 3\b.*unknown field "by"/],
      [
        "extra point field",
        [a, b, rollback({ found: { lines: 2, head: after2, x: 1 } })],
        /line 3\b.*unknown field "x"/,
      ],
    ];
    for (const [name, list, pattern] of cases) {
      await writeChained(f.path, f.storeKey, list);
      await refused(f.make(), pattern, name);
    }
  } finally {
    await f.remove();
  }
});

/** A wrapHeadWrite that counts head writes and can hold them back or make them fail. */
function headWriteControl() {
  const control = {
    writes: 0,
    held: undefined as Promise<void> | undefined,
    release: () => {},
    fail: false,
    hold() {
      control.held = new Promise<void>((resolve) => {
        control.release = () => {
          control.held = undefined;
          resolve();
        };
      });
    },
    wrap:
      (write: (bytes: Uint8Array, position: number) => Promise<void>) =>
      async (bytes: Uint8Array, position: number) => {
        control.writes++;
        if (control.held) await control.held;
        if (control.fail) throw Object.assign(new Error("simulated I/O error"), { code: "EIO" });
        await write(bytes, position);
      },
  };
  return control;
}

test("a crash between a key_store write and its head write opens fine, and the head catches up", async () => {
  const control = headWriteControl();
  const f = await fresh({ wrapHeadWrite: control.wrap });
  try {
    const store = f.make();
    await store.open();
    await store.put(input());
    control.hold();
    // Acknowledged while the head cannot be written: a write never waits for the head.
    for (let i = 0; i < 5; i++) await store.put(input({ roundId: `r${i}` }));
    await store.claimNext("otp", claimInput(1));
    const crashImage = { file: await readFile(f.path), head: await readFile(f.headPath) };
    const chain = store.chain;
    control.release();
    await store.close();
    await writeFile(f.path, crashImage.file);
    await writeFile(f.headPath, crashImage.head);

    const reopened = f.make({ wrapHeadWrite: (write) => write });
    await reopened.open();
    assert.deepEqual(reopened.chain, chain);
    await reopened.close();
    // The head now names the whole file: cutting the last line is caught.
    const all = await lines(f.path);
    await writeFile(f.path, all.slice(0, -1).join(""));
    await refused(f.make(), /has 6 lines.*says it had 7 lines/, "cut after the catch-up");
  } finally {
    await f.remove();
  }
});

test("head writes are coalesced: hundreds of writes and reserved claims cost a handful of head writes", async () => {
  const control = headWriteControl();
  const f = await fresh({ wrapHeadWrite: control.wrap });
  const store = f.make();
  try {
    await store.open();
    const opened = control.writes;
    await Promise.all(
      Array.from({ length: 300 }, (_, i) => store.put(input({ roundId: `r${i}` }))),
    );
    await Promise.all(
      Array.from({ length: 300 }, (_, i) => store.claimNext("otp", claimInput(i), RESERVED)),
    );
    await store.close();
    const { batches } = store.commitStats;
    const headWrites = control.writes - opened;
    assert.ok(
      headWrites >= 1 && headWrites <= batches,
      `${headWrites} head writes, ${batches} batches`,
    );
    assert.ok(headWrites <= 20, `${headWrites} head writes`);
  } finally {
    await f.remove();
  }
});

test("a head write that fails stops further writes until the store is reopened, says so once, and the store reopens", async () => {
  const control = headWriteControl();
  const f = await fresh({ wrapHeadWrite: control.wrap });
  const logger = recordingLogger();
  const store = f.make({ logger });
  try {
    await store.open();
    control.fail = true;
    const record = await store.put(input()); // durable; its head write fails afterwards
    await new Promise((resolve) => setTimeout(resolve, 20));
    await assert.rejects(
      store.put(input()),
      (error: unknown) =>
        error instanceof DkeygenError &&
        error.code === ErrorCodes.OPERATIONAL &&
        /could not write its head file .*\(EIO\).*refuses further writes/.test(error.message),
    );
    await assert.rejects(store.claimNext("otp", claimInput(1)), /head file/);
    assert.equal((await store.get(record.id))?.id, record.id, "reads still work");
    assert.equal(logger.errors.length, 1);
    await store.close();
    const reopened = f.make({ wrapHeadWrite: (write) => write });
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

test("the head file follows the documented format: two slots, alternating counters, MACs recomputed from the store key; a torn newest slot falls back to the other", async () => {
  const f = await fresh();
  try {
    const store = f.make();
    await store.open();
    await store.put(input());
    await store.put(input());
    const chain = store.chain;
    await store.close();
    const bytes = await readFile(f.headPath);
    assert.equal(bytes.length, 512);
    const kHead = Buffer.from(
      hkdfSync("sha256", f.storeKey, Buffer.alloc(0), "dkeygen/v1/store/head-mac", 32),
    );
    const u64 = (n: number) => {
      const out = Buffer.alloc(8);
      out.writeBigUInt64BE(BigInt(n));
      return out;
    };
    const slots = [0, 1].map((i) => {
      const text = bytes.subarray(i * 256, (i + 1) * 256).toString("latin1");
      const match = /^dkeygen-store-head 1 (\d+) (\d+) ([0-9a-f]{64}) ([0-9a-f]{64}) +\n$/.exec(
        text,
      );
      assert.ok(match, text);
      const [counter, lines, head, mac] = [
        Number(match[1]),
        Number(match[2]),
        match[3]!,
        match[4]!,
      ];
      assert.equal(counter % 2, i, "a slot holds the counters of its parity");
      const expected = createHmac("sha256", kHead)
        .update(
          lengthPrefixed(
            "dkeygen/v1/store/head",
            u64(counter),
            u64(lines),
            Buffer.from(head, "hex"),
          ),
        )
        .digest("hex");
      assert.equal(mac, expected);
      return { counter, lines, head };
    });
    const newest = slots[0]!.counter > slots[1]!.counter ? 0 : 1;
    assert.equal(Math.abs(slots[0]!.counter - slots[1]!.counter), 1);
    assert.deepEqual(
      { lines: slots[newest]!.lines, head: slots[newest]!.head },
      chain,
      "the newest slot names the store's end",
    );
    const older = slots[1 - newest]!;
    assert.ok(older.lines < chain.lines);

    // A crash tore the newest slot: the older one is the head, and the file is merely longer.
    const torn = Buffer.from(bytes);
    torn.fill(0x20, newest * 256 + 100, newest * 256 + 200);
    await writeFile(f.headPath, torn);
    const reopened = f.make();
    await reopened.open();
    assert.deepEqual(reopened.chain, chain);
    await reopened.close();
    assert.ok(!(await readdir(f.dir)).some((name) => name.endsWith(".tmp")));
  } finally {
    await f.remove();
  }
});

test("the head file can live elsewhere (headPath)", async () => {
  const f = await fresh();
  const elsewhere = await fresh();
  try {
    const headPath = join(elsewhere.dir, "store.head");
    const store = f.make({ headPath });
    await store.open();
    await store.put(input());
    await store.close();
    assert.equal(existsSync(`${f.path}.head`), false);
    assert.ok(existsSync(headPath));
    await writeFile(f.path, "");
    await refused(f.make({ headPath }), /has 0 lines.*says it had 1 lines/, "truncated");
  } finally {
    await f.remove();
    await elsewhere.remove();
  }
});

test("a head file in a folder that does not exist fails the open clearly, naming it", async () => {
  const f = await fresh();
  try {
    const headPath = join(f.dir, "no-such-folder", "key_store.head");
    await assert.rejects(
      f.make({ headPath }).open(),
      (error: unknown) =>
        error instanceof DkeygenError &&
        error.code === ErrorCodes.OPERATIONAL &&
        error.message.includes(`Cannot write the key store's head file ${headPath}`),
    );
    assert.equal(existsSync(`${f.path}.lock`), false);
  } finally {
    await f.remove();
  }
});
