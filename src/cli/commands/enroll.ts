/** `dkeygen enroll`: issues a single-use enrollment token for a new contributor. */
import type { Command } from "commander";
import { ensureDataDir } from "../../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { issueEnrollmentToken } from "../../server/enrollment.js";
import { dataDirOption, parseDuration } from "../options.js";
import { printJson, printTable } from "../output.js";

interface EnrollFlags {
  dataDir?: string;
  name?: string;
  ttl: string;
  json?: boolean;
}

export function registerEnroll(program: Command): void {
  program
    .command("enroll")
    .description(
      "issue a single-use enrollment token for a contributor (works while the server runs)",
    )
    .option("--data-dir <dir>", "the server's data folder (default: $DKEYGEN_HOME/server)")
    .option("--name <name>", "a name for the contributor, shown in logs")
    .option("--ttl <duration>", "how long the token stays valid", "24h")
    .option("--json", "print the token as JSON")
    .action(async (flags: EnrollFlags) => {
      if (flags.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(flags.name)) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          "--name may hold letters, digits and . _ @ - (up to 64, starting with a letter or digit).",
        );
      }
      const dataDir = dataDirOption(flags.dataDir, "server");
      await ensureDataDir(dataDir);
      const issued = await issueEnrollmentToken(dataDir, {
        ttlMs: parseDuration(flags.ttl, "--ttl"),
        ...(flags.name === undefined ? {} : { name: flags.name }),
      });
      // The token is the one secret this command exists to show; it is printed once, here.
      if (flags.json) {
        printJson(issued);
        return;
      }
      process.stdout.write(`${issued.token}\n`);
      process.stderr.write(
        "Single-use enrollment token (give it to the contributor; it is shown once):\n",
      );
      printTable(
        [
          ["name", issued.name ?? "-"],
          ["expires", issued.expiresAt],
          ["use", "dkeygen contributor --server URL --token TOKEN"],
        ],
        process.stderr,
      );
    });
}
