/**
 * The key generation server: greets every peer with its public key and a challenge, runs each
 * connection through its session machine (protocol/session.ts), and hands each message to the one
 * function that handles its type:
 *
 *   join            handshake.ts         an enrolled (or newly enrolling) contributor
 *   admin.auth      handshake.ts         an admin proving it holds the admin token
 *   commit          round-runner.ts      a signed commitment to a contribution (commit phase)
 *   reveal          round-runner.ts      the committed, sealed secret phrase (reveal phase)
 *   admin.frame     admin-commands.ts    an authenticated admin command (generate, status)
 *   log.cosign      witnessing.ts        a contributor's cosignature of a checkpoint
 *   log.conflict    witnessing.ts        a contributor that last cosigned another size
 *   dkg.round1/round2/confirm/stored/fault
 *                   dkg-coordinator.ts   a participant's step of a distributed key generation
 *   refresh.deal    refresh-coordinator.ts  a dealer's fresh sharing of its share (dkg.confirm,
 *                   dkg.stored and dkg.fault of a refresh go there too)
 *   sign.commit/share/refuse
 *                   sign-coordinator.ts  a holder's step of a FROST signing attempt
 *   dkg.recovered   recovery-coordinator.ts  a holder's answer to a key's recovery data
 *
 * This file is the imperative shell: connections, the guard every handler runs in, the error
 * path, events. A peer's mistakes cost that peer only: every rejected message gets an `error`
 * reply and a log line; rounds go on without it; a peer that keeps erring is disconnected.
 */
import { toBase64url } from "../crypto/base64url.js";
import { osRandom } from "../crypto/random.js";
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import { type AnyMessage, decodeMessage, encodeMessage } from "../protocol/messages.js";
import { SessionMachine } from "../protocol/session.js";
import { CHALLENGE_BYTES, PROTOCOL_VERSION } from "../protocol/version.js";
import type { KeyRecord } from "../store/types.js";
import { CloseCodes, type Connection, type Listener } from "../transport/types.js";
import { handleAdminFrame } from "./admin-commands.js";
import type { AdminServices } from "./admin-session.js";
import { DkgCoordinator, type ThresholdKeygenRequest } from "./dkg-coordinator.js";
import { handleAdminAuth, handleJoin } from "./handshake.js";
import { RecoveryCoordinator } from "./recovery-coordinator.js";
import { RefreshCoordinator } from "./refresh-coordinator.js";
import { RoundRunner } from "./round-runner.js";
import {
  DEFAULT_SERVER_CONFIG,
  type KeygenServerComponents,
  type KeygenServerConfig,
  type Peer,
  type RejectContext,
  type ResolvedComponents,
  type RoundRequest,
  type ServerContext,
  type ServerEvent,
} from "./server-context.js";
import { SignCoordinator } from "./sign-coordinator.js";
import { TransparencyLog } from "./transparency-log.js";
import { Witnessing } from "./witnessing.js";

export { toPublicRecord } from "./public-record.js";
export {
  ADMIN_OWNER,
  DEFAULT_SERVER_CONFIG,
  type KeygenServerComponents,
  type KeygenServerConfig,
  MAX_BATCH,
  type RoundRequest,
  type ServerEvent,
} from "./server-context.js";

export class KeygenServer implements ServerContext {
  readonly config: KeygenServerConfig;
  readonly c: ResolvedComponents;
  readonly contributors = new Map<string, Peer>();
  readonly #peers = new Set<Peer>();
  readonly #listeners: ((event: ServerEvent) => void)[] = [];
  readonly #hello: (challenge: Uint8Array) => string;
  readonly #rounds: RoundRunner;
  /** Distributed key generations, coordinated but never seen in the clear (dkg-coordinator.ts). */
  readonly #dkg: DkgCoordinator;
  /** FROST signing with threshold keys (sign-coordinator.ts). */
  readonly #signing: SignCoordinator;
  /** Share refreshes of threshold keys (refresh-coordinator.ts). */
  readonly #refresh: RefreshCoordinator;
  /** Sending holders a key's recovery data, and their answers (recovery-coordinator.ts). */
  readonly #recovery: RecoveryCoordinator;
  /** The log of rounds, kept in the store (transparency-log.ts); the distribution server serves it. */
  readonly log: TransparencyLog;
  readonly witnessing: Witnessing;
  #stopping = false;

