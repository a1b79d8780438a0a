/**
 * The contributor's part in distributed key generations (docs/PROTOCOL.md §16): it takes part only
 * in sessions the pinned server signed, that list it, whose session id it recomputes from the
 * invitation and has never seen before; it runs threshold/dkg.ts's participant, sends each step
 * through the server, and keeps the share only once the full certificate checks, sealed at rest
 * (share-store.ts). A fault it detects is sent as `dkg.fault` with its evidence, and the session
 * is forgotten.
 */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import type { RandomSource } from "../crypto/random.js";
import { serverVerify } from "../crypto/server-signature.js";
import { describeError } from "../errors.js";
import type { Logger } from "../logging.js";
import { encodeMessage, type MessageOf } from "../protocol/messages.js";
import { dkgOpenSignedData } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import {
  publicToJson,
  round1FromJson,
  round1ToJson,
  shareFromJson,
  shareToJson,
} from "../threshold/codec.js";
import { DkgFault, DkgParticipant } from "../threshold/dkg.js";
import { type DkgSessionParams, type SealedShare, sessionIdOf } from "../threshold/transcript.js";
import type { Connection } from "../transport/types.js";
import type { ContributorState } from "./contributor-state.js";
import type { ServerKey } from "./server-key.js";
import { ShareStore } from "./share-store.js";

export type DkgEvent =
  | { type: "dkg.invited"; sessionId: string; suite: string; t: number; n: number }
  | { type: "dkg.completed"; sessionId: string; keyId: string }
  | { type: "dkg.aborted"; sessionId: string; kind: string; reason: string; culprit?: string };

interface Running {
  participant: DkgParticipant;
  params: DkgSessionParams;
  owner: string;
  packages?: MessageOf<"dkg.round1s">["packages"];
  incoming?: SealedShare[];
  timer: NodeJS.Timeout;
}

export interface ContributorDkgOptions {
  state: ContributorState;
  random: RandomSource;
  logger: Logger;
  emit: (event: DkgEvent) => void;
  clock?: () => number;
}

export class ContributorDkg {
  readonly #o: ContributorDkgOptions;
  readonly #sessions = new Map<string, Running>();
  readonly shares: ShareStore;

  constructor(options: ContributorDkgOptions) {
    this.#o = options;
    this.shares = new ShareStore(options.state.dataDir, options.state.privateKey);
  }

  async open(connection: Connection, server: ServerKey, msg: MessageOf<"dkg.open">): Promise<void> {
    const { logger, state } = this.#o;
    const identities = msg.participants.map((p) => fromBase64url(p, "participants", 32));
    const nonce = fromBase64url(msg.nonce, "nonce", 32);
    const sessionId = fromBase64url(msg.sessionId, "sessionId", 32);
    const signed = dkgOpenSignedData(
      server.fingerprint,
      sessionId,
      msg.suite,
      msg.t,
      msg.n,
      nonce,
      identities,
      msg.deadline,
      msg.owner,
    );
    if (!serverVerify(server.key, signed, fromBase64url(msg.signature, "signature"))) {
      logger.error({ sessionId: msg.sessionId }, "ignored a dkg.open the server did not sign");
      return;
    }
    const me = toBase64url(state.identity);
    const index = msg.participants.indexOf(me) + 1;
    if (index === 0) {
      logger.warn({ sessionId: msg.sessionId }, "ignored a dkg.open that does not list us");
      return;
    }
    const params: DkgSessionParams = {
      suite: msg.suite,
      t: msg.t,
      n: msg.n,
      serverFingerprint: server.fingerprint,
      nonce,
      identities,
    };
    if (!Buffer.from(sessionIdOf(params)).equals(Buffer.from(sessionId))) {
      logger.error(
        { sessionId: msg.sessionId },
        "ignored a dkg.open whose session id does not match its parameters",
      );
      return;
    }
    const msLeft = Date.parse(msg.deadline) - (this.#o.clock ?? Date.now)();
    if (!(msLeft > 0)) {
      logger.warn({ sessionId: msg.sessionId }, "ignored a dkg.open past its deadline");
      return;
    }
    if (this.#sessions.has(msg.sessionId) || !(await this.shares.claimSession(msg.sessionId))) {
      logger.error(
        { sessionId: msg.sessionId },
        "refused a DKG session this contributor has taken part in before (replay)",
      );
      sendFault(
        connection,
        msg.sessionId,
        new DkgFault("coordinator", "replay", "The session id was used before."),
      );
      return;
    }
    let participant: DkgParticipant;
    try {
      participant = new DkgParticipant({
        params,
        index,
        identityKey: state.privateKey,
        random: this.#o.random,
      });
    } catch (error) {
      logger.error(
        { sessionId: msg.sessionId, err: describeError(error) },
        "refused a DKG session",
      );
      sendFault(
        connection,
        msg.sessionId,
        new DkgFault("coordinator", "parameters", "The session's parameters are not acceptable."),
      );
      return;
    }
    const timer = setTimeout(() => this.#forget(msg.sessionId), msLeft + 1000);
    timer.unref();
    this.#sessions.set(msg.sessionId, { participant, params, owner: msg.owner, timer });
    logger.info(
      { sessionId: msg.sessionId, suite: msg.suite, t: msg.t, n: msg.n, index },
      "DKG session joined",
    );
    this.#o.emit({
      type: "dkg.invited",
      sessionId: msg.sessionId,
      suite: msg.suite,
      t: msg.t,
      n: msg.n,
    });
    connection.send(
      encodeMessage({
        type: "dkg.round1",
        v: PROTOCOL_VERSION,
        sessionId: msg.sessionId,
        package: round1ToJson(participant.round1),
      }),
    );
  }

