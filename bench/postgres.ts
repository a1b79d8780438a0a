/**
 * PostgreSQL benchmark (issue 15): OTP requests through `dkeygen distributor` processes on a
 * PostgreSQL store, against the `key_store` file server and a raw SQL claim loop in the same run;
 * the file server's CPU per OTP request against fastify alone; TOTP verifications across two
 * distributors against one file server; bytes stored per OTP in the file and in PostgreSQL.
 *
 * Set-up, all real processes on loopback: a throwaway PostgreSQL cluster (test/helpers/postgres.ts,
 * fsync off: durability is PostgreSQL's and not what is measured), one `dkeygen server --store URL`
 * and one `dkeygen server` on the key_store file, each with two contributors (bench/swarm.ts)
 * refilling its OTP pool and a requester registered (in the database with `requester add --store`
 * for PostgreSQL), two `dkeygen distributor --store URL` processes, and fastify-reference.ts. Rate
 * limits and the OTP quota are off (policy, not capacity); --max-failures is at its highest.
 *
 * Fairness:
 * - The pools are filled by rounds before anything is timed (each server's --otp-pool is waited
 *   for on /v1/ready), the TOTP accounts enrolled, and then the contributors are disconnected, so
 *   no round runs while timing; each pool holds more than the runs take (a run that empties one
 *   gets 503s and the benchmark stops, saying so).
 * - One load generator (autocannon, here) with the same connections for every HTTP target; two
 *   distributors are one autocannon run over both URLs, connections dealt alternately (a load
 *   balancer's round robin), latencies in one histogram.
 * - The raw SQL loop is a bare `pg` pool in its own process (bench/pg-claim-loop.ts) doing the
 *   store's claim statement, unprepared as the store sends it, with as many claims in flight as
 *   autocannon has connections, on the same database: on a copy of key_records as it stands when
 *   the run starts (every row, claimed ones too: the claim's scan passes over them; the same
 *   indexes, constraints and update trigger; bench_claims), refreshed before each run, so it takes
 *   nothing from the product's pool. key_records is vacuumed before each distributor run and the
 *   copy is made fresh, so neither starts with the other's dead rows.
 * - Repetitions are interleaved (a noisy moment hurts every target alike); medians are reported.
 */
import { type ChildProcess, execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type autocannon from "autocannon";
import pg from "pg";
import { RequesterClient } from "../src/client/requester.js";
import { Secret } from "../src/crypto/secret.js";
import { fromBase32 } from "../src/derive/otpauth.js";
import { totpCode, totpCounter } from "../src/derive/totp.js";
import { startPostgres } from "../test/helpers/postgres.js";
import {
  cpuTarget,
  FASTIFY_REFERENCE,
  type Load,
  load,
  startDistribution,
  startProcess,
  stop,
} from "./distribution.js";
import { median, ratio, table } from "./stats.js";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const CLAIM_LOOP = fileURLToPath(new URL("./pg-claim-loop.js", import.meta.url));
const execFileAsync = promisify(execFile);

export interface PostgresBenchOptions {
  /** Seconds of load per measured run. */
  seconds?: number;
  repetitions?: number;
  /** autocannon connections, and claims in flight in the raw SQL loop. */
  connections?: number;
  /** OTPs pooled in PostgreSQL before timing (all the distributor runs take from it). */
  pool?: number;
  /** OTPs pooled in the key_store file before timing. */
  filePool?: number;
  /** TOTP accounts enrolled on each store. */
  accounts?: number;
  /** OTPs requested and verified one by one on each store, for the bytes of the lifecycle. */
  lifecycle?: number;
  progress?: (line: string) => void;
}

/** Highest --max-failures: replayed TOTP codes count as failures and must not lock anyone. */
const MAX_FAILURES = "1000";
/** Untimed requests to each target before the first measured run. */
const WARMUP = 1_000;

const SERVER_ARGS = [
  "--max-failures",
  MAX_FAILURES,
  "--enrollments-at-once",
  "0",
  "--enrollments-per-requester",
  "0",
];

interface Measured {
  rps: number;
  p50: number;
  p99: number;
  /** Server CPU per request (µs), HTTP targets only. */
  serverCpuUs?: number;
  /** Transactions that wrote to the database, per request (PostgreSQL targets). */
  statements?: number;
  /** Answers that were not 2xx, and connection errors (TOTP runs, which report them). */
  failed?: number;
}

const medianOf = (runs: readonly Measured[]): Measured => {
  const cpu = runs.flatMap((r) => (r.serverCpuUs === undefined ? [] : [r.serverCpuUs]));
  const statements = runs.flatMap((r) => (r.statements === undefined ? [] : [r.statements]));
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    ...(cpu.length === 0 ? {} : { serverCpuUs: median(cpu) }),
    ...(statements.length === 0 ? {} : { statements: median(statements) }),
    failed: runs.reduce((sum, r) => sum + (r.failed ?? 0), 0),
  };
};

