/**
 * A round while it runs, as round-runner.ts, its phases (round-phases.ts) and its closing
 * (round-closing.ts) share it: what a completed round hands round-results.ts, plus the round's
 * machine, its invited connections, its phase timer, its signing key and the evidence its log
 * entry is made of.
 */
import type { KeyObject } from "node:crypto";
import type { DkeygenError } from "../errors.js";
import type { MessageOf } from "../protocol/messages.js";
import type { RoundMachine } from "../protocol/round.js";
import type { CompletedRound } from "./round-results.js";
import type { Peer } from "./server-context.js";

export interface RunningRound extends CompletedRound {
  machine: RoundMachine;
  participants: Map<string, Peer>;
  /** The current phase's deadline timer, and what ends the phase early. */
  timer?: NodeJS.Timeout;
  settle: () => void;
  /** The commit set's hash, once it was sent. */
  setHash?: Uint8Array;
  /** Why the round failed without an outcome of its own (too few commitments, the server stopping). */
  failure?: DkeygenError;
  /** The round's Ed25519 signing key (round.open carries its public half). */
  roundKey: KeyObject;
  /** Reveals being checked on the reveal threads; the round closes only once they are done. */
  opening: Set<Promise<void>>;
  /** The signed round.open, and later round.commits, as sent: evidence for the log entry. */
  openMessage: MessageOf<"round.open">;
  commitsMessage?: MessageOf<"round.commits">;
  /** Each accepted commit's signature and its signer's identity key (raw), by contributor id. */
  commitSignatures: Map<string, { signature: string; identity: Uint8Array }>;
  /** Each accepted reveal's signature (its countersignature of the set), by contributor id. */
  revealSignatures: Map<string, string>;
}
