/**
 * The rounds a contributor answered, kept in its data folder (`answered-rounds.jsonl`, one JSON
 * object per line, appended), so that `dkeygen contributor audit` can ask the log for every one of
 * them (docs/PROTOCOL.md §15.5): a receipt shows the rounds whose entries the server sent along
 * with a checkpoint, but a round the server aborted and never logged sends nothing, and would go
 * unnoticed. Every round is logged, completed or aborted (§15), so a round this contributor
 * committed to and that is not in the log once its reveal deadline is well past is the server
 * hiding it.
 *
 *   {"roundId","committedAt","revealDeadline","commitment":b64url(32)}   when it commits
 *   {"roundId","closedAt","outcome"}                                      when the round closes
 *
 * Nothing in it is secret: the commitment is in the round's log entry for anyone to see.
 */
import { join } from "node:path";
import { appendJsonLines, readJsonLines } from "../datadir/files.js";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import type { Logger } from "../logging.js";

export const ANSWERED_FILE = "answered-rounds.jsonl";

export type AnsweredLine =
  | { roundId: string; committedAt: string; revealDeadline: string; commitment: string }
  | { roundId: string; closedAt: string; outcome: string };

/** A round this contributor committed to, as its journal tells it. */
export interface AnsweredRoundRecord {
  roundId: string;
  committedAt: string;
  revealDeadline: string;
  commitment: string;
  outcome?: string;
}

/** Appends lines in order, one write at a time; a failed write is logged, never thrown. */
export class AnsweredJournal {
  readonly #path: string;
  readonly #logger: Logger;
  #tail: Promise<void> = Promise.resolve();

  constructor(dataDir: string, logger: Logger) {
    this.#path = join(dataDir, ANSWERED_FILE);
    this.#logger = logger;
  }

  add(line: AnsweredLine): void {
    this.#tail = this.#tail.then(() =>
      appendJsonLines(this.#path, [line]).catch((error: unknown) => {
        this.#logger.error(
          { path: this.#path, roundId: line.roundId, err: describeError(error) },
          "could not record an answered round (contributor audit will not ask the log for it)",
        );
      }),
    );
  }

  /** Resolves once every line added so far is written (or failed and was logged). */
  flushed(): Promise<void> {
    return this.#tail;
  }
}

const ROUND_ID = /^[A-Za-z0-9_-]{22}$/;

/** The answered rounds in `dataDir`'s journal, in the order they were committed to. */
export async function readAnsweredRounds(dataDir: string): Promise<AnsweredRoundRecord[]> {
  const path = join(dataDir, ANSWERED_FILE);
  const rounds = new Map<string, AnsweredRoundRecord>();
  for (const { line, value: parsed } of await readJsonLines(path)) {
    const value = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<
      string,
      unknown
    >;
    const roundId = value.roundId;
    if (typeof roundId !== "string" || !ROUND_ID.test(roundId)) {
      throw new DkeygenError(ErrorCodes.OPERATIONAL, `${path}: line ${line} names no round.`);
    }
    if (
      typeof value.committedAt === "string" &&
      typeof value.revealDeadline === "string" &&
      typeof value.commitment === "string"
    ) {
      rounds.set(roundId, {
        roundId,
        committedAt: value.committedAt,
        revealDeadline: value.revealDeadline,
        commitment: value.commitment,
      });
    } else if (typeof value.outcome === "string") {
      const round = rounds.get(roundId);
      if (round) round.outcome = value.outcome;
    } else {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        `${path}: line ${line} is neither a commitment nor a closing.`,
      );
    }
  }
  return [...rounds.values()];
}
