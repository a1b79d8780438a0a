/** `dkeygen otp code`: the HOTP/TOTP code of a secret at a time or counter (RFC 4226 / 6238). */
import type { Command } from "commander";
import type { VerifyOutcome } from "../../client/requester.js";
import { hotpCode, OTP_ALGORITHMS, type OtpAlgorithm } from "../../derive/hotp.js";
import { fromBase32, parseOtpauthUri } from "../../derive/otpauth.js";
import { totpCode } from "../../derive/totp.js";
import { DkeygenError, ErrorCodes, isDkeygenError } from "../../errors.js";
import { PrintedFailure } from "../exit-status.js";
import { parseDuration, parsePositiveInt } from "../options.js";
import { printJson } from "../output.js";
import { checkCode, checkSubject, ttlSeconds } from "../request-fields.js";
import { type RequesterFlags, requesterClient, withRequesterOptions } from "./requester.js";

interface CodeFlags {
  secret?: string;
  uri?: string;
  time?: string;
  counter?: string;
  algorithm?: string;
  digits?: string;
  period?: string;
  json?: boolean;
}

function usage(message: string): DkeygenError {
  return new DkeygenError(ErrorCodes.USAGE, message);
}

/** Bad input in a flag's value is a usage error naming the flag (from the environment it is not). */
function asUsage<T>(parse: () => T, flag: string | undefined): T {
  try {
    return parse();
  } catch (error) {
    if (flag === undefined || !isDkeygenError(error, ErrorCodes.INVALID_INPUT)) throw error;
    throw new DkeygenError(ErrorCodes.USAGE, `${flag}: ${error.message}`, { cause: error });
  }
}

export function registerOtp(program: Command): Command {
  const otp = program
    .command("otp")
    .description(
      "one-time passwords: compute codes; request and verify them at a distribution server",
    );
  registerOtpCode(otp);
  registerOtpDelivery(otp);
  return otp;
}

function registerOtpCode(otp: Command): void {
  otp
    .command("code")
    .description("compute the HOTP/TOTP code of a base32 secret or otpauth:// URI")
    .option("--secret <base32>", "the shared secret (or DKEYGEN_OTP_SECRET)")
    .option("--uri <otpauth>", "an otpauth:// URI instead of --secret and its options")
    .option("--time <unix>", "TOTP at this Unix time in seconds (default: now)")
    .option("--counter <n>", "HOTP at this counter")
    .option("--algorithm <name>", "SHA1, SHA256 or SHA512 (default SHA1)")
    .option("--digits <n>", "6, 7 or 8 (default 6)")
    .option("--period <seconds>", "TOTP time step (default 30)")
    .option("--json", "print as JSON")
    .action((flags: CodeFlags) => {
      let secret: Uint8Array;
      let algorithm: OtpAlgorithm = "SHA1";
      let digits = 6;
      let period = 30;
      let counter: bigint | undefined =
        flags.counter === undefined
          ? undefined
          : BigInt(parsePositiveInt(flags.counter, "--counter", 0, Number.MAX_SAFE_INTEGER));
      if (flags.uri !== undefined) {
        const key = asUsage(() => parseOtpauthUri(flags.uri!), "--uri");
        ({ secret, algorithm, digits } = key);
        period = key.period ?? period;
        if (key.type === "hotp" && counter === undefined) counter = BigInt(key.counter ?? 0);
      } else {
        const text = flags.secret ?? process.env.DKEYGEN_OTP_SECRET;
        if (text === undefined)
          throw usage("Give --secret BASE32, --uri otpauth://… or DKEYGEN_OTP_SECRET.");
        secret = asUsage(
          () => fromBase32(text.replace(/\s+/g, "")),
          flags.secret === undefined ? undefined : "--secret",
        );
      }
      if (flags.algorithm !== undefined) {
        const found = OTP_ALGORITHMS.find((a) => a === flags.algorithm!.toUpperCase());
        if (!found) throw usage(`--algorithm wants ${OTP_ALGORITHMS.join(", ")}.`);
        algorithm = found;
      }
      if (flags.digits !== undefined) digits = parsePositiveInt(flags.digits, "--digits", 6, 8);
      if (flags.period !== undefined)
        period = parsePositiveInt(flags.period, "--period", 1, 86_400);
      if (counter !== undefined && flags.time !== undefined)
        throw usage("Give --time or --counter, not both.");
      const time =
        flags.time === undefined
          ? Math.floor(Date.now() / 1000)
          : parsePositiveInt(flags.time, "--time", 0, Number.MAX_SAFE_INTEGER);
      const code =
        counter === undefined
          ? totpCode(secret, time, { algorithm, digits, period })
          : hotpCode(secret, counter, { algorithm, digits });
      secret.fill(0);
      if (flags.json) {
        printJson(
          counter === undefined
            ? { code, type: "totp", time, period, algorithm, digits }
            : { code, type: "hotp", counter: counter.toString(), algorithm, digits },
        );
      } else {
        process.stdout.write(`${code}\n`);
      }
    });
}

