/**
 * The client side of a connection to the key generation server as explicit state machines, one
 * for contributors and one for admin clients. Pure: they say which server message is expected in
 * which phase and which phase follows; the clients (src/client/) do the checking and the I/O.
 *
 *   contributor   accepts                                  then
 *   hello         hello                                    welcome (join sent)
 *   welcome       welcome (server proof checked)           ready
 *   ready         round.open, round.commits,               —
 *                 round.receipt, round.closed,
 *                 log.checkpoint
 *   (any open)    error                                    —
 *
 *   admin         accepts                                  then
 *   hello         hello                                    auth (admin.auth sent)
 *   auth          admin.ready (server proof checked)       ready
 *   ready         admin.frame (MAC checked)                —
 *   hello, auth   error                                    —
 *
 * Every phase may move to `closed`. Once an admin session is ready, everything the server says
 * travels in MACed admin frames; a bare message then — even an `error` — is not the server's.
 */
import type { MessageType } from "./messages.js";

export type ContributorPhase = "hello" | "welcome" | "ready" | "closed";
export type AdminPhase = "hello" | "auth" | "ready" | "closed";

interface PhaseTables<P extends string> {
  accepts: Readonly<Record<P, readonly MessageType[]>>;
  transitions: Readonly<Record<P, readonly P[]>>;
}

export const CONTRIBUTOR_PHASES: PhaseTables<ContributorPhase> = {
  accepts: {
    hello: ["hello", "error"],
    welcome: ["welcome", "error"],
    ready: [
      "round.open",
      "round.commits",
      "round.receipt",
      "round.closed",
      "log.checkpoint",
      "dkg.open",
      "dkg.round1s",
      "dkg.shares",
      "dkg.certificate",
      "dkg.aborted",
      "sign.request",
      "sign.package",
      "refresh.open",
      "refresh.deals",
      "dkg.recovery",
      "error",
    ],
    closed: [],
  },
  transitions: {
    hello: ["welcome", "closed"],
    welcome: ["ready", "closed"],
    ready: ["closed"],
    closed: [],
  },
};

export const ADMIN_PHASES: PhaseTables<AdminPhase> = {
  accepts: {
    hello: ["hello", "error"],
    auth: ["admin.ready", "error"],
    ready: ["admin.frame"],
    closed: [],
  },
  transitions: {
    hello: ["auth", "closed"],
    auth: ["ready", "closed"],
    ready: ["closed"],
    closed: [],
  },
};

export class PhaseMachine<P extends string> {
  readonly #tables: PhaseTables<P>;
  #phase: P;

  constructor(tables: PhaseTables<P>, start: P) {
    this.#tables = tables;
    this.#phase = start;
  }

  get phase(): P {
    return this.#phase;
  }

  /** Whether a message of `type` is expected now. */
  accepts(type: MessageType): boolean {
    return this.#tables.accepts[this.#phase].includes(type);
  }

  /** Moves to `to`; throws on a transition the table does not allow (a bug in the caller). */
  transition(to: P): void {
    if (this.#phase === to && to === "closed") return;
    if (!this.#tables.transitions[this.#phase].includes(to)) {
      throw new Error(`PhaseMachine: illegal transition ${this.#phase} → ${to}`);
    }
    this.#phase = to;
  }
}
