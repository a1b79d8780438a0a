/**
 * Soak (issue 17, "Bounded memory and disk under sustained load"): OTP requests at full rate for a
 * set time against a real `dkeygen server` on the key_store file, its pool refilled by rounds
 * throughout (two contributors, bench/swarm.ts), a sample of the delivered codes opened and
 * verified. Every 10 s one row: the server's RSS, heap used, key_store size and live records
 * (bench/soak-server.ts, sampled every second), requests/s, p99 and errors in that interval.
 * At the end, the issue's targets against the warm figures (the warm-up's last minute: its
 * median RSS, its p99): RSS after the warm-up within 1.25× of the warm RSS; no interval's p99 above 2× the
 * warm p99 (compaction must not stall requests); requests/s of the last interval against the
 * first; the key_store levelling off (its mean size right after the compactions of the second
 * half of the measured time within 1.1× of the first half's: what retention leaves, the peaks
 * being where a compaction happened to start); every sampled code verifying.
 *
 *   npm run soak [-- --minutes 14 --warmup-minutes 4 --ttl 30 --sample 20 --connections 64
 *                   --pool 50000 --subjects 100000 --dir /var/tmp -- SERVER FLAGS…]
 *   (also `npm run bench -- soak`, 3 minutes by default)
 *
 * Environment (a flag wins): SOAK_MINUTES, SOAK_WARMUP_MINUTES, SOAK_TTL_SECONDS,
 * SOAK_CONNECTIONS, SOAK_DIR, SOAK_SERVER_ARGS (extra `dkeygen server` flags, space-separated,
 * e.g. "--retain-used 2m"; flags after a second `--` go there too); DKEYGEN_BENCH_NODE_ARGS, the server's
 * `node` flags (default README's "--max-semi-space-size=64 --heap-growing-percent=30"; "" for none).
 *
 * The load: autocannon here, `--connections` keep-alive connections, each request for the next
 * of `--subjects` subjects in turn with `ttlSeconds` = `--ttl` (30 s, the least the API takes, so
 * the live set levels off soon); every `--sample`-th request on a connection has its answer
 * opened (DeliveryOpener: the requester's key, the server's MAC) and its code verified through
 * POST /v1/otp/verify with the RequesterClient (at most 64 verifications in flight; a sample
 * beyond that is counted as skipped, not sent). Latencies and rates are autocannon's OTP requests
 * only, every answer counted (a 503 from an empty pool is an error and its time counts too).
 * Rate limits and the OTP quota are off (policy, not capacity).
 */
import { createSecretKey, type KeyObject } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { DeliveryOpener } from "../src/client/delivery-opener.js";
import { RequesterClient } from "../src/client/requester.js";
import { Secret } from "../src/crypto/secret.js";
import { isDkeygenError } from "../src/errors.js";
import { deriveResponseKey } from "../src/protocol/answer-auth.js";
import type { DeliveryEnvelopeWire } from "../src/protocol/messages.js";
import { startDistribution } from "./distribution.js";
import type { SoakStats } from "./soak-server.js";
import { percentile, ratio, table } from "./stats.js";

const SOAK_SERVER = fileURLToPath(new URL("./soak-server.js", import.meta.url));
/** The `node` flags README recommends for a server handing out OTPs at full rate. */
const SERVER_NODE_ARGS = "--max-semi-space-size=64 --heap-growing-percent=30";

/** One row per this many seconds (issue 17). */
const ROW_SECONDS = 10;
/** The server samples itself this often; rows show the last sample, the RSS target every one. */
const SAMPLE_MS = 1_000;
/** Verifications of sampled codes in flight at most. */
const MAX_VERIFYING = 64;
/** The warm p99 is over the warm-up's last minute. */
const WARM_P99_SECONDS = 60;

