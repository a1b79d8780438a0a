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
 *   dkg.*, refresh.deal, sign.*, dkg.recovered
 *                   threshold-sessions.ts  a step of a threshold-key session, handed by its table
 *                                        to the session's coordinator
 *
 * This file is the imperative shell: connections, the routing above, events; every handler runs
 * in one guard, and its failures take one error path (peer-errors.ts). A peer's mistakes cost
 * that peer only: every rejected message gets an `error` reply and a log line; rounds go on
 * without it; a peer that keeps erring is disconnected.
 */
import { toBase64url } from "../crypto/base64url.js";
import { osRandom } from "../crypto/random.js";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import { type AnyMessage, decodeMessage, encodeMessage } from "../protocol/messages.js";
import { SessionMachine } from "../protocol/session.js";
import { CHALLENGE_BYTES, PROTOCOL_VERSION } from "../protocol/version.js";
import type { KeyRecord } from "../store/types.js";
import { CloseCodes, type Connection, type Listener } from "../transport/types.js";
import { handleAdminFrame } from "./admin-commands.js";
import type { AdminServices } from "./admin-session.js";
import type { ThresholdKeygenRequest } from "./dkg-coordinator.js";
import { handleAdminAuth, handleJoin } from "./handshake.js";
import { closePeer, guard, refusePeer, rejectPeer } from "./peer-errors.js";
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
import { ThresholdSessions } from "./threshold-sessions.js";
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
  /** Threshold-key sessions: DKG, signing, refresh, recovery (threshold-sessions.ts). */
  readonly #threshold: ThresholdSessions;
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
    this.#threshold = new ThresholdSessions(this);
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

  /** Whether round `roundId` is running on this server now. */
  roundRunning(roundId: string): boolean {
    return this.#rounds.isRunning(roundId);
  }

  /** A distributed key generation among n connected contributors (dkg-coordinator.ts). */
  thresholdKeygen(request: ThresholdKeygenRequest): Promise<KeyRecord> {
    return this.#threshold.keygen(request);
  }

  /**
   * A FROST signature of `message` by t holders of threshold key `record`, for `requester` (its
   * owner): what POST /v1/keys/{id}/sign runs (sign-coordinator.ts).
   */
  thresholdSign(record: KeyRecord, message: Uint8Array, requester: string) {
    return this.#threshold.sign(record, message, requester);
  }

  /** Fails running rounds and disconnects everyone. The caller closes listeners and the store. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.witnessing.stop();
    this.#threshold.stop();
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
    rejectPeer(this, peer, error, context, integrity);
  }

  refuse(peer: Peer, error: DkeygenError): void {
    refusePeer(this, peer, error);
  }

  drop(peer: Peer, code: number, reason: string): void {
    closePeer(peer, code, reason);
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

  #onClose(peer: Peer): void {
    clearTimeout(peer.handshakeTimer);
    if (peer.machine.state !== "closed") peer.machine.transition("closed");
    if (!this.#peers.delete(peer)) return;
    const id = peer.contributorId;
    if (id !== undefined && this.contributors.get(id) === peer) {
      this.contributors.delete(id);
      this.#rounds.participantLeft(id, peer);
      this.#threshold.participantLeft(id);
      this.c.logger.info({ contributorId: id, name: peer.name }, "contributor left");
      this.emit({
        type: "contributor.left",
        contributorId: id,
        ...(peer.name === undefined ? {} : { name: peer.name }),
      });
    }
  }

  #onFrame(peer: Peer, frame: Buffer): void {
    guard(this, peer, () => this.#dispatch(peer, decodeMessage(frame)));
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
      case "admin.frame":
        return handleAdminFrame(this, this.#adminServices, peer, msg);
      default:
        if (this.#threshold.handles(msg)) return this.#threshold.handle(peer, msg);
        // SESSION_ACCEPTS names only the types above and the threshold sessions'.
        throw new DkeygenError(ErrorCodes.UNEXPECTED_MESSAGE, `Unexpected ${msg.type} message.`);
    }
  }

  /** What admin commands may use of this server. */
  readonly #adminServices: AdminServices = ((server: KeygenServer) => ({
    runRound: (request: RoundRequest) => server.runRound(request),
    thresholdKeygen: (request: ThresholdKeygenRequest) => server.#threshold.keygen(request),
    thresholdSign: (record: KeyRecord, message: Uint8Array, requester: string) =>
      server.#threshold.sign(record, message, requester),
    thresholdRefresh: (record: KeyRecord) => server.#threshold.refresh(record),
    thresholdRecover: (record: KeyRecord) => server.#threshold.recover(record),
    get roundsRunning() {
      return server.#rounds.running;
    },
    get connectedContributors() {
      return server.connectedContributors;
    },
  }))(this);
}
