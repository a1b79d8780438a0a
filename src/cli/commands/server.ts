/** `dkeygen server`: runs the key generation server until interrupted. */
import type { Command } from "commander";
import { DkeygenError, describeError, ErrorCodes } from "../../errors.js";
import { type StartServerOptions, startServer } from "../../server/runtime.js";
import { PostgresKeyStore } from "../../store/postgres.js";
import {
  type DistributionFlags,
  distributionSettings,
  tlsFilesOption,
  withDistributionOptions,
} from "../distribution-options.js";
import { Interrupted } from "../exit-status.js";
import { fileError } from "../file-errors.js";
import {
  dataDirOption,
  parseDuration,
  parseListen,
  parsePositiveInt,
  parseRetention,
  RETAIN_USED_DEFAULT,
  storeUrlOption,
} from "../options.js";
import { makeLogger, printJson, printTable } from "../output.js";
import { nextStopSignal } from "../signals.js";

interface ServerFlags extends DistributionFlags {
  dataDir?: string;
  listen: string;
  quorum: string;
  roundTimeout: string;
  commitTimeout?: string;
  revealTimeout?: string;
  maxParticipants: string;
  minCosignatures: string;
  store?: string;
  storeKeyFile?: string;
  storeHead?: string;
  acceptStoreRollback?: boolean;
  retainUsed: string;
  httpListen: string;
  otpPool: string;
  otpDigits: string;
  enrollmentsAtOnce: string;
  enrollmentsPerRequester: string;
  logFormat?: string;
  logLevel?: string;
  json?: boolean;
}

