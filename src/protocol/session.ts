/**
 * The server's view of one connection as an explicit state machine. Pure: no sockets, no clock,
 * no crypto. It decides which message a peer may send in which state, which state follows, and
 * which errors end the conversation; the server's handlers (src/server/) do the checking and the
 * I/O, one function per message.
 *
 *   state          accepts              then
 *   handshake      join                 joining
 *                  admin.auth           admin
 *   joining        (nothing: the join   contributor
 *                  is being checked)
 *   contributor    commit, reveal,      —
 *                  log.cosign,
 *                  log.conflict,
 *                  dkg.round1, dkg.round2,
 *                  dkg.confirm, dkg.stored,
 *                  dkg.fault,
 *                  sign.commit, sign.share,
 *                  sign.refuse, refresh.deal,
 *                  dkg.recovered
 *   admin          admin.frame          —
 *   closed         (nothing)            —
 *
 * Every state may move to `closed`. A rejected message costs the peer one of its `maxErrors`;
 * it is fatal — the server answers, then closes — in `handshake` and `joining` (a peer that has
 * not proved who it is gets one try), for a message of another protocol version, for a failed
 * admin frame check (the session's integrity is gone), and once the peer has used up its errors.
 */
import { DkeygenError, type ErrorCode, ErrorCodes } from "../errors.js";
import type { MessageType } from "./messages.js";

/** "An" before a message type that starts with a vowel (admin.…, error), else "A". */
export function article(type: string): "A" | "An" {
  return /^[aeiou]/i.test(type) ? "An" : "A";
}

export type SessionState = "handshake" | "joining" | "contributor" | "admin" | "closed";

/** Which states may follow each state. */
export const SESSION_TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = {
  handshake: ["joining", "admin", "closed"],
  joining: ["contributor", "closed"],
  contributor: ["closed"],
  admin: ["closed"],
  closed: [],
};

/** Which messages a peer may send in each state. */
export const SESSION_ACCEPTS: Readonly<Record<SessionState, readonly MessageType[]>> = {
  handshake: ["join", "admin.auth"],
  joining: [],
  contributor: [
    "commit",
    "reveal",
    "log.cosign",
    "log.conflict",
    "dkg.round1",
    "dkg.round2",
    "dkg.confirm",
    "dkg.stored",
    "dkg.fault",
    "sign.commit",
    "sign.share",
    "sign.refuse",
    "refresh.deal",
    "dkg.recovered",
  ],
  admin: ["admin.frame"],
  closed: [],
};

/** Codes that end a session whatever its state. */
const ALWAYS_FATAL: ReadonlySet<ErrorCode> = new Set([ErrorCodes.VERSION_MISMATCH]);

export type SessionVerdict =
  /** Handle the message with its type's handler. */
  | { kind: "handle"; type: MessageType }
  /** Drop it without an answer (the session is closed). */
  | { kind: "ignore" }
  /** Refuse it with this error. */
  | { kind: "reject"; error: DkeygenError };

export class SessionMachine {
  readonly maxErrors: number;
  #state: SessionState = "handshake";
  #errors = 0;

  constructor(maxErrors: number) {
    if (!Number.isInteger(maxErrors) || maxErrors < 1) {
      throw new TypeError("SessionMachine: maxErrors must be a positive integer");
    }
    this.maxErrors = maxErrors;
  }

  get state(): SessionState {
    return this.#state;
  }

  get errors(): number {
    return this.#errors;
  }

  /** What to do with a (schema-valid) message of `type` in the current state. */
  receive(type: MessageType): SessionVerdict {
    if (this.#state === "closed") return { kind: "ignore" };
    if (SESSION_ACCEPTS[this.#state].includes(type)) return { kind: "handle", type };
    return {
      kind: "reject",
      error: new DkeygenError(
        ErrorCodes.UNEXPECTED_MESSAGE,
        `${article(type)} ${type} message is not expected from this peer now.`,
      ),
    };
  }

  /**
   * Counts a rejected message and says whether it ends the session. `integrity` marks an error
   * that means the session can no longer be trusted (a failed admin frame check).
   */
  reject(code: ErrorCode, integrity = false): { fatal: boolean } {
    this.#errors++;
    const fatal =
      this.#state === "handshake" ||
      this.#state === "joining" ||
      ALWAYS_FATAL.has(code) ||
      integrity ||
      this.#errors >= this.maxErrors;
    return { fatal };
  }

  /** Moves to `to`; throws on a transition the table does not allow (a bug in the caller). */
  transition(to: SessionState): void {
    if (this.#state === to && to === "closed") return;
    if (!SESSION_TRANSITIONS[this.#state].includes(to)) {
      throw new Error(`SessionMachine: illegal transition ${this.#state} → ${to}`);
    }
    this.#state = to;
  }
}