/**
 * The next transaction id the cluster will assign: its growth over a run counts the transactions
 * that wrote (each of the store's writing statements outside a transaction is one; reads get no
 * id). Read without taking an id, and current at once, unlike pg_stat_database's counts, which a
 * busy backend reports up to 10 s late.
 */
async function transactions(sql: pg.Client): Promise<number> {
  const { rows } = await sql.query<{ n: string }>(
    "SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS n",
  );
  return Number(rows[0]!.n);
}

/** Some answers that were not 2xx, with their bodies, to say what went wrong. */
const refusals: string[] = [];
const noteRefusal = (status: number, body: string) => {
  if (status >= 300 && refusals.length < 5) refusals.push(`${status} ${body.slice(0, 300)}`);
};

function checked(name: string, result: Load): Load {
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(
      `bench: ${result.non2xx} non-2xx answers and ${result.errors} errors from ${name} (statuses ${JSON.stringify(result.statusCodes)}; an empty pool answers 503: give it a larger pool)${refusals.map((r) => `\n  ${r}`).join("")}`,
    );
  }
  return result;
}

/** A distributor process on `store`, reading the store key from the server's data folder. */
async function startDistributor(store: string, serverDir: string) {
  const { child, match } = await startProcess(
    [
      CLI,
      "distributor",
      "--store",
      store,
      "--data-dir",
      serverDir,
      "--http-listen",
      "127.0.0.1:0",
      "--rate-limit-address",
      "0",
      "--rate-limit-credential",
      "0",
      "--otp-per-minute",
      "0",
      "--max-failures",
      MAX_FAILURES,
      "--log-level",
      "warn",
      "--log-format",
      "json",
    ],
    /distribution\s+(http:\/\/\S+)/,
  );
  // Its errors (JSON log lines at level 50 and up), kept to report with the figures.
  let pending = "";
  child.stderr!.on("data", (chunk) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      if (/"level":(5|6)\d/.test(line) && distributorErrors.length < 5) {
        distributorErrors.push(line.slice(0, 600));
      }
    }
  });
  return { child, url: match[1]! };
}

/** The first error lines the distributors logged. */
const distributorErrors: string[] = [];

/** One run of the raw SQL claim loop (its own process) on table `table`. */
async function claimLoop(
  url: string,
  table: string,
  seconds: number,
  concurrency: number,
  connections: number,
  warmup: number,
): Promise<Measured & { empty: number }> {
  const { stdout } = await execFileAsync(process.execPath, [
    CLAIM_LOOP,
    JSON.stringify({ url, table, seconds, concurrency, connections, warmup }),
  ]);
  const got = JSON.parse(stdout) as {
    claims: number;
    seconds: number;
    p50: number;
    p99: number;
    empty: number;
  };
  return { rps: got.claims / got.seconds, p50: got.p50, p99: got.p99, empty: got.empty };
}

/** What the store's claim takes from (src/store/postgres.ts POOLABLE). */
const POOLABLE =
  "purpose = 'otp' AND owner IS NULL AND claim_seq IS NULL AND consumed_at IS NULL AND NOT held";

/**
 * Remakes bench_claims as a copy of key_records as it stands: every row (the records claimed
 * before the pool, which the claim's scan passes over, as well as the pool), the same indexes,
 * constraints and update trigger. Returns the rows of the pool in it.
 */
async function copyPool(sql: pg.Client): Promise<number> {
  await sql.query("DROP TABLE IF EXISTS bench_claims");
  await sql.query("CREATE TABLE bench_claims (LIKE key_records INCLUDING ALL)");
  await sql.query(
    "CREATE TRIGGER bench_claims_guard BEFORE UPDATE ON bench_claims " +
      "FOR EACH ROW EXECUTE FUNCTION key_records_guard()",
  );
  await sql.query("INSERT INTO bench_claims SELECT * FROM key_records");
  await sql.query("VACUUM ANALYZE bench_claims");
  const { rows } = await sql.query<{ n: string }>(
    `SELECT count(*) AS n FROM bench_claims WHERE ${POOLABLE}`,
  );
  return Number(rows[0]!.n);
}