export interface SoakOptions {
  /**
   * Minutes of load in all, warm-up included (default 14: 4 of warm-up, 10 measured). At full
   * rate the live set levels off after about 2.5 minutes (the pool, then the OTPs of the last
   * TTL and retire grace) and V8 sizes its heap for it by the 4th; a shorter warm-up measures
   * that growth, not the steady state.
   */
  minutes?: number;
  /** Minutes of warm-up (default: a third of `minutes`, at most 4). */
  warmupMinutes?: number;
  /** ttlSeconds of every OTP requested (default 30, the API's least). */
  ttlSeconds?: number;
  /** Open and verify one answer in this many on each connection (default 20). */
  sampleEvery?: number;
  /** autocannon connections (default 64). */
  connections?: number;
  /** The server's --otp-pool (default 50,000: refills are rounds of up to 10,000). */
  pool?: number;
  /** Subjects requested in turn (default 100,000). */
  subjects?: number;
  /** Extra `dkeygen server` flags, passed as given (e.g. --retain-used 2m). */
  serverArgs?: readonly string[];
  /** Where the server's data folder goes (default: the OS temporary folder). */
  dir?: string;
  progress?: (line: string) => void;
}

export interface SoakInterval {
  /** Seconds since the load started, at the end of the interval. */
  elapsed: number;
  warm: boolean;
  rss: number | null;
  heapUsed: number | null;
  /** V8's heap as committed (used or not) and the memory outside it held by JS objects. */
  heapTotal: number | null;
  external: number | null;
  storeBytes: number | null;
  liveRecords: number | null;
  rps: number;
  p99: number;
  errors: number;
  /** The server's CPU in the interval, in percent of one core (every thread). */
  serverCpu: number | null;
}

export interface SoakResult {
  intervals: SoakInterval[];
  targets: { rss: boolean | null; p99: boolean | null; storeLevels: boolean | null };
  verification: Record<string, number>;
  /** Something that makes the run itself a failure (a sampled code that did not verify, the
   * server gone); empty when it ran clean. */
  failures: string[];
  report: string;
}

/** The soak's settings from SOAK_* variables, over `defaults`. */
export function soakOptionsFromEnv(defaults: SoakOptions = {}): SoakOptions {
  const env = process.env;
  const number = (name: string): number | undefined => {
    const value = env[name];
    if (value === undefined || value === "") return undefined;
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`soak: ${name} must be a positive number`);
    return n;
  };
  const options: SoakOptions = { ...defaults };
  const set = <K extends keyof SoakOptions>(key: K, value: SoakOptions[K] | undefined) => {
    if (value !== undefined) options[key] = value;
  };
  set("minutes", number("SOAK_MINUTES"));
  set("warmupMinutes", number("SOAK_WARMUP_MINUTES"));
  set("ttlSeconds", number("SOAK_TTL_SECONDS"));
  set("connections", number("SOAK_CONNECTIONS"));
  set("dir", env.SOAK_DIR || undefined);
  const serverArgs = env.SOAK_SERVER_ARGS?.split(/\s+/).filter(Boolean) ?? [];
  if (serverArgs.length > 0) set("serverArgs", serverArgs);
  return options;
}

const mb = (bytes: number | null | undefined) =>
  bytes === null || bytes === undefined ? "—" : (bytes / 1e6).toFixed(1);

/** A server sample, with when it arrived here (performance.now()). */
interface Sample extends SoakStats {
  at: number;
}

/** Server samples, read from the soak server's standard output as they come. */
class ServerSamples {
  readonly all: Sample[] = [];

  add(line: string): void {
    if (!line.startsWith("{") || !line.includes('"soak.stats"')) return;
    try {
      const stats = JSON.parse(line) as SoakStats;
      if (stats.type === "soak.stats") this.all.push({ ...stats, at: performance.now() });
    } catch {
      // Not one of ours (a log line that happens to mention it).
    }
  }

  get last(): Sample | undefined {
    return this.all.at(-1);
  }

  /** The last sample that arrived at or before `at`. */
  before(at: number): Sample | undefined {
    let found: Sample | undefined;
    for (const s of this.all) {
      if (s.at > at) break;
      found = s;
    }
    return found;
  }
}

/** The requester's delivery opener, from its credential (dkr_<name>.<secret>) and key pair. */
function openerFor(credential: string, keys: { privateKey: KeyObject; fingerprint: string }) {
  const parts = /^dkr_([A-Za-z0-9][A-Za-z0-9._@-]{0,63})\.([A-Za-z0-9_-]{43})$/.exec(credential);
  if (!parts) throw new Error("soak: the requester credential is not dkr_<name>.<secret>");
  const raw = deriveResponseKey(parts[1]!, parts[2]!);
  const responseKey = createSecretKey(raw);
  raw.fill(0);
  return new DeliveryOpener(keys.privateKey, keys.fingerprint, responseKey);
}

