/** `dkeygen store …`: the key store itself, apart from a running server. */
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { Command } from "commander";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { compactStoreFile, type StoreCompactReport } from "../../server/store-compact.js";
import { copyStoreToPostgres, type StoreCopyReport } from "../../server/store-copy.js";
import { migratePostgresStore } from "../../store/postgres.js";
import { SCHEMA_VERSION } from "../../store/postgres-schema.js";
import { redactStoreUrl } from "../../store/postgres-url.js";
import { parseRetention, RETAIN_USED_DEFAULT, storeUrlOption } from "../options.js";
import { makeLogger, printJson, printTable } from "../output.js";

interface MigrateFlags {
  store?: string;
  json?: boolean;
}

interface CompactFlags {
  dataDir: string;
  retainUsed: string;
  storeHead?: string;
  json?: boolean;
}

interface CopyFlags {
  from: string;
  to?: string;
  force?: boolean;
  storeHead?: string;
  json?: boolean;
}

export function registerStore(program: Command): void {
  const store = program.command("store").description("the key store, apart from a running server");
  store
    .command("migrate")
    .description(
      "apply the PostgreSQL key store's schema migrations it lacks, and print them (a server also applies them when it starts)",
    )
    .option("--store <url>", "postgres://USER:PASSWORD@HOST:PORT/DATABASE (or DKEYGEN_STORE_URL)")
    .option("--json", "print what was applied as JSON")
    .action(async (flags: MigrateFlags) => {
      const url = storeUrlOption(flags.store);
      if (url === undefined) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          "store migrate needs --store postgres://… (or DKEYGEN_STORE_URL): the key_store file has no schema to migrate.",
        );
      }
      const applied = await migratePostgresStore(url);
      if (flags.json) {
        printJson({
          store: redactStoreUrl(url),
          applied: applied.map(({ version, name }) => ({ version, name })),
          version: SCHEMA_VERSION,
        });
        return;
      }
      process.stdout.write(
        applied.length === 0
          ? `the key store schema is current (version ${SCHEMA_VERSION}); nothing applied\n`
          : `applied ${applied.length} migration${applied.length === 1 ? "" : "s"}:\n`,
      );
      if (applied.length > 0) {
        printTable(applied.map(({ version, name }) => [String(version), name] as const));
      }
    });
  store
    .command("compact")
    .description(
      "compact a stopped server's key_store file: leave out the OTPs used or expired longer ago than --retain-used, under a new MAC chain that names the old one's end (a running server does this by itself)",
    )
    .requiredOption("--data-dir <dir>", "the server's data folder (its key_store and store.key)")
    .option(
      "--retain-used <duration|forever>",
      "how long used and expired OTPs stay for audit",
      RETAIN_USED_DEFAULT,
    )
    .option("--store-head <file>", "the key_store's head file (default: <dir>/key_store.head)")
    .option("--json", "print what was done as JSON")
    .action(async (flags: CompactFlags) => {
      const retainUsedMs = parseRetention(flags.retainUsed, "--retain-used");
      const dataDir = resolve(flags.dataDir);
      if (!(await stat(dataDir).catch(() => undefined))?.isDirectory()) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          `--data-dir: ${dataDir} is not a folder (give the server's data folder).`,
        );
      }
      const report = await compactStoreFile({
        dataDir,
        retainUsedMs,
        ...(flags.storeHead === undefined ? {} : { storeHeadFile: resolve(flags.storeHead) }),
        logger: makeLogger({ quiet: flags.json === true }),
      });
      if (flags.json) {
        printJson(report);
        return;
      }
      printCompactReport(report);
    });
  store
    .command("copy")
    .description(
      "copy a stopped server's key_store and requesters into an empty PostgreSQL key store, then run it with: dkeygen server --data-dir DATA_DIR --store URL",
    )
    .requiredOption(
      "--from <dir>",
      "the server's data folder (its key_store, store.key, requesters.json)",
    )
    .option("--to <url>", "postgres://USER:PASSWORD@HOST:PORT/DATABASE (or DKEYGEN_STORE_URL)")
    .option(
      "--force",
      "copy into a database that holds data already; anything in both (a record id, a round's opening, a requester, a log) still refuses the copy",
    )
    .option("--store-head <file>", "the key_store's head file (default: <dir>/key_store.head)")
    .option("--json", "print what was copied as JSON")
    .addHelpText(
      "after",
      "\nThe data folder's store.key stays the key: the database gets the secrets sealed under it,\nas they are in the file. Lockouts are not copied: a server on the key_store file keeps them\nin memory only.",
    )
    .action(async (flags: CopyFlags) => {
      const url = storeUrlOption(flags.to, "--to");
      if (url === undefined) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          "store copy needs --to postgres://… (or DKEYGEN_STORE_URL): the database to copy into.",
        );
      }
      const dataDir = resolve(flags.from);
      if (!(await stat(dataDir).catch(() => undefined))?.isDirectory()) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          `--from: ${dataDir} is not a folder (give the server's data folder).`,
        );
      }
      const report = await copyStoreToPostgres({
        dataDir,
        url,
        ...(flags.force ? { force: true } : {}),
        ...(flags.storeHead === undefined ? {} : { storeHeadFile: resolve(flags.storeHead) }),
        logger: makeLogger({ quiet: flags.json === true }),
      });
      if (flags.json) {
        printJson(report);
        return;
      }
      printCopyReport(report);
    });
}

function printCompactReport(report: StoreCompactReport): void {
  const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
  process.stdout.write(`compacted ${report.store} (generation ${report.generation})\n`);
  printTable([
    ["before", `${mib(report.bytesBefore)}, ${report.linesBefore} lines`],
    ["after", `${mib(report.bytesAfter)}, ${report.linesAfter} lines`],
    ["retired now", String(report.retired)],
    ["left out", `${report.dropped} records retired before ${report.cutoff}`],
    ["live records", String(report.liveRecords)],
  ]);
}

/** The human report: where from and to, then a table of what the database holds now. */
function printCopyReport(report: StoreCopyReport): void {
  process.stdout.write(`copied ${report.from} into ${report.to}\n`);
  printTable([
    ["key_store", `${report.chain.lines} lines, MAC chain verified`],
    [
      "migrations",
      report.migrated.length === 0 ? "none needed" : `applied ${report.migrated.join(", ")}`,
    ],
    ["round secrets", String(report.roundSecrets)],
    ["round openings", String(report.roundOpenings)],
    ["log entries", String(report.logEntries)],
    ["requesters", String(report.requesters)],
    ...(report.removedRequesters > 0
      ? [["removed requesters", `${report.removedRequesters} (not copied)`] as const]
      : []),
    ...(report.voidRecords > 0
      ? [["void records", `${report.voidRecords} (copied consumed: never handed out)`] as const]
      : []),
  ]);
  const head = ["purpose", "records", "claimable", "held", "claimed", "consumed", "TOTP step"];
  const rows = report.records.map((c) => [
    c.purpose,
    ...[c.records, c.claimable, c.held, c.claimed, c.consumed, c.stepped].map(String),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    `  ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")}\n`;
  process.stdout.write(`\nrecords (counted in the database, equal to the key_store's)\n`);
  process.stdout.write(line(head));
  for (const row of rows) process.stdout.write(line(row));
}
