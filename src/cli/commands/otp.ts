/** `dkeygen otp code`: the HOTP/TOTP code of a secret at a time or counter (RFC 4226 / 6238). */
import type { Command } from "commander";
import { hotpCode, OTP_ALGORITHMS, type OtpAlgorithm } from "../../derive/hotp.js";
import { fromBase32, parseOtpauthUri } from "../../derive/otpauth.js";
import { totpCode } from "../../derive/totp.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { parsePositiveInt } from "../options.js";
import { printJson } from "../output.js";

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

export function registerOtp(program: Command): Command {
  const otp = program
    .command("otp")
    .description(
      "one-time passwords: compute codes (and, with a distribution server, request and verify them)",
    );
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
        const key = parseOtpauthUri(flags.uri);
        ({ secret, algorithm, digits } = key);
        period = key.period ?? period;
        if (key.type === "hotp" && counter === undefined) counter = BigInt(key.counter ?? 0);
      } else {
        const text = flags.secret ?? process.env.DKEYGEN_OTP_SECRET;
        if (text === undefined)
          throw usage("Give --secret BASE32, --uri otpauth://… or DKEYGEN_OTP_SECRET.");
        secret = fromBase32(text.replace(/\s+/g, ""));
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
  return otp;
}
