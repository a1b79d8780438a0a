/**
 * `PostgresKeyStore`: the KeyStore on PostgreSQL (issue 15), for several processes on one
 * database. It passes the compliance suite the memory store and the `key_store` file pass; the
 * schema (postgres-schema.ts, docs/PROTOCOL.md §10.1) enforces the rules in SQL as well.
 *
 * - Every decision that must hold across processes is one SQL statement: a claim is
 *   `UPDATE … FROM (SELECT … ORDER BY id COLLATE "POSIX" LIMIT n FOR UPDATE SKIP LOCKED)` for the
 *   n claims made in one turn (postgres-claims.ts), a consumption
 *   `… WHERE consumed_at IS NULL`, a TOTP step a compare-and-set `… WHERE last_step < $step`.
 *   Nothing is cached that another process could contradict, except the log's size (below).
 * - Durability: a statement resolves once committed, and the store's sessions run with
 *   `synchronous_commit = on`, so a committed statement is durable. A claim acknowledged
 *   "reserved" (ClaimOptions) is therefore as durable as a "durable" one: there are no leases
 *   and no void records here.
 * - Secrets: sealed exactly as in the `key_store` file (log-format.ts: AES-256-GCM under K_secret
 *   from the store key, AAD LP("dkeygen/v1/store/secret", id, purpose, roundId), for round
 *   openings LP("dkeygen/v1/store/round-opening", roundId), for round secrets
 *   LP("dkeygen/v1/store/round-secret", roundId)) before they reach the driver; the database
 *   holds IV, ciphertext and tag only. A record put with a round part keeps no sealed secret of
 *   its own: its round part, and a foreign key to its round's secret (schema version 9). A dump plus the database password reveals no
 *   secret without `store.key`. A check value derived from the store key is kept in the
 *   database, so a wrong `store.key` is refused at open.
 * - Names (purpose, round id, owner, subject, ...) are stored as the text between the quotes of
 *   their JSON string: PostgreSQL text holds no NUL byte nor lone surrogate, and every name the
 *   other stores accept must round-trip unchanged. Values always travel as bind parameters.
 * - The transparency log: one `dkeygen server` process appends to it. Appends are serialized in
 *   this process (indexes in call order) and `logSize()` is this process's count, loaded at open;
 *   an append from another process makes the next one here fail (the index is taken) rather
 *   than fork the log. There is no MAC chain (`chain` is undefined): PostgreSQL's own integrity
 *   and access control stand where the file's chain and head file stand.
 */
import { hkdfSync, timingSafeEqual } from "node:crypto";
import { Client, type ClientBase, Pool, type PoolClient, type QueryResultRow } from "pg";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import {
  checkClaim,
  checkConsumeAt,
  checkId,
  checkListQuery,
  checkLogRange,
  checkPurpose,
  checkRecordInput,
  checkRoundId,
  checkRoundOpening,
  checkRoundSecret,
  checkStep,
  copyLogLeaf,
  newRecord,
  noRoundSecret,
  notFound,
  notOwnSecret,
  openingExists,
  roundSecretExists,
} from "./inputs.js";
import {
  deriveStoreKeys,
  openOpening,
  openRoundSecret,
  openSecret,
  type SealedSecret,
  sealOpening,
  sealRoundSecret,
  sealSecret,
} from "./log-format.js";
import { ClaimBatcher, claimBatchStatement } from "./postgres-claims.js";
import { applyMigrations, type Migration } from "./postgres-schema.js";
import { checkPostgresStoreUrl, redactStoreUrl } from "./postgres-url.js";
import { isUlid, UlidGenerator } from "./record-id.js";
import type {
  Claim,
  ClaimInput,
  ClaimOptions,
  KeyRecord,
  KeyStore,
  ListQuery,
  RecordInput,
  SecretPart,
} from "./types.js";

/** A statement inside `PostgresKeyStore.transaction`: its rows. */
export type TransactionQuery = <R extends QueryResultRow>(
  text: string,
  values: unknown[],
) => Promise<R[]>;

export interface PostgresKeyStoreLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  error?(fields: Record<string, unknown>, message: string): void;
}

export interface PostgresKeyStoreOptions {
  /** postgres://USER:PASSWORD@HOST:PORT/DATABASE (postgres-url.ts). Never shown with its password. */
  url: string;
  /** 32 bytes, kept apart from the database. The store derives its keys and keeps no copy. */
  storeKey: Uint8Array;
  /** Randomness for ids and IVs; the OS CSPRNG by default. */
  random?: RandomSource;
  /** The time for ids, `createdAt`, claims, consumptions and steps; now by default. */
  clock?: () => Date;
  /** Told about connection failures and applied migrations (never secret content). */
  logger?: PostgresKeyStoreLogger;
  /** Most connections the store opens at once; default 10. */
  maxConnections?: number;
  /**
   * How long a consumed or expired OTP stays after it died, in ms (issue 17 `--retain-used`);
   * `Infinity` (the default: a process that does not pass it never deletes) keeps them for good.
   * When finite, the store sweeps at open and then every min(retainUsedMs / 4, 60 s) (at least
   * 1 s); `sweepRetention()` runs one sweep.
   */
  retainUsedMs?: number;
}

/** A retention sweep deletes at most this many rows per statement, each its own transaction. */
export const RETENTION_BATCH = 5000;
const SWEEP_EVERY_MAX_MS = 60_000;
const SWEEP_EVERY_MIN_MS = 1000;

