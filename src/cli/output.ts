/**
 * How commands talk to people and scripts. Results go to standard output (human lines, or one
 * JSON document with --json); progress and logs go to standard error; an error prints one line on
 * standard error (and with --json a `{ok: false, error}` document on standard output) and decides
 * the exit status (exit-status.ts).
 */
import { DkeygenError, describeError, ErrorCodes, exitCodeFor, isDkeygenError } from "../errors.js";
import { createLogger, type LogFormat, type Logger, type LogLevel } from "../logging.js";

export interface OutputOptions {
  json?: boolean;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Lines of `label  value`, aligned, `indent` spaces in. A value of several lines (a PEM block)
 * goes on under its first line, so the block stays in the value column.
 */
export function printTable(
  rows: readonly (readonly [string, string])[],
  stream: NodeJS.WritableStream = process.stdout,
  indent = 2,
): void {
  const width = Math.max(...rows.map(([label]) => label.length));
  const pad = " ".repeat(indent);
  const next = `\n${pad}${" ".repeat(width + 2)}`;
  for (const [label, value] of rows) {
    const lines = value.replace(/\n+$/, "").split("\n");
    stream.write(`${pad}${label.padEnd(width)}  ${lines.join(next)}\n`);
  }
}

const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export function logFormat(value: string | undefined): LogFormat {
  if (value === "json" || value === "pretty") return value;
  if (value !== undefined) {
    throw new DkeygenError(ErrorCodes.USAGE, `--log-format wants json or pretty; got "${value}".`);
  }
  return process.stderr.isTTY ? "pretty" : "json";
}

export function logLevel(value: string | undefined): LogLevel {
  if (value === undefined) return "info";
  const level = LOG_LEVELS.find((l) => l === value);
  if (level === undefined) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `--log-level wants ${LOG_LEVELS.join(", ")}; got "${value}".`,
    );
  }
  return level;
}

export function makeLogger(options: {
  logFormat?: string;
  logLevel?: string;
  quiet?: boolean;
}): Logger {
  const level = logLevel(options.logLevel);
  return createLogger({
    format: logFormat(options.logFormat),
    level: options.quiet ? "warn" : level,
  });
}

/** Prints an error the way the CLI does and returns the exit status to use. */
export function reportError(error: unknown, options: OutputOptions = {}): number {
  const status = exitCodeFor(error);
  const body = isDkeygenError(error)
    ? error.toJSON()
    : { code: "E_INTERNAL", message: describeError(error) };
  if (options.json) printJson({ ok: false, error: body });
  process.stderr.write(`dkeygen: ${body.message.replace(/\s*\n\s*/g, " ")}\n`);
  if (!isDkeygenError(error) && process.env.DKEYGEN_DEBUG) {
    process.stderr.write(`${(error as Error)?.stack ?? ""}\n`);
  }
  return status;
}

export { DkeygenError };
