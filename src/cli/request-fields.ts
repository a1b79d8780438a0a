/**
 * The distribution API's request fields that the CLI takes from flags. Each is checked against the
 * route's own schema (src/server/distribution/schemas.ts) before anything is sent or read, so a bad
 * value is a usage error (exit status 2) that names the flag. When a server still refuses one (a
 * server of another version, say), its 400 answer names the schema path (`body/ttlSeconds`); the
 * CLI names the flag instead (`--ttl`) and keeps the exit status of a usage error.
 */
import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { DkeygenError, ErrorCodes, isDkeygenError } from "../errors.js";
import { printableJson, printableShort } from "../printable.js";
import { Subject } from "../server/distribution/schemas.js";

interface Field {
  flag: string;
  wants: string;
  schema?: TSchema;
  /** False for a value not to repeat in an error (a code someone typed). */
  echo?: boolean;
}

const SUBJECT_WANTS = "1 to 128 letters, digits or . _ @ + : - (starting with a letter or digit)";

/** By the field's name in request bodies. */
const FIELDS: Record<string, Field> = {
  subject: { flag: "--subject", wants: SUBJECT_WANTS, schema: Subject },
  account: { flag: "--account", wants: SUBJECT_WANTS, schema: Subject },
  code: { flag: "--code", wants: "6 to 10 digits", echo: false },
  ttlSeconds: { flag: "--ttl", wants: "a duration from 30s to 1h" },
  issuer: { flag: "--issuer", wants: "1 to 64 characters" },
  algorithm: { flag: "--algorithm", wants: "SHA1, SHA256 or SHA512" },
  digits: { flag: "--digits", wants: "6 or 8" },
  period: { flag: "--period", wants: "15 to 300 seconds" },
};

const CODE = /^[0-9]{6,10}$/;
export const OTP_TTL_SECONDS = { min: 30, max: 3600 } as const;

function refuse(name: string, value: unknown): DkeygenError {
  const field = FIELDS[name]!;
  const got =
    field.echo === false ? "" : `; got ${printableJson(printableShort(String(value), 80))}`;
  return new DkeygenError(ErrorCodes.USAGE, `${field.flag} wants ${field.wants}${got}.`);
}

/** Refuses a subject or account the server would refuse. */
export function checkSubject(name: "subject" | "account", value: string | undefined): void {
  if (value !== undefined && !Value.Check(FIELDS[name]!.schema!, value)) {
    throw refuse(name, value);
  }
}

/** Refuses a code that is not 6 to 10 digits (without repeating it). */
export function checkCode(value: string): void {
  if (!CODE.test(value)) throw refuse("code", value);
}

const RECOVERY_CODE = /^[0-9A-Za-z]{5}[- ]?[0-9A-Za-z]{5}$/;

/** Refuses what cannot be a recovery code (without repeating it). */
export function checkRecoveryCode(value: string): void {
  if (!RECOVERY_CODE.test(value)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "--code wants a recovery code: 10 letters and digits, as xxxxx-xxxxx.",
    );
  }
}

/** --ttl in whole seconds, refused outside what the server accepts. */
export function ttlSeconds(ms: number): number {
  const seconds = Math.round(ms / 1000);
  if (seconds < OTP_TTL_SECONDS.min || seconds > OTP_TTL_SECONDS.max) {
    throw refuse("ttlSeconds", `${seconds}s`);
  }
  return seconds;
}

/**
 * A distribution server's refusal of a request field (400 E_INVALID_INPUT naming `body/<field>`)
 * as the usage error it is: the value came from a flag, and the sentence names that flag.
 */
export function nameRequestFlags(error: unknown): unknown {
  if (!isDkeygenError(error, ErrorCodes.INVALID_INPUT)) return error;
  const match = /\bbody\/([A-Za-z]+)/.exec(error.message);
  const field = match ? FIELDS[match[1]!] : undefined;
  if (field === undefined) return error;
  return new DkeygenError(
    ErrorCodes.USAGE,
    `${field.flag} wants ${field.wants} (the server said: ${error.message.replace(/\bbody\/([A-Za-z]+)/g, (_all, name: string) => FIELDS[name]?.flag ?? name)})`,
    { cause: error },
  );
}