export async function benchSoak(options: SoakOptions = {}): Promise<SoakResult> {
  const minutes = options.minutes ?? 14;
  const warmupMinutes = options.warmupMinutes ?? Math.min(4, minutes / 3);
  const ttlSeconds = options.ttlSeconds ?? 30;
  const sampleEvery = Math.max(1, Math.round(options.sampleEvery ?? 20));
  const connections = options.connections ?? 64;
  const pool = options.pool ?? 50_000;
  const subjects = options.subjects ?? 100_000;
  const serverArgs = [...(options.serverArgs ?? [])];
  const progress = options.progress ?? ((line: string) => process.stderr.write(`  ${line}\n`));
  const seconds = Math.round(minutes * 60);
  const warmSeconds = Math.round(warmupMinutes * 60);
  if (warmSeconds + 2 * ROW_SECONDS > seconds) {
    throw new Error(
      `soak: ${minutes} minutes leave less than ${2 * ROW_SECONDS} s measured after ${warmupMinutes} minutes of warm-up`,
    );
  }

  const root = await mkdtemp(join(options.dir ?? tmpdir(), "dkeygen-soak-"));
  let server: Awaited<ReturnType<typeof startDistribution>> | undefined;
  try {
    // The server's `node` flags: the README's for a server at full rate, unless
    // DKEYGEN_BENCH_NODE_ARGS says otherwise ("" for none: V8's defaults).
    const nodeArgs = process.env.DKEYGEN_BENCH_NODE_ARGS ?? SERVER_NODE_ARGS;
    process.env.DKEYGEN_BENCH_NODE_ARGS = nodeArgs;
    progress(
      `starting the server (node ${nodeArgs ? `${nodeArgs} ` : ""}bench/soak-server.js: dkeygen server${serverArgs.length ? ` ${serverArgs.join(" ")}` : ", no extra flags"})`,
    );
    // Info, for the store's compaction reports (flags given after it win).
    const args = ["--log-level", "info", ...serverArgs];
    server = await startDistribution(join(root, "soak"), pool, args, progress, {
      entry: [SOAK_SERVER],
      env: { SOAK_STATS_MS: String(SAMPLE_MS) },
      noWait: true,
    });
    const samples = new ServerSamples();
    createInterface({ input: server.child.stdout! }).on("line", (line) => samples.add(line));
    // The store logs each compaction it runs by itself (info): what it dropped, how long
    // writes were held for the switch.
    const compacted: Array<{ at: number; report: Record<string, unknown> }> = [];
    // Each round's log entry stays for good (the evidence): how many the refills logged.
    let roundsLogged = 0;
    createInterface({ input: server.child.stderr! }).on("line", (line) => {
      if (line.includes('"round logged"')) roundsLogged++;
      if (!line.includes('"key store compacted"')) return;
      try {
        compacted.push({ at: performance.now(), report: JSON.parse(line) });
      } catch {
        // Not a JSON log line.
      }
    });
    let serverExit: string | undefined;
    server.child.on("exit", (code, signal) => {
      serverExit = `the server exited (${signal ?? `code ${code}`})`;
    });
    await server.filled();

    const client = new RequesterClient({
      server: server.httpUrl,
      credential: new Secret(new Uint8Array(Buffer.from(server.credential, "utf8"))),
      privateKey: server.keys.privateKey,
      fingerprint: server.keys.fingerprint,
    });
    const opener = openerFor(server.credential, server.keys);

    // The sample: each answer opened, its code verified, and the outcome counted.
    const verification: Record<string, number> = {};
    /** The first message of each failure, with when it came (s into the load). */
    const firstFailures = new Map<string, string>();
    const count = (what: string, message?: string) => {
      verification[what] = (verification[what] ?? 0) + 1;
      if (message !== undefined && !firstFailures.has(what)) {
        firstFailures.set(
          what,
          `${((performance.now() - loadStart) / 1000).toFixed(0)} s: ${message}`,
        );
      }
    };
    const verifying = new Set<Promise<void>>();
    const verifySample = (body: string) => {
      if (verifying.size >= MAX_VERIFYING) {
        count("skipped (too many in flight)");
        return;
      }
      let subject: string;
      let code: string;
      try {
        const reply = JSON.parse(body) as {
          requestId: string;
          otpId: string;
          subject: string;
          envelope: DeliveryEnvelopeWire;
        };
        const payload = opener.open("otp", reply.requestId, reply.otpId, reply.envelope);
        if (payload.otpId !== reply.otpId || typeof payload.code !== "string") {
          throw new Error("the delivery does not match its envelope");
        }
        subject = reply.subject;
        code = payload.code;
      } catch (error) {
        count(`not opened: ${isDkeygenError(error) ? error.code : (error as Error).message}`);
        return;
      }
      // Never rejects: every outcome is counted.
      const done: Promise<void> = client
        .verifyOtp(subject, code)
        .then(
          (verdict) => count(verdict.valid ? "valid" : `not valid: ${verdict.reason}`),
          (error: unknown) =>
            count(
              `verify failed: ${isDkeygenError(error) ? error.code : (error as Error).message}`,
              (error as Error).message,
            ),
        )
        .finally(() => verifying.delete(done));
      verifying.add(done);
    };

    // The load, with the rows on a 10-second clock from its start.
    let next = 0;
    const request = (req: autocannon.Request) => {
      req.body = JSON.stringify({ subject: `u${next++ % subjects}`, ttlSeconds });
      return req;
    };
    const plain: autocannon.Request = { setupRequest: request };
    const sampled: autocannon.Request = {
      setupRequest: request,
      onResponse: (status, body) => {
        if (status === 200) verifySample(body);
      },
    };
    const statuses: Record<string, number> = {};
    let latencies: number[] = [];
    let errors = 0;
    const warmLatencies: number[][] = [];
    const intervals: SoakInterval[] = [];
    let intervalStart = 0;
    let lastCpu: Sample | undefined;
    const generatorStart = process.cpuUsage();
    let loadStart = 0;

    progress(
      `load: ${seconds} s (${warmSeconds} s warm-up), ${connections} connections, ttl ${ttlSeconds} s, one answer in ${sampleEvery} verified`,
    );
    const header = [
      "s",
      "phase",
      "RSS MB",
      "heap MB",
      "heap total",
      "external",
      "store MB",
      "live records",
      "req/s",
      "p99 ms",
      "errors",
      "server CPU",
    ];
    const cells = (i: SoakInterval) => [
      String(i.elapsed),
      i.warm ? "warm-up" : "measured",
      mb(i.rss),
      mb(i.heapUsed),
      mb(i.heapTotal),
      mb(i.external),
      mb(i.storeBytes),
      i.liveRecords === null ? "—" : String(i.liveRecords),
      i.rps.toFixed(0),
      i.p99.toFixed(1),
      String(i.errors),
      i.serverCpu === null ? "—" : `${i.serverCpu.toFixed(0)}%`,
    ];
    const widths = [5, 8, 7, 7, 10, 8, 8, 12, 7, 7, 6, 10];
    const line = (row: string[]) =>
      row.map((c, i) => (i === 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
    progress(line(header));

    const closeInterval = () => {
      const now = performance.now();
      const span = (now - intervalStart) / 1000;
      intervalStart = now;
      const elapsed = Math.round((now - loadStart) / 1000);
      const sample = samples.last;
      const cpu =
        sample && lastCpu && sample.ms > lastCpu.ms
          ? (100 * (sample.cpuUs - lastCpu.cpuUs)) / 1000 / (sample.ms - lastCpu.ms)
          : null;
      if (sample) lastCpu = sample;
      const warm = elapsed <= warmSeconds;
      const interval: SoakInterval = {
        elapsed,
        warm,
        rss: sample?.rss ?? null,
        heapUsed: sample?.heapUsed ?? null,
        heapTotal: sample?.heapTotal ?? null,
        external: sample?.external ?? null,
        storeBytes: sample?.storeBytes ?? null,
        liveRecords: sample?.liveRecords ?? null,
        rps: latencies.length / span,
        p99: percentile(latencies, 99),
        errors,
        serverCpu: cpu,
      };
      if (warm) {
        warmLatencies.push(latencies);
        if (warmLatencies.length > WARM_P99_SECONDS / ROW_SECONDS) warmLatencies.shift();
      }
      latencies = [];
      errors = 0;
      intervals.push(interval);
      progress(line(cells(interval)));
    };

    const result = await new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon(
        {
          url: `${server!.httpUrl}/v1/otp/request`,
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${server!.credential}`,
          },
          connections,
          duration: seconds,
          timeout: 30,
          requests: [...Array.from({ length: sampleEvery - 1 }, () => plain), sampled],
        },
        (error, done) => {
          clearInterval(ticker);
          if (error) reject(error);
          else resolve(done);
        },
      );
      loadStart = performance.now();
      intervalStart = loadStart;
      lastCpu = samples.last;
      const ticker = setInterval(() => {
        closeInterval();
        if (serverExit !== undefined) instance.stop();
      }, ROW_SECONDS * 1000);
      instance.on("response", (_client, status, _bytes, responseTime) => {
        latencies.push(responseTime);
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status < 200 || status > 299) errors++;
      });
      instance.on("reqError", () => {
        errors++;
        statuses.error = (statuses.error ?? 0) + 1;
      });
    });
    const loadEnd = performance.now();
    // The tail after the last full interval, when long enough to say something.
    if (performance.now() - intervalStart >= (ROW_SECONDS * 1000) / 2) closeInterval();
    await Promise.all(verifying);
    const generator = process.cpuUsage(generatorStart);
    const generatorCpu = (100 * (generator.user + generator.system)) / 1e6 / result.duration;

    // The targets, against the warm figures.
    const warmEnd = loadStart + warmSeconds * 1000;
    const warmSample = samples.before(warmEnd);
    const after = samples.all.filter((s) => s.at > warmEnd && s.at <= loadEnd);
    const peak = after.reduce<Sample | undefined>(
      (m, s) => (!m || s.rss > m.rss ? s : m),
      undefined,
    );
    // The warm RSS: the median of the warm-up's last minute, not its last sample, which may fall
    // at the top of a compaction's or a collection's swing, or at the bottom.
    const warmRssSamples = samples.all
      .filter((s) => s.at > warmEnd - WARM_P99_SECONDS * 1000 && s.at <= warmEnd)
      .map((s) => s.rss);
    const warmRss = warmRssSamples.length > 0 ? percentile(warmRssSamples, 50) : null;
    const rssRatio = warmRss !== null && peak ? peak.rss / warmRss : null;
    // And over the first 10 measured minutes alone (the issue's window), when the run is longer.
    const firstTen = after.filter((s) => s.at <= warmEnd + 600_000);
    const peakFirstTen = firstTen.reduce((m, s) => Math.max(m, s.rss), 0);
    const rssRatioFirstTen =
      warmRss !== null && firstTen.length < after.length && peakFirstTen > 0
        ? peakFirstTen / warmRss
        : null;
    const measured = intervals.filter((i) => !i.warm);
    const warmP99 = percentile(warmLatencies.flat(), 99);
    const worst = measured.reduce<SoakInterval | undefined>(
      (m, i) => (!m || i.p99 > m.p99 ? i : m),
      undefined,
    );
    const p99Ratio = worst ? worst.p99 / warmP99 : null;
    const first = measured[0];
    const last = measured.at(-1);
    const half = Math.floor(after.length / 2);
    const storeMax = (list: Sample[]) => list.reduce((m, s) => Math.max(m, s.storeBytes ?? 0), 0);
    const firstHalfStore = storeMax(after.slice(0, half));
    const secondHalfStore = storeMax(after.slice(half));
    const peakRatio =
      warmSample?.storeBytes == null || firstHalfStore === 0
        ? null
        : secondHalfStore / firstHalfStore;
    // What retention leaves is the file right after a compaction (what is live, plus what retired
    // within the retention); its peaks are where the next compaction happened to start (once
    // half of the file is droppable), so they follow the request rate of the minutes before.
    // Levelling off: the mean size after the measured half's compactions within 1.1× of the
    // first half's.
    const midpoint = after[half]?.at ?? Number.POSITIVE_INFINITY;
    const troughs = (list: typeof compacted) =>
      list.map(({ report: r }) => Number(r.bytesAfter)).filter(Number.isFinite);
    const measuredCompactions = compacted.filter(({ at }) => at >= loadStart + warmSeconds * 1000);
    const firstTroughs = troughs(measuredCompactions.filter(({ at }) => at < midpoint));
    const secondTroughs = troughs(measuredCompactions.filter(({ at }) => at >= midpoint));
    const mean = (list: number[]) => list.reduce((a, b) => a + b, 0) / list.length;
    const storeRatio =
      firstTroughs.length === 0 || secondTroughs.length === 0
        ? null
        : mean(secondTroughs) / mean(firstTroughs);
    const halfMinutes =
      after.length > 1 ? (after.at(-1)!.at - after[half]!.at) / 60_000 : Number.NaN;
    // Each compaction as the server logged it: when, from and to, writes held for the switch.
    const compactions = compacted.map(({ at, report: r }) => {
      const held = typeof r.heldMs === "number" ? `${r.heldMs.toFixed(0)} ms held` : "";
      return `${Math.round((at - loadStart) / 1000)} s: ${mb(Number(r.bytesBefore))} → ${mb(Number(r.bytesAfter))} MB, ${r.dropped} dropped, ${held}`;
    });
    const heldMs = compacted.map(({ report: r }) => Number(r.heldMs)).filter(Number.isFinite);
    const lastHalfGrowth =
      after.length > 1 ? (after.at(-1)!.storeBytes ?? 0) - (after[half]!.storeBytes ?? 0) : 0;

    const failures: string[] = [];
    if (serverExit) failures.push(serverExit);
    const sampledTotal = Object.values(verification).reduce((s, n) => s + n, 0);
    const notValid =
      sampledTotal -
      (verification.valid ?? 0) -
      (verification["skipped (too many in flight)"] ?? 0);
    if (notValid > 0) {
      const first = [...firstFailures].map(([what, message]) => `${what} (first at ${message})`);
      failures.push(
        `${notValid} sampled codes did not verify${first.length ? `: ${first.join("; ")}` : ""}`,
      );
    }
    if (measured.length === 0) failures.push("no measured interval");

    const verdict = (ok: boolean | null) => (ok === null ? "no figure" : ok ? "met" : "not met");
    const targets = {
      rss: rssRatio === null ? null : rssRatio <= 1.25,
      p99: p99Ratio === null ? null : p99Ratio <= 2,
      storeLevels: storeRatio === null ? null : storeRatio <= 1.1,
    };
    const report = [
      `OTP requests at full rate for ${seconds} s (${warmSeconds} s of warm-up), autocannon, ${connections} connections, ttlSeconds ${ttlSeconds},`,
      `${subjects} subjects in turn, one answer in ${sampleEvery} opened and verified; dkeygen server on the key_store file, --otp-pool ${pool},`,
      `2 contributors refilling it throughout; extra server flags: ${serverArgs.length ? serverArgs.join(" ") : "none"}; server sampled every ${SAMPLE_MS / 1000} s, a row every ${ROW_SECONDS} s`,
      "",
      table(header, intervals.map(cells)),
      "",
      `RSS: warm ${mb(warmRss)} MB (median of the warm-up's last ${Math.min(WARM_P99_SECONDS, warmSeconds)} s), highest after ${mb(peak?.rss)} MB${peak ? ` (at ${Math.round((peak.at - loadStart) / 1000)} s)` : ""}: ${rssRatio === null ? "—" : ratio(rssRatio)} (target ≤ 1.25×): ${verdict(targets.rss)}${rssRatioFirstTen === null ? "" : `; in the first 10 measured minutes ${mb(peakFirstTen)} MB, ${ratio(rssRatioFirstTen)}`}`,
      `p99: warm ${warmP99.toFixed(1)} ms (the warm-up's last ${Math.min(WARM_P99_SECONDS, warmSeconds)} s), worst measured interval ${worst ? `${worst.p99.toFixed(1)} ms (at ${worst.elapsed} s)` : "—"}: ${p99Ratio === null ? "—" : ratio(p99Ratio)} (target ≤ 2×): ${verdict(targets.p99)}`,
      `requests/s: first measured interval ${first?.rps.toFixed(0) ?? "—"}, last ${last?.rps.toFixed(0) ?? "—"}${first && last ? ` (${ratio(last.rps / first.rps)})` : ""}; ${(result.requests.total / result.duration).toFixed(0)}/s over the whole run`,
      `store after a compaction (what retention leaves): ${firstTroughs.length ? `${mb(mean(firstTroughs))} MB` : "—"} on average in the first half of the measured time, ${secondTroughs.length ? `${mb(mean(secondTroughs))} MB` : "—"} in the second (${storeRatio === null ? "no compaction in a half" : ratio(storeRatio)}; levels off: ≤ 1.1×): ${verdict(targets.storeLevels)}`,
      `store peaks (where a compaction starts): ${mb(warmSample?.storeBytes)} MB warm, largest ${mb(firstHalfStore)} MB in the first half and ${mb(secondHalfStore)} MB in the second (${peakRatio === null ? "—" : ratio(peakRatio)}); the last half's samples went from ${mb(after[half]?.storeBytes)} to ${mb(after.at(-1)?.storeBytes)} MB (${mb(lastHalfGrowth)} MB, ${(lastHalfGrowth / 1e6 / halfMinutes).toFixed(1)} MB/min)`,
      `rounds logged (refills; each log entry is evidence, kept for good): ${roundsLogged}, ${(roundsLogged / result.duration).toFixed(2)}/s, ${roundsLogged ? (result.requests.total / roundsLogged).toFixed(0) : "—"} requests a round`,
      `compactions: ${compactions.length}${heldMs.length ? `, writes held ${Math.min(...heldMs).toFixed(0)}–${Math.max(...heldMs).toFixed(0)} ms for the switch` : ""}${compactions.length ? `\n  ${compactions.join("\n  ")}` : ""}`,
      `answers: ${Object.entries(statuses)
        .map(([s, n]) => `${s}: ${n}`)
        .join(", ")}`,
      `sampled codes: ${
        Object.entries(verification)
          .map(([what, n]) => `${what} ${n}`)
          .join(", ") || "none"
      }`,
      `load generator (this process, opening and verifying the sample too): ${generatorCpu.toFixed(0)}% of a core`,
      ...(failures.length === 0 ? [] : [`FAILED: ${failures.join("; ")}`]),
    ].join("\n");
    return { intervals, targets, verification, failures, report };
  } finally {
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  }
}

/** `node dist/bench/soak.js [--minutes N …] [-- SERVER FLAGS…]` (see the header). */
function parseCommandLine(argv: readonly string[]): SoakOptions {
  const split = argv.indexOf("--");
  const own = split < 0 ? argv : argv.slice(0, split);
  const serverArgs = split < 0 ? [] : argv.slice(split + 1);
  const options = soakOptionsFromEnv();
  const flags: Record<string, keyof SoakOptions> = {
    "--minutes": "minutes",
    "--warmup-minutes": "warmupMinutes",
    "--ttl": "ttlSeconds",
    "--sample": "sampleEvery",
    "--connections": "connections",
    "--pool": "pool",
    "--subjects": "subjects",
    "--dir": "dir",
  };
  for (let i = 0; i < own.length; i++) {
    const flag = own[i]!;
    const key = flags[flag];
    const value = own[i + 1];
    if (key === undefined || value === undefined) {
      throw new Error(
        `soak: ${key === undefined ? `unknown flag ${flag}` : `${flag} needs a value`} (flags: ${Object.keys(flags).join(" ")}; -- then server flags)`,
      );
    }
    i++;
    if (key === "dir") {
      options.dir = value;
      continue;
    }
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`soak: ${flag} must be a positive number`);
    (options as Record<string, unknown>)[key] = n;
  }
  if (serverArgs.length > 0) options.serverArgs = [...(options.serverArgs ?? []), ...serverArgs];
  return options;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let options: SoakOptions;
  try {
    options = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
  const result = await benchSoak(options);
  process.stdout.write(`${result.report}\n`);
  if (result.failures.length > 0) process.exitCode = 1;
}
