/**
 * The key generation server's threshold-key sessions: the four coordinators, and the table that
 * hands each contributor message of a session to its coordinator:
 *
 *   dkg.round1/round2/confirm/stored/fault
 *                   dkg-coordinator.ts   a participant's step of a distributed key generation
 *   refresh.deal    refresh-coordinator.ts  a dealer's fresh sharing of its share (dkg.confirm,
 *                   dkg.stored and dkg.fault of a refresh go there too)
 *   sign.commit/share/refuse
 *                   sign-coordinator.ts  a holder's step of a FROST signing attempt
 *   dkg.recovered   recovery-coordinator.ts  a holder's answer to a key's recovery data
 *
 * keygen-server.ts routes every message whose type is in the table here, in the guard every
 * handler runs in.
 */
import type { AnyMessage, MessageOf } from "../protocol/messages.js";
import type { KeyRecord } from "../store/types.js";
import { DkgCoordinator, type ThresholdKeygenRequest } from "./dkg-coordinator.js";
import { type HolderOutcome, RecoveryCoordinator } from "./recovery-coordinator.js";
import { RefreshCoordinator } from "./refresh-coordinator.js";
import type { Peer, ServerContext } from "./server-context.js";
import { SignCoordinator, type SignResult } from "./sign-coordinator.js";

/** The contributor messages of threshold sessions. */
type ThresholdMessageType =
  | "dkg.round1"
  | "dkg.round2"
  | "dkg.confirm"
  | "dkg.stored"
  | "dkg.fault"
  | "refresh.deal"
  | "sign.commit"
  | "sign.share"
  | "sign.refuse"
  | "dkg.recovered";

export type ThresholdMessage = MessageOf<ThresholdMessageType>;

type Handlers = {
  [T in ThresholdMessageType]: (peer: Peer, msg: MessageOf<T>) => void | Promise<void>;
};

export class ThresholdSessions {
  /** Distributed key generations, coordinated but never seen in the clear (dkg-coordinator.ts). */
  readonly #dkg: DkgCoordinator;
  /** FROST signing with threshold keys (sign-coordinator.ts). */
  readonly #signing: SignCoordinator;
  /** Share refreshes of threshold keys (refresh-coordinator.ts). */
  readonly #refresh: RefreshCoordinator;
  /** Sending holders a key's recovery data, and their answers (recovery-coordinator.ts). */
  readonly #recovery: RecoveryCoordinator;
  readonly #handlers: Handlers;

  constructor(ctx: ServerContext) {
    const dkg = new DkgCoordinator(ctx);
    const signing = new SignCoordinator(ctx);
    const refresh = new RefreshCoordinator(ctx);
    const recovery = new RecoveryCoordinator(ctx);
    this.#dkg = dkg;
    this.#signing = signing;
    this.#refresh = refresh;
    this.#recovery = recovery;
    this.#handlers = {
      "dkg.round1": (peer, msg) => dkg.round1(peer, msg),
      "dkg.round2": (peer, msg) => dkg.round2(peer, msg),
      "dkg.confirm": (peer, msg) =>
        refresh.has(msg.sessionId) ? refresh.confirm(peer, msg) : dkg.confirm(peer, msg),
      "dkg.stored": (peer, msg) =>
        refresh.has(msg.sessionId) ? refresh.stored(peer, msg) : dkg.stored(peer, msg),
      "dkg.fault": (peer, msg) =>
        refresh.has(msg.sessionId) ? refresh.fault(peer, msg) : dkg.fault(peer, msg),
      "refresh.deal": (peer, msg) => refresh.deal(peer, msg),
      "sign.commit": (peer, msg) => signing.commit(peer, msg),
      "sign.share": (peer, msg) => signing.share(peer, msg),
      "sign.refuse": (peer, msg) => signing.refuse(peer, msg),
      "dkg.recovered": (peer, msg) => recovery.answered(peer, msg),
    };
  }

  /** Whether `msg` is a threshold session's, for handle(). */
  handles(msg: AnyMessage): msg is ThresholdMessage {
    return Object.hasOwn(this.#handlers, msg.type);
  }

  /** Hands a session's message to its coordinator. */
  handle(peer: Peer, msg: ThresholdMessage): void | Promise<void> {
    const handler = this.#handlers[msg.type] as (
      peer: Peer,
      msg: ThresholdMessage,
    ) => void | Promise<void>;
    return handler(peer, msg);
  }

  /** A distributed key generation among n connected contributors (dkg-coordinator.ts). */
  keygen(request: ThresholdKeygenRequest): Promise<KeyRecord> {
    return this.#dkg.keygen(request);
  }

  /** A FROST signature of `message` by t holders of threshold key `record`, for `requester`. */
  sign(record: KeyRecord, message: Uint8Array, requester: string): Promise<SignResult> {
    return this.#signing.sign(record, message, requester);
  }

  /** New shares of threshold key `record` among its holders (refresh-coordinator.ts). */
  refresh(record: KeyRecord): Promise<KeyRecord> {
    return this.#refresh.refresh(record);
  }

  /** Sends `record`'s recovery data to its connected holders (recovery-coordinator.ts). */
  recover(record: KeyRecord): Promise<HolderOutcome[]> {
    return this.#recovery.recover(record);
  }

  /** A contributor's connection closed: every session it was part of learns so. */
  participantLeft(contributorId: string): void {
    this.#dkg.participantLeft(contributorId);
    this.#signing.participantLeft(contributorId);
    this.#refresh.participantLeft(contributorId);
    this.#recovery.participantLeft(contributorId);
  }

  /** Fails the sessions running (the server is stopping). */
  stop(): void {
    this.#dkg.stop();
    this.#refresh.stop();
    this.#recovery.stop();
  }
}
