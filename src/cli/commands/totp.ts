/**
 * `dkeygen totp enroll|verify|recovery-verify|unlock`: two-factor enrollment (TOTP, or HOTP with
 * --hotp) with recovery codes, and checks, as a requesting client.
 */
import type { Command } from "commander";
import type { TotpEnrollmentResult, TotpEnrollRequest } from "../../client/requester.js";
import { DEFAULT_RECOVERY_CODES, MAX_RECOVERY_CODES } from "../../derive/recovery.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { PrintedFailure } from "../exit-status.js";
import { parsePositiveInt } from "../options.js";
import { printJson, printTable } from "../output.js";
import { renderQrTerminal, writeQrPng, writeQrSvg } from "../qr.js";
import { checkQrFiles } from "../render-result.js";
import { checkCode, checkRecoveryCode, checkSubject } from "../request-fields.js";
import { namingUnlock, printVerify } from "./otp.js";
import { type RequesterFlags, requesterClient, withRequesterOptions } from "./requester.js";

interface EnrollFlags extends RequesterFlags {
  issuer: string;
  account: string;
  algorithm?: string;
  digits?: string;
  period?: string;
  hotp?: boolean;
  counter?: string;
  replace?: boolean;
  recoveryCodes: string;
  qr?: boolean;
  qrPng?: string;
  qrSvg?: string;
  revealSecret?: boolean;
  json?: boolean;
}

/** The enrollment request the flags ask for; usage errors before anything else happens. */
function enrollRequest(flags: EnrollFlags): TotpEnrollRequest {
  const algorithm = flags.algorithm?.toUpperCase();
  if (algorithm !== undefined && !["SHA1", "SHA256", "SHA512"].includes(algorithm)) {
    throw new DkeygenError(ErrorCodes.USAGE, "--algorithm wants SHA1, SHA256 or SHA512.");
  }
  const digits =
    flags.digits === undefined ? undefined : parsePositiveInt(flags.digits, "--digits", 6, 8);
  if (digits === 7) throw new DkeygenError(ErrorCodes.USAGE, "--digits wants 6 or 8.");
  if (flags.hotp && flags.period !== undefined) {
    throw new DkeygenError(ErrorCodes.USAGE, "--period is for TOTP; --hotp takes --counter.");
  }
  if (!flags.hotp && flags.counter !== undefined) {
    throw new DkeygenError(ErrorCodes.USAGE, "--counter is for HOTP: add --hotp.");
  }
  return {
    issuer: flags.issuer,
    account: flags.account,
    ...(flags.hotp ? { type: "hotp" as const } : {}),
    ...(algorithm === undefined ? {} : { algorithm: algorithm as "SHA1" | "SHA256" | "SHA512" }),
    ...(digits === undefined ? {} : { digits: digits as 6 | 8 }),
    ...(flags.period === undefined
      ? {}
      : { period: parsePositiveInt(flags.period, "--period", 15, 300) }),
    ...(flags.counter === undefined
      ? {}
      : { counter: parsePositiveInt(flags.counter, "--counter", 0, Number.MAX_SAFE_INTEGER) }),
    ...(flags.replace ? { replace: true } : {}),
    recoveryCodes: parsePositiveInt(flags.recoveryCodes, "--recovery-codes", 0, MAX_RECOVERY_CODES),
  };
}

