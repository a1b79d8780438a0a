/**
 * One key-generation round as an explicit state machine: commit, then reveal. Pure: no sockets, no
 * clock (the caller passes `now`), no randomness; the cryptographic checks are passed in as
 * callbacks and run only after the cheap checks pass, so a flood of duplicates or strangers costs
 * no signature check and no RSA.
 *
 *   status       meaning                                               may move to
 *   committing   round.open sent; signed commitments coming in          revealing, failed
 *   revealing    commit set sent; envelopes coming in                   completed, aborted
 *   completed    every committed contributor revealed a valid envelope  (final)
 *   failed       fewer than `quorum` commitments: nothing was revealed  (final)
 *   aborted      a committed contributor did not reveal; named          (final)
 *
 * The commit phase ends when every invited contributor has committed or left, or at the commit
 * deadline. With fewer than `quorum` commitments the round fails — nobody has revealed anything,
 * so failing then tells the server nothing about the result. Otherwise the commitments form the
 * commit set, and **every** one of them must be revealed: the round completes only with all of
 * them, and aborts — naming who did not reveal — when a committed contributor leaves, reveals an
 * envelope that does not decrypt, or misses the reveal deadline. It is never completed with a
 * smaller set.
 *
 * A commit is checked in this order (the first failure names the error): round committing
 * (WRONG_PHASE, or LATE_CONTRIBUTION once closed) → before the commit deadline
 * (LATE_CONTRIBUTION) → sender invited (WRONG_ROUND) → first from this sender
 * (DUPLICATE_CONTRIBUTION) → signature (whatever `check` throws).
 * A reveal: round revealing (WRONG_PHASE while committing, LATE_CONTRIBUTION once closed) →
 * before the reveal deadline (LATE_CONTRIBUTION) → sender invited (WRONG_ROUND) → sender in the
 * commit set (NOT_COMMITTED, as WRONG_ROUND) → first from this sender (DUPLICATE_CONTRIBUTION)
 * → countersigned set, signature, commitment and decryption (whatever `open` throws).
 */

import type { AcceptedPhrase } from "../crypto/kdf.js";
import { DkeygenError, type ErrorCode, ErrorCodes } from "../errors.js";
import { type CommitEntry, compareIds } from "./signed-data.js";

export type RoundStatus = "committing" | "revealing" | "completed" | "failed" | "aborted";

const TRANSITIONS: Readonly<Record<RoundStatus, readonly RoundStatus[]>> = {
  committing: ["revealing", "failed"],
  revealing: ["completed", "aborted"],
  completed: [],
  failed: [],
  aborted: [],
};

export interface RoundConfig {
  roundId: string;
  purpose: string;
  /** Contributor ids the invitation was sent to. */
  invited: readonly string[];
  /** Minimum number of commitments for the round to go on to its reveal phase. */
  quorum: number;
  /** Epoch milliseconds after which no commit is accepted. */
  commitDeadline: number;
  /** Epoch milliseconds after which no reveal is accepted. */
  revealDeadline: number;
}

export type Verdict =
  | { kind: "accepted"; contributorId: string }
  | { kind: "rejected"; error: DkeygenError /** The sender can no longer reveal. */; final?: true };

export type CommitClose =
  | { status: "revealing"; commits: CommitEntry[] }
  | { status: "failed"; error: DkeygenError; committed: number };

export type RoundOutcome =
  | { status: "completed"; accepted: AcceptedPhrase[] }
  | { status: "failed"; error: DkeygenError; acceptedCount: number }
  | { status: "aborted"; error: DkeygenError; missing: string[]; revealed: number };

export class RoundMachine {
  readonly config: RoundConfig;
  #status: RoundStatus = "committing";
  readonly #invited: ReadonlySet<string>;
  readonly #commitments = new Map<string, Uint8Array>();
  readonly #phrases = new Map<string, Uint8Array>();
  /** Committing: invited contributors that can still commit. Revealing: that can still reveal. */
  readonly #pending: Set<string>;
  /** Reveals begun and not finished (their cryptographic checks are under way). */
  readonly #opening = new Set<string>();
  /** Why the commit phase failed, once it did. */
  #failure: DkeygenError | undefined;

  constructor(config: RoundConfig) {
    if (!Number.isInteger(config.quorum) || config.quorum < 1) {
      throw new TypeError("RoundMachine: quorum must be a positive integer");
    }
    if (config.revealDeadline < config.commitDeadline) {
      throw new TypeError("RoundMachine: the reveal deadline comes after the commit deadline");
    }
    this.config = config;
    this.#invited = new Set(config.invited);
    this.#pending = new Set(config.invited);
  }

  get status(): RoundStatus {
    return this.#status;
  }

  get committedCount(): number {
    return this.#commitments.size;
  }

  get revealedCount(): number {
    return this.#phrases.size;
  }

  /** True once nobody can still act in the current phase: it may end before its deadline. */
  get settled(): boolean {
    return this.#pending.size === 0;
  }