/**
 * One batch of a retention sweep ($1 cutoff, $2 where the previous batch ended, $3 batch size):
 * deletes up to $3 pool OTPs (no owner; a held one only withdrawn, consumed: schema version 10)
 * that died before $1, oldest death first, and returns how many and the latest death among them.
 * A row dies at its consumption or, unconsumed, at its claim's expiry; the match is the index
 * key_records_otp_dead's (schema version 7, rebuilt in version 10), and
 * `claim_expires_at < now()` is the delete trigger's own test, so a clock running ahead of the
 * database's never asks for a delete the trigger refuses. Rows another statement holds locked are
 * skipped (SKIP LOCKED): two sweeps at once delete each row once, and a claim or consumption in
 * flight is never waited for. Each batch starts where the last ended ($2), so a long sweep does
 * not walk again over the index entries of the rows it deleted (gone only at the next vacuum).
 *
 * Round secrets (schema version 9) go with their round's last record, in the same statement: the
 * secret of a round some of whose round-part records this batch deletes is deleted too when no
 * other record refers to it (the batch's own rows are still visible to the statement, so they
 * are left out by id), and `secrets` says how many. Only such a round's secret: one whose round
 * has had no record deleted is never touched, so a secret put before its records (and a sweep
 * between them) stays, whatever the retention and the clocks. A secret locked by a put of a
 * record referring to it (the foreign key's check) is skipped, and stays with that record; the
 * foreign key refuses the delete (and rolls the batch back) should such a put commit in between.
 * Each round is one probe of key_records_round_secret_id.
 */
export const SWEEP_BATCH =
  "WITH doomed AS (SELECT id, round_secret_id, coalesce(consumed_at, claim_expires_at) AS died " +
  "FROM key_records WHERE purpose = 'otp' AND owner IS NULL " +
  "AND (consumed_at IS NOT NULL OR claim_seq IS NOT NULL) " +
  "AND coalesce(consumed_at, claim_expires_at) < $1 " +
  "AND coalesce(consumed_at, claim_expires_at) >= $2 " +
  "AND (consumed_at IS NOT NULL OR claim_expires_at < now()) " +
  "ORDER BY coalesce(consumed_at, claim_expires_at) LIMIT $3 FOR UPDATE SKIP LOCKED), " +
  "gone AS (DELETE FROM key_records k USING doomed d WHERE k.id = d.id " +
  "RETURNING d.id, d.died, d.round_secret_id), " +
  "freeable AS (SELECT s.round_id FROM (SELECT DISTINCT round_secret_id AS round_id FROM gone " +
  "WHERE round_secret_id IS NOT NULL) r JOIN round_secrets s ON s.round_id = r.round_id " +
  "WHERE NOT EXISTS (SELECT 1 FROM key_records k WHERE k.round_secret_id = r.round_id " +
  "AND NOT EXISTS (SELECT 1 FROM gone g WHERE g.id = k.id)) FOR UPDATE OF s SKIP LOCKED), " +
  "freed AS (DELETE FROM round_secrets s USING freeable f WHERE s.round_id = f.round_id " +
  "RETURNING 1) " +
  "SELECT (SELECT count(*) FROM gone) AS n, (SELECT max(died) FROM gone) AS last, " +
  "(SELECT count(*) FROM freed) AS secrets";

/** The info of the key check value kept in the database (store_key_check). */
export const KEY_CHECK_INFO = "dkeygen/v1/store/postgres-key-check";
/** The largest public part (as JSON text), as a key_store line bounds it (4 MiB). */
const MAX_PUBLIC_BYTES = 4 * 1024 * 1024;
const STORE_KEY_BYTES = 32;
const CONNECT_TIMEOUT_MS = 10_000;

type State = "new" | "opening" | "open" | "closed";

const COLUMNS =
  "id, purpose, created_at, round_id, participants, algorithm, public, owner, subject, holders, " +
  "claim_requester, claim_subject, claim_request_id, claimed_at, claim_expires_at, " +
  "consumed_at, last_step, last_step_at, held";

/** The pool a claim takes from: no owner, no claim, no consumption, not held (schema v4). */
const POOLABLE = "owner IS NULL AND claim_seq IS NULL AND consumed_at IS NULL AND NOT held";

/** The sizes of a sealed secret's IV and tag (the schema's CHECKs). */
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * What a claim returns of the claimed row's secret part: its own sealed secret, or its round part
 * and its round's sealed secret as one bytea, iv ‖ tag ‖ ct (one lookup by primary key per row),
 * so that the claimer's next read needs no second statement either way.
 */
const CLAIMED_SECRET =
  "k.secret_iv, k.secret_ct, k.secret_tag, k.round_part, " +
  "(SELECT s.iv || s.tag || s.ct FROM round_secrets s WHERE s.round_id = k.round_secret_id) " +
  "AS round_secret";

/** claimNext's statement, for any number of claims made in one turn (postgres-claims.ts). */
export const CLAIM_BATCH = claimBatchStatement(COLUMNS, POOLABLE, CLAIMED_SECRET);

/** A row claimBatchStatement returns. */
type ClaimedRow = RecordRow & {
  slot: string;
  secret_iv: Buffer | null;
  secret_ct: Buffer | null;
  secret_tag: Buffer | null;
  round_part: string | null;
  round_secret: Buffer | null;
};

/** A record's sealed secret part as the store reads it: its own, or its round's and its part. */
type SealedPart =
  | { kind: "own"; sealed: SealedSecret }
  | { kind: "round"; roundPart: number; roundSecret: SealedSecret };

/** The secret columns of a key_records row (and, joined, of its round's secret). */
interface SecretRow {
  secret_iv: Buffer | null;
  secret_ct: Buffer | null;
  secret_tag: Buffer | null;
  round_part: string | null;
}

/**
 * A row's sealed secret part: its own, or its part and `roundSecret` (its round's, sealed);
 * undefined for a row with neither.
 */
function sealedPartOf(row: SecretRow, roundSecret: SealedSecret | null): SealedPart | undefined {
  if (row.round_part === null) {
    if (row.secret_iv && row.secret_ct && row.secret_tag) {
      return { kind: "own", sealed: { iv: row.secret_iv, ct: row.secret_ct, tag: row.secret_tag } };
    }
    return undefined;
  }
  return roundSecret
    ? { kind: "round", roundPart: Number(row.round_part), roundSecret }
    : undefined;
}

