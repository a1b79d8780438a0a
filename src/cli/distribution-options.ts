/**
 * The options of the distribution HTTP API that `dkeygen server` and `dkeygen distributor` share,
 * declared and read in one place so both take them with the same defaults and checks.
 */
import type { Command } from "commander";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { parseDuration, parsePositiveInt } from "./options.js";

export interface DistributionFlags {
  otpTtl: string;
  otpWait: string;
  maxFailures: string;
  lockout: string;
  rateLimitAddress: string;
  rateLimitCredential: string;
  deliveryKeyTtl: string;
  tlsCert?: string;
  tlsKey?: string;
  otpPerMinute: string;
  hotpWindow: string;
  hotpResyncWindow: string;
}

/** Adds the shared options (after whatever `command` declared so far). */
export function withDistributionOptions(command: Command): Command {
  return command
    .option("--otp-ttl <duration>", "how long a delivered OTP stays valid", "5m")
    .option("--otp-wait <duration>", "how long a request waits for an empty pool to refill", "5s")
    .option("--max-failures <n>", "failed verifications before a subject is locked", "5")
    .option("--lockout <duration>", "how long a locked subject stays locked", "15m")
    .option(
      "--rate-limit-address <n>",
      "HTTP requests per minute per client address (0: off)",
      "6000",
    )
    .option(
      "--rate-limit-credential <n>",
      "HTTP requests per minute per credential (0: off)",
      "60000",
    )
    .option(
      "--delivery-key-ttl <duration>",
      "how long one RSA-wrapped delivery key serves a requester (0: a new wrap per delivery)",
      "5m",
    )
    .option(
      "--tls-cert <file>",
      "serve over TLS (wss://, https://) with this PEM certificate chain",
    )
    .option("--tls-key <file>", "the certificate's PEM private key (unencrypted, mode 0600)")
    .option("--otp-per-minute <n>", "OTPs one requester may request per minute (0: no cap)", "3000")
    .option("--hotp-window <n>", "HOTP look-ahead: counters past the expected one, 0 to 100", "10")
    .option(
      "--hotp-resync-window <n>",
      "HOTP resynchronisation from two consecutive codes this far ahead (0: none; up to 1000)",
      "100",
    );
}

/** --tls-cert and --tls-key: both or neither. */
export function tlsFilesOption(
  flags: DistributionFlags,
): { certFile: string; keyFile: string } | undefined {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      flags.tlsCert === undefined
        ? "--tls-key needs --tls-cert: the certificate to serve with that key."
        : "--tls-cert needs --tls-key: the certificate's private key.",
    );
  }
  return flags.tlsCert !== undefined && flags.tlsKey !== undefined
    ? { certFile: flags.tlsCert, keyFile: flags.tlsKey }
    : undefined;
}

/** The shared settings, checked (usage errors naming the flag). */
export function distributionSettings(flags: DistributionFlags) {
  return {
    config: {
      otpTtlMs: parseDuration(flags.otpTtl, "--otp-ttl"),
      otpWaitMs: parseDuration(flags.otpWait, "--otp-wait"),
      rateLimitPerAddress: parsePositiveInt(flags.rateLimitAddress, "--rate-limit-address", 0),
      rateLimitPerCredential: parsePositiveInt(
        flags.rateLimitCredential,
        "--rate-limit-credential",
        0,
      ),
      otpPerMinutePerRequester: parsePositiveInt(flags.otpPerMinute, "--otp-per-minute", 0),
      hotpWindow: parsePositiveInt(flags.hotpWindow, "--hotp-window", 0, 100),
      hotpResyncWindow: parsePositiveInt(flags.hotpResyncWindow, "--hotp-resync-window", 0, 1000),
      deliveryKeyTtlMs:
        flags.deliveryKeyTtl === "0"
          ? 0
          : parseDuration(flags.deliveryKeyTtl, "--delivery-key-ttl"),
    },
    lockout: {
      maxFailures: parsePositiveInt(flags.maxFailures, "--max-failures", 1, 1000),
      lockMs: parseDuration(flags.lockout, "--lockout"),
    },
  };
}
