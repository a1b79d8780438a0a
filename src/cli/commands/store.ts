/** `dkeygen store …`: the key store itself, apart from a running server. */
import type { Command } from "commander";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { migratePostgresStore } from "../../store/postgres.js";
import { SCHEMA_VERSION } from "../../store/postgres-schema.js";
import { redactStoreUrl } from "../../store/postgres-url.js";
import { storeUrlOption } from "../options.js";
import { printJson, printTable } from "../output.js";

interface MigrateFlags {
  store?: string;
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
}