export function registerTotp(program: Command): void {
  const totp = program
    .command("totp")
    .description(
      "two-factor authentication (TOTP or HOTP): enroll accounts, verify codes and recovery codes",
    );

  withRequesterOptions(
    totp
      .command("enroll")
      .description(
        "make a TOTP (or HOTP) secret and recovery codes in a new round; show its QR code to scan",
      ),
  )
    .requiredOption("--issuer <name>", "the service name authenticator apps show")
    .requiredOption("--account <id>", "the user's account (also the subject for verification)")
    .option("--algorithm <name>", "SHA1 (default; what most apps support), SHA256 or SHA512")
    .option("--digits <n>", "6 (default) or 8")
    .option("--period <seconds>", "TOTP time step (default 30)")
    .option("--hotp", "an HOTP (counter-based, RFC 4226) enrollment instead of TOTP")
    .option("--counter <n>", "HOTP: the authenticator's first counter (default 0)")
    .option("--replace", "replace the account's enrollment (its old secret and codes stop working)")
    .option(
      "--recovery-codes <n>",
      `single-use recovery codes to make, 0 to ${MAX_RECOVERY_CODES}`,
      String(DEFAULT_RECOVERY_CODES),
    )
    .option("--no-qr", "do not draw the QR code in the terminal")
    .option("--qr-png <file>", "write the QR code as PNG (0600)")
    .option("--qr-svg <file>", "write the QR code as SVG (0600)")
    .option("--reveal-secret", "also print the otpauth:// URI and base32 secret")
    .option(
      "--json",
      "print as JSON (the URI only with --reveal-secret; the recovery codes always)",
    )
    .action(async (flags: EnrollFlags) => {
      const request = enrollRequest(flags);
      // Before the round: a secret made for a file that cannot be written would be lost.
      await checkQrFiles(flags);
      const client = await requesterClient(flags);
      const enrollment = await client.enrollTotp(request);
      let failure: DkeygenError | undefined;
      try {
        if (flags.qrPng) await writeQrPng(flags.qrPng, enrollment.uri);
        if (flags.qrSvg) await writeQrSvg(flags.qrSvg, enrollment.uri);
      } catch (error) {
        // The enrollment exists now: its secret is printed below rather than lost.
        failure = new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `The account is enrolled (record ${enrollment.recordId}), but the QR code could not be written (${(error as NodeJS.ErrnoException).code ?? "error"}); its otpauth:// URI and secret are printed on standard output instead.`,
        );
      }
      printEnrollment(enrollment, flags, failure);
      if (failure && !flags.json) throw failure;
    });

  withRequesterOptions(
    totp
      .command("verify")
      .description(
        "check a TOTP code (±1 time step, each step once) or an HOTP code (look-ahead window, each counter once)",
      ),
  )
    .requiredOption("--account <id>", "the enrolled account")
    .requiredOption("--code <digits>", "the code")
    .option("--json", "print as JSON")
    .action(async (flags: RequesterFlags & { account: string; code: string; json?: boolean }) => {
      checkSubject("account", flags.account);
      checkCode(flags.code);
      const client = await requesterClient(flags);
      const unlock = `dkeygen totp unlock --account ${flags.account}`;
      const outcome = await client
        .verifyTotp(flags.account, flags.code)
        .catch(namingUnlock(unlock));
      printVerify(outcome, flags.json, unlock);
    });

  withRequesterOptions(
    totp
      .command("recovery-verify")
      .description("check one of an account's recovery codes and use it up (each works once)"),
  )
    .requiredOption("--account <id>", "the enrolled account")
    .requiredOption("--code <code>", "the recovery code, xxxxx-xxxxx")
    .option("--json", "print as JSON")
    .action(async (flags: RequesterFlags & { account: string; code: string; json?: boolean }) => {
      checkSubject("account", flags.account);
      checkRecoveryCode(flags.code);
      const client = await requesterClient(flags);
      const unlock = `dkeygen totp unlock --account ${flags.account}`;
      const outcome = await client
        .verifyRecoveryCode(flags.account, flags.code)
        .catch(namingUnlock(unlock));
      if (outcome.valid && !flags.json) {
        const left = outcome.recoveryCodesLeft ?? 0;
        process.stdout.write(`valid; ${left} recovery code${left === 1 ? "" : "s"} left\n`);
        return;
      }
      printVerify(outcome, flags.json, unlock);
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

/**
 * Prints an enrollment. The recovery codes are always printed: they are delivered this once. The
 * secret and URI are printed with --reveal-secret, or when a QR file could not be written
 * (`failure`), so the user is never left without what the account was enrolled with.
 */
function printEnrollment(
  enrollment: TotpEnrollmentResult,
  flags: EnrollFlags,
  failure: DkeygenError | undefined,
): void {
  const reveal = flags.revealSecret === true || failure !== undefined;
  const { secret, uri, ...publicPart } = enrollment;
  if (flags.json) {
    printJson({
      ...(reveal ? enrollment : publicPart),
      ...(failure === undefined ? {} : { error: failure.toJSON() }),
    });
    if (failure) throw new PrintedFailure(failure);
    return;
  }
  if (flags.qr !== false) {
    process.stdout.write(
      `Scan with an authenticator app (${enrollment.issuer}: ${enrollment.account}):\n`,
    );
    process.stdout.write(`${renderQrTerminal(uri)}\n`);
  }
  const shape =
    enrollment.type === "hotp" ? `counter ${enrollment.counter}` : `${enrollment.period} s`;
  const row = (label: string, value: string): [string, string] => [label, value];
  printTable([
    row("record", enrollment.recordId),
    row("type", enrollment.type.toUpperCase()),
    row("issuer", enrollment.issuer),
    row("account", enrollment.account),
    row("algorithm", `${enrollment.algorithm}, ${enrollment.digits} digits, ${shape}`),
    ...(enrollment.replaced ? [row("replaced", enrollment.replaced)] : []),
    ...(flags.qrPng && !failure ? [row("qr png", flags.qrPng)] : []),
    ...(flags.qrSvg && !failure ? [row("qr svg", flags.qrSvg)] : []),
    ...(reveal ? [row("secret", secret), row("uri", uri)] : []),
  ]);
  if (enrollment.recoveryCodes.length > 0) {
    process.stdout.write(
      "\nRecovery codes (each works once; shown only now, keep them somewhere safe):\n",
    );
    for (const code of enrollment.recoveryCodes) process.stdout.write(`  ${code}\n`);
  }
}
