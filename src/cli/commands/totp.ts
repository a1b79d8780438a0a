/** `dkeygen totp enroll|verify|unlock`: TOTP two-factor enrollment and checks, as a requesting client. */
import type { Command } from "commander";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { onUserPath } from "../file-errors.js";
import { parsePositiveInt } from "../options.js";
import { printJson, printTable } from "../output.js";
import { renderQrTerminal, writeQrPng, writeQrSvg } from "../qr.js";
import { checkCode, checkSubject } from "../request-fields.js";
import { printVerify } from "./otp.js";
import { type RequesterFlags, requesterClient, withRequesterOptions } from "./requester.js";

interface EnrollFlags extends RequesterFlags {
  issuer: string;
  account: string;
  algorithm?: string;
  digits?: string;
  period?: string;
  qr?: boolean;
  qrPng?: string;
  qrSvg?: string;
  revealSecret?: boolean;
  json?: boolean;
}

export function registerTotp(program: Command): void {
  const totp = program
    .command("totp")
    .description("TOTP two-factor authentication: enroll accounts, verify codes");

  withRequesterOptions(
    totp
      .command("enroll")
      .description("make a TOTP secret in a new round; show its QR code to scan"),
  )
    .requiredOption("--issuer <name>", "the service name authenticator apps show")
    .requiredOption("--account <id>", "the user's account (also the subject for verification)")
    .option("--algorithm <name>", "SHA1 (default; what most apps support), SHA256 or SHA512")
    .option("--digits <n>", "6 (default) or 8")
    .option("--period <seconds>", "time step (default 30)")
    .option("--no-qr", "do not draw the QR code in the terminal")
    .option("--qr-png <file>", "write the QR code as PNG (0600)")
    .option("--qr-svg <file>", "write the QR code as SVG (0600)")
    .option("--reveal-secret", "also print the otpauth:// URI and base32 secret")
    .option("--json", "print as JSON (the URI only with --reveal-secret)")
    .action(async (flags: EnrollFlags) => {
      const algorithm = flags.algorithm?.toUpperCase();
      if (algorithm !== undefined && !["SHA1", "SHA256", "SHA512"].includes(algorithm)) {
        throw new DkeygenError(ErrorCodes.USAGE, "--algorithm wants SHA1, SHA256 or SHA512.");
      }
      const digits =
        flags.digits === undefined ? undefined : parsePositiveInt(flags.digits, "--digits", 6, 8);
      if (digits === 7) throw new DkeygenError(ErrorCodes.USAGE, "--digits wants 6 or 8.");
      const period =
        flags.period === undefined
          ? undefined
          : parsePositiveInt(flags.period, "--period", 15, 300);
      const client = await requesterClient(flags);
      const enrollment = await client.enrollTotp({
        issuer: flags.issuer,
        account: flags.account,
        ...(algorithm === undefined
          ? {}
          : { algorithm: algorithm as "SHA1" | "SHA256" | "SHA512" }),
        ...(digits === undefined ? {} : { digits: digits as 6 | 8 }),
        ...(period === undefined ? {} : { period }),
      });
      const { qrPng, qrSvg } = flags;
      if (qrPng)
        await onUserPath("--qr-png", qrPng, "write", () => writeQrPng(qrPng, enrollment.uri));
      if (qrSvg)
        await onUserPath("--qr-svg", qrSvg, "write", () => writeQrSvg(qrSvg, enrollment.uri));
      const { secret, uri, ...publicPart } = enrollment;
      if (flags.json) {
        printJson(flags.revealSecret ? enrollment : publicPart);
        return;
      }
      if (flags.qr !== false) {
        process.stdout.write(
          `Scan with an authenticator app (${enrollment.issuer}: ${enrollment.account}):\n`,
        );
        process.stdout.write(`${renderQrTerminal(uri)}\n`);
      }
      printTable([
        ["record", enrollment.recordId],
        ["issuer", enrollment.issuer],
        ["account", enrollment.account],
        [
          "algorithm",
          `${enrollment.algorithm}, ${enrollment.digits} digits, ${enrollment.period} s`,
        ],
        ...(flags.qrPng ? ([["qr png", flags.qrPng]] as [string, string][]) : []),
        ...(flags.qrSvg ? ([["qr svg", flags.qrSvg]] as [string, string][]) : []),
        ...(flags.revealSecret
          ? ([
              ["secret", secret],
              ["uri", uri],
            ] as [string, string][])
          : []),
      ]);
    });

  withRequesterOptions(
    totp.command("verify").description("check a TOTP code (±1 time step, each step once)"),
  )
    .requiredOption("--account <id>", "the enrolled account")
    .requiredOption("--code <digits>", "the code")
    .option("--json", "print as JSON")
    .action(async (flags: RequesterFlags & { account: string; code: string; json?: boolean }) => {
      checkSubject("account", flags.account);
      checkCode(flags.code);
      const client = await requesterClient(flags);
      printVerify(await client.verifyTotp(flags.account, flags.code), flags.json);
    });

  withRequesterOptions(
    totp.command("unlock").description("lift an account's lockout after failed attempts"),
  )
    .requiredOption("--account <id>", "the account")
    .action(async (flags: RequesterFlags & { account: string }) => {
      checkSubject("account", flags.account);
      const client = await requesterClient(flags);
      await client.unlockTotp(flags.account);
      process.stdout.write(`unlocked ${flags.account}\n`);
    });
}