  constructor(components: KeygenServerComponents, config: Partial<KeygenServerConfig> = {}) {
    this.config = { ...DEFAULT_SERVER_CONFIG, ...config };
    const floor = components.allowQuorumOfOne ? 1 : 2;
    if (!Number.isInteger(this.config.quorum) || this.config.quorum < floor) {
      throw new DkeygenError(
        ErrorCodes.USAGE,
        `The quorum must be an integer of at least ${floor}.`,
      );
    }
    const { allowQuorumOfOne: _one, ...rest } = components;
    this.c = { clock: Date.now, random: osRandom, ...rest };
    const publicKey = toBase64url(this.c.identity.spki);
    const { fingerprint } = this.c.identity;
    const heartbeatMs = this.config.heartbeatMs;
    this.#hello = (challenge) =>
      encodeMessage({
        type: "hello",
        v: PROTOCOL_VERSION,
        server: { publicKey, fingerprint, keyType: "rsa" },
        challenge: toBase64url(challenge),
        heartbeatMs,
      });
    this.log = new TransparencyLog(this.c.store, this.c.identity);
    this.log.minCosignatures = this.config.minCosignatures;
    this.witnessing = new Witnessing(this);
    this.onEvent((e) => {
      const peer =
        e.type === "contributor.joined" ? this.contributors.get(e.contributorId) : undefined;
      if (peer) this.witnessing.joined(peer);
    });
    this.#rounds = new RoundRunner(this);
    this.#dkg = new DkgCoordinator(this);
    this.#signing = new SignCoordinator(this);
    this.#refresh = new RefreshCoordinator(this);
    this.#recovery = new RecoveryCoordinator(this);
  }

