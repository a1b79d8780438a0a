/** `dkeygen derive PURPOSE --secret-file F`: the server's derivation, offline, for audit. */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { derivePurpose, PURPOSES } from "../../derive/index.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { onUserPath } from "../file-errors.js";
import { checkPurpose, purposeParams, withPurposeOptions } from "../purpose-options.js";
import { checkQrFiles, qrNeedsReveal, type ShowOptions, showResult } from "../render-result.js";

interface DeriveFlags extends ShowOptions {
  secret?: string;
  secretFile?: string;
  revealSecret?: boolean;
  [option: string]: unknown;
}

async function readRoundSecret(flags: DeriveFlags): Promise<Uint8Array> {
  let text: string | undefined;
  if (flags.secretFile !== undefined) {
    text =
      flags.secretFile === "-"
        ? await readStdin()
        : await onUserPath("--secret-file", flags.secretFile, "read", () =>
            readFile(flags.secretFile!, "utf8"),
          );
  } else if (flags.secret !== undefined) {
    text = flags.secret;
  } else if (process.env.DKEYGEN_ROUND_SECRET) {
    text = process.env.DKEYGEN_ROUND_SECRET;
  }
  if (text === undefined) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "Give the round secret with --secret-file FILE (or -), --secret HEX or DKEYGEN_ROUND_SECRET.",
    );
  }
  const hex = text.trim();
  if (!/^(?:[0-9a-fA-F]{2}){32,}$/.test(hex)) {
    // On the command line it is a bad option value; from a file or the environment, bad input.
    const fromFlag = flags.secretFile === undefined && flags.secret !== undefined;
    throw new DkeygenError(
      fromFlag ? ErrorCodes.USAGE : ErrorCodes.INVALID_INPUT,
      fromFlag
        ? "--secret wants the round secret as hex, at least 32 bytes (64 hex digits)."
        : "The round secret must be hex, at least 32 bytes (64 hex digits).",
    );
  }
  return new Uint8Array(Buffer.from(hex, "hex"));
}

async function readStdin(): Promise<string> {
  let data = "";
  for await (const chunk of process.stdin) data += chunk;
  return data;
}

export function registerDerive(program: Command): void {
  withPurposeOptions(
    program
      .command("derive")
      .description(
        "derive a purpose's output from a round secret, offline (same code as the server)",
      )
      .argument("<purpose>", `what to derive: ${PURPOSES.join(", ")}`),
  )
    .option("--secret-file <file>", "the round secret, hex, from a file (- for standard input)")
    .option(
      "--secret <hex>",
      "the round secret, hex (visible to other users: prefer --secret-file)",
    )
    .option("--reveal-secret", "also print the secret part")
    .option("--qr", "with --reveal-secret: draw the otpauth:// QR code in the terminal")
    .option("--qr-png <file>", "with --reveal-secret: write the otpauth:// QR code as PNG")
    .option("--qr-svg <file>", "with --reveal-secret: write the otpauth:// QR code as SVG")
    .option("--json", "print the result as JSON")
    .action(async (purpose: string, flags: DeriveFlags) => {
      const refusal = qrNeedsReveal(flags);
      if (refusal) throw new DkeygenError(ErrorCodes.USAGE, refusal);
      const { derivation, parsed } = checkPurpose(purpose, await purposeParams(flags));
      const params = derivation.paramsToJson(parsed);
      await checkQrFiles(flags);
      const secret = await readRoundSecret(flags);
      const result = await derivePurpose(purpose, secret, params);
      secret.fill(0);
      const publicParams = Object.fromEntries(
        Object.entries(params).filter(([k]) => k !== "passphrase"),
      );
      await showResult(
        [
          ["purpose", result.purpose],
          // "derivation": a public part may have an "algorithm" of its own (a TOTP's hash).
          ["derivation", result.algorithm],
        ],
        result.public,
        flags.revealSecret ? result.secret : undefined,
        flags,
        {
          purpose: result.purpose,
          algorithm: result.algorithm,
          params: publicParams,
          public: result.public,
        },
      );
    });
}