  /**
   * True in the reveal phase once some committed contributor can no longer reveal (it left, or
   * its committed envelope does not open): the round will abort, there is no need to wait.
   */
  get doomed(): boolean {
    if (this.#status !== "revealing") return false;
    for (const id of this.#commitments.keys()) {
      if (!this.#phrases.has(id) && !this.#pending.has(id)) return true;
    }
    return false;
  }

  /** The commitment `contributorId` made, if it made one. */
  commitmentOf(contributorId: string): Uint8Array | undefined {
    return this.#commitments.get(contributorId);
  }

  commit(contributorId: string, now: number, check: () => Uint8Array): Verdict {
    const { roundId } = this.config;
    if (this.#status !== "committing") {
      return this.#closedOr(contributorId, "commit", "revealing");
    }
    if (now > this.config.commitDeadline) {
      return reject(
        contributorId,
        ErrorCodes.LATE_CONTRIBUTION,
        `Round ${roundId}'s commit phase is over.`,
      );
    }
    const early = this.#senderChecks(contributorId, this.#commitments, "commitment");
    if (early) return early;
    let commitment: Uint8Array;
    try {
      commitment = check();
    } catch (error) {
      return blame(contributorId, error);
    }
    this.#commitments.set(contributorId, commitment);
    this.#pending.delete(contributorId);
    return { kind: "accepted", contributorId };
  }

  /**
   * Ends the commit phase: the commit set (sorted by contributor id), or a failure when fewer than
   * `quorum` committed. Nothing secret has been revealed yet either way.
   */
  closeCommits(): CommitClose {
    const { roundId, quorum, invited } = this.config;
    if (this.#commitments.size < quorum) {
      this.#transition("failed");
      this.#pending.clear();
      this.#failure = new DkeygenError(
        ErrorCodes.QUORUM_NOT_MET,
        `Round ${roundId} failed: ${this.#commitments.size} of ${invited.length} invited ` +
          `contributors committed; the quorum is ${quorum}. Nothing was revealed or stored.`,
      );
      return { status: "failed", committed: this.#commitments.size, error: this.#failure };
    }
    this.#transition("revealing");
    this.#pending.clear();
    for (const id of this.#commitments.keys()) this.#pending.add(id);
    const commits = [...this.#commitments]
      .map(([contributorId, commitment]) => ({ contributorId, commitment }))
      .sort((a, b) => compareIds(a.contributorId, b.contributorId));
    return { status: "revealing", commits };
  }

  /**
   * The cheap checks of a reveal from `contributorId`, in order. When they pass, the sender's
   * commitment, for the cryptographic checks (which may run elsewhere, e.g. on another thread);
   * until finishReveal the sender's reveal is in hand and a second one is a duplicate.
   */
  beginReveal(
    contributorId: string,
    now: number,
  ): { kind: "open"; commitment: Uint8Array } | { kind: "rejected"; error: DkeygenError } {
    const { roundId } = this.config;
    if (this.#status !== "revealing") {
      return this.#closedOr(contributorId, "reveal", "committing") as {
        kind: "rejected";
        error: DkeygenError;
      };
    }
    if (now > this.config.revealDeadline) {
      return reject(
        contributorId,
        ErrorCodes.LATE_CONTRIBUTION,
        `Round ${roundId}'s reveal phase is over.`,
      );
    }
    if (!this.#invited.has(contributorId)) {
      return reject(
        contributorId,
        ErrorCodes.WRONG_ROUND,
        `Round ${roundId} did not invite contributor ${contributorId}.`,
      );
    }
    const commitment = this.#commitments.get(contributorId);
    if (commitment === undefined) {
      return reject(
        contributorId,
        ErrorCodes.WRONG_ROUND,
        `Contributor ${contributorId} is not in round ${roundId}'s commit set.`,
      );
    }
    if (this.#phrases.has(contributorId) || this.#opening.has(contributorId)) {
      return reject(
        contributorId,
        ErrorCodes.DUPLICATE_CONTRIBUTION,
        `Contributor ${contributorId} already revealed in round ${roundId}.`,
      );
    }
    if (!this.#pending.has(contributorId)) {
      return reject(
        contributorId,
        ErrorCodes.LATE_CONTRIBUTION,
        `Contributor ${contributorId} can no longer reveal in round ${roundId}.`,
      );
    }
    this.#opening.add(contributorId);
    return { kind: "open", commitment };
  }

  /**
   * The outcome of the cryptographic checks of a reveal begun with beginReveal: its phrase, or the
   * error they threw. A DECRYPTION_FAILED means the committed envelope itself is bad, so the
   * sender can never reveal (the verdict is final). A phrase that comes back after the round
   * closed (the server stopping) is wiped and refused.
   */
  finishReveal(
    contributorId: string,
    result: { phrase: Uint8Array } | { error: unknown },
  ): Verdict {
    this.#opening.delete(contributorId);
    if ("error" in result) {
      const verdict = blame(contributorId, result.error);
      if (verdict.error.code === ErrorCodes.DECRYPTION_FAILED) {
        // Signed and matching its commitment, yet it does not open: the contributor committed to
        // an envelope nobody can use. It cannot reveal another one.
        this.#pending.delete(contributorId);
        return { ...verdict, final: true };
      }
      return verdict;
    }
    if (this.#status !== "revealing") {
      result.phrase.fill(0);
      return reject(
        contributorId,
        ErrorCodes.LATE_CONTRIBUTION,
        `Round ${this.config.roundId} is closed; the reveal came too late.`,
      );
    }
    this.#phrases.set(contributorId, result.phrase);
    this.#pending.delete(contributorId);
    return { kind: "accepted", contributorId };
  }

  /** Reveals whose cryptographic checks are under way (begun, not finished). */
  get opening(): number {
    return this.#opening.size;
  }

  /**
   * A reveal checked in one go: beginReveal, then `open` (given the sender's commitment; it checks
   * the countersigned set, the signature, the commitment and the envelope and returns the phrase),
   * then finishReveal.
   */
  reveal(
    contributorId: string,
    now: number,
    open: (commitment: Uint8Array) => Uint8Array,
  ): Verdict {
    const begun = this.beginReveal(contributorId, now);
    if (begun.kind === "rejected") return begun;
    let phrase: Uint8Array;
    try {
      phrase = open(begun.commitment);
    } catch (error) {
      return this.finishReveal(contributorId, { error });
    }
    return this.finishReveal(contributorId, { phrase });
  }

  /** An invited contributor went away: it will not commit, or not reveal. */
  participantLeft(contributorId: string): void {
    this.#pending.delete(contributorId);
  }

  /**
   * Closes the round and says how it ended. In the commit phase (a server stopping) it fails;
   * in the reveal phase it completes with every committed phrase, or aborts naming the
   * committed contributors that did not reveal one.
   */
  close(): RoundOutcome {
    const { roundId } = this.config;
    if (this.#status === "committing") this.closeCommits();
    if (this.#status === "failed") {
      return { status: "failed", error: this.#failure!, acceptedCount: 0 };
    }
    if (this.#status !== "revealing") {
      throw new Error(`RoundMachine: close() in status ${this.#status}`);
    }
    const missing = [...this.#commitments.keys()]
      .filter((id) => !this.#phrases.has(id))
      .sort(compareIds);
    if (missing.length === 0) {
      this.#transition("completed");
      const accepted = [...this.#phrases].map(([contributorId, phrase]) => ({
        contributorId,
        phrase,
      }));
      this.#phrases.clear();
      return { status: "completed", accepted };
    }
    this.#transition("aborted");
    const revealed = this.#phrases.size;
    for (const phrase of this.#phrases.values()) phrase.fill(0);
    this.#phrases.clear();
    this.#pending.clear();
    const error = new DkeygenError(
      ErrorCodes.ROUND_ABORTED,
      `Round ${roundId} aborted: ${missing.length} of ${this.#commitments.size} committed ` +
        `contributor${missing.length === 1 ? "" : "s"} did not reveal (${missing.join(", ")}). ` +
        "Nothing was stored; the round is not rerun with fewer contributors.",
      { culprit: missing.join(",") },
    );
    return { status: "aborted", error, missing, revealed };
  }

  #senderChecks(
    contributorId: string,
    done: ReadonlyMap<string, unknown>,
    what: string,
  ): Verdict | undefined {
    const { roundId } = this.config;
    if (!this.#invited.has(contributorId)) {
      return reject(
        contributorId,
        ErrorCodes.WRONG_ROUND,
        `Round ${roundId} did not invite contributor ${contributorId}.`,
      );
    }
    if (done.has(contributorId)) {
      return reject(
        contributorId,
        ErrorCodes.DUPLICATE_CONTRIBUTION,
        `Contributor ${contributorId} already sent its ${what} for round ${roundId}.`,
      );
    }
    return undefined;
  }

  /** A message for the other phase, or for a round that has closed. */
  #closedOr(contributorId: string, what: string, otherPhase: RoundStatus): Verdict {
    const { roundId } = this.config;
    if (this.#status === otherPhase) {
      return reject(
        contributorId,
        ErrorCodes.WRONG_PHASE,
        `Round ${roundId} is ${otherPhase}; a ${what} is not taken now.`,
      );
    }
    return reject(
      contributorId,
      ErrorCodes.LATE_CONTRIBUTION,
      `Round ${roundId} is closed; the ${what} came too late.`,
    );
  }

  #transition(to: RoundStatus): void {
    if (!TRANSITIONS[this.#status].includes(to)) {
      throw new Error(`RoundMachine: illegal transition ${this.#status} → ${to}`);
    }
    this.#status = to;
  }
}

function reject(
  contributorId: string,
  code: ErrorCode,
  message: string,
): { kind: "rejected"; error: DkeygenError } {
  return { kind: "rejected", error: new DkeygenError(code, message, { culprit: contributorId }) };
}

/** A DkeygenError from a check, blamed on the sender; anything else is a bug and propagates. */
function blame(contributorId: string, error: unknown): { kind: "rejected"; error: DkeygenError } {
  if (error instanceof DkeygenError) return reject(contributorId, error.code, error.message);
  throw error;
}