async function relationBytes(sql: pg.Client): Promise<{ records: number; all: number }> {
  const { rows } = await sql.query<{ records: string; all: string }>(
    "SELECT pg_total_relation_size('key_records') AS records, " +
      "(SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c " +
      "JOIN pg_namespace n ON n.oid = c.relnamespace " +
      "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'bench_claims') AS all",
  );
  return { records: Number(rows[0]!.records), all: Number(rows[0]!.all) };
}

async function countRecords(sql: pg.Client): Promise<number> {
  const { rows } = await sql.query<{ n: string }>("SELECT count(*) AS n FROM key_records");
  return Number(rows[0]!.n);
}

/**
 * autocannon takes a list of URLs and deals its connections over them in turn (lib/run.js), though
 * its types say one string.
 */
const urls = (url: string | string[]) => url as string;

type Server = Awaited<ReturnType<typeof startDistribution>>;

function requesterClient(server: Server, at: string): RequesterClient {
  return new RequesterClient({
    server: at,
    credential: new Secret(new Uint8Array(Buffer.from(server.credential, "utf8"))),
    privateKey: server.keys.privateKey,
    fingerprint: server.keys.fingerprint,
  });
}

/** Enrolls `count` TOTP accounts (no recovery codes), 16 at a time; returns their secrets. */
async function enrollAccounts(client: RequesterClient, count: number) {
  const accounts: { account: string; secret: Uint8Array; digits: number; period: number }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < count) {
        const account = `a${next++}`;
        const got = await client.enrollTotp({ issuer: "bench", account, recoveryCodes: 0 });
        accounts.push({
          account,
          secret: fromBase32(got.secret),
          digits: got.digits,
          period: got.period ?? 30,
        });
      }
    }),
  );
  return accounts;
}

/**
 * Requests `count` OTPs and verifies each (the whole lifecycle: pooled, issued, consumed), 8 at a
 * time, each worker its own subject.
 */
async function lifecycle(client: RequesterClient, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async (_, worker) => {
      const subject = `life${worker}`;
      while (next++ < count) {
        const otp = await client.requestOtp({ subject });
        const verdict = await client.verifyOtp(subject, otp.code);
        if (!verdict.valid) throw new Error(`bench: an OTP did not verify (${verdict.reason})`);
      }
    }),
  );
}

