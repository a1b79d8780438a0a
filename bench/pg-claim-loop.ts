/**
 * The raw SQL claim loop of the PostgreSQL benchmark (bench/postgres.ts): a bare `pg` pool doing
 * the key store's OTP claim statement (src/store/postgres.ts CLAIM_NEXT, the same text on another
 * table name) as fast as it can, with as many claims in flight as the HTTP load has connections.
 * No HTTP, no sealing, no secret read: what the database alone gives for a claim, as the baseline
 * for the product's claim path. Its own process, like the servers it is compared with.
 *
 * Reads {url, table, seconds, concurrency, connections} as JSON from argv[2]; prints one JSON line
 * {claims, seconds, p50, p99, empty} (latencies in milliseconds). Stops early, saying so, when the
 * pool runs dry (`empty` > 0).
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { percentile } from "./stats.js";

interface ClaimLoopInput {
  url: string;
  table: string;
  seconds: number;
  concurrency: number;
  connections: number;
  /** Untimed claims first (connections opened, plans cached). */
  warmup?: number;
}

/** The columns the store's claim returns (src/store/postgres.ts COLUMNS). */
const COLUMNS =
  "id, purpose, created_at, round_id, participants, algorithm, public, owner, subject, holders, " +
  "claim_requester, claim_subject, claim_request_id, claimed_at, claim_expires_at, " +
  "consumed_at, last_step, last_step_at, held";
const POOLABLE = "owner IS NULL AND claim_seq IS NULL AND consumed_at IS NULL AND NOT held";

/** src/store/postgres.ts CLAIM_NEXT on `table`. */
export function claimStatement(table: string): string {
  return (
    `UPDATE ${table} SET claim_seq = nextval('key_claim_seq'), claim_requester = $2, ` +
    "claim_subject = $3, claim_request_id = $4, claimed_at = $5, claim_expires_at = $6 " +
    `WHERE id = (SELECT id FROM ${table} WHERE purpose = $1 AND ${POOLABLE} ` +
    'ORDER BY id COLLATE "POSIX" LIMIT 1 FOR UPDATE SKIP LOCKED) ' +
    `RETURNING ${COLUMNS}`
  );
}

async function main(input: ClaimLoopInput) {
  // As the store connects (synchronous_commit on) and queries (unnamed statements, parsed each
  // time): the same statement the same way, without the product around it.
  const pool = new pg.Pool({
    connectionString: input.url,
    max: input.connections,
    options: "-c synchronous_commit=on",
  });
  const text = claimStatement(input.table);
  let empty = 0;
  const claim = async () => {
    const now = Date.now();
    const { rows } = await pool.query(text, [
      "otp",
      "bench",
      "bench",
      randomUUID(),
      new Date(now),
      new Date(now + 300_000),
    ]);
    if (rows.length === 0) empty++;
  };
  const run = async (until: () => boolean, latencies?: number[]) => {
    await Promise.all(
      Array.from({ length: input.concurrency }, async () => {
        while (!until() && empty === 0) {
          const start = performance.now();
          await claim();
          latencies?.push(performance.now() - start);
        }
      }),
    );
  };
  let warm = 0;
  await run(() => warm++ >= (input.warmup ?? 1_000));
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + input.seconds * 1000;
  await run(() => performance.now() >= end, latencies);
  const seconds = (performance.now() - start) / 1000;
  await pool.end();
  return {
    claims: latencies.length,
    seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    empty,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await main(JSON.parse(process.argv[2]!) as ClaimLoopInput);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
