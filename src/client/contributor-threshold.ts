/**
 * The contributor's threshold-key sessions: its four parts, and the table that hands each server
 * message of a session to its part:
 *
 *   dkg.open/round1s/shares      contributor-dkg.ts       a distributed key generation
 *   refresh.open/deals           contributor-refresh.ts   a share refresh (dkg.certificate and
 *                                                         dkg.aborted of a refresh go there too)
 *   dkg.certificate/aborted      contributor-dkg.ts       the end of a DKG
 *   dkg.recovery                 contributor-recovery.ts  a key's recovery data, a lost share back
 *   sign.request/package         contributor-sign.ts      a FROST signing attempt
 *
 * contributor.ts routes every message whose type is in the table here, in its one guard.
 */
import type { RandomSource } from "../crypto/random.js";
import type { Logger } from "../logging.js";
import type { AnyMessage, MessageOf } from "../protocol/messages.js";
import type { Connection } from "../transport/types.js";
import { ContributorDkg, type DkgEvent } from "./contributor-dkg.js";
import { ContributorRecovery, type RecoveryEvent } from "./contributor-recovery.js";
import { ContributorRefresh } from "./contributor-refresh.js";
import { ContributorSign, type SignEvent } from "./contributor-sign.js";
import type { ContributorState } from "./contributor-state.js";
import type { ServerKey } from "./server-key.js";

export type ThresholdEvent = DkgEvent | SignEvent | RecoveryEvent;

export interface ContributorThresholdOptions {
  state: ContributorState;
  random: RandomSource;
  logger: Logger;
  emit: (event: ThresholdEvent) => void;
}

/** The server messages of threshold sessions. */
type ThresholdMessageType =
  | "dkg.open"
  | "dkg.round1s"
  | "dkg.shares"
  | "dkg.certificate"
  | "dkg.aborted"
  | "refresh.open"
  | "refresh.deals"
  | "dkg.recovery"
  | "sign.request"
  | "sign.package";

export type ThresholdMessage = MessageOf<ThresholdMessageType>;

type Handler<T extends ThresholdMessageType> = (
  connection: Connection,
  server: ServerKey,
  msg: MessageOf<T>,
) => void | Promise<void>;

export class ContributorThreshold {
  readonly #handlers: { [T in ThresholdMessageType]: Handler<T> };

  constructor(options: ContributorThresholdOptions) {
    const { state, random, logger, emit } = options;
    /** Distributed key generations it takes part in, and its shares (contributor-dkg.ts). */
    const dkg = new ContributorDkg({ state, random, logger, emit });
    /** Share refreshes of the threshold keys it holds (contributor-refresh.ts). */
    const refresh = new ContributorRefresh({ state, shares: dkg.shares, random, logger, emit });
    /** Getting a lost share back from a key's recovery data (contributor-recovery.ts). */
    const recovery = new ContributorRecovery({ state, shares: dkg.shares, logger, emit });
    /** FROST signing with its shares, within its policy (contributor-sign.ts). */
    const sign = new ContributorSign({ shares: dkg.shares, logger, emit });
    this.#handlers = {
      "dkg.open": (connection, server, msg) => dkg.open(connection, server, msg),
      "dkg.round1s": (connection, _server, msg) => dkg.round1s(connection, msg),
      "dkg.shares": (connection, _server, msg) => dkg.sharesIn(connection, msg),
      "dkg.certificate": (connection, _server, msg) =>
        refresh.has(msg.sessionId)
          ? refresh.certificate(connection, msg)
          : dkg.certificate(connection, msg),
      "dkg.aborted": (_connection, _server, msg) =>
        refresh.has(msg.sessionId) ? refresh.aborted(msg) : dkg.aborted(msg),
      "refresh.open": (connection, server, msg) => refresh.open(connection, server, msg),
      "refresh.deals": (connection, _server, msg) => refresh.deals(connection, msg),
      "dkg.recovery": (connection, server, msg) => recovery.recovery(connection, server, msg),
      "sign.request": (connection, server, msg) => sign.request(connection, server, msg),
      "sign.package": (connection, _server, msg) => sign.package(connection, msg),
    };
  }

  /** Whether `msg` is a threshold session's, for handle(). */
  handles(msg: AnyMessage): msg is ThresholdMessage {
    return Object.hasOwn(this.#handlers, msg.type);
  }

  /** Hands a session's message to its part; resolves once that part has handled it. */
  async handle(connection: Connection, server: ServerKey, msg: ThresholdMessage): Promise<void> {
    const handler = this.#handlers[msg.type] as Handler<ThresholdMessageType>;
    await handler(connection, server, msg);
  }
}
