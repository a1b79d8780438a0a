/**
 * Writing a `key_store` file's contents into the PostgreSQL key store (`dkeygen store copy`,
 * src/server/store-copy.ts), inside one transaction the caller opened
 * (`PostgresKeyStore.transaction`), and counting what arrived.
 *
 * Secrets are copied sealed, byte for byte: both stores seal a record's secret part under the
 * same key (K_secret from store.key) with the same AAD, LP("dkeygen/v1/store/secret", id, purpose,
 * roundId), a round opening's under LP("dkeygen/v1/store/round-opening", roundId) and a round
 * secret's under LP("dkeygen/v1/store/round-secret", roundId) (log-format.ts), so a copied
 * ciphertext opens in the database as it did in the file and nothing is decrypted on the way. A
 * record that shares its round's secret (a round part) is copied with its part number and no
 * sealed secret, after the round secrets it refers to (schema version 9's foreign key).
 *
 * What the file keeps that the schema has no column for:
 * - Claim order. The file orders a requester's claims for a subject by line; the database by
 *   `claim_seq`. Copied claims get fresh values of key_claim_seq, handed out in each group's claim
 *   order, so `latestClaims` reads the same records in the same order.
 * - Void records (leased by a file store that stopped before claiming them: one may have been
 *   handed out with a claim line that never reached the disk). The database has no leases, so
 *   they are copied consumed, at the copy's time: withdrawn for good, as in the file.
 */
import type { SealedContents } from "./file.js";
import type { SealedSecret } from "./log-format.js";
import { decodeName, encodeName, type TransactionQuery } from "./postgres.js";
import type { KeyRecord } from "./types.js";

/** A purpose's records by state, as `dkeygen store copy` verifies and prints them. */
export interface PurposeCounts {
  purpose: string;
  records: number;
  /** What `claimNext` can hand out: no owner, claim, consumption, hold (nor void). */
  claimable: number;
  held: number;
  claimed: number;
  consumed: number;
  /** With a TOTP step recorded. */
  stepped: number;
}

const COUNT_FIELDS = ["records", "claimable", "held", "claimed", "consumed", "stepped"] as const;

/** Rows per INSERT: 25 parameters each, well under PostgreSQL's 65,535 per statement. */
const BATCH = 500;

/**
 * The counts the database must hold once `contents` is copied: the file's own, except that a void
 * record arrives consumed. Sorted by purpose.
 */
export function expectedCounts(contents: SealedContents): PurposeCounts[] {
  const by = new Map<string, PurposeCounts>();
  for (const { record, void: isVoid } of contents.records) {
    let counts = by.get(record.purpose);
    if (!counts) {
      counts = { purpose: record.purpose, ...zero() };
      by.set(record.purpose, counts);
    }
    const consumed = record.consumedAt !== undefined || isVoid;
    counts.records++;
    if (record.held) counts.held++;
    if (record.claim) counts.claimed++;
    if (consumed) counts.consumed++;
    if (record.lastStep !== undefined) counts.stepped++;
    if (
      record.owner === undefined &&
      record.claim === undefined &&
      !consumed &&
      record.held === undefined
    ) {
      counts.claimable++;
    }
  }
  return [...by.values()].sort((a, b) => (a.purpose < b.purpose ? -1 : 1));
}

function zero(): Omit<PurposeCounts, "purpose"> {
  return { records: 0, claimable: 0, held: 0, claimed: 0, consumed: 0, stepped: 0 };
}

/**
 * Where `found` differs from `expected`, one sentence each (none when they agree): a purpose
 * missing or extra, or a count of a purpose that differs.
 */
export function countMismatches(expected: PurposeCounts[], found: PurposeCounts[]): string[] {
  const out: string[] = [];
  const there = new Map(found.map((counts) => [counts.purpose, counts]));
  for (const want of expected) {
    const got = there.get(want.purpose) ?? { purpose: want.purpose, ...zero() };
    there.delete(want.purpose);
    for (const field of COUNT_FIELDS) {
      if (got[field] !== want[field]) {
        out.push(
          `${want.purpose}: ${field} ${got[field]} in the database, ${want[field]} in the file`,
        );
      }
    }
  }
  for (const extra of there.values()) {
    out.push(`${extra.purpose}: ${extra.records} records in the database, none in the file`);
  }
  return out;
}

/** The first of `ids` already in `table`'s `column`, if any (`names`: stored as names). */
async function firstTaken(
  query: TransactionQuery,
  table: string,
  column: string,
  ids: readonly string[],
): Promise<string | undefined> {
  if (ids.length === 0) return undefined;
  const rows = await query<{ taken: string }>(
    `SELECT ${column} AS taken FROM ${table} WHERE ${column} = ANY($1::text[]) ORDER BY 1 LIMIT 1`,
    [ids],
  );
  return rows[0]?.taken;
}

/**
 * Inserts every record of `contents` with its id, state and sealed secret (or round part: its
 * round's secret must be inserted first, insertRoundSecrets). Throws `collision`'s error, before
 * inserting anything, if the database holds one of the ids already.
 */
