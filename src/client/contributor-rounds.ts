/**
 * The rounds a contributor takes part in, commit then reveal: answers each signed invitation once
 * with a commitment, reveals against a commit set that holds its commitment unchanged, checks the
 * receipt, and forgets the round when it closes. The decisions are round-answer.ts's; this keeps
 * the per-round state and talks (sends, logs, events).
 */

import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import type { RandomSource } from "../crypto/random.js";
import { isStrongEd25519Key } from "../crypto/signature.js";
import type { Logger } from "../logging.js";
import { encodeMessage, type MessageOf } from "../protocol/messages.js";
import type { Connection } from "../transport/types.js";
import type { AnsweredJournal } from "./answered-rounds.js";
import type { ContributorState } from "./contributor-state.js";
import type { EntropyPool } from "./entropy.js";
import {
  closingSigned,
  commitFor,
  invitationSigned,
  type PendingContribution,
  receiptValid,
  revealFor,
} from "./round-answer.js";
import type { ServerKey } from "./server-key.js";
import type { AnsweredRound, RoundMemory } from "./witness.js";

export type RoundEvent =
  | { type: "round.invited"; roundId: string; purpose: string; participants: number }
  | { type: "round.committed"; roundId: string }
  | { type: "round.revealed"; roundId: string }
  | { type: "round.excluded"; roundId: string }
  /** The server's signed receipt of our reveal checked out. */
  | { type: "round.accepted"; roundId: string }
  | {
      type: "round.closed";
      roundId: string;
      outcome: "completed" | "failed" | "aborted";
      accepted: number;
      missing?: string[];
    };

/** Rounds remembered as answered, so a replayed invitation is not answered twice. */
const ANSWERED_REMEMBERED = 4096;
/** Rounds between commit and close kept at once; an older one is dropped past this. */
const PENDING_KEPT = 64;

export class ContributorRounds implements RoundMemory {
  readonly #answered = new Set<string>();
  /** What we committed to in each round, and how it went: checked against its log entry. */
  readonly #memory = new Map<string, AnsweredRound>();
  readonly #pending = new Map<string, PendingContribution>();

  constructor(
    private readonly o: {
      state: ContributorState;
      entropy: EntropyPool;
      random: RandomSource;
      logger: Logger;
      emit: (event: RoundEvent) => void;
      /** Where each round answered and its closing are recorded, for `contributor audit`. */
      journal?: AnsweredJournal;
    },
  ) {}

  /** What this contributor did in a round it answered (for its log entry), if remembered. */
  answered(roundId: string): AnsweredRound | undefined {
    return this.#memory.get(roundId);
  }

