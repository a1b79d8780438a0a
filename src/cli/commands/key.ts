/**
 * `dkeygen key show|fetch|export-secret`: a generated key's public part, or (for its owner) its
 * secret part or derivation secret; the admin's export of a derivation secret (export-secret.ts).
 */
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import type { JsonObject } from "../../json.js";
import { checkOutputFile, onUserPath } from "../file-errors.js";
import { printJson } from "../output.js";
import { showResult } from "../render-result.js";
import { exportDestination, registerExportSecret, showExport } from "./export-secret.js";
import { recordHeader } from "./generate.js";
import { type RequesterFlags, requesterClient, withRequesterOptions } from "./requester.js";

/** Record ids are ULIDs (PROTOCOL §12). */
function checkRecordId(id: string): void {
  if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(id)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "A record id is 26 characters of Crockford base32 (0-9, A-Z without I, L, O, U), as generate prints it.",
    );
  }
}

export function registerKey(program: Command): void {
  const key = program
    .command("key")
    .description("generated keys: public and secret parts, derivation secrets for audit");

  withRequesterOptions(
    key.command("show").description("print a record's public part").argument("<id>", "record id"),
  )
    .option("--json", "print as JSON")
    .action(async (id: string, flags: RequesterFlags & { json?: boolean }) => {
      checkRecordId(id);
      const record = await (await requesterClient(flags)).getKey(id);
      await showResult(recordHeader(record), record.public as JsonObject, undefined, flags, {
        ...record,
      });
    });

  withRequesterOptions(
    key
      .command("fetch")
      .description(
        "fetch a key made for this client (generate --for), decrypted with this client's key",
      )
      .argument("<id>", "record id"),
  )
    .option("--out <file>", "write the secret part as JSON to this file (0600)")
    .option("--reveal-secret", "print the secret part")
    .option(
      "--derivation-secret",
      "fetch the record's derivation secret instead (hex; --out FILE for dkeygen derive --secret-file)",
    )
    .option("--json", "print as JSON")
    .action(
      async (
        id: string,
        flags: RequesterFlags & {
          out?: string;
          revealSecret?: boolean;
          derivationSecret?: boolean;
          json?: boolean;
        },
      ) => {
        checkRecordId(id);
        if (flags.derivationSecret) {
          await exportDestination(id, flags);
          const { record, exported } = await (await requesterClient(flags)).exportDerivationSecret(
            id,
          );
          await showExport(record, exported, flags);
          return;
        }
        if (!flags.out && !flags.revealSecret) {
          throw new DkeygenError(
            ErrorCodes.USAGE,
            "Say where the secret part goes: --out FILE (written 0600) or --reveal-secret (printed).",
          );
        }
        if (flags.out) await checkOutputFile("--out", flags.out, { replace: false });
        const { record, secret } = await (await requesterClient(flags)).fetchKey(id);
        if (flags.out)
          await onUserPath("--out", flags.out, "write", () =>
            writeFile(flags.out!, `${JSON.stringify(secret, null, 2)}\n`, {
              mode: 0o600,
              flag: "wx",
            }),
          );
        if (flags.json) {
          printJson({
            ...record,
            ...(flags.revealSecret ? { secret } : {}),
            ...(flags.out ? { out: flags.out } : {}),
          });
          return;
        }
        await showResult(
          recordHeader(record),
          record.public as JsonObject,
          flags.revealSecret ? secret : undefined,
          {},
          {},
        );
        if (flags.out) process.stdout.write(`secret part written to ${flags.out} (0600)\n`);
      },
    );

  registerExportSecret(key);
}
