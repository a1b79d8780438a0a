/**
 * Issue 17's store figures: heap per live record, bytes on disk per pooled OTP from issue to
 * consume, and compaction's speed and how long it holds writes. The records go through the real
 * FileKeyStore the way the server's OTP pool uses it: put held, 100 to a round, released, leased
 * and claimed "reserved", some consumed, retired, compacted.
 *
 * A second disk figure uses the shapes a real server writes (realOtpDisk: round ids, contributor
 * fingerprints, the real stored secret part, request ids; consumptions 64 at a time, and one at
 * a time as the baseline), since the first one's small synthetic participants and secret part
 * understate a real record line by about a third.
 *
 * Heap is measured in a child process run with --expose-gc (this file, with --heap), after full
 * collections. Baselines in the same run: the record's own line on disk (heap ÷ line bytes), and
 * for compaction a plain copy of the same file (`copyFile`, the disk's own speed).
 */
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { copyFile, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { toBase64url } from "../src/crypto/base64url.js";
import { batchOutputSecret } from "../src/crypto/kdf.js";
import { derivationOf } from "../src/derive/index.js";
import { deriveResult, encodeRoundSecret } from "../src/server/stored-secret.js";
import { FileKeyStore } from "../src/store/file.js";
import { ratio, table } from "./stats.js";

const SELF = fileURLToPath(import.meta.url);
const T0 = Date.parse("2030-01-01T00:00:00.000Z");
const PARTICIPANTS = ["contributor-1-aaaaaaaaaaaaaaaa", "contributor-2-bbbbbbbbbbbbbbbb"];
const SECRET = Buffer.from('{"output":{"code":"123456"},"derivation":"otp/v1"}');

interface Populated {
  store: FileKeyStore;
  dir: string;
  path: string;
  setTime(ms: number): void;
}

/** A key_store at `path` that retires and compacts only when told, on the clock `now`. */
async function openBenchStore(path: string, now: () => number): Promise<FileKeyStore> {
  const store = new FileKeyStore({
    path,
    storeKey: randomBytes(32),
    clock: () => new Date(now()),
    retireEveryMs: 0,
    retireGraceMs: 0,
    retainUsedMs: 0,
    compactAtBytes: Number.POSITIVE_INFINITY,
  });
  await store.open();
  return store;
}

/** `parts`: each round keeps a round secret and its records their parts of it, as a refill of
 * OTPs does (round-results.ts); else each record keeps a secret part of its own. */
async function populate(count: number, parts = false): Promise<Populated> {
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-bench-retention-"));
  const path = join(dir, "key_store");
  let now = T0;
  const store = await openBenchStore(path, () => now);
  for (let round = 0; round < count / 100; round++) {
    if (parts) await store.putRoundSecret(`round-${round}`, randomBytes(160));
    const puts = [];
    for (let i = 0; i < 100; i++) {
      puts.push(
        store.put({
          purpose: "otp",
          roundId: `round-${round}`,
          participants: PARTICIPANTS,
          algorithm: "otp/v1",
          public: { digits: 6 },
          ...(parts ? { roundPart: i } : { secret: SECRET }),
          held: true,
        }),
      );
    }
    await Promise.all(puts);
    await store.releaseHeld(`round-${round}`);
  }
  return { store, dir, path, setTime: (ms) => (now = ms) };
}

async function claimAll(p: Populated, count: number, consume: boolean): Promise<void> {
  const claims = [];
  for (let i = 0; i < count; i++) {
    claims.push(
      p.store.claimNext(
        "otp",
        {
          requester: "rq:01JBENCHREQUESTER000000000",
          subject: `user-${i % 5000}`,
          requestId: `req-${i}`,
          expiresAt: new Date(T0 + 1000),
        },
        { ack: "reserved" },
      ),
    );
    if (claims.length === 1000) await Promise.all(claims.splice(0));
  }
  const records = await Promise.all(claims);
  if (consume) {
    for (const record of records) if (record) await p.store.consume(record.id);
  }
}

/** What a pooled OTP's lines weigh, by kind, per OTP (bytes, newline included). */
export interface OtpDisk {
  perOtp: number;
  byKind: Record<string, number>;
}

/**
 * Bytes on disk per pooled OTP with the shapes a real server writes: 16-byte base64url round
 * ids, three contributor fingerprints (`SHA256:` + 43 characters), the round secret the server
 * stores once per refill (encodeRoundSecret) and each record's part of it (round-results.ts),
 * `rq:` requester ids and UUID request ids;
 * refill rounds of 1,000 put held and released, leased and claimed "reserved", each consumed
 * with the verifier's explicit time, `inflight` consumptions at once (64: the soak's
 * connections; 1: one at a time), then retired.
 */
export async function realOtpDisk(count: number, inflight: number): Promise<OtpDisk> {
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-bench-otp-disk-"));
  const path = join(dir, "key_store");
  let now = T0;
  const store = await openBenchStore(path, () => now);
  const fingerprint = () => `SHA256:${randomBytes(32).toString("base64").replace(/=+$/, "")}`;
  const participants = [fingerprint(), fingerprint(), fingerprint()].sort();
  const requester = `rq:${toBase64url(randomBytes(16))}`;
  const otp = derivationOf("otp");
  const params = otp.paramsToJson(otp.parseParams({ digits: 6 }));
  const perRound = Math.min(1000, count);
  for (let round = 0; round < count / perRound; round++) {
    const roundId = toBase64url(randomBytes(16));
    const roundSecret = new Uint8Array(randomBytes(64));
    await store.putRoundSecret(
      roundId,
      encodeRoundSecret({ roundSecret, purpose: "otp", size: perRound, params }),
    );
    // Derived first, then put in one loop, as the server puts each chunk the derivation thread
    // hands it (round-results.ts): one turn's puts of a round share records lines.
    const results = [];
    for (let index = 0; index < perRound; index++) {
      const input = batchOutputSecret(roundSecret, "otp", index);
      results.push(await deriveResult("otp", input, { index, size: perRound }, params));
      input.fill(0);
    }
    const puts = [];
    for (const [index, result] of results.entries()) {
      result.payload.fill(0);
      puts.push(
        store.put({
          purpose: "otp",
          roundId,
          participants,
          algorithm: result.algorithm,
          public: result.public,
          roundPart: index,
          held: true,
        }),
      );
    }
    await Promise.all(puts);
    await store.releaseHeld(roundId);
  }
  const claimed = [];
  for (let from = 0; from < count; from += 1000) {
    const claims = [];
    for (let i = from; i < Math.min(count, from + 1000); i++) {
      claims.push(
        store.claimNext(
          "otp",
          {
            requester,
            subject: `user-${i % 100_000}`,
            requestId: randomUUID(),
            expiresAt: new Date(T0 + 30_000),
          },
          { ack: "reserved" },
        ),
      );
    }
    claimed.push(...(await Promise.all(claims)));
  }
  for (let i = 0; i < claimed.length; i += inflight) {
    await Promise.all(
      claimed.slice(i, i + inflight).map((record) => store.consume(record!.id, new Date(now))),
    );
  }
  now = T0 + 60_000;
  await store.retireDue();
  await store.close();
  const byKind: Record<string, number> = {};
  for (const line of (await readFile(path, "utf8")).split("\n")) {
    const kind = /"body":\{"t":"([a-z]+)"/.exec(line)?.[1];
    if (kind) byKind[kind] = (byKind[kind] ?? 0) + (Buffer.byteLength(line) + 1) / count;
  }
  const perOtp = (await stat(path)).size / count;
  await rm(dir, { recursive: true, force: true });
  return { perOtp, byKind };
}

/** In the child: heap per record, pooled and claimed, after full collections. */
async function heapChild(count: number, parts: boolean): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  const warm = await populate(1000, parts);
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const p = await populate(count, parts);
  gc();
  gc();
  const pooled = (process.memoryUsage().heapUsed - before) / count;
  await claimAll(p, count, false);
  gc();
  gc();
  const claimed = (process.memoryUsage().heapUsed - before) / count;
  const lineBytes = (await stat(p.path)).size / count;
  await p.store.close();
  await warm.store.close();
  await rm(p.dir, { recursive: true, force: true });
  await rm(warm.dir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify({ pooled, claimed, lineBytes })}\n`);
}

export async function benchRetention(
  options: { count?: number; progress?: (line: string) => void } = {},
): Promise<{ report: string }> {
  const count = options.count ?? 100_000;
  options.progress?.(`heap per record: ${count} OTPs in a child process`);
  const heapOf = async (parts: boolean) => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--expose-gc", SELF, "--heap", String(count), ...(parts ? ["parts"] : [])],
      { maxBuffer: 1 << 20 },
    );
    return JSON.parse(stdout.trim().split("\n").at(-1)!) as {
      pooled: number;
      claimed: number;
      lineBytes: number;
    };
  };
  const heap = await heapOf(false);
  options.progress?.(`heap per record with round parts: ${count} OTPs in a child process`);
  const heapParts = await heapOf(true);

  options.progress?.(`bytes per OTP, issue to consume, and compaction: ${count} OTPs`);
  const p = await populate(count);
  const afterPut = (await stat(p.path)).size;
  await claimAll(p, count, true);
  p.setTime(T0 + 2000);
  await p.store.retireDue();
  const afterRetire = (await stat(p.path)).size;
  const perOtp = afterRetire / count;
  // Half the records again, live: what a compaction keeps.
  const live = await (async () => {
    for (let round = 0; round < count / 200; round++) {
      const puts = [];
      for (let i = 0; i < 100; i++) {
        puts.push(
          p.store.put({
            purpose: "otp",
            roundId: `live-${round}`,
            participants: PARTICIPANTS,
            algorithm: "otp/v1",
            public: { digits: 6 },
            secret: SECRET,
          }),
        );
      }
      await Promise.all(puts);
    }
    return count / 2;
  })();
  p.setTime(T0 + 3000);
  const fileBytes = (await stat(p.path)).size;
  const copyStart = performance.now();
  await copyFile(p.path, `${p.path}.copy`);
  const copyMs = performance.now() - copyStart;
  await rm(`${p.path}.copy`);
  let maxGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const t = performance.now();
    maxGap = Math.max(maxGap, t - last);
    last = t;
  }, 1);
  const start = performance.now();
  const report = await p.store.compact();
  const compactMs = performance.now() - start;
  clearInterval(timer);
  await p.store.close();
  await rm(p.dir, { recursive: true, force: true });

  options.progress?.(`bytes per OTP with a real server's shapes: ${count / 5} OTPs, twice`);
  const real = await realOtpDisk(count / 5, 64);
  const oneByOne = await realOtpDisk(count / 5, 1);
  const kinds = (disk: OtpDisk) =>
    Object.entries(disk.byKind)
      .map(([kind, bytes]) => `${kind} ${bytes.toFixed(0)}`)
      .join(", ");

  const mb = (bytes: number) => bytes / 1e6;
  const rows = [
    [
      "heap per live record, pooled",
      `${heap.pooled.toFixed(0)} B`,
      `${ratio(heap.pooled / heap.lineBytes)} its line on disk (${heap.lineBytes.toFixed(0)} B)`,
      `≤ 500 B: ${heap.pooled <= 500 ? "met" : "not met"}`,
    ],
    [
      "heap per live record, claimed",
      `${heap.claimed.toFixed(0)} B`,
      `${ratio(heap.claimed / heap.lineBytes)} its line on disk`,
      `≤ 500 B: ${heap.claimed <= 500 ? "met" : "not met"}`,
    ],
    [
      "heap per live record with a part of its round's secret (a refill's OTPs), pooled / claimed",
      `${heapParts.pooled.toFixed(0)} B / ${heapParts.claimed.toFixed(0)} B`,
      `${ratio(heapParts.claimed / heap.claimed)} claimed with its own secret part`,
      `≤ 500 B: ${Math.max(heapParts.pooled, heapParts.claimed) <= 500 ? "met" : "not met"}`,
    ],
    [
      "disk per pooled OTP, put held → released → leased → claimed → consumed → retired",
      `${perOtp.toFixed(0)} B`,
      `${ratio(perOtp / (afterPut / count))} the record line and its round's unhold`,
      `≤ 400 B: ${perOtp <= 400 ? "met" : "not met"}`,
    ],
    [
      "disk per pooled OTP, a real server's shapes, 64 consumptions in flight",
      `${real.perOtp.toFixed(0)} B`,
      `${ratio(real.perOtp / oneByOne.perOtp)} one at a time (${oneByOne.perOtp.toFixed(0)} B)`,
      `≤ 400 B: ${real.perOtp <= 400 ? "met" : "not met"}`,
    ],
    [`  by line kind, B per OTP: ${kinds(real)}`, "—", `one at a time: ${kinds(oneByOne)}`, "—"],
    [
      `compaction of ${mb(fileBytes).toFixed(1)} MB (${count} retired dropped, ${live} live kept)`,
      `${compactMs.toFixed(0)} ms (${(mb(fileBytes) / (compactMs / 1000)).toFixed(1)} MB/s)`,
      `${ratio(compactMs / copyMs)} copyFile of the same file (${copyMs.toFixed(0)} ms)`,
      "—",
    ],
    [
      "compaction: writes held for the switch / longest event-loop pause",
      `${report.heldMs.toFixed(1)} ms / ${maxGap.toFixed(1)} ms`,
      "—",
      "—",
    ],
    [
      "file after compaction",
      `${mb(report.bytesAfter).toFixed(1)} MB`,
      `${ratio(report.bytesAfter / fileBytes)} before`,
      "—",
    ],
  ];
  return {
    report: `${table(["measure", "figure", "÷ baseline", "target"], rows)}\n`,
  };
}

if (process.argv[2] === "--heap") {
  await heapChild(Number(process.argv[3] ?? 100_000), process.argv[4] === "parts");
}