/**
 * Sealed secrets of records this store claimed, kept until read (the claimer reads the secret
 * next: an OTP's code), so a claim and its code cost one statement, not two. At most this many;
 * the oldest go first. Sealed, never in the clear; a record's secret never changes (trigger).
 */
const CLAIMED_SECRETS_KEPT = 4096;

/** Consumes `$1` unless consumed; says whether the record exists and whether this consumed it. */
const CONSUME =
  "WITH target AS (SELECT id FROM key_records WHERE id = $1), " +
  "done AS (UPDATE key_records SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL " +
  "RETURNING id) " +
  "SELECT EXISTS (SELECT 1 FROM target) AS found, EXISTS (SELECT 1 FROM done) AS done";

/** The compare-and-set of a TOTP step: recorded only above every step recorded before. */
const USE_STEP =
  "WITH target AS (SELECT id FROM key_records WHERE id = $1), " +
  "done AS (UPDATE key_records SET last_step = $2, last_step_at = $3 " +
  "WHERE id = $1 AND (last_step IS NULL OR last_step < $2) RETURNING id) " +
  "SELECT EXISTS (SELECT 1 FROM target) AS found, EXISTS (SELECT 1 FROM done) AS done";

/** A name as stored: the text between the quotes of its JSON string (no NUL, no lone surrogate). */
export function encodeName(name: string): string {
  return JSON.stringify(name).slice(1, -1);
}

export function decodeName(stored: string): string {
  const name: unknown = JSON.parse(`"${stored}"`);
  if (typeof name !== "string") throw new TypeError("not a stored name");
  return name;
}

/** What pg hands back for a record row. */
interface RecordRow extends QueryResultRow {
  id: string;
  purpose: string;
  created_at: Date;
  round_id: string;
  participants: string[];
  algorithm: string;
  public: string;
  owner: string | null;
  subject: string | null;
  holders: string[] | null;
  claim_requester: string | null;
  claim_subject: string | null;
  claim_request_id: string | null;
  claimed_at: Date | null;
  claim_expires_at: Date | null;
  consumed_at: Date | null;
  last_step: string | null;
  last_step_at: Date | null;
  held: boolean;
}

function toRecord(row: RecordRow): KeyRecord {
  const record: KeyRecord = {
    id: row.id,
    purpose: decodeName(row.purpose),
    createdAt: row.created_at.toISOString(),
    roundId: decodeName(row.round_id),
    participants: row.participants.map(decodeName),
    algorithm: decodeName(row.algorithm),
    public: JSON.parse(row.public) as JsonObject,
  };
  if (row.owner !== null) record.owner = decodeName(row.owner);
  if (row.subject !== null) record.subject = decodeName(row.subject);
  if (row.holders !== null) record.holders = row.holders.map(decodeName);
  if (row.claim_requester !== null) {
    const claim: Claim = {
      requester: decodeName(row.claim_requester),
      subject: decodeName(row.claim_subject!),
      requestId: decodeName(row.claim_request_id!),
      claimedAt: row.claimed_at!.toISOString(),
      expiresAt: row.claim_expires_at!.toISOString(),
    };
    record.claim = claim;
  }
  if (row.consumed_at !== null) record.consumedAt = row.consumed_at.toISOString();
  if (row.last_step !== null) {
    record.lastStep = Number(row.last_step);
    record.lastStepAt = row.last_step_at!.toISOString();
  }
  if (row.held) record.held = true;
  return record;
}

/** SQLSTATE classes and Node errors that mean "the database cannot be reached right now". */
function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    if (code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03") {
      return true;
    }
    if (/^E[A-Z]+$/.test(code)) return true; // ECONNREFUSED, ECONNRESET, ENOTFOUND, ETIMEDOUT...
  }
  const message = error instanceof Error ? error.message : "";
  return /Connection terminated|timeout exceeded when trying to connect/i.test(message);
}

/**
 * Turns a driver error into a DkeygenError that names the database without its password. The
 * driver's message is kept (PostgreSQL's messages hold no password), scrubbed all the same.
 */
function storeFailure(error: unknown, shown: string, password: string): unknown {
  if (error instanceof DkeygenError || error instanceof TypeError) return error;
  const raw = error instanceof Error ? error.message : String(error);
  const detail = password === "" ? raw : raw.split(password).join("***");
  const code = (error as { code?: unknown }).code;
  if (code === "22008" || code === "22007") {
    return new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `A time is outside what the PostgreSQL key store keeps: ${detail}`,
    );
  }
  if (isUnavailable(error)) {
    return new DkeygenError(
      ErrorCodes.UNAVAILABLE,
      `The PostgreSQL key store at ${shown} is unavailable: ${detail}`,
      { retryAfterSeconds: 1, answer: "The key store is unavailable; try again shortly." },
    );
  }
  return new DkeygenError(
    ErrorCodes.OPERATIONAL,
    `The PostgreSQL key store at ${shown} failed: ${detail}` +
      (typeof code === "string" ? ` (SQLSTATE ${code})` : ""),
    { answer: "The key store failed; the request was not completed." },
  );
}

function urlPassword(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return "";
  }
}

/**
 * The driver's settings for `url`. Every session runs with `synchronous_commit = on`, whatever the
 * server's default, so a committed statement is durable (ClaimOptions); the URL's own `options`
 * parameter is kept, before it (the driver would otherwise let the URL's replace ours).
 */
function connectionConfig(url: string) {
  const parsed = new URL(url);
  const given = parsed.searchParams.get("options");
  parsed.searchParams.delete("options");
  return {
    connectionString: parsed.href,
    options: `${given === null ? "" : `${given} `}-c synchronous_commit=on`,
    application_name: "dkeygen",
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  };
}

/**
 * The statement `list` runs for `query` (checked already) and its bind values. Exported so a
 * test can hold its plan to the index it is meant to use.
 */
