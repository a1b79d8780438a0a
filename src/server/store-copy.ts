/**
 * `dkeygen store copy`: moves a key generation server from its `key_store` file to PostgreSQL
 * (issue 15 part 7). What a server on the file keeps in its data folder, and where the same server
 * on PostgreSQL (`dkeygen server --data-dir DIR --store URL`) reads it instead:
 *
 *   data folder          on PostgreSQL                     copied
 *   key_store            key_records, round_secrets,       every record with its id, state
 *                        round_openings, log_entries       (claim, consumption, TOTP step, held)
 *                                                          and sealed secret or round part;
 *                                                          every round secret a record refers
 *                                                          to and every opening (sealed); every
 *                                                          log entry at its index
 *   requesters.json      requesters, requester_changes     live registrations, ids kept, K_resp
 *                                                          sealed under the store key
 *   store.key            store_key_check                   stays the key (the copy is sealed
 *                                                          under it); the database learns its
 *                                                          check value only
 *   key_store.head       (none: no MAC chain)              checked, not copied
 *   lockouts             verification_attempts             nothing: a server on the file keeps
 *                                                          them in memory, so a restart clears
 *                                                          them either way
 *
 * Everything else in the folder (server key, admin token, contributors, enrollment tokens) stays
 * where it is and is read there by the server on PostgreSQL too.
 *
 * Removed registrations (requesters.json's tombstones) are not copied: the database keeps a
 * removed registration's key and credential hash, which the file dropped. Their ids are random
 * (16 bytes) and never handed out again, so their records stay unreachable; they are counted in
 * the report. Registrations from before ids or before response keys have no place in the
 * database (its rows need both) and are refused, named, before anything is written.
 *
 * Order of work: the data folder's lock (refused while a server holds it), the file opened and
 * its MAC chain and head file verified (a tampered or cut file is refused with the store's own
 * error before the database is touched), requesters.json read under its lock, the database
 * migrated and its store key checked, then one transaction: refuse a non-empty database unless
 * `force`, insert, count what arrived against the file, commit. Any failure rolls it all back.
 *
 * `force` copies into a database that already holds data (sealed under the same store key, which
 * opening it checks), as a union: it never merges anything that collides. A record id, a round
 * opening or round secret, a requester id or live name in both, or a transparency log in both,
 * refuses the whole copy.
 */
import { LockFile } from "../datadir/lock-file.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { Logger } from "../logging.js";
import type { FileKeyStore } from "../store/file.js";
import { PostgresKeyStore, type TransactionQuery } from "../store/postgres.js";
import {
  countMismatches,
  countRecords,
  countRest,
  expectedCounts,
  insertLogEntries,
  insertOpenings,
  insertRecords,
  insertRoundSecrets,
  type PurposeCounts,
} from "../store/postgres-copy.js";
import { PostgresRequesterStore } from "./postgres-requester-store.js";
import { REGISTRATION_ID, type StoredRegistration } from "./requester-store.js";
import { FileRequesterStore } from "./requesters.js";
import { openStoppedStore } from "./stopped-store.js";

export interface StoreCopyOptions {
  /** The file server's data folder: its key_store, store.key and requesters.json. */
  dataDir: string;
  /** postgres://USER:PASSWORD@HOST:PORT/DATABASE; never shown with its password. */
  url: string;
  /** Copy into a database that holds data already, refusing any collision (module header). */
  force?: boolean;
  /** The key_store's head file, if not <dataDir>/key_store.head. */
  storeHeadFile?: string;
  /** The copy's time (a void record's consumption); now by default. */
  clock?: () => Date;
  logger?: Pick<Logger, "warn" | "error">;
}

export interface StoreCopyReport {
  /** The key_store copied, and its chain's end when read. */
  from: string;
  chain: { lines: number; head: string };
  /** The database, its password hidden. */
  to: string;
  /** Schema versions applied first (none when it was current). */
  migrated: number[];
  /** Records per purpose and state, as the database holds them after the copy. */
  records: PurposeCounts[];
  /** Records leased by a store that stopped before claiming them: copied consumed. */
  voidRecords: number;
  /** Round secrets copied (each shared by its round's records put with a round part). */
  roundSecrets: number;
  roundOpenings: number;
  logEntries: number;
  requesters: number;
  /** Removed registrations (tombstones) in requesters.json, not copied. */
  removedRequesters: number;
}

