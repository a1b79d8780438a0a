/**
 * How commands talk to people and scripts. Results go to standard output (human lines, or one
 * JSON document with --json); progress and logs go to standard error; errors print one sentence
 * and set the exit status (0 ok, 1 operational failure, 2 usage error).
 */
import { DkeygenError, describeError, exitCodeFor, isDkeygenError } from "../errors.js";
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

export function logFormat(value: string | undefined): LogFormat {
  if (value === "json" || value === "pretty") return value;
  return process.stderr.isTTY ? "pretty" : "json";
}

export function makeLogger(options: {
  logFormat?: string;
  logLevel?: string;
  quiet?: boolean;
}): Logger {
  return createLogger({
    format: logFormat(options.logFormat),
    level: options.quiet ? "warn" : ((options.logLevel as LogLevel | undefined) ?? "info"),
  });
}

/** Prints an error the way the CLI does and returns the exit status to use. */
export function reportError(error: unknown, options: OutputOptions = {}): number {
  const status = exitCodeFor(error);
  const body = isDkeygenError(error)
    ? error.toJSON()
    : { code: "E_INTERNAL", message: describeError(error) };
  if (options.json) printJson({ ok: false, error: body });
  process.stderr.write(`dkeygen: ${body.message}\n`);
  if (!isDkeygenError(error) && process.env.DKEYGEN_DEBUG) {
    process.stderr.write(`${(error as Error)?.stack ?? ""}\n`);
  }
  return status;
}

export { DkeygenError };