export async function benchPostgres(options: PostgresBenchOptions = {}) {
  const seconds = options.seconds ?? 3;
  const repetitions = options.repetitions ?? 3;
  const connections = options.connections ?? 64;
  const pool = options.pool ?? 50_000;
  const filePool = options.filePool ?? 100_000;
  const accountCount = options.accounts ?? 64;
  const lifecycleCount = options.lifecycle ?? 1_000;
  const progress = options.progress ?? ((line: string) => process.stderr.write(`  ${line}\n`));
  const root = await mkdtemp(join(tmpdir(), "dkeygen-bench-pg-"));
  progress("starting a throwaway PostgreSQL cluster");
  const cluster = await startPostgres();
  const children: ChildProcess[] = [];
  const servers: Server[] = [];
  let sql: pg.Client | undefined;
  try {
    const store = await cluster.createDatabase();
    const db = new pg.Client({ connectionString: store });
    sql = db;
    await db.connect();
    let emptyBytes = { records: 0, all: 0 };
    const pgServer = await startDistribution(join(root, "pg"), pool, SERVER_ARGS, progress, {
      store,
      noWait: true,
      beforeContributors: async () => {
        emptyBytes = await relationBytes(db);
      },
    });
    servers.push(pgServer);
    const fileServer = await startDistribution(
      join(root, "file"),
      filePool,
      SERVER_ARGS,
      progress,
      {
        noWait: true,
      },
    );
    servers.push(fileServer);
    const fileStore = join(fileServer.serverDir, "key_store");
    // Both fill at once: the set-up's time is not measured.
    await Promise.all([pgServer.filled(), fileServer.filled()]);
    const pooledBytes = {
      file: (await stat(fileStore)).size,
      ...(await relationBytes(db)),
    };
    progress(`enrolling ${accountCount} TOTP accounts on each server`);
    const [pgAccounts, fileAccounts] = await Promise.all([
      enrollAccounts(requesterClient(pgServer, pgServer.httpUrl), accountCount),
      enrollAccounts(requesterClient(fileServer, fileServer.httpUrl), accountCount),
    ]);

    const d1 = await startDistributor(store, pgServer.serverDir);
    children.push(d1.child);
    const d2 = await startDistributor(store, pgServer.serverDir);
    children.push(d2.child);
    const reference = await startProcess([FASTIFY_REFERENCE], /listening (http:\/\/\S+)/);
    children.push(reference.child);

    // The lifecycle's bytes: issued and consumed, on the file server and through a distributor.
    progress(`requesting and verifying ${lifecycleCount} OTPs on each store (bytes per OTP)`);
    const fileBefore = (await stat(fileStore)).size;
    const pgBefore = await relationBytes(db);
    await lifecycle(requesterClient(fileServer, fileServer.httpUrl), lifecycleCount);
    await lifecycle(requesterClient(pgServer, d1.url), lifecycleCount);
    const lifecycleBytes = {
      file: (await stat(fileStore)).size - fileBefore,
      records: (await relationBytes(db)).records - pgBefore.records,
      all: (await relationBytes(db)).all - pgBefore.all,
    };
    // No round from here on: what is timed is claims from full pools, never a refill.
    await Promise.all(servers.map((s) => s.stopContributors()));

    // ---- OTP requests ----------------------------------------------------------------------
    const authorized = (server: Server) => ({
      "content-type": "application/json",
      authorization: `Bearer ${server.credential}`,
    });
    const otpBody = { method: "POST" as const, body: "{}", connections };
    interface Target {
      name: string;
      run(amount?: number): Promise<Measured>;
    }
    const http = (
      name: string,
      url: string | string[],
      headers: Record<string, string>,
      pids: number[],
      database = false,
    ): Target => ({
      name,
      async run(amount) {
        if (database) await db.query("VACUUM ANALYZE key_records");
        const shape: autocannon.Options = { url: urls(url), headers, ...otpBody };
        const timed = amount === undefined ? { duration: seconds } : { amount };
        const start = database ? await transactions(db) : 0;
        const measured = checked(name, await load({ ...shape, ...timed }, pids));
        if (!database) return measured;
        const statements = ((await transactions(db)) - start) / measured.requests;
        return { ...measured, statements };
      },
    });
    let emptied = 0;
    const targets: Target[] = [
      http(
        "key_store file server",
        `${fileServer.httpUrl}/v1/otp/request`,
        authorized(fileServer),
        [fileServer.pid],
      ),
      http(
        "fastify alone, same schemas, constant delivery-sized JSON",
        `${reference.match[1]}/v1/otp/request`,
        { "content-type": "application/json" },
        [reference.child.pid!],
      ),
      http(
        "PostgreSQL, 1 distributor",
        `${d1.url}/v1/otp/request`,
        authorized(pgServer),
        [d1.child.pid!],
        true,
      ),
      http(
        "PostgreSQL, 2 distributors",
        [`${d1.url}/v1/otp/request`, `${d2.url}/v1/otp/request`],
        authorized(pgServer),
        [d1.child.pid!, d2.child.pid!],
        true,
      ),
      {
        name: "raw SQL claim loop (bare pg, same statement)",
        async run(amount) {
          const copied = await copyPool(db);
          progress(`  (raw SQL loop: a fresh copy of key_records, ${copied} OTPs in its pool)`);
          const got = await claimLoop(
            store,
            "bench_claims",
            amount === undefined ? seconds : 0,
            connections,
            10,
            amount ?? WARMUP,
          );
          emptied += got.empty;
          return { ...got, statements: 1 };
        },
      },
    ];
    progress("warming up every target (and the load generator)");
    for (const target of targets) await target.run(WARMUP);
    const recordsBefore = await countRecords(db);
    const runs = targets.map(() => [] as Measured[]);
    for (let r = 0; r < repetitions; r++) {
      for (const [i, target] of targets.entries()) {
        progress(`repetition ${r + 1}/${repetitions}: ${target.name}`);
        runs[i]!.push(await target.run());
      }
    }
    const refilled = (await countRecords(db)) - recordsBefore;
    const otp = runs.map(medianOf);
    const [file, fastify, one, two, raw] = otp as [
      Measured,
      Measured,
      Measured,
      Measured,
      Measured,
    ];

    // ---- TOTP verifications ----------------------------------------------------------------
    type Account = (typeof pgAccounts)[number];
    const codes = new Map<Account, { step: number; code: string }>();
    const codeOf = (account: Account) => {
      const now = Date.now() / 1000;
      const step = totpCounter(now, { period: account.period });
      let cached = codes.get(account);
      if (cached?.step !== step) {
        cached = {
          step,
          code: totpCode(account.secret, now, { digits: account.digits, period: account.period }),
        };
        codes.set(account, cached);
      }
      return cached.code;
    };
    const totpTarget = (
      name: string,
      server: Server,
      list: string[],
      pids: number[],
      accounts: Account[],
      database: boolean,
    ): Target => {
      let next = 0;
      const unlocker = requesterClient(server, server.httpUrl);
      return {
        name,
        async run(amount) {
          // Replays count as failures: start every run with none counted.
          for (const a of accounts) await unlocker.unlockTotp(a.account);
          const shape: autocannon.Options = {
            url: urls(list),
            connections,
            headers: authorized(server),
            requests: [
              {
                method: "POST",
                path: "/v1/totp/verify",
                onResponse: noteRefusal,
                setupRequest: (request) => {
                  const account = accounts[next++ % accounts.length]!;
                  return {
                    ...request,
                    body: JSON.stringify({ account: account.account, code: codeOf(account) }),
                  };
                },
              },
            ],
          };
          const timed = amount === undefined ? { duration: seconds } : { amount };
          const start = database ? await transactions(db) : 0;
          // Not fatal here: a failed verification is a finding to report, not an empty pool.
          const got = await load({ ...shape, ...timed }, pids);
          const measured = { ...got, failed: got.non2xx + got.errors };
          if (!database) return measured;
          const statements = ((await transactions(db)) - start) / measured.requests;
          return { ...measured, statements };
        },
      };
    };
    const totpTargets = [
      totpTarget(
        "key_store file server",
        fileServer,
        [fileServer.httpUrl],
        [fileServer.pid],
        fileAccounts,
        false,
      ),
      totpTarget(
        "PostgreSQL, 2 distributors",
        pgServer,
        [d1.url, d2.url],
        [d1.child.pid!, d2.child.pid!],
        pgAccounts,
        true,
      ),
    ];
    progress("TOTP: warming up");
    for (const target of totpTargets) await target.run(WARMUP);
    const totpRuns = totpTargets.map(() => [] as Measured[]);
    for (let r = 0; r < repetitions; r++) {
      for (const [i, target] of totpTargets.entries()) {
        progress(`TOTP repetition ${r + 1}/${repetitions}: ${target.name}`);
        totpRuns[i]!.push(await target.run());
      }
    }
    const [totpFile, totpPg] = totpRuns.map(medianOf) as [Measured, Measured];

    // ---- report ----------------------------------------------------------------------------
    const ms = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)} ms`;
    const cpu = (m: Measured) =>
      m.serverCpuUs === undefined ? "—" : `${m.serverCpuUs.toFixed(0)} µs`;
    const transactionsOf = (m: Measured) =>
      m.statements === undefined ? "—" : m.statements.toFixed(2);
    const met = (ok: boolean) => (ok ? "met" : "not met");
    const pgTarget = (label: string, m: Measured) =>
      `target: OTP requests on PostgreSQL (${label}) ≥ 50% of the key_store file server's rate with p99 ≤ 50 ms → ${((100 * m.rps) / file.rps).toFixed(0)}%, p99 ${ms(m.p99)}: ${met(m.rps >= 0.5 * file.rps && m.p99 <= 50)}`;
    const claimTarget = (label: string, m: Measured) =>
      `target: the product's claim path (OTP requests, ${label}) ≥ 60% of the raw SQL claim loop → ${((100 * m.rps) / raw.rps).toFixed(0)}%: ${met(m.rps >= 0.6 * raw.rps)}`;
    const perOtp = (bytes: number, count: number) => (bytes / count).toFixed(0);
    const pooledPg = {
      records: pooledBytes.records - emptyBytes.records,
      all: pooledBytes.all - emptyBytes.all,
    };
    const report = [
      `OTP requests on loopback: autocannon, ${connections} connections (the raw SQL loop: ${connections} claims in flight on 10 connections, a distributor's pool);`,
      `${repetitions} interleaved ${seconds}-second runs per target, medians; pools filled by rounds before timing (${filePool} OTPs in the key_store file, ${pool} in PostgreSQL), contributors then disconnected;`,
      "PostgreSQL: a throwaway cluster on 127.0.0.1 with fsync off; rate limits off",
      "",
      table(
        [
          "OTP requests",
          "requests/s",
          "p50",
          "p99",
          "÷ file server",
          "÷ raw SQL loop",
          "server CPU/request",
          "writing SQL transactions/request",
        ],
        targets.map((target, i) => [
          target.name,
          otp[i]!.rps.toFixed(0),
          ms(otp[i]!.p50),
          ms(otp[i]!.p99),
          ratio(otp[i]!.rps / file.rps),
          i < 2 ? "—" : ratio(otp[i]!.rps / raw.rps),
          cpu(otp[i]!),
          transactionsOf(otp[i]!),
        ]),
      ),
      "",
      pgTarget("1 distributor", one),
      pgTarget("2 distributors", two),
      claimTarget("1 distributor", one),
      claimTarget("2 distributors", two),
      cpuTarget(file.serverCpuUs!, fastify.serverCpuUs!),
      ...(refilled === 0
        ? []
        : [`warning: ${refilled} records were stored while timing (a refill round ran)`]),
      ...(emptied === 0
        ? []
        : ["warning: the raw SQL loop emptied its copy of the pool (its rate is a lower bound)"]),
      "",
      `TOTP verifications (POST /v1/totp/verify, ${accountCount} accounts dealt in turn, each sent its current code: the first of a`,
      "time step is accepted, the others refused as replays by the step's compare-and-set, which every request runs)",
      "",
      table(
        [
          "TOTP verifications",
          "verifications/s",
          "p50",
          "p99",
          "÷ file server",
          "server CPU/request",
          "writing SQL transactions/request",
          "not 2xx (measured runs)",
        ],
        totpTargets.map((target, i) => {
          const m = [totpFile, totpPg][i]!;
          return [
            target.name,
            m.rps.toFixed(0),
            ms(m.p50),
            ms(m.p99),
            ratio(m.rps / totpFile.rps),
            cpu(m),
            transactionsOf(m),
            String(m.failed ?? 0),
          ];
        }),
      ),
      ...(refusals.length === 0
        ? []
        : ["", "answers that were not 2xx (the first few):", ...refusals.map((r) => `  ${r}`)]),
      ...(distributorErrors.length === 0
        ? []
        : [
            "",
            "errors the distributors logged (the first few):",
            ...distributorErrors.map((r) => `  ${r}`),
          ]),
      "",
      `Bytes stored per OTP: pooled (growth while filling, ÷ OTPs pooled), then requested and verified (growth over ${lifecycleCount} OTPs)`,
      "",
      table(
        ["store", "pooled", "requested + verified", "whole lifecycle"],
        [
          [
            "key_store file (file size)",
            perOtp(pooledBytes.file, filePool),
            perOtp(lifecycleBytes.file, lifecycleCount),
            perOtp(pooledBytes.file / filePool + lifecycleBytes.file / lifecycleCount, 1),
          ],
          [
            "PostgreSQL key_records (pg_total_relation_size)",
            perOtp(pooledPg.records, pool),
            perOtp(lifecycleBytes.records, lifecycleCount),
            perOtp(pooledPg.records / pool + lifecycleBytes.records / lifecycleCount, 1),
          ],
          [
            "PostgreSQL, every dkeygen table",
            perOtp(pooledPg.all, pool),
            perOtp(lifecycleBytes.all, lifecycleCount),
            perOtp(pooledPg.all / pool + lifecycleBytes.all / lifecycleCount, 1),
          ],
        ],
      ),
    ].join("\n");
    return { otp, totp: { file: totpFile, postgres: totpPg }, report };
  } finally {
    await sql?.end().catch(() => {});
    for (const child of children.reverse()) await stop(child);
    for (const server of servers) await server.stop();
    await cluster.stop();
    await rm(root, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [seconds, repetitions, pool, filePool, accounts, lifecycle] = process.argv
    .slice(2)
    .map(Number);
  const result = await benchPostgres({
    ...(lifecycle ? { lifecycle } : {}),
    ...(accounts ? { accounts } : {}),
    ...(seconds ? { seconds } : {}),
    ...(repetitions ? { repetitions } : {}),
    ...(pool ? { pool } : {}),
    ...(filePool ? { filePool } : {}),
  });
  process.stdout.write(`${result.report}\n`);
}