/** Copies `dataDir`'s key store and requesters into the database at `url` (module header). */
export async function copyStoreToPostgres(options: StoreCopyOptions): Promise<StoreCopyReport> {
  const { dataDir } = options;
  const clock = options.clock ?? (() => new Date());
  const { store: file, storeKey } = await openStoppedStore({
    dataDir,
    verb: "copy",
    whenBusy: "stop the server that uses it, then copy its key store",
    withoutKey: "none of its records can be read",
    ...(options.storeHeadFile === undefined ? {} : { storeHeadFile: options.storeHeadFile }),
    ...(options.logger ? { logger: options.logger } : {}),
    store: { clock },
  });
  try {
    const requesterFile = new FileRequesterStore(dataDir);
    return await LockFile.holding(
      `${requesterFile.where}.lock`,
      {
        what: requesterFile.where,
        busy: ["being changed by", "try again"],
        waitMs: 10_000,
      },
      async () => {
        const { registrations } = await requesterFile.snapshot();
        const { removed } = await requesterFile.list();
        refuseUncopyable(registrations);
        return await copyInto(options, clock, file, storeKey.expose(), {
          registrations,
          removed: removed.length,
        });
      },
    );
  } finally {
    await file.close();
    storeKey.wipe();
  }
}

/** Refuses registrations the database has no row for (module header), naming them. */
function refuseUncopyable(registrations: readonly StoredRegistration[]): void {
  const names = registrations
    .filter((r) => !REGISTRATION_ID.test(r.id) || r.responseKey === undefined)
    .map((r) => r.name);
  if (names.length > 0) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `requesters.json has registrations from before registration ids or response keys ` +
        `(${names.join(", ")}); the database keeps neither kind. Register them again ` +
        "(dkeygen requester remove NAME, then requester add NAME --public-key FILE) and copy " +
        "again. Nothing was copied.",
    );
  }
}