  open(connection: Connection, server: ServerKey, msg: MessageOf<"round.open">): void {
    const { logger } = this.o;
    if (!invitationSigned(server, msg)) {
      // Not the server's invitation (someone on the path, or a broken server): nothing is sent.
      logger.error(
        { roundId: msg.roundId },
        "ignored a round.open that the server's key did not sign",
      );
      return;
    }
    if (!isStrongEd25519Key(fromBase64url(msg.roundKey, "roundKey", 32))) {
      // A small-order or non-canonical round key would let the server disown its receipts.
      logger.error({ roundId: msg.roundId }, "ignored a round.open whose round key is weak");
      return;
    }
    if (!msg.invited.includes(this.o.state.contributorId)) {
      logger.warn({ roundId: msg.roundId }, "ignored a round.open that does not invite us");
      return;
    }
    // A round.open is not bound to a connection: a recorded one would verify again. Each round
    // is answered once.
    if (this.#answered.has(msg.roundId)) {
      logger.warn({ roundId: msg.roundId }, "ignored a second invitation to the same round");
      return;
    }
    remember(this.#answered, msg.roundId, ANSWERED_REMEMBERED);
    this.o.emit({
      type: "round.invited",
      roundId: msg.roundId,
      purpose: msg.purpose,
      participants: msg.invited.length,
    });
    const { pending, commit } = commitFor(msg, server, this.o.state, this.o.entropy, this.o.random);
    this.#pending.set(msg.roundId, pending);
    this.#memory.set(msg.roundId, { commitment: pending.commitment, receipt: false });
    if (this.#memory.size > ANSWERED_REMEMBERED) {
      this.#memory.delete(this.#memory.keys().next().value!);
    }
    if (this.#pending.size > PENDING_KEPT) {
      this.#pending.delete(this.#pending.keys().next().value!);
    }
    connection.send(encodeMessage(commit));
    this.o.journal?.add({
      roundId: msg.roundId,
      committedAt: new Date().toISOString(),
      revealDeadline: msg.revealDeadline,
      commitment: toBase64url(pending.commitment),
    });
    logger.info({ roundId: msg.roundId, purpose: msg.purpose }, "commitment sent");
    this.o.emit({ type: "round.committed", roundId: msg.roundId });
  }

  commits(connection: Connection, server: ServerKey, msg: MessageOf<"round.commits">): void {
    const { logger } = this.o;
    const pending = this.#pending.get(msg.roundId);
    if (pending === undefined || pending.setHash !== undefined || pending.excluded) {
      logger.warn(
        { roundId: msg.roundId },
        "ignored a commit set for a round we are not revealing in",
      );
      return;
    }
    const verdict = revealFor(msg, pending, server, this.o.state);
    if (verdict.kind === "refused") {
      logger.error({ roundId: msg.roundId }, `refused the commit set: ${verdict.reason}`);
      return;
    }
    if (verdict.kind === "excluded") {
      pending.excluded = true; // kept to check the round's closing
      logger.warn(
        { roundId: msg.roundId },
        "the server's commit set leaves out our commitment; nothing revealed",
      );
      this.o.emit({ type: "round.excluded", roundId: msg.roundId });
      return;
    }
    pending.setHash = verdict.setHash;
    connection.send(encodeMessage(verdict.reveal));
    logger.info({ roundId: msg.roundId }, "contribution revealed");
    this.o.emit({ type: "round.revealed", roundId: msg.roundId });
  }

  receipt(msg: MessageOf<"round.receipt">): void {
    const pending = this.#pending.get(msg.roundId);
    if (pending === undefined || !receiptValid(msg, pending, this.o.state.contributorId)) {
      this.o.logger.error(
        { roundId: msg.roundId },
        "ignored a reveal receipt that does not check out",
      );
      return;
    }
    pending.receipt = msg;
    const memory = this.#memory.get(msg.roundId);
    if (memory) memory.receipt = true;
    this.o.emit({ type: "round.accepted", roundId: msg.roundId });
  }

  /**
   * A round's end, if the round's key (from the round.open the server's key signed) signed it. Checked against what this contributor knows: a
   * closing that names it as not having revealed while it holds the server's receipt, or that
   * went on with another commit set than the one it countersigned, is the server contradicting
   * itself — logged as an error with both signed statements' facts.
   */
  closed(msg: MessageOf<"round.closed">): void {
    const { logger } = this.o;
    const pending = this.#pending.get(msg.roundId);
    if (pending === undefined) {
      logger.warn(
        { roundId: msg.roundId },
        "ignored a round.closed for a round we took no part in",
      );
      return;
    }
    if (!closingSigned(pending.roundKey, msg)) {
      logger.error(
        { roundId: msg.roundId },
        "ignored a round.closed that the round's key did not sign",
      );
      return;
    }
    this.#pending.delete(msg.roundId);
    this.o.journal?.add({
      roundId: msg.roundId,
      closedAt: new Date().toISOString(),
      outcome: msg.outcome,
    });
    const memory = this.#memory.get(msg.roundId);
    if (memory) {
      memory.closed = { outcome: msg.outcome, accepted: msg.accepted, signature: msg.signature };
    }
    const id = this.o.state.contributorId;
    if (pending.receipt && msg.missing?.includes(id)) {
      logger.error(
        { roundId: msg.roundId, setHash: msg.setHash },
        "the server says we did not reveal, but we hold its signed receipt of our reveal",
      );
    }
    if (
      pending.setHash !== undefined &&
      msg.setHash !== undefined &&
      msg.setHash !== toBase64url(pending.setHash)
    ) {
      logger.error(
        { roundId: msg.roundId, setHash: msg.setHash },
        "the server closed the round on another commit set than the one we countersigned",
      );
    }
    logger.info(
      {
        roundId: msg.roundId,
        outcome: msg.outcome,
        accepted: msg.accepted,
        ...(msg.missing === undefined ? {} : { missing: msg.missing }),
      },
      `round ${msg.outcome}`,
    );
    this.o.emit({
      type: "round.closed",
      roundId: msg.roundId,
      outcome: msg.outcome,
      accepted: msg.accepted,
      ...(msg.missing === undefined ? {} : { missing: msg.missing }),
    });
  }
}

function remember(set: Set<string>, value: string, limit: number): void {
  set.add(value);
  if (set.size > limit) set.delete(set.values().next().value!);
}