  round1s(connection: Connection, msg: MessageOf<"dkg.round1s">): void {
    const running = this.#sessions.get(msg.sessionId);
    if (!running) return;
    this.#step(connection, msg.sessionId, () => {
      const shares = running.participant.round2(msg.packages.map(round1FromJson));
      running.packages = msg.packages;
      connection.send(
        encodeMessage({
          type: "dkg.round2",
          v: PROTOCOL_VERSION,
          sessionId: msg.sessionId,
          shares: shares.map(shareToJson),
        }),
      );
    });
  }

  sharesIn(connection: Connection, msg: MessageOf<"dkg.shares">): void {
    const running = this.#sessions.get(msg.sessionId);
    if (!running) return;
    this.#step(connection, msg.sessionId, () => {
      const incoming = msg.shares.map(shareFromJson);
      const confirmation = running.participant.round3(incoming);
      running.incoming = incoming;
      connection.send(
        encodeMessage({
          type: "dkg.confirm",
          v: PROTOCOL_VERSION,
          sessionId: msg.sessionId,
          transcript: toBase64url(confirmation.transcript),
          public: publicToJson(confirmation.public, running.participant.identifiers),
          signature: toBase64url(confirmation.signature),
        }),
      );
    });
  }

  async certificate(connection: Connection, msg: MessageOf<"dkg.certificate">): Promise<void> {
    const running = this.#sessions.get(msg.sessionId);
    if (!running) return;
    let share: ReturnType<DkgParticipant["finish"]> | undefined;
    this.#step(connection, msg.sessionId, () => {
      share = running.participant.finish(
        msg.certificate.map((c) => fromBase64url(c, "certificate", 64)),
      );
    });
    if (share === undefined) return;
    try {
      await this.shares.save(
        msg.keyId,
        share,
        running.params,
        running.owner,
        running.packages!,
        running.incoming!,
        new Date(),
      );
      this.#o.logger.info(
        { sessionId: msg.sessionId, keyId: msg.keyId },
        "threshold share stored (sealed)",
      );
      connection.send(
        encodeMessage({
          type: "dkg.stored",
          v: PROTOCOL_VERSION,
          sessionId: msg.sessionId,
          keyId: msg.keyId,
        }),
      );
      this.#o.emit({ type: "dkg.completed", sessionId: msg.sessionId, keyId: msg.keyId });
    } finally {
      share.signingShare.fill(0);
      this.#forget(msg.sessionId);
    }
  }

  aborted(msg: MessageOf<"dkg.aborted">): void {
    const running = this.#sessions.get(msg.sessionId);
    if (!running) return;
    running.participant.abort();
    this.#forget(msg.sessionId);
    this.#o.logger.warn(
      { sessionId: msg.sessionId, culprit: msg.culprit, kind: msg.kind },
      `DKG session aborted: ${msg.reason}`,
    );
    this.#o.emit({
      type: "dkg.aborted",
      sessionId: msg.sessionId,
      kind: msg.kind,
      reason: msg.reason,
      ...(msg.culprit === undefined ? {} : { culprit: msg.culprit }),
    });
  }

  /** Runs one step; a fault is reported with its evidence and the session forgotten. */
  #step(connection: Connection, sessionId: string, step: () => void): void {
    try {
      step();
    } catch (error) {
      this.#o.logger.warn({ sessionId, err: describeError(error) }, "DKG step failed");
      const fault =
        error instanceof DkgFault
          ? error
          : new DkgFault("coordinator", "protocol", "A DKG step failed.");
      sendFault(connection, sessionId, fault);
      this.#sessions.get(sessionId)?.participant.abort();
      this.#forget(sessionId);
    }
  }

  #forget(sessionId: string): void {
    const running = this.#sessions.get(sessionId);
    if (!running) return;
    clearTimeout(running.timer);
    this.#sessions.delete(sessionId);
  }
}

/**
 * Tells the server a DKG or refresh session cannot go on (`dkg.fault`), with the share
 * complaint's evidence if there is one; the revealed key is wiped once sent.
 */
export function sendFault(connection: Connection, sessionId: string, fault: DkgFault): void {
  const evidence = fault.evidence;
  connection.send(
    encodeMessage({
      type: "dkg.fault",
      v: PROTOCOL_VERSION,
      sessionId,
      culprit: fault.culpritIndex === "coordinator" ? 0 : fault.culpritIndex,
      kind: fault.kind,
      ...(evidence === undefined
        ? {}
        : { evidence: { from: evidence.from, to: evidence.to, key: toBase64url(evidence.key) } }),
    }),
  );
  evidence?.key.fill(0);
}