/** "1 attempt left", "0 attempts left". */
export function attemptsLeft(count: number): string {
  return `${count} attempt${count === 1 ? "" : "s"} left`;
}

/** A lockout, said with the command that lifts it (e.g. "dkeygen otp unlock --subject alice"). */
function lockedSaying(message: string, unlock: string): string {
  return `${message} To lift it now, run: ${unlock}`;
}

/** Rethrows the server's refusal of a locked subject (E_LOCKED) naming the command that lifts it. */
export function namingUnlock(unlock: string): (error: unknown) => never {
  return (error) => {
    if (isDkeygenError(error, ErrorCodes.LOCKED)) {
      throw new DkeygenError(ErrorCodes.LOCKED, lockedSaying(error.message, unlock), {
        ...(error.retryAfterSeconds === undefined
          ? {}
          : { retryAfterSeconds: error.retryAfterSeconds }),
      });
    }
    throw error;
  };
}

/** Exit status for a verification that said no: the command worked, the code did not. */
function rejected(outcome: VerifyOutcome, unlock: string): DkeygenError {
  const detail =
    outcome.reason === "invalid"
      ? outcome.lockedUntil
        ? lockedSaying(
            `wrong code; ${attemptsLeft(outcome.attemptsLeft ?? 0)}: locked until ${outcome.lockedUntil}.`,
            unlock,
          )
        : `wrong code; ${attemptsLeft(outcome.attemptsLeft ?? 0)}.`
      : outcome.reason === "expired"
        ? "the code has expired."
        : outcome.reason === "replayed"
          ? "that code was already used (replay)."
          : "the code was already used.";
  return new DkeygenError(ErrorCodes.UNAUTHORIZED, `Code rejected: ${detail}`);
}

/**
 * Prints a verification's outcome; a rejected code ends the command with exit status 1, with or
 * without --json (the JSON document is the result either way). `unlock` is the command that lifts
 * a lockout the rejection caused.
 */
export function printVerify(
  outcome: VerifyOutcome,
  json: boolean | undefined,
  unlock: string,
): void {
  if (json) printJson(outcome);
  else if (outcome.valid) process.stdout.write("valid\n");
  if (!outcome.valid) {
    const error = rejected(outcome, unlock);
    throw json ? new PrintedFailure(error) : error;
  }
}

function registerOtpDelivery(otp: Command): void {
  withRequesterOptions(
    otp
      .command("request")
      .description("get a fresh OTP, encrypted to this client's key, and print it"),
  )
    .option("--subject <id>", "who the OTP is for (default: this requester)")
    .option("--ttl <duration>", "how long it stays valid (30s to 1h; default 5m)")
    .option("--json", "print as JSON")
    .action(async (flags: RequesterFlags & { subject?: string; ttl?: string; json?: boolean }) => {
      checkSubject("subject", flags.subject);
      const ttl =
        flags.ttl === undefined ? undefined : ttlSeconds(parseDuration(flags.ttl, "--ttl"));
      const client = await requesterClient(flags);
      const otp = await client.requestOtp({
        ...(flags.subject === undefined ? {} : { subject: flags.subject }),
        ...(ttl === undefined ? {} : { ttlSeconds: ttl }),
      });
      // The OTP is what this command is for: it is printed, on standard output only.
      if (flags.json) printJson(otp);
      else {
        process.stdout.write(`${otp.code}\n`);
        process.stderr.write(
          `for ${otp.subject}, valid until ${otp.expiresAt} (id ${otp.otpId})\n`,
        );
      }
    });

  withRequesterOptions(
    otp.command("verify").description("check a code a subject typed (valid once, before expiry)"),
  )
    .requiredOption("--subject <id>", "whose code it is")
    .requiredOption("--code <digits>", "the code")
    .option("--json", "print as JSON")
    .action(async (flags: RequesterFlags & { subject: string; code: string; json?: boolean }) => {
      checkSubject("subject", flags.subject);
      checkCode(flags.code);
      const client = await requesterClient(flags);
      const unlock = `dkeygen otp unlock --subject ${flags.subject}`;
      const outcome = await client.verifyOtp(flags.subject, flags.code).catch(namingUnlock(unlock));
      printVerify(outcome, flags.json, unlock);
    });

  withRequesterOptions(
    otp.command("unlock").description("lift a subject's lockout after failed attempts"),
  )
    .requiredOption("--subject <id>", "the subject")
    .action(async (flags: RequesterFlags & { subject: string }) => {
      checkSubject("subject", flags.subject);
      const client = await requesterClient(flags);
      await client.unlockOtp(flags.subject);
      process.stdout.write(`unlocked ${flags.subject}\n`);
    });
}
