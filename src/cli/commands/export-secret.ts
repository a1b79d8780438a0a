/**
 * A record's derivation secret, exported for audit (docs/PROTOCOL.md §9.1): by the admin
 * (`dkeygen key export-secret ID`, over the admin channel) or by the record's owner
 * (`dkeygen key fetch ID --derivation-secret`, over HTTP). Both write the secret, hex, to a new
 * 0600 file that `dkeygen derive --secret-file` reads, print it only when asked to
 * (--reveal-secret), and print the `dkeygen derive` command that re-derives the record, so its
 * output can be compared with the record's public part.
 */
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import type { JsonObject } from "../../json.js";
import type { PublicRecordWire } from "../../protocol/messages.js";
import { checkOutputFile, onUserPath } from "../file-errors.js";
import { printJson, printTable } from "../output.js";
import { type AdminFlags, connectAdmin, recordHeader, withAdminOptions } from "./generate.js";

export interface ExportFlags {
  out?: string;
  revealSecret?: boolean;
  json?: boolean;
}

/**
 * Refuses an export with nowhere to go, of no record id, or to an --out file that cannot be made
 * (a folder, a missing folder, a file that exists), before the server is asked.
 */
export async function exportDestination(id: string, flags: ExportFlags): Promise<void> {
  if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(id)) {
    throw new DkeygenError(ErrorCodes.USAGE, "That is not a record id (26 characters, a ULID).");
  }
  if (!flags.out && !flags.revealSecret) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "Say where the derivation secret goes: --out FILE (written 0600) or --reveal-secret (printed).",
    );
  }
  if (flags.out) await checkOutputFile("--out", flags.out, { replace: false });
}

/** A word for a POSIX shell: as it is when it holds nothing the shell would read. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9._@+:/=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The `dkeygen derive` arguments that re-derive the exported record from `secretFile`. */
export function deriveArguments(
  record: PublicRecordWire,
  exported: JsonObject,
  secretFile: string,
): string[] {
  const params = (exported.params ?? {}) as JsonObject;
  const args = ["derive", record.purpose, "--secret-file", secretFile];
  for (const [key, value] of Object.entries(params)) {
    args.push("--param", `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
  }
  // A wallet's passphrase stays with its owner; derive takes it from a file.
  if (record.public.passphrase === true) args.push("--passphrase-file", "PASSPHRASE_FILE");
  return [...args, "--json"];
}

/** Writes and prints an export as the flags ask. */
export async function showExport(
  record: PublicRecordWire,
  exported: JsonObject,
  flags: ExportFlags,
): Promise<void> {
  const secret = String(exported.derivationSecret);
  const out = flags.out;
  if (out) {
    await onUserPath("--out", out, "write", () =>
      writeFile(out, `${secret}\n`, { mode: 0o600, flag: "wx" }),
    );
  }
  const derive = deriveArguments(record, exported, flags.out ?? "FILE");
  const batch = exported.batch as { index: number; size: number };
  if (flags.json) {
    printJson({
      record,
      params: exported.params,
      batch,
      derive,
      ...(flags.out ? { out: flags.out } : {}),
      ...(flags.revealSecret ? { derivationSecret: secret } : {}),
    });
    return;
  }
  printTable([
    ...recordHeader(record),
    ...(batch.size > 1
      ? ([["batch", `output ${batch.index} of ${batch.size} of its round`]] as [string, string][])
      : []),
    ["re-derive", `dkeygen ${derive.map(shellWord).join(" ")}`],
    ["compare", 'the derived "public" with this record\'s public part (--json: .record.public)'],
  ]);
  if (flags.revealSecret) {
    process.stdout.write("derivation secret (shown because --reveal-secret was given):\n");
    printTable([["secret", secret]]);
  }
  if (flags.out) process.stdout.write(`derivation secret written to ${flags.out} (0600)\n`);
}

/** `dkeygen key export-secret ID`: the admin's export, over the admin channel. */
export function registerExportSecret(key: Command): void {
  withAdminOptions(
    key
      .command("export-secret")
      .description(
        "export a record's derivation secret for audit (admin): re-derive it with dkeygen derive",
      )
      .argument("<id>", "record id"),
  )
    .option("--out <file>", "write the derivation secret, hex, to this new file (0600)")
    .option("--reveal-secret", "print the derivation secret")
    .option("--json", "print as JSON")
    .action(async (id: string, flags: AdminFlags & ExportFlags) => {
      await exportDestination(id, flags);
      const admin = await connectAdmin(flags);
      try {
        const { record, exported } = await admin.exportDerivationSecret(id);
        await showExport(record, exported, flags);
      } finally {
        admin.close();
      }
    });
}