async function copyInto(
  options: StoreCopyOptions,
  clock: () => Date,
  file: FileKeyStore,
  storeKey: Uint8Array,
  requesters: { registrations: StoredRegistration[]; removed: number },
): Promise<StoreCopyReport> {
  const contents = await file.sealedContents();
  // No logger: what it would log (migrations applied, a failed connection) is in the report or
  // the error.
  const postgres = new PostgresKeyStore({ url: options.url, storeKey, clock, maxConnections: 2 });
  // Applies the migrations, and refuses a database sealed under another store key.
  await postgres.open();
  try {
    const requesterStore = new PostgresRequesterStore(postgres, storeKey);
    const shown = postgres.shownUrl;
    const collision = (what: string) =>
      new DkeygenError(
        ErrorCodes.OPERATIONAL,
        `The database at ${shown} holds ${what} already, as does the key_store: --force adds ` +
          "to a database but never merges what collides. Nothing was copied.",
      );
    const ids = contents.records.map(({ record }) => record.id);
    const expected = expectedCounts(contents);
    const at = clock();
    const copied = await postgres.transaction(async (query) => {
      // No other process writes these tables until the copy commits (readers go on).
      await query(
        "LOCK TABLE key_records, round_secrets, round_openings, log_entries, requesters " +
          "IN EXCLUSIVE MODE",
        [],
      );
      if (!options.force) await refuseNonEmpty(query, shown);
      // Before the records that refer to them (the foreign key of schema version 9).
      await insertRoundSecrets(query, contents.roundSecrets, collision);
      await insertRecords(query, contents, at, collision);
      await insertOpenings(query, contents.openings, collision);
      await insertLogEntries(query, contents.leaves, collision);
      await refuseRequesterCollisions(query, requesters.registrations, collision);
      await requesterStore.insertCopied(query, requesters.registrations);
      // What arrived, counted by the database, against the file; a difference rolls back.
      const found = await countRecords(query, ids);
      const rest = await countRest(
        query,
        contents.openings.map(({ roundId }) => roundId),
        contents.roundSecrets.map(({ roundId }) => roundId),
        ids,
      );
      const registered = await query<{ n: string }>(
        "SELECT count(*) AS n FROM requesters WHERE id = ANY($1::text[])",
        [requesters.registrations.map((r) => r.id)],
      );
      const mismatches = countMismatches(expected, found);
      if (rest.roundSecrets !== contents.roundSecrets.length) {
        mismatches.push(
          `round secrets: ${rest.roundSecrets} in the database, ${contents.roundSecrets.length} in the file`,
        );
      }
      const roundParts = contents.records.filter((r) => r.roundPart !== undefined).length;
      if (rest.roundParts !== roundParts) {
        mismatches.push(
          `records with a round part: ${rest.roundParts} in the database, ${roundParts} in the file`,
        );
      }
      if (rest.roundOpenings !== contents.openings.length) {
        mismatches.push(
          `round openings: ${rest.roundOpenings} in the database, ${contents.openings.length} in the file`,
        );
      }
      if (contents.leaves.length > 0 && rest.logEntries !== contents.leaves.length) {
        mismatches.push(
          `log entries: ${rest.logEntries} in the database, ${contents.leaves.length} in the file`,
        );
      }
      if (Number(registered[0]!.n) !== requesters.registrations.length) {
        mismatches.push(
          `requesters: ${registered[0]!.n} in the database, ${requesters.registrations.length} in requesters.json`,
        );
      }
      if (mismatches.length > 0) {
        throw new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `The copy in ${shown} does not match the key_store (${mismatches.join("; ")}); it was ` +
            "rolled back, nothing was copied.",
        );
      }
      return { found, rest, requesters: Number(registered[0]!.n) };
    });
    return {
      from: file.path,
      chain: file.chain,
      to: shown,
      migrated: postgres.migrated.map((m) => m.version),
      records: copied.found,
      voidRecords: contents.records.filter((r) => r.void).length,
      roundSecrets: copied.rest.roundSecrets,
      roundOpenings: copied.rest.roundOpenings,
      logEntries: contents.leaves.length,
      requesters: copied.requesters,
      removedRequesters: requesters.removed,
    };
  } finally {
    await postgres.close();
  }
}

/**
 * Without --force: any record, round secret, opening, log entry or requester in the database
 * refuses the copy.
 */
async function refuseNonEmpty(query: TransactionQuery, shown: string): Promise<void> {
  const rows = await query<{
    records: string;
    secrets: string;
    openings: string;
    entries: string;
    req: string;
  }>(
    "SELECT (SELECT count(*) FROM key_records) AS records, " +
      "(SELECT count(*) FROM round_secrets) AS secrets, " +
      "(SELECT count(*) FROM round_openings) AS openings, " +
      "(SELECT count(*) FROM log_entries) AS entries, " +
      "(SELECT count(*) FROM requesters) AS req",
    [],
  );
  const { records, secrets, openings, entries, req } = rows[0]!;
  if ([records, secrets, openings, entries, req].some((n) => n !== "0")) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `The database at ${shown} is not empty (${records} records, ${secrets} round secrets, ` +
        `${openings} round openings, ${entries} log entries, ${req} requesters); nothing was ` +
        "copied. Copy into an empty database, or give --force to add to this one (refused if " +
        "anything collides).",
    );
  }
}

/** A requester id, or a live name, in both. */
async function refuseRequesterCollisions(
  query: TransactionQuery,
  registrations: readonly StoredRegistration[],
  collision: (what: string) => Error,
): Promise<void> {
  if (registrations.length === 0) return;
  const rows = await query<{ name: string }>(
    "SELECT name FROM requesters WHERE id = ANY($1::text[]) " +
      "OR (removed_at IS NULL AND name = ANY($2::text[])) ORDER BY name LIMIT 1",
    [registrations.map((r) => r.id), registrations.map((r) => r.name)],
  );
  if (rows[0]) throw collision(`a requester named ${rows[0].name}`);
}