  get fingerprint(): string {
    return this.c.identity.fingerprint;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Contributors connected and authenticated right now. */
  get connectedContributors(): { id: string; name?: string }[] {
    return [...this.contributors.values()].map((p) => ({
      id: p.contributorId!,
      ...(p.name === undefined ? {} : { name: p.name }),
    }));
  }

  onEvent(listener: (event: ServerEvent) => void): void {
    this.#listeners.push(listener);
  }

  /** Serves peers arriving on `listener`. A server may serve several listeners. */
  attach(listener: Listener): void {
    listener.onConnection((connection) => this.#accept(connection));
  }

  /** Runs one round that makes one result; resolves to the stored record (public parts). */
  async runRound(request: RoundRequest): Promise<KeyRecord> {
    return (await this.#rounds.runBatchRound({ ...request, count: 1 }))[0]!;
  }

  /** Runs one round that makes `count` results (see RoundRunner.runBatchRound). */
  runBatchRound(request: RoundRequest): Promise<KeyRecord[]> {
    return this.#rounds.runBatchRound(request);
  }

  /** A distributed key generation among n connected contributors (dkg-coordinator.ts). */
  thresholdKeygen(request: ThresholdKeygenRequest): Promise<KeyRecord> {
    return this.#dkg.keygen(request);
  }

  /**
   * A FROST signature of `message` by t holders of threshold key `record`, for `requester` (its
   * owner): what POST /v1/keys/{id}/sign runs (sign-coordinator.ts).
   */
  thresholdSign(record: KeyRecord, message: Uint8Array, requester: string) {
    return this.#signing.sign(record, message, requester);
  }

  /** Fails running rounds and disconnects everyone. The caller closes listeners and the store. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.witnessing.stop();
    this.#dkg.stop();
    this.#refresh.stop();
    this.#recovery.stop();
    await this.#rounds.stop();
    for (const peer of this.#peers) {
      peer.connection.close(CloseCodes.GOING_AWAY, "server stopping");
    }
  }

  // ---- ServerContext ---------------------------------------------------------------------------

  emit(event: ServerEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.c.logger.error({ err: describeError(error) }, "event listener failed");
      }
    }
  }

  /** Sends a message; an authenticated admin's travel sealed in admin frames. */
  send(peer: Peer, msg: AnyMessage): void {
    peer.connection.send(peer.admin ? peer.admin.seal(msg) : encodeMessage(msg));
  }

  reject(peer: Peer, error: unknown, context: RejectContext = {}, integrity = false): void {
    if (!isDkeygenError(error)) {
      // Our own bug, not the peer's fault: log it loudly and answer without details.
      this.c.logger.error(
        { remote: peer.connection.remote, err: describeError(error) },
        "internal error",
      );
      error = new DkeygenError(ErrorCodes.OPERATIONAL, "The server could not process the message.");
    }
    const e = error as DkeygenError;
    const { fatal } = peer.machine.reject(e.code, integrity);
    this.c.logger.warn(
      {
        remote: peer.connection.remote,
        contributorId: peer.contributorId,
        code: e.code,
        ...context,
      },
      `rejected: ${e.message}`,
    );
    this.send(peer, {
      type: "error",
      v: PROTOCOL_VERSION,
      code: e.code,
      message: e.message,
      fatal,
      ...(context.roundId === undefined ? {} : { roundId: context.roundId }),
      ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
    });
    if (fatal) this.#close(peer, CloseCodes.PROTOCOL_ERROR, e.code);
  }

  refuse(peer: Peer, error: DkeygenError): void {
    this.c.logger.warn(
      { remote: peer.connection.remote, code: error.code },
      `refused: ${error.message}`,
    );
    this.emit({
      type: "peer.rejected",
      remote: peer.connection.remote,
      code: error.code,
      message: error.message,
    });
    this.send(peer, {
      type: "error",
      v: PROTOCOL_VERSION,
      code: error.code,
      message: error.message,
      fatal: true,
    });
    this.#close(peer, CloseCodes.REFUSED, error.code);
  }

  drop(peer: Peer, code: number, reason: string): void {
    this.#close(peer, code, reason);
    this.#onClose(peer);
  }

  // ---- connections -------------------------------------------------------------------------------

  #accept(connection: Connection): void {
    const peer: Peer = {
      connection,
      machine: new SessionMachine(this.config.maxPeerErrors),
      challenge: this.c.random(CHALLENGE_BYTES),
    };
    this.#peers.add(peer);
    peer.handshakeTimer = setTimeout(() => {
      const state = peer.machine.state;
      if (state === "handshake" || state === "joining") {
        this.refuse(peer, new DkeygenError(ErrorCodes.TIMEOUT, "No join or admin.auth in time."));
      }
    }, this.config.handshakeTimeoutMs);
    peer.handshakeTimer.unref();
    connection.onFrame((frame) => this.#onFrame(peer, frame));
    connection.onClose(() => this.#onClose(peer));
    connection.onError((error) => {
      const tooBig = /max payload|too big/i.test(error.message);
      this.c.logger.warn(
        {
          remote: connection.remote,
          code: tooBig ? ErrorCodes.FRAME_TOO_LARGE : ErrorCodes.OPERATIONAL,
        },
        tooBig ? "peer sent an oversized frame; disconnected" : "transport error",
      );
    });
    connection.send(this.#hello(peer.challenge));
  }

  #close(peer: Peer, code: number, reason: string): void {
    if (peer.machine.state !== "closed") peer.machine.transition("closed");
    peer.connection.close(code, reason);
  }

  #onClose(peer: Peer): void {
    clearTimeout(peer.handshakeTimer);
    if (peer.machine.state !== "closed") peer.machine.transition("closed");
    if (!this.#peers.delete(peer)) return;
    const id = peer.contributorId;
    if (id !== undefined && this.contributors.get(id) === peer) {
      this.contributors.delete(id);
      this.#rounds.participantLeft(id, peer);
      this.#dkg.participantLeft(id);
      this.#signing.participantLeft(id);
      this.#refresh.participantLeft(id);
      this.#recovery.participantLeft(id);
      this.c.logger.info({ contributorId: id, name: peer.name }, "contributor left");
      this.emit({
        type: "contributor.left",
        contributorId: id,
        ...(peer.name === undefined ? {} : { name: peer.name }),
      });
    }
  }

  #onFrame(peer: Peer, frame: Buffer): void {
    this.#guard(peer, () => this.#dispatch(peer, decodeMessage(frame)));
  }

  /**
   * The one place a peer's message is handled: whatever `work` throws, synchronously or as a
   * rejection, goes to the peer's error path (an `error` reply, a log line, maybe a disconnect).
   * Every handler runs through here, so no message can leave a promise rejected unhandled.
   */
  #guard(peer: Peer, work: () => void | Promise<void>): void {
    let pending: void | Promise<void>;
    try {
      pending = work();
    } catch (error) {
      this.#rejectSafely(peer, error);
      return;
    }
    if (pending instanceof Promise) {
      pending.catch((error: unknown) => this.#rejectSafely(peer, error));
    }
  }

  #rejectSafely(peer: Peer, error: unknown): void {
    if (peer.machine.state === "closed") return;
    try {
      this.reject(peer, error);
    } catch (failure) {
      // Answering failed too: nothing is left to tell the peer.
      this.c.logger.error(
        { remote: peer.connection.remote, err: describeError(failure) },
        "internal error while rejecting a message",
      );
    }
  }

  /** Routes a decoded message by the session machine's verdict to its type's handler. */
  #dispatch(peer: Peer, msg: AnyMessage): void | Promise<void> {
    const verdict = peer.machine.receive(msg.type);
    if (verdict.kind === "ignore") return;
    if (verdict.kind === "reject") throw verdict.error;
    switch (msg.type) {
      case "join":
        return handleJoin(this, peer, msg);
      case "admin.auth":
        return handleAdminAuth(this, peer, msg);
      case "commit":
        return this.#rounds.commit(peer, msg);
      case "reveal":
        return this.#rounds.reveal(peer, msg);
      case "log.cosign":
        return this.witnessing.cosign(peer, msg);
      case "log.conflict":
        return this.witnessing.conflict(peer, msg);
      case "dkg.round1":
        return this.#dkg.round1(peer, msg);
      case "dkg.round2":
        return this.#dkg.round2(peer, msg);
      case "dkg.confirm":
        return this.#refresh.has(msg.sessionId)
          ? this.#refresh.confirm(peer, msg)
          : this.#dkg.confirm(peer, msg);
      case "dkg.stored":
        return this.#refresh.has(msg.sessionId)
          ? this.#refresh.stored(peer, msg)
          : this.#dkg.stored(peer, msg);
      case "dkg.fault":
        return this.#refresh.has(msg.sessionId)
          ? this.#refresh.fault(peer, msg)
          : this.#dkg.fault(peer, msg);
      case "refresh.deal":
        return this.#refresh.deal(peer, msg);
      case "sign.commit":
        return this.#signing.commit(peer, msg);
      case "sign.share":
        return this.#signing.share(peer, msg);
      case "sign.refuse":
        return this.#signing.refuse(peer, msg);
      case "dkg.recovered":
        return this.#recovery.answered(peer, msg);
      case "admin.frame":
        return handleAdminFrame(this, this.#adminServices, peer, msg);
      default:
        // SESSION_ACCEPTS names only the types above.
        throw new DkeygenError(ErrorCodes.UNEXPECTED_MESSAGE, `Unexpected ${msg.type} message.`);
    }
  }

  /** What admin commands may use of this server. */
  readonly #adminServices: AdminServices = ((server: KeygenServer) => ({
    runRound: (request: RoundRequest) => server.runRound(request),
    thresholdKeygen: (request: ThresholdKeygenRequest) => server.#dkg.keygen(request),
    thresholdSign: (record: KeyRecord, message: Uint8Array, requester: string) =>
      server.#signing.sign(record, message, requester),
    thresholdRefresh: (record: KeyRecord) => server.#refresh.refresh(record),
    thresholdRecover: (record: KeyRecord) => server.#recovery.recover(record),
    get roundsRunning() {
      return server.#rounds.running;
    },
    get connectedContributors() {
      return server.connectedContributors;
    },
  }))(this);
}