export async function insertRecords(
  query: TransactionQuery,
  contents: SealedContents,
  at: Date,
  collision: (what: string) => Error,
): Promise<void> {
  const ids = contents.records.map(({ record }) => record.id);
  const taken = await firstTaken(query, "key_records", "id", ids);
  if (taken !== undefined) throw collision(`record ${taken}`);
  const seqs = await claimSequence(query, contents.claimGroups);
  for (let from = 0; from < contents.records.length; from += BATCH) {
    const batch = contents.records.slice(from, from + BATCH);
    const values: unknown[] = [];
    const rows = batch.map(({ record, sealed, roundPart, void: isVoid }) => {
      const secret = secretColumns(record, sealed, roundPart);
      const row = recordRow(record, secret, seqs.get(record.id), isVoid ? at : undefined);
      const first = values.length;
      values.push(...row);
      return `(${row.map((_, i) => `$${first + i + 1}`).join(", ")})`;
    });
    await query(
      "INSERT INTO key_records (id, purpose, created_at, round_id, participants, algorithm, " +
        "public, owner, subject, holders, secret_iv, secret_ct, secret_tag, claim_seq, " +
        "claim_requester, claim_subject, claim_request_id, claimed_at, claim_expires_at, " +
        "consumed_at, last_step, last_step_at, held, round_part, round_secret_id) " +
        `VALUES ${rows.join(", ")}`,
      values,
    );
  }
}

/** secret_iv, secret_ct, secret_tag, round_part, round_secret_id: exactly one of the two kinds. */
type SecretColumns = [Buffer | null, Buffer | null, Buffer | null, string | null, string | null];

function secretColumns(
  record: KeyRecord,
  sealed: SealedSecret | undefined,
  roundPart: number | undefined,
): SecretColumns {
  if (sealed !== undefined && roundPart === undefined) {
    return [Buffer.from(sealed.iv), Buffer.from(sealed.ct), Buffer.from(sealed.tag), null, null];
  }
  if (sealed === undefined && roundPart !== undefined) {
    return [null, null, null, String(roundPart), encodeName(record.roundId)];
  }
  throw new TypeError(`record ${record.id}: exactly one of sealed and roundPart`);
}

/** A record's columns, in the order of the INSERT above. */
function recordRow(
  record: KeyRecord,
  secret: SecretColumns,
  seq: string | undefined,
  voidAt: Date | undefined,
): unknown[] {
  const name = (value: string | undefined) => (value === undefined ? null : encodeName(value));
  const claim = record.claim;
  const consumedAt = record.consumedAt === undefined ? voidAt : new Date(record.consumedAt);
  return [
    record.id,
    encodeName(record.purpose),
    new Date(record.createdAt),
    encodeName(record.roundId),
    record.participants.map(encodeName),
    encodeName(record.algorithm),
    JSON.stringify(record.public),
    name(record.owner),
    name(record.subject),
    record.holders === undefined ? null : record.holders.map(encodeName),
    ...secret.slice(0, 3),
    claim ? seq : null,
    name(claim?.requester),
    name(claim?.subject),
    name(claim?.requestId),
    claim ? new Date(claim.claimedAt) : null,
    claim ? new Date(claim.expiresAt) : null,
    consumedAt ?? null,
    record.lastStep === undefined ? null : String(record.lastStep),
    record.lastStepAt === undefined ? null : new Date(record.lastStepAt),
    record.held === true,
    ...secret.slice(3),
  ];
}

/**
 * Fresh key_claim_seq values for the copied claims (unique among every claim in the database),
 * given out in ascending order along each group's claim order.
 */
