/**
 * Structured logging with pino. Servers and clients log JSON lines (one object per event, with a
 * message and fields) or, on a terminal, the same events as short human lines. Log calls pass
 * identifiers and counts only; fields that could carry secrets are redacted by name as a second
 * line of defence, and `Secret` values print as `<redacted>` anyway.
 */
import { pino } from "pino";
import { printable, printableJson } from "./printable.js";

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(fields: LogFields, message: string): void;
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
  child(bindings: LogFields): Logger;
  /** Whether a level would be written (pino has it); callers use it to skip building fields. */
  isLevelEnabled?(level: string): boolean;
}

export type LogFormat = "json" | "pretty";
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; standard error by default, so standard output stays for results. */
  stream?: NodeJS.WritableStream;
}

/** Field names that must never reach a log line in the clear. */
const REDACT = [
  "secret",
  "seed",
  "phrase",
  "token",
  "passphrase",
  "privateKey",
  "otp",
  "*.otp",
  "*.secret",
  "*.seed",
  "*.phrase",
  "*.token",
  "*.passphrase",
  "*.privateKey",
];

const LEVEL_NAMES: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO ",
  40: "WARN ",
  50: "ERROR",
  60: "FATAL",
};

/**
 * A field's value on a pretty line: a plain word as is, anything else as JSON; either way escaped
 * (printable.ts), so a value a peer chose cannot break the line or forge another.
 */
function formatValue(value: unknown): string {
  if (typeof value === "string" && !/[\s"=\\]/.test(value)) return printable(value);
  return printableJson(value);
}

/** A pino destination that turns each JSON line into `HH:MM:SS LEVEL message key=value ...`. */
function prettyDestination(out: NodeJS.WritableStream) {
  return {
    write(line: string) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      const { level, time, msg, ...fields } = entry;
      const clock = typeof time === "string" ? time.slice(11, 19) : "";
      const extras = Object.entries(fields)
        .map(([key, value]) => `${printable(key)}=${formatValue(value)}`)
        .join(" ");
      out.write(
        `${clock} ${LEVEL_NAMES[level as number] ?? level} ${printable(String(msg ?? ""))}${extras ? ` ${extras}` : ""}\n`,
      );
    },
  };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr;
  const format = options.format ?? "json";
  const destination = format === "pretty" ? prettyDestination(stream) : stream;
  return pino(
    {
      level: options.level ?? "info",
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: "<redacted>" },
      formatters: { level: (_label, number) => ({ level: number }) },
    },
    destination as NodeJS.WritableStream,
  ) as unknown as Logger;
}

const noop = () => {};

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
  isLevelEnabled: () => false,
};
