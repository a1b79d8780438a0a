/**
 * The exit statuses scripts can rely on (README "Exit status"), and how a command ends with one.
 * Commands never set `process.exitCode`: they return (0), throw a DkeygenError (1, or 2 for
 * E_USAGE), throw `PrintedFailure` after printing a result that is a failure (a rejected code), or
 * throw `Interrupted` after a clean stop on Ctrl-C. `main` turns each into the status, once.
 */
import type { DkeygenError } from "../errors.js";

export const ExitStatus = {
  OK: 0,
  /** An operational failure, or a code that was rejected. */
  FAILURE: 1,
  /** A command line that does not parse, or an option value that is not allowed. */
  USAGE: 2,
  /** Stopped by Ctrl-C (SIGINT): 128 + 2, as shells report it. */
  INTERRUPTED: 130,
  /** Stopped by SIGTERM before it finished (a one-shot command): 128 + 15. */
  TERMINATED: 143,
} as const;

/**
 * A command that has printed its result, and that result is a failure (a verification that said
 * no, with --json): `main` adds the reason on standard error and exits with its status, without a
 * second document on standard output.
 */
export class PrintedFailure extends Error {
  readonly error: DkeygenError;

  constructor(error: DkeygenError) {
    super(error.message);
    this.name = "PrintedFailure";
    this.error = error;
  }
}

/** A long-running command that stopped cleanly because of Ctrl-C: exit status 130. */
export class Interrupted extends Error {
  constructor() {
    super("interrupted");
    this.name = "Interrupted";
  }
}