export function registerServer(program: Command): void {
  const command = program
    .command("server")
    .description("run the key generation server (makes its RSA-3072 key at first start)")
    .option("--data-dir <dir>", "server data folder (default: $DKEYGEN_HOME/server)")
    .option(
      "--listen <host:port>",
      "WebSocket address for contributors and admins",
      "127.0.0.1:7420",
    )
    .option("--quorum <n>", "minimum accepted contributions per round (at least 2)", "2")
    .option(
      "--round-timeout <duration>",
      "how long each phase of a round (commit, reveal) lasts at most",
      "10s",
    )
    .option(
      "--commit-timeout <duration>",
      "how long a round collects commitments (default: --round-timeout)",
    )
    .option(
      "--reveal-timeout <duration>",
      "how long a round waits for the committed contributions (default: --round-timeout)",
    )
    .option("--max-participants <n>", "most contributors invited to one round (2 to 256)", "256")
    .option(
      "--min-cosignatures <k>",
      "witness cosignatures a checkpoint needs before the results it covers are handed out (0: no witnessing)",
      "1",
    )
    .option(
      "--store <url>",
      "key store on PostgreSQL: postgres://USER:PASSWORD@HOST:PORT/DATABASE (or DKEYGEN_STORE_URL; default: the key_store file in the data folder)",
    )
    .option("--store-key-file <file>", "key store key file (default: <data-dir>/store.key)")
    .option(
      "--store-head <file>",
      "key store head file, to notice a rolled-back key_store (default: <data-dir>/key_store.head)",
    )
    .option(
      "--accept-store-rollback",
      "open a key_store that is shorter than its head file or another copy of it (recorded in the store)",
    )
    .option(
      "--retain-used <duration|forever>",
      "how long used and expired OTPs stay in the key store for audit (then compacted away; TOTP, keys and the log stay for ever)",
      RETAIN_USED_DEFAULT,
    )
    .option(
      "--http-listen <host:port|off>",
      "key distribution server (HTTP) address",
      "127.0.0.1:7421",
    )
    .option("--otp-pool <n>", "OTPs kept ready by background rounds (0: none)", "100")
    .option("--otp-digits <n>", "digits of pooled OTPs", "6")
    .option(
      "--enrollments-at-once <n>",
      "TOTP enrollment rounds running at once, server-wide (0: no cap)",
      "16",
    )
    .option(
      "--enrollments-per-requester <n>",
      "TOTP enrollment rounds one requester may have running at once (0: no cap)",
      "4",
    );
  withDistributionOptions(command)
    .option("--log-format <format>", "json or pretty (default: pretty on a terminal)")
    .option("--log-level <level>", "debug, info, warn or error", "info")
    .option("--json", "print the startup summary as JSON")
    .addHelpText(
      "after",
      "\nEnvironment:\n  DKEYGEN_SERVER_PASSPHRASE  encrypts the server key file at rest (and opens it later)\n  DKEYGEN_STORE_URL          the key store's postgres:// URL when --store is not given",
    )
    .action(async (flags: ServerFlags) => {
      const tlsFiles = tlsFilesOption(flags);
      const storeUrl = storeUrlOption(flags.store);
      if (storeUrl !== undefined && (flags.storeHead !== undefined || flags.acceptStoreRollback)) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          `${flags.storeHead !== undefined ? "--store-head" : "--accept-store-rollback"} is for ` +
            "the key_store file; a PostgreSQL store (--store, DKEYGEN_STORE_URL) has no head file.",
        );
      }
      const retainUsedMs = parseRetention(flags.retainUsed, "--retain-used");
      const dataDir = dataDirOption(flags.dataDir, "server");
      const { host, port } = parseListen(flags.listen);
      const http =
        flags.httpListen === "off" ? undefined : parseListen(flags.httpListen, "--http-listen");
      const shared = distributionSettings(flags);
      const logger = makeLogger(flags);
      const options: StartServerOptions = {
        dataDir,
        host,
        port,
        logger,
        ...(process.env.DKEYGEN_SERVER_PASSPHRASE
          ? { passphrase: process.env.DKEYGEN_SERVER_PASSPHRASE }
          : {}),
        ...(storeUrl === undefined ? {} : { storeUrl }),
        retainUsedMs,
        ...(flags.storeKeyFile ? { storeKeyFile: flags.storeKeyFile } : {}),
        ...(flags.storeHead ? { storeHeadFile: flags.storeHead } : {}),
        ...(flags.acceptStoreRollback ? { acceptStoreRollback: true } : {}),
        ...(tlsFiles ? { tls: tlsFiles } : {}),
        config: {
          quorum: parsePositiveInt(flags.quorum, "--quorum", 2),
          roundTimeoutMs: parseDuration(flags.roundTimeout, "--round-timeout"),
          ...(flags.commitTimeout === undefined
            ? {}
            : { commitTimeoutMs: parseDuration(flags.commitTimeout, "--commit-timeout") }),
          ...(flags.revealTimeout === undefined
            ? {}
            : { revealTimeoutMs: parseDuration(flags.revealTimeout, "--reveal-timeout") }),
          maxParticipants: parsePositiveInt(flags.maxParticipants, "--max-participants", 2, 256),
          minCosignatures: parsePositiveInt(flags.minCosignatures, "--min-cosignatures", 0, 256),
        },
        http:
          http === undefined
            ? false
            : {
                ...http,
                config: {
                  ...shared.config,
                  enrollmentsAtOnce: parsePositiveInt(
                    flags.enrollmentsAtOnce,
                    "--enrollments-at-once",
                    0,
                  ),
                  enrollmentsAtOncePerRequester: parsePositiveInt(
                    flags.enrollmentsPerRequester,
                    "--enrollments-per-requester",
                    0,
                  ),
                },
              },
        otpPool: {
          size: parsePositiveInt(flags.otpPool, "--otp-pool", 0, 1_000_000),
          digits: parsePositiveInt(flags.otpDigits, "--otp-digits", 6, 10),
        },
        lockout: shared.lockout,
      };
      // Taken before the start, so a SIGTERM during it still ends in a clean stop.
      const stopping = nextStopSignal();
      const running = await startServer(options).catch((error: unknown) => {
        stopping.release();
        // A file the user named: the TLS files, the store's key and head, else the data folder.
        const named: [string, string | undefined, "read" | "folder"][] = [
          ["--tls-cert", flags.tlsCert, "read"],
          ["--tls-key", flags.tlsKey, "read"],
          ["--store-key-file", flags.storeKeyFile, "read"],
          ["--store-head", flags.storeHead, "read"],
          ["--data-dir", dataDir, "folder"],
        ];
        for (const [flag, path, use] of named) {
          if (path === undefined) continue;
          const mapped = fileError(flag, path, use, error);
          if (mapped !== error) throw mapped;
        }
        throw error;
      });
      const storeHead = running.storeHead();
      const tls = running.tls;
      if (flags.json) {
        printJson({
          url: running.url,
          httpUrl: running.httpUrl ?? null,
          fingerprint: running.fingerprint,
          keyCreated: running.keyCreated,
          dataDir,
          storeHead: storeHead ?? null,
          tls: tls
            ? {
                certificate: tls.certFile,
                subject: tls.subject,
                subjectAltName: tls.subjectAltName ?? null,
                validTo: tls.validTo.toISOString(),
                fingerprint256: tls.fingerprint256,
              }
            : null,
        });
      } else {
        process.stdout.write("dkeygen key generation server\n");
        printTable([
          [
            "fingerprint",
            `${running.fingerprint}${running.keyCreated ? "  (new RSA-3072 key)" : ""}`,
          ],
          ["listening", running.url],
          ["distribution", running.httpUrl ?? "off"],
          [
            "tls",
            tls
              ? `${tls.subjectAltName ?? tls.subject}, valid until ${tls.validTo.toISOString()}`
              : "off (plain)",
          ],
          ["data folder", dataDir],
          ...(running.store instanceof PostgresKeyStore
            ? [["store", running.store.shownUrl] as const]
            : []),
          ...(storeHead
            ? [["store head", `${storeHead.lines} lines, ${storeHead.head.slice(0, 16)}…`] as const]
            : []),
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
