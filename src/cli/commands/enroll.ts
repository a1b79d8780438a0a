/** `dkeygen enroll`: issues a single-use enrollment token for a new contributor. */
import { open, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { ensureDataDir, fileExists } from "../../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { issueEnrollmentToken } from "../../server/enrollment.js";
import { SERVER_KEY_FILE } from "../../server/identity.js";
import { KEY_STORE_FILE } from "../../server/runtime.js";
import { checkOutputFile, onUserPath } from "../file-errors.js";
import { dataDirOption, parseDuration } from "../options.js";
import { printJson, printTable } from "../output.js";

interface EnrollFlags {
  dataDir?: string;
  name?: string;
  ttl: string;
  out?: string;
  json?: boolean;
}

/**
 * A token is honoured only by a server started on this folder: a folder no server has used (a typo
 * in --data-dir, say) gets a warning, and the token is still issued there.
 */
async function warnIfNoServer(dataDir: string): Promise<void> {
  const used = await Promise.all(
    [SERVER_KEY_FILE, KEY_STORE_FILE].map((name) => fileExists(join(dataDir, name))),
  );
  if (!used.includes(true)) {
    process.stderr.write(
      `dkeygen: warning: no server uses ${dataDir} (no ${SERVER_KEY_FILE} or ${KEY_STORE_FILE} there); the token works only with a server started with --data-dir ${dataDir}.\n`,
    );
  }
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
    .option("--out <file>", "write the token to this new file (0600) instead of printing it")
    .option("--json", "print the token as JSON (with --out: everything but the token)")
    .action(async (flags: EnrollFlags) => {
      if (flags.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(flags.name)) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          "--name may hold letters, digits and . _ @ - (up to 64, starting with a letter or digit).",
        );
      }
      const dataDir = dataDirOption(flags.dataDir, "server");
      const ttlMs = parseDuration(flags.ttl, "--ttl");
      if (flags.out !== undefined) await checkOutputFile("--out", flags.out, { replace: false });
      await onUserPath("--data-dir", dataDir, "folder", () => warnIfNoServer(dataDir));
      await onUserPath("--data-dir", dataDir, "folder", () => ensureDataDir(dataDir));
      // --out: the file is made (0600, never over an existing one) before the token exists, so a
      // token is never issued that could not be written.
      const out =
        flags.out === undefined
          ? undefined
          : await onUserPath("--out", flags.out, "write", () => open(flags.out!, "wx", 0o600));
      let issued: Awaited<ReturnType<typeof issueEnrollmentToken>>;
      try {
        issued = await onUserPath("--data-dir", dataDir, "folder", () =>
          issueEnrollmentToken(dataDir, {
            ttlMs,
            ...(flags.name === undefined ? {} : { name: flags.name }),
          }),
        );
        if (out) {
          await out.writeFile(`${issued.token}\n`);
          await out.sync();
        }
      } catch (error) {
        if (out) await unlink(flags.out!).catch(() => {});
        throw error;
      } finally {
        await out?.close();
      }
      const { token, ...described } = issued;
      // Without --out the token is the one secret this command exists to show; printed once, here.
      if (flags.json) {
        printJson(out ? { ...described, out: flags.out } : issued);
        return;
      }
      if (out) {
        process.stderr.write(`Single-use enrollment token written to ${flags.out} (0600).\n`);
      } else {
        process.stdout.write(`${token}\n`);
        process.stderr.write(
          "Single-use enrollment token (give it to the contributor; it is shown once):\n",
        );
      }
      printTable(
        [
          ["name", issued.name ?? "-"],
          ["expires", issued.expiresAt],
          [
            "use",
            `dkeygen contributor --server URL --token-file ${flags.out ?? "FILE"}   (FILE holds the token)`,
          ],
          ["or", "set DKEYGEN_ENROLL_TOKEN; never put the token on a command line (ps shows it)"],
        ],
        process.stderr,
      );
    });
}