async function claimSequence(
  query: TransactionQuery,
  groups: readonly (readonly string[])[],
): Promise<Map<string, string>> {
  const total = groups.reduce((sum, ids) => sum + ids.length, 0);
  const seqs = new Map<string, string>();
  if (total === 0) return seqs;
  const rows = await query<{ n: string }>(
    "SELECT nextval('key_claim_seq')::text AS n FROM generate_series(1, $1)",
    [total],
  );
  const values = rows.map((row) => BigInt(row.n)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let next = 0;
  for (const ids of groups) for (const id of ids) seqs.set(id, String(values[next++]!));
  return seqs;
}

/** Inserts the round openings, sealed as they are; `collision` as for records. */
export async function insertOpenings(
  query: TransactionQuery,
  openings: SealedContents["openings"],
  collision: (what: string) => Error,
): Promise<void> {
  await insertSealedByRound(query, "round_openings", openings, (roundId) =>
    collision(`the opening of round ${roundId}`),
  );
}

/** Inserts the round secrets, sealed as they are, before the records that refer to them. */
export async function insertRoundSecrets(
  query: TransactionQuery,
  roundSecrets: SealedContents["roundSecrets"],
  collision: (what: string) => Error,
): Promise<void> {
  await insertSealedByRound(query, "round_secrets", roundSecrets, (roundId) =>
    collision(`the round secret of round ${roundId}`),
  );
}

/** round_openings and round_secrets alike: (round_id, iv, ct, tag), one row per round. */
async function insertSealedByRound(
  query: TransactionQuery,
  table: "round_openings" | "round_secrets",
  sealedByRound: readonly { roundId: string; sealed: SealedSecret }[],
  collision: (roundId: string) => Error,
): Promise<void> {
  const names = sealedByRound.map(({ roundId }) => encodeName(roundId));
  const taken = await firstTaken(query, table, "round_id", names);
  if (taken !== undefined) throw collision(decodeName(taken));
  for (let from = 0; from < sealedByRound.length; from += BATCH) {
    const batch = sealedByRound.slice(from, from + BATCH);
    const values: unknown[] = [];
    const rows = batch.map(({ roundId, sealed }) => {
      const first = values.length;
      values.push(encodeName(roundId), Buffer.from(sealed.iv), Buffer.from(sealed.ct));
      values.push(Buffer.from(sealed.tag));
      return `($${first + 1}, $${first + 2}, $${first + 3}, $${first + 4})`;
    });
    await query(`INSERT INTO ${table} (round_id, iv, ct, tag) VALUES ${rows.join(", ")}`, values);
  }
}

/**
 * Inserts the transparency log's entries at their indexes. A log cannot be merged with another
 * (its checkpoints would no longer hold), so `collision` is thrown when the database's log has
 * entries already and the file's has any.
 */
export async function insertLogEntries(
  query: TransactionQuery,
  leaves: readonly Uint8Array[],
  collision: (what: string) => Error,
): Promise<void> {
  if (leaves.length === 0) return;
  const rows = await query<{ n: string }>("SELECT count(*)::text AS n FROM log_entries", []);
  if (rows[0]!.n !== "0") throw collision(`a transparency log (${rows[0]!.n} entries)`);
  for (let from = 0; from < leaves.length; from += BATCH) {
    const batch = leaves.slice(from, from + BATCH);
    await query(
      "INSERT INTO log_entries (idx, prev, leaf) " +
        "SELECT i, NULLIF(i, 0) - 1, leaf FROM unnest($1::bigint[], $2::bytea[]) AS e(i, leaf) " +
        "ORDER BY i",
      [batch.map((_, i) => String(from + i)), batch.map((leaf) => Buffer.from(leaf))],
    );
  }
}

/** The database's counts of the records with `ids`, by purpose (sorted). */
export async function countRecords(
  query: TransactionQuery,
  ids: readonly string[],
): Promise<PurposeCounts[]> {
  const rows = await query<Record<(typeof COUNT_FIELDS)[number], string> & { purpose: string }>(
    "SELECT purpose, count(*) AS records, " +
      "count(*) FILTER (WHERE owner IS NULL AND claim_seq IS NULL AND consumed_at IS NULL " +
      "AND NOT held) AS claimable, " +
      "count(*) FILTER (WHERE held) AS held, " +
      "count(*) FILTER (WHERE claim_seq IS NOT NULL) AS claimed, " +
      "count(*) FILTER (WHERE consumed_at IS NOT NULL) AS consumed, " +
      "count(*) FILTER (WHERE last_step IS NOT NULL) AS stepped " +
      "FROM key_records WHERE id = ANY($1::text[]) GROUP BY purpose",
    [ids],
  );
  return rows
    .map((row) => {
      const counts: PurposeCounts = { purpose: decodeName(row.purpose), ...zero() };
      for (const field of COUNT_FIELDS) counts[field] = Number(row[field]);
      return counts;
    })
    .sort((a, b) => (a.purpose < b.purpose ? -1 : 1));
}

/**
 * How many of `openingRounds` have an opening in the database, how many of `secretRounds` a round
 * secret, how many of the records `ids` have a round part, and how many log entries it has.
 */
export async function countRest(
  query: TransactionQuery,
  openingRounds: readonly string[],
  secretRounds: readonly string[],
  ids: readonly string[],
): Promise<{
  roundOpenings: number;
  roundSecrets: number;
  roundParts: number;
  logEntries: number;
}> {
  const rows = await query<{ openings: string; secrets: string; parts: string; entries: string }>(
    "SELECT (SELECT count(*) FROM round_openings WHERE round_id = ANY($1::text[])) AS openings, " +
      "(SELECT count(*) FROM round_secrets WHERE round_id = ANY($2::text[])) AS secrets, " +
      "(SELECT count(*) FROM key_records WHERE id = ANY($3::text[]) AND round_part IS NOT NULL) " +
      "AS parts, (SELECT count(*) FROM log_entries) AS entries",
    [openingRounds.map(encodeName), secretRounds.map(encodeName), ids],
  );
  const row = rows[0]!;
  return {
    roundOpenings: Number(row.openings),
    roundSecrets: Number(row.secrets),
    roundParts: Number(row.parts),
    logEntries: Number(row.entries),
  };
}
