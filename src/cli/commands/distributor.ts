/**
 * `dkeygen distributor`: serves the distribution HTTP API alone, from the PostgreSQL key store a
 * `dkeygen server` runs rounds into (src/server/distribution/distributor.ts). Any number may run
 * on one database, behind a load balancer. It imports nothing of the key generation server
 * (test/architecture.test.ts).
 */
import { join } from "node:path";
import type { Command } from "commander";
import { fromBase64url } from "../../crypto/base64url.js";
import { readSecretFile } from "../../datadir/files.js";
import { DkeygenError, describeError, ErrorCodes } from "../../errors.js";
import { startDistributor } from "../../server/distribution/distributor.js";
import {
  type DistributionFlags,
  distributionSettings,
  tlsFilesOption,
  withDistributionOptions,
} from "../distribution-options.js";
import { Interrupted } from "../exit-status.js";
import { fileError } from "../file-errors.js";
import { dataDirOption, parseListen, storeUrlOption } from "../options.js";
import { makeLogger, printJson, printTable } from "../output.js";
import { nextStopSignal } from "../signals.js";

/** The store key's name in the server's data folder (as `dkeygen server` keeps it). */
const STORE_KEY_FILE = "store.key";

interface DistributorFlags extends DistributionFlags {
  store?: string;
  storeKeyFile?: string;
  dataDir?: string;
  httpListen: string;
  logFormat?: string;
  logLevel?: string;
  json?: boolean;
}

export function registerDistributor(program: Command): void {
  const command = program
    .command("distributor")
    .description(
      "serve the key distribution HTTP API from a PostgreSQL key store beside one dkeygen server (run any number)",
    )
    .option(
      "--store <url>",
      "the dkeygen server's PostgreSQL key store: postgres://USER:PASSWORD@HOST:PORT/DATABASE (or DKEYGEN_STORE_URL; required)",
    )
    .option(
      "--data-dir <dir>",
      "the dkeygen server's data folder, for its store.key (default: $DKEYGEN_HOME/server)",
    )
    .option(
      "--store-key-file <file>",
      "the store key file, instead of <data-dir>/store.key (never made here)",
    )
    .option(
      "--http-listen <host:port>",
      "key distribution server (HTTP) address",
      "127.0.0.1:7422",
    );
  withDistributionOptions(command)
    .option("--log-format <format>", "json or pretty (default: pretty on a terminal)")
    .option("--log-level <level>", "debug, info, warn or error", "info")
    .option("--json", "print the startup summary as JSON")
    .addHelpText(
      "after",
      "\nThe store key is read from a file, never from the command line; give --max-failures and\n--lockout the server's values (the counts are kept in the database, together).\n\nEnvironment:\n  DKEYGEN_STORE_URL  the key store's postgres:// URL when --store is not given",
    )
    .action(async (flags: DistributorFlags) => {
      const tls = tlsFilesOption(flags);
      const storeUrl = storeUrlOption(flags.store);
      if (storeUrl === undefined) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          "distributor needs --store postgres://… (or DKEYGEN_STORE_URL): the key_store file has one writer, the dkeygen server, so distributors share a PostgreSQL store.",
        );
      }
      if (flags.dataDir !== undefined && flags.storeKeyFile !== undefined) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          "--data-dir and --store-key-file both name the store key: give one.",
        );
      }
      const { host, port } = parseListen(flags.httpListen, "--http-listen");
      const shared = distributionSettings(flags);
      const [keyFlag, keyPath] =
        flags.storeKeyFile === undefined
          ? ["--data-dir", join(dataDirOption(flags.dataDir, "server"), STORE_KEY_FILE)]
          : ["--store-key-file", flags.storeKeyFile];
      const logger = makeLogger(flags);
      const storeKey = await readStoreKey(keyFlag, keyPath);
      const stopping = nextStopSignal();
      const running = await startDistributor({
        storeUrl,
        storeKey,
        host,
        port,
        logger,
        config: shared.config,
        lockout: shared.lockout,
        ...(tls ? { tls } : {}),
      })
        .catch((error: unknown) => {
          stopping.release();
          for (const [flag, path] of [
            ["--tls-cert", flags.tlsCert],
            ["--tls-key", flags.tlsKey],
          ] as const) {
            if (path === undefined) continue;
            const mapped = fileError(flag, path, "read", error);
            if (mapped !== error) throw mapped;
          }
          throw error;
        })
        .finally(() => storeKey.fill(0));
      if (flags.json) {
        printJson({
          httpUrl: running.url,
          store: running.store.shownUrl,
          tls: running.tls ? { fingerprint256: running.tls.fingerprint256 } : null,
        });
      } else {
        process.stdout.write("dkeygen distributor\n");
        printTable([
          ["distribution", running.url],
          ["store", running.store.shownUrl],
          ["tls", running.tls ? running.tls.fingerprint256 : "off (plain)"],
        ]);
      }
      const signal = await stopping.signal;
      logger.info({ signal }, "stopping");
      try {
        await running.stop();
      } catch (error) {
        logger.error({ err: describeError(error) }, "stopping failed");
        throw error;
      }
      if (signal === "SIGINT") throw new Interrupted();
    });
}

/** The store key, read (mode 0600), never made: a new key would not be the database's. */
async function readStoreKey(flag: string, path: string): Promise<Uint8Array> {
  let text: string;
  try {
    text = (await readSecretFile(path)).toString("utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        `The store key file ${path} does not exist (${flag}). A distributor never makes one: ` +
          "give the dkeygen server's data folder (--data-dir) or a copy of its store.key, mode 0600 (--store-key-file).",
      );
    }
    throw fileError(flag, path, "read", error);
  }
  return fromBase64url(text.trim(), path, 32);
}