export function listStatement(query: ListQuery): { sql: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  const where: string[] = [];
  if (query.purpose !== undefined) where.push(`purpose = ${param(encodeName(query.purpose))}`);
  if (query.owner !== undefined) where.push(`owner = ${param(encodeName(query.owner))}`);
  if (query.claimed !== undefined) {
    where.push(query.claimed ? "claim_seq IS NOT NULL" : "claim_seq IS NULL");
  }
  if (query.claimedBy !== undefined) {
    where.push(`claim_requester = ${param(encodeName(query.claimedBy))}`);
  }
  if (query.subject !== undefined) {
    const subject = param(encodeName(query.subject));
    // An owned row is never claimed (key_records_owned_never_claimed): with an owner, only the
    // subject it was made for can match, found through key_records_subject_owner without
    // reading the claims other requesters made for the subject.
    where.push(
      query.owner !== undefined
        ? `subject = ${subject}`
        : `(subject = ${subject} OR claim_subject = ${subject})`,
    );
  }
  if (query.consumed !== undefined) {
    where.push(query.consumed ? "consumed_at IS NOT NULL" : "consumed_at IS NULL");
  }
  const filter = where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`;
  const limit = query.limit === undefined ? "" : `LIMIT ${param(query.limit)}`;
  let sql: string;
  if (query.latestClaims !== undefined) {
    // Among the requester's latest claims for the subject, in claim order.
    const latest =
      "SELECT * FROM key_records " +
      `WHERE claim_requester = ${param(encodeName(query.claimedBy!))} ` +
      `AND claim_subject = ${param(encodeName(query.subject!))} ` +
      `ORDER BY claim_seq DESC LIMIT ${param(query.latestClaims)}`;
    sql = `SELECT ${COLUMNS} FROM (${latest}) AS latest ${filter} ORDER BY claim_seq ${limit}`;
  } else {
    sql = `SELECT ${COLUMNS} FROM key_records ${filter} ORDER BY id ${limit}`;
  }
  return { sql, values };
}

/**
 * Applies the schema migrations `url`'s database lacks (what `dkeygen store migrate` runs) and
 * returns those applied. Needs no store key: the schema holds no secret.
 */
export async function migratePostgresStore(url: string): Promise<Migration[]> {
  checkPostgresStoreUrl(url);
  const shown = redactStoreUrl(url);
  const password = urlPassword(url);
  const client = new Client(connectionConfig(url));
  client.on("error", () => {}); // reported by the query that fails
  try {
    await client.connect();
    return await applyMigrations(client);
  } catch (error) {
    throw storeFailure(error, shown, password);
  } finally {
    await client.end().catch(() => {});
  }
}

export class PostgresKeyStore implements KeyStore {
  readonly kind = "postgres";
  /** The store's URL with its password hidden, for messages and logs. */
  readonly shownUrl: string;
  readonly #url: string;
  readonly #password: string;
  readonly #secretKey: Buffer;
  readonly #keyCheck: Buffer;
  readonly #random: RandomSource;
  readonly #clock: () => Date;
  readonly #logger: PostgresKeyStoreLogger | undefined;
  readonly #maxConnections: number;
  readonly #ids: UlidGenerator;
  /** Round ids whose opening this process is writing: of two racing calls, the second is refused. */
  readonly #openingsWriting = new Set<string>();
  /** Claims gathered per turn, one statement each batch (postgres-claims.ts). */
  readonly #claims = new ClaimBatcher<ClaimedRow>(
    async (purpose, values) =>
      (await this.#query<ClaimedRow>(CLAIM_BATCH, [purpose, ...values])).rows,
  );
  /** Round ids whose secret this process is writing: of two racing calls, the second is refused. */
  readonly #roundSecretsWriting = new Set<string>();
  /** CLAIMED_SECRETS_KEPT: sealed secret parts of records this store just claimed, by id. */
  readonly #claimedSecrets = new Map<
    string,
    { record: { id: string; purpose: string; roundId: string }; part: SealedPart }
  >();
  #pool: Pool | undefined;
  #state: State = "new";
  #logSize = 0;
  /** The last log append queued: appends run one at a time, in call order. */
  #logTail: Promise<unknown> = Promise.resolve();
  /** The migrations `open()` applied. */
  #migrated: Migration[] = [];
  /** options.retainUsedMs; Infinity: no sweep. */
  readonly #retainUsedMs: number;
  /** The last retention sweep queued: sweeps run one at a time; close awaits the last. */
  #sweepTail: Promise<unknown> = Promise.resolve();
  /** The next timed sweep, while one is due. */
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: PostgresKeyStoreOptions) {
    const url = checkPostgresStoreUrl(options?.url);
    if (!(options.storeKey instanceof Uint8Array) || options.storeKey.length !== STORE_KEY_BYTES) {
      throw new TypeError(`PostgresKeyStore: options.storeKey must be ${STORE_KEY_BYTES} bytes`);
    }
    const maxConnections = options.maxConnections ?? 10;
    if (!Number.isSafeInteger(maxConnections) || maxConnections < 1 || maxConnections > 1000) {
      throw new TypeError("PostgresKeyStore: options.maxConnections must be 1 to 1000");
    }
    this.#maxConnections = maxConnections;
    const retain = options.retainUsedMs ?? Number.POSITIVE_INFINITY;
    if (retain !== Number.POSITIVE_INFINITY && !(Number.isSafeInteger(retain) && retain > 0)) {
      throw new TypeError(
        "PostgresKeyStore: options.retainUsedMs must be a positive whole number of ms or Infinity",
      );
    }
    this.#retainUsedMs = retain;
    this.#url = url;
    this.#password = urlPassword(url);
    this.shownUrl = redactStoreUrl(url);
    const keys = deriveStoreKeys(options.storeKey);
    keys.mac.fill(0); // no MAC chain here
    this.#secretKey = keys.secret;
    this.#keyCheck = Buffer.from(
      hkdfSync("sha256", options.storeKey, new Uint8Array(0), KEY_CHECK_INFO, 32),
    );
    this.#random = options.random ?? osRandom;
    this.#clock = options.clock ?? (() => new Date());
    this.#logger = options.logger;
    this.#ids = new UlidGenerator({ random: this.#random, now: () => this.#clock().getTime() });
  }

  /** The schema migrations the last `open()` applied (none when the schema was current). */
  get migrated(): readonly Migration[] {
    return this.#migrated;
  }

  async open(): Promise<void> {
    if (this.#state !== "new") {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        "This PostgresKeyStore was already opened; make a new one to open the database again.",
      );
    }
    this.#state = "opening";
    const pool = new Pool({ ...connectionConfig(this.#url), max: this.#maxConnections });
    // An idle connection that breaks: the next query reports it; say so once here.
    pool.on("error", (error) => {
      const log = this.#logger?.error ?? this.#logger?.warn;
      const failure = storeFailure(error, this.shownUrl, this.#password) as Error;
      log?.call(this.#logger, { store: this.shownUrl }, failure.message);
    });
    this.#pool = pool;
    try {
      const client = await pool.connect();
      const lost = () => {}; // a lost connection: the pending query rejects and says so
      client.on("error", lost);
      try {
        this.#migrated = await applyMigrations(client);
        if (this.#migrated.length > 0) {
          this.#logger?.warn(
            { store: this.shownUrl, versions: this.#migrated.map((m) => m.version) },
            "applied key store schema migrations",
          );
        }
        await this.#checkKey(client);
        const newest = await client.query<{ id: string | null }>(
          "SELECT max(id) AS id FROM key_records",
        );
        const id = newest.rows[0]?.id;
        if (id) this.#ids.observe(id);
        const size = await client.query<{ size: string }>(
          "SELECT coalesce(max(idx) + 1, 0) AS size FROM log_entries",
        );
        this.#logSize = Number(size.rows[0]!.size);
      } finally {
        client.off("error", lost);
        client.release();
      }
      this.#state = "open";
      // The first sweep starts now but is not awaited: a backlog (the first start after an
      // upgrade) may take a while, and nothing needs it done before serving.
      if (this.#retainUsedMs !== Number.POSITIVE_INFINITY) this.#timedSweep();
    } catch (error) {
      this.#state = "closed";
      this.#pool = undefined;
      await pool.end().catch(() => {});
      this.#wipe();
      throw storeFailure(error, this.shownUrl, this.#password);
    }
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    const pool = this.#pool;
    this.#state = "closed";
    clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    await this.#sweepTail; // stops after its statement in flight (#sweep checks the state)
    this.#pool = undefined;
    await this.#logTail;
    await pool?.end().catch(() => {});
    this.#wipe();
  }

  async put(input: RecordInput): Promise<KeyRecord> {
    this.#assertOpen();
    checkRecordInput(input);
    const record = newRecord(this.#ids.next(), input, this.#clock());
    const publicJson = JSON.stringify(record.public);
    if (Buffer.byteLength(publicJson) > MAX_PUBLIC_BYTES) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        `A record's public part may be at most ${MAX_PUBLIC_BYTES} bytes of JSON; make it smaller.`,
      );
    }
    const roundPart = input.roundPart;
    const sealed =
      roundPart === undefined
        ? sealSecret(this.#secretKey, this.#random, record, input.secret!)
        : undefined;
    // A round part refers to its round's secret (schema version 9's foreign key): without one,
    // this INSERT itself is refused, so no secret deleted in between is ever referred to.
    await this.#query(
      "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, " +
        "public, owner, subject, holders, secret_iv, secret_ct, secret_tag, held, round_part, " +
        "round_secret_id) " +
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
      [
        record.id,
        encodeName(record.purpose),
        new Date(record.createdAt),
        encodeName(record.roundId),
        record.participants.map(encodeName),
        encodeName(record.algorithm),
        publicJson,
        record.owner === undefined ? null : encodeName(record.owner),
        record.subject === undefined ? null : encodeName(record.subject),
        record.holders === undefined ? null : record.holders.map(encodeName),
        sealed ? Buffer.from(sealed.iv) : null,
        sealed ? Buffer.from(sealed.ct) : null,
        sealed ? Buffer.from(sealed.tag) : null,
        record.held === true,
        roundPart === undefined ? null : String(roundPart),
        roundPart === undefined ? null : encodeName(record.roundId),
      ],
      (code) =>
        code === "23503" && roundPart !== undefined ? noRoundSecret(record.roundId) : undefined,
    );
    return record;
  }

  async get(id: string): Promise<KeyRecord | undefined> {
    this.#assertOpen();
    checkId(id);
    if (!isUlid(id)) return undefined;
    const { rows } = await this.#query<RecordRow>(
      `SELECT ${COLUMNS} FROM key_records WHERE id = $1`,
      [id],
    );
    return rows[0] && this.#record(rows[0]);
  }

  async list(query: ListQuery = {}): Promise<KeyRecord[]> {
    this.#assertOpen();
    checkListQuery(query);
    const { sql, values } = listStatement(query);
    const { rows } = await this.#query<RecordRow>(sql, values);
    return rows.map((row) => this.#record(row));
  }

  async readSecret(id: string): Promise<Uint8Array> {
    this.#assertOpen();
    checkId(id);
    if (!isUlid(id)) throw notFound(id);
    const claimed = this.#claimedSecrets.get(id);
    if (claimed) {
      // A round part stays kept for the readSecretPart that should have been called.
      if (claimed.part.kind !== "own") throw notOwnSecret(id);
      this.#claimedSecrets.delete(id);
      return this.#openSealed(claimed.record, claimed.part.sealed);
    }
    const { rows } = await this.#query<SecretRow & { purpose: string; round_id: string }>(
      "SELECT purpose, round_id, secret_iv, secret_ct, secret_tag, round_part " +
        "FROM key_records WHERE id = $1",
      [id],
    );
    const row = rows[0];
    if (!row) throw notFound(id);
    if (row.round_part !== null) throw notOwnSecret(id);
    const { secret_iv: iv, secret_ct: ct, secret_tag: tag } = row;
    if (!iv || !ct || !tag) throw this.#noSecretPart(id);
    const record = { id, purpose: decodeName(row.purpose), roundId: decodeName(row.round_id) };
    return this.#openSealed(record, { iv, ct, tag });
  }

  /** One statement: the record's own sealed secret, or its part and its round's sealed secret. */
  async readSecretPart(id: string): Promise<SecretPart> {
    this.#assertOpen();
    checkId(id);
    if (!isUlid(id)) throw notFound(id);
    const claimed = this.#claimedSecrets.get(id);
    if (claimed) {
      this.#claimedSecrets.delete(id);
      return this.#openPart(claimed.record, claimed.part);
    }
    const { rows } = await this.#query<
      SecretRow & {
        purpose: string;
        round_id: string;
        iv: Buffer | null;
        ct: Buffer | null;
        tag: Buffer | null;
      }
    >(
      "SELECT k.purpose, k.round_id, k.secret_iv, k.secret_ct, k.secret_tag, k.round_part, " +
        "s.iv, s.ct, s.tag FROM key_records k " +
        "LEFT JOIN round_secrets s ON s.round_id = k.round_secret_id WHERE k.id = $1",
      [id],
    );
    const row = rows[0];
    if (!row) throw notFound(id);
    const roundSecret = row.iv && row.ct && row.tag && { iv: row.iv, ct: row.ct, tag: row.tag };
    const record = { id, purpose: decodeName(row.purpose), roundId: decodeName(row.round_id) };
    return this.#openPart(record, this.#sealedPart(id, row, roundSecret || null));
  }

  /** sealedPartOf, and a row with neither (the schema's CHECK and key refuse it) is corrupt. */
  #sealedPart(id: string, row: SecretRow, roundSecret: SealedSecret | null): SealedPart {
    const part = sealedPartOf(row, roundSecret);
    if (part) return part;
    throw this.#noSecretPart(id);
  }

  #noSecretPart(id: string): DkeygenError {
    return new DkeygenError(
      ErrorCodes.STORE_CORRUPT,
      `Record ${id} in the PostgreSQL key store at ${this.shownUrl} has no secret part: neither ` +
        "its own nor its round's.",
    );
  }

  #openPart(
    record: { id: string; purpose: string; roundId: string },
    part: SealedPart,
  ): SecretPart {
    if (part.kind === "own") return { kind: "own", secret: this.#openSealed(record, part.sealed) };
    return {
      kind: "round",
      roundSecret: this.#openRoundSecret(record.roundId, part.roundSecret),
      roundPart: part.roundPart,
    };
  }

  #openRoundSecret(roundId: string, sealed: SealedSecret): Uint8Array {
    try {
      return openRoundSecret(this.#secretKey, roundId, sealed);
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `The round secret of round ${roundId} in the PostgreSQL key store at ${this.shownUrl} ` +
          "does not decrypt.",
        { cause },
      );
    }
  }

  #openSealed(
    record: { id: string; purpose: string; roundId: string },
    sealed: SealedSecret,
  ): Uint8Array {
    const id = record.id;
    try {
      return openSecret(this.#secretKey, record, sealed);
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `The secret part of record ${id} in the PostgreSQL key store at ${this.shownUrl} does ` +
          "not decrypt.",
        { cause },
      );
    }
  }

  /**
   * One statement, durable once it resolves, so `options.ack` makes no difference here: "reserved"
   * is as durable as "durable" (no lease, nothing to void after a crash). Two calls, from this
   * process or any other, never get the same record: the row is locked by the claiming statement
   * and skipped by the others (SKIP LOCKED). "Oldest" is the oldest not being claimed or changed
   * by another statement at that instant.
   */
  async claimNext(
    purpose: string,
    claim: ClaimInput,
    _options?: ClaimOptions,
  ): Promise<KeyRecord | undefined> {
    this.#assertOpen();
    const built = checkClaim(purpose, claim, this.#clock());
    const row = await this.#claims.claim(encodeName(purpose), [
      encodeName(built.requester),
      encodeName(built.subject),
      encodeName(built.requestId),
      new Date(built.claimedAt),
      new Date(built.expiresAt),
    ]);
    if (!row) return undefined;
    const record = this.#record(row);
    const kept = this.#claimedSecrets;
    if (kept.size >= CLAIMED_SECRETS_KEPT) kept.delete(kept.keys().next().value!);
    const roundSecret = row.round_secret && {
      iv: row.round_secret.subarray(0, IV_BYTES),
      tag: row.round_secret.subarray(IV_BYTES, IV_BYTES + TAG_BYTES),
      ct: row.round_secret.subarray(IV_BYTES + TAG_BYTES),
    };
    // The claim is made: a row without a secret part is not kept, and its read says so.
    const part = sealedPartOf(row, roundSecret);
    if (part) {
      kept.set(record.id, {
        record: { id: record.id, purpose: record.purpose, roundId: record.roundId },
        part,
      });
    }
    return record;
  }

  async consume(id: string, at?: Date): Promise<boolean> {
    this.#assertOpen();
    checkId(id);
    checkConsumeAt(at);
    if (!isUlid(id)) throw notFound(id);
    const { rows } = await this.#query<{ found: boolean; done: boolean }>(CONSUME, [
      id,
      at ?? this.#clock(),
    ]);
    if (!rows[0]!.found) throw notFound(id);
    return rows[0]!.done;
  }

  async useStep(id: string, step: number, at?: Date): Promise<boolean> {
    this.#assertOpen();
    checkId(id);
    const value = checkStep(step);
    checkConsumeAt(at);
    if (!isUlid(id)) throw notFound(id);
    const { rows } = await this.#query<{ found: boolean; done: boolean }>(USE_STEP, [
      id,
      String(value),
      at ?? this.#clock(),
    ]);
    if (!rows[0]!.found) throw notFound(id);
    return rows[0]!.done;
  }

  async countUnclaimed(purpose: string): Promise<number> {
    this.#assertOpen();
    checkPurpose(purpose);
    const { rows } = await this.#query<{ n: string }>(
      `SELECT count(*) AS n FROM key_records WHERE purpose = $1 AND ${POOLABLE}`,
      [encodeName(purpose)],
    );
    return Number(rows[0]!.n);
  }

  /** One statement: the round's held rows are released together, in one commit. */
  async releaseHeld(roundId: string): Promise<number> {
    this.#assertOpen();
    checkRoundId(roundId);
    const result = await this.#query(
      "UPDATE key_records SET held = false WHERE round_id = $1 AND held",
      [encodeName(roundId)],
    );
    return result.rowCount ?? 0;
  }

  /**
   * One retention sweep (issue 17): deletes the pool OTPs (purpose "otp", no owner, not held)
   * that died — were consumed, or unconsumed saw their claim expire — strictly before
   * `clock() − retainUsedMs`; one that died exactly then stays. A round secret goes with its
   * round's last record, in the statement that deletes that record (SWEEP_BATCH), never earlier.
   * Nothing else is ever deleted: no other purpose, no pooled, held or owned record, no opening,
   * no log entry (the schema's delete trigger refuses them too), no round secret a record refers
   * to (the foreign key). Batches of RETENTION_BATCH records, each one statement and its own short
   * transaction, until a batch finds fewer. Resolves to the records deleted; 0 when
   * `retainUsedMs` is Infinity (no query). Runs after any sweep already in flight.
   */
  async sweepRetention(): Promise<number> {
    this.#assertOpen();
    if (this.#retainUsedMs === Number.POSITIVE_INFINITY) return 0;
    const run = this.#sweepTail.then(() => this.#sweep());
    this.#sweepTail = run.catch(() => {});
    return run;
  }

  async #sweep(): Promise<number> {
    const cutoff = new Date(this.#clock().getTime() - this.#retainUsedMs);
    let from: Date | string = "-infinity";
    let deleted = 0;
    while (this.#state === "open") {
      const result: { rows: { n: string; last: Date | null }[] } = await this.#query(SWEEP_BATCH, [
        cutoff,
        from,
        RETENTION_BATCH,
      ]);
      const batch = result.rows[0]!;
      const n = Number(batch.n);
      deleted += n;
      if (n < RETENTION_BATCH || batch.last === null) break;
      from = batch.last;
    }
    return deleted;
  }

  /** A sweep from the timer: a failure is logged and the next sweep tries again. */
  #timedSweep(): void {
    this.#sweepTimer = undefined;
    const every = Math.min(
      SWEEP_EVERY_MAX_MS,
      Math.max(SWEEP_EVERY_MIN_MS, Math.floor(this.#retainUsedMs / 4)),
    );
    // Kept in #sweepTail (close awaits it); it never rejects.
    this.#sweepTail = this.sweepRetention()
      .catch((error: unknown) => {
        if (this.#state !== "open") return;
        this.#logger?.warn(
          { store: this.shownUrl, err: error instanceof Error ? error.message : String(error) },
          "key store retention sweep failed; the next one tries again",
        );
      })
      .catch(() => {}) // a logger that throws: nobody else to tell
      .finally(() => {
        if (this.#state !== "open") return;
        this.#sweepTimer = setTimeout(() => this.#timedSweep(), every);
        this.#sweepTimer.unref();
      });
  }

  async appendLogEntry(leaf: Uint8Array): Promise<number> {
    this.#assertOpen();
    const copy = copyLogLeaf(leaf);
    const append = this.#logTail.then(async () => {
      this.#assertOpen();
      const index = this.#logSize;
      await this.#query(
        "INSERT INTO log_entries (idx, prev, leaf) VALUES ($1, $2, $3)",
        [index, index === 0 ? null : index - 1, Buffer.from(copy)],
        // The index is taken (or its predecessor missing): another process appended.
        (code) =>
          code === "23505" || code === "23503"
            ? new DkeygenError(
                ErrorCodes.OPERATIONAL,
                `Log entry ${index} in the PostgreSQL key store at ${this.shownUrl} was ` +
                  "written by another process; one dkeygen server appends to the transparency log.",
              )
            : undefined,
      );
      this.#logSize = index + 1;
      return index;
    });
    this.#logTail = append.catch(() => {});
    return append;
  }

  logSize(): number {
    return this.#logSize;
  }

  async logEntries(start: number, end: number): Promise<Uint8Array[]> {
    this.#assertOpen();
    checkLogRange(start, end, this.#logSize);
    if (start === end) return [];
    const { rows } = await this.#query<{ leaf: Buffer }>(
      "SELECT leaf FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
      [start, end],
    );
    return rows.map((row) => new Uint8Array(row.leaf));
  }

  async putRoundOpening(roundId: string, opening: Uint8Array): Promise<void> {
    this.#assertOpen();
    const copy = checkRoundOpening(roundId, opening);
    // Decided here, synchronously, among this process's calls; the primary key decides among
    // processes.
    if (this.#openingsWriting.has(roundId)) {
      copy.fill(0);
      throw openingExists(roundId);
    }
    let sealed: SealedSecret;
    try {
      sealed = sealOpening(this.#secretKey, this.#random, roundId, copy);
    } finally {
      copy.fill(0);
    }
    this.#openingsWriting.add(roundId);
    try {
      const result = await this.#query(
        "INSERT INTO round_openings (round_id, iv, ct, tag) VALUES ($1, $2, $3, $4) " +
          "ON CONFLICT (round_id) DO NOTHING",
        [
          encodeName(roundId),
          Buffer.from(sealed.iv),
          Buffer.from(sealed.ct),
          Buffer.from(sealed.tag),
        ],
      );
      if (result.rowCount !== 1) throw openingExists(roundId);
    } finally {
      this.#openingsWriting.delete(roundId);
    }
  }

  async readRoundOpening(roundId: string): Promise<Uint8Array | undefined> {
    this.#assertOpen();
    checkRoundId(roundId);
    const { rows } = await this.#query<{ iv: Buffer; ct: Buffer; tag: Buffer }>(
      "SELECT iv, ct, tag FROM round_openings WHERE round_id = $1",
      [encodeName(roundId)],
    );
    const row = rows[0];
    if (!row) return undefined;
    try {
      return openOpening(this.#secretKey, roundId, row);
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `The opening of round ${roundId} in the PostgreSQL key store at ${this.shownUrl} does ` +
          "not decrypt.",
        { cause },
      );
    }
  }

  /**
   * One INSERT, durable once it resolves. Of two calls for one round, from this process or any
   * other, one inserts and the other is refused (E_INVALID_INPUT): here, decided synchronously
   * among this process's calls; among processes, by the primary key.
   */
  async putRoundSecret(roundId: string, secret: Uint8Array): Promise<void> {
    this.#assertOpen();
    const copy = checkRoundSecret(roundId, secret);
    if (this.#roundSecretsWriting.has(roundId)) {
      copy.fill(0);
      throw roundSecretExists(roundId);
    }
    let sealed: SealedSecret;
    try {
      sealed = sealRoundSecret(this.#secretKey, this.#random, roundId, copy);
    } finally {
      copy.fill(0);
    }
    this.#roundSecretsWriting.add(roundId);
    try {
      const result = await this.#query(
        "INSERT INTO round_secrets (round_id, iv, ct, tag) VALUES ($1, $2, $3, $4) " +
          "ON CONFLICT (round_id) DO NOTHING",
        [
          encodeName(roundId),
          Buffer.from(sealed.iv),
          Buffer.from(sealed.ct),
          Buffer.from(sealed.tag),
        ],
      );
      if (result.rowCount !== 1) throw roundSecretExists(roundId);
    } finally {
      this.#roundSecretsWriting.delete(roundId);
    }
  }

  /** Records the key check value in a new database, or refuses a store key that is not its own. */
  async #checkKey(client: ClientBase): Promise<void> {
    await client.query(
      "INSERT INTO store_key_check (check_value) VALUES ($1) ON CONFLICT (only_row) DO NOTHING",
      [this.#keyCheck],
    );
    const { rows } = await client.query<{ check_value: Buffer }>(
      "SELECT check_value FROM store_key_check",
    );
    const stored = rows[0]?.check_value;
    if (stored?.length !== 32 || !timingSafeEqual(stored, this.#keyCheck)) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `The store key does not match the PostgreSQL key store at ${this.shownUrl}: its secrets ` +
          "were sealed under another store key. Check that the store key file belongs to this " +
          "database (restore store.key from your backup). Nothing was changed.",
      );
    }
  }

  /**
   * Runs `body` in one transaction on one connection (BEGIN … COMMIT; ROLLBACK when it throws),
   * for state kept beside the records in the same database (the distribution server's
   * verification attempts, src/server/distribution/verification/postgres-attempt-store.ts).
   * A database error comes back as the store's own (E_UNAVAILABLE when it cannot be reached),
   * never with the URL's password in it.
   */
  async transaction<T>(body: (query: TransactionQuery) => Promise<T>): Promise<T> {
    const pool = this.#pool;
    if (!pool) throw this.#closedError();
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw storeFailure(error, this.shownUrl, this.#password);
    }
    let failed: unknown;
    // A connection lost while checked out is reported as an "error" event on the client (not
    // only as the pending query's rejection): unheard, it would be an uncaught exception.
    const lost = (error: Error) => {
      failed ??= error;
    };
    client.on("error", lost);
    try {
      await client.query("BEGIN");
      const result = await body(async (text, values) => (await client.query(text, values)).rows);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      failed = error;
      await client.query("ROLLBACK").catch(() => {});
      throw error instanceof DkeygenError
        ? error
        : storeFailure(error, this.shownUrl, this.#password);
    } finally {
      client.off("error", lost);
      // A connection whose transaction failed in an unknown state is not reused.
      client.release(failed !== undefined && !(failed instanceof DkeygenError));
    }
  }

  /** Runs one statement; a failure becomes a DkeygenError (`special` may name its own). */
  async #query<R extends QueryResultRow = QueryResultRow>(
    text: string,
    values: unknown[],
    special?: (sqlState: string) => DkeygenError | undefined,
  ) {
    const pool = this.#pool;
    if (!pool) throw this.#closedError();
    try {
      return await pool.query<R>(text, values);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw (
        (typeof code === "string" ? special?.(code) : undefined) ??
        storeFailure(error, this.shownUrl, this.#password)
      );
    }
  }

  #record(row: RecordRow): KeyRecord {
    try {
      return toRecord(row);
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `Record ${row.id} in the PostgreSQL key store at ${this.shownUrl} cannot be read ` +
          "(a name or its public part is not what the store writes).",
        { cause },
      );
    }
  }

  #closedError(): DkeygenError {
    return new DkeygenError(
      ErrorCodes.OPERATIONAL,
      this.#state === "new" || this.#state === "opening"
        ? "The key store is not open; call open() first."
        : "The key store is closed.",
    );
  }

  #assertOpen(): void {
    if (this.#state !== "open") throw this.#closedError();
  }

  #wipe(): void {
    this.#claimedSecrets.clear();
    this.#secretKey.fill(0);
    this.#keyCheck.fill(0);
  }
}
