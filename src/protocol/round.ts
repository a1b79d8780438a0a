/**
 * One key-generation round as an explicit state machine. Pure: no sockets, no clock (the caller
 * passes `now`), no randomness; the cryptographic check of a contribution is passed in as `open`
 * and runs only after the cheap checks pass, so a flood of duplicates or strangers costs no RSA.
 *
 *   status       meaning                                         may move to
 *   collecting   seed phrase sent, contributions coming in       completed, failed
 *   completed    closed with at least `quorum` accepted          (final)
 *   failed       closed with fewer than `quorum` accepted        (final)
 *
 * A round closes when every invited contributor has answered or left, or at its deadline,
 * whichever comes first. A contribution is checked in this order, and the first failing check
 * names the error: round still collecting (LATE_CONTRIBUTION) → before the deadline
 * (LATE_CONTRIBUTION) → sender invited (WRONG_ROUND) → first from this sender
 * (DUPLICATE_CONTRIBUTION) → signature and decryption (whatever `open` throws).
 */

import type { AcceptedPhrase } from "../crypto/kdf.js";
import { DkeygenError, ErrorCodes } from "../errors.js";

export type RoundStatus = "collecting" | "completed" | "failed";

const TRANSITIONS: Readonly<Record<RoundStatus, readonly RoundStatus[]>> = {
  collecting: ["completed", "failed"],
  completed: [],
  failed: [],
};

export interface RoundConfig {
  roundId: string;
  purpose: string;
  /** Contributor ids the seed phrase was sent to. */
  invited: readonly string[];
  /** Minimum number of accepted contributions for the round to succeed. */
  quorum: number;
  /** Epoch milliseconds after which no contribution is accepted. */
  deadline: number;
}

export type ContributionVerdict =
  | { kind: "accepted"; contributorId: string }
  | { kind: "rejected"; error: DkeygenError };

export type RoundOutcome =
  | { status: "completed"; accepted: AcceptedPhrase[] }
  | { status: "failed"; error: DkeygenError; acceptedCount: number };

export class RoundMachine {
  readonly config: RoundConfig;
  #status: RoundStatus = "collecting";
  readonly #invited: ReadonlySet<string>;
  readonly #accepted = new Map<string, Uint8Array>();
  /** Invited contributors that can still answer (not answered, not gone). */
  readonly #pending: Set<string>;

  constructor(config: RoundConfig) {
    if (!Number.isInteger(config.quorum) || config.quorum < 1) {
      throw new TypeError("RoundMachine: quorum must be a positive integer");
    }
    this.config = config;
    this.#invited = new Set(config.invited);
    this.#pending = new Set(config.invited);
  }

  get status(): RoundStatus {
    return this.#status;
  }

  get acceptedCount(): number {
    return this.#accepted.size;
  }

  /** True once nobody invited can still answer: the round may close before its deadline. */
  get settled(): boolean {
    return this.#pending.size === 0;
  }

  contribute(contributorId: string, now: number, open: () => Uint8Array): ContributionVerdict {
    const { roundId } = this.config;
    const reject = (code: (typeof ErrorCodes)[keyof typeof ErrorCodes], message: string) => ({
      kind: "rejected" as const,
      error: new DkeygenError(code, message, { culprit: contributorId }),
    });
    if (this.#status !== "collecting" || now > this.config.deadline) {
      return reject(
        ErrorCodes.LATE_CONTRIBUTION,
        `Round ${roundId} is closed; the contribution came too late.`,
      );
    }
    if (!this.#invited.has(contributorId)) {
      return reject(
        ErrorCodes.WRONG_ROUND,
        `Round ${roundId} did not invite contributor ${contributorId}.`,
      );
    }
    if (this.#accepted.has(contributorId)) {
      return reject(
        ErrorCodes.DUPLICATE_CONTRIBUTION,
        `Contributor ${contributorId} already contributed to round ${roundId}.`,
      );
    }
    let phrase: Uint8Array;
    try {
      phrase = open();
    } catch (error) {
      if (error instanceof DkeygenError) {
        return {
          kind: "rejected",
          error: new DkeygenError(error.code, error.message, { culprit: contributorId }),
        };
      }
      throw error;
    }
    this.#accepted.set(contributorId, phrase);
    this.#pending.delete(contributorId);
    return { kind: "accepted", contributorId };
  }

  /** An invited contributor went away; it will not answer. */
  participantLeft(contributorId: string): void {
    this.#pending.delete(contributorId);
  }

  /** Closes the round (at its deadline, or once settled) and says how it ended. */
  close(): RoundOutcome {
    const { roundId, quorum, invited } = this.config;
    const accepted = [...this.#accepted].map(([contributorId, phrase]) => ({
      contributorId,
      phrase,
    }));
    if (accepted.length >= quorum) {
      this.#transition("completed");
      this.#accepted.clear();
      return { status: "completed", accepted };
    }
    this.#transition("failed");
    for (const phrase of this.#accepted.values()) phrase.fill(0);
    this.#accepted.clear();
    const error = new DkeygenError(
      ErrorCodes.QUORUM_NOT_MET,
      `Round ${roundId} failed: ${accepted.length} of ${invited.length} invited contributors ` +
        `sent a valid contribution; the quorum is ${quorum}. Nothing was stored.`,
    );
    return { status: "failed", error, acceptedCount: accepted.length };
  }

  #transition(to: RoundStatus): void {
    if (!TRANSITIONS[this.#status].includes(to)) {
      throw new Error(`RoundMachine: illegal transition ${this.#status} → ${to}`);
    }
    this.#status = to;
  }
}
