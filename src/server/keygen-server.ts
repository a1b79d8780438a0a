/**
 * The key generation server: greets every peer with its public key and fingerprint, admits
 * enrolled contributors and authenticated admins, runs rounds, combines the accepted secret
 * phrases into the round secret (src/crypto/kdf.ts), derives the purpose's output
 * (src/derive/), stores it (src/store/) and answers the round's requester with public data only.
 *
 * This is the imperative shell around the pure parts: a connection's frames are decoded and
 * validated (protocol/messages.ts), dispatched by the connection's state, and each round is a
 * RoundMachine (protocol/round.ts) fed with the clock and a closure that verifies and decrypts.
 *
 *   connection state   accepts                         then
 *   handshake          join, admin.auth                contributor | admin | closed
 *   joining            nothing (enrollment in flight)  contributor | closed
 *   contributor        contribution                    closed
 *   admin              admin.generate, admin.status    closed
 *
 * A peer's mistakes cost that peer only: every rejected message gets an `error` reply and a log
 * line; rounds go on without it; a peer that keeps erring is disconnected.
 */
import { createHmac, createPublicKey, type KeyObject, timingSafeEqual } from "node:crypto";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { openEnvelope, sealEnvelope } from "../crypto/envelope.js";
import { combineRoundSecret } from "../crypto/kdf.js";
import { osRandom, type RandomSource } from "../crypto/random.js";
import type { Secret } from "../crypto/secret.js";
import { publicKeyFromRaw, verifySignature } from "../crypto/signature.js";
import { derivationOf } from "../derive/index.js";
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import type { JsonObject } from "../json.js";
import type { Logger } from "../logging.js";
import { envelopeFromWire, envelopeToWire } from "../protocol/envelope-wire.js";
import {
  type AnyMessage,
  decodeMessage,
  type EnvelopeWire,
  encodeMessage,
  type MessageOf,
  type PublicRecordWire,
} from "../protocol/messages.js";
import { RoundMachine } from "../protocol/round.js";
import {
  adminProofData,
  contributionAad,
  contributionSignedData,
  joinSignedData,
  revealAad,
} from "../protocol/signed-data.js";
import {
  CHALLENGE_BYTES,
  HANDSHAKE_TIMEOUT_MS,
  HEARTBEAT_INTERVAL_MS,
  PROTOCOL_VERSION,
  SEED_PHRASE_BYTES,
} from "../protocol/version.js";
import type { KeyRecord, KeyStore } from "../store/types.js";
import { CloseCodes, type Connection, type Listener } from "../transport/types.js";
import { BatchDeriver } from "./batch-deriver.js";
import { type ContributorRegistry, contributorIdOf } from "./enrollment.js";
import type { ServerIdentity } from "./identity.js";
import { type DerivedResult, deriveResult, readStoredSecret } from "./stored-secret.js";

export interface KeygenServerConfig {
  /** Minimum accepted contributions for a round to succeed (at least 2). */
  quorum: number;
  /** How long a round collects contributions. */
  roundTimeoutMs: number;
  /** At most this many contributors are invited to one round. */
  maxParticipants: number;
  heartbeatMs: number;
  handshakeTimeoutMs: number;
  /** A peer is disconnected after this many rejected messages. */
  maxPeerErrors: number;
}

export const DEFAULT_SERVER_CONFIG: KeygenServerConfig = {
  quorum: 2,
  roundTimeoutMs: 10_000,
  maxParticipants: 1024,
  heartbeatMs: HEARTBEAT_INTERVAL_MS,
  handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  maxPeerErrors: 16,
};

export interface KeygenServerComponents {
  identity: ServerIdentity;
  registry: ContributorRegistry;
  store: KeyStore;
  /** The admin token's bytes; admins prove they hold it with an HMAC over a challenge. */
  adminToken: Secret;
  logger: Logger;
  clock?: () => number;
  random?: RandomSource;
  /** Registered requesting clients, to check the owner named by `generate --for`. */
  requesters?: { reload(): Promise<void>; get(name: string): unknown };
  /**
   * Lets a round complete with a single contribution. Only for measuring (npm run bench):
   * a one-contributor round is only as good as that contributor.
   */
  allowQuorumOfOne?: boolean;
}

/** What the server tells its observers (the CLI, the demo). Public facts only. */
export type ServerEvent =
  | { type: "contributor.joined"; contributorId: string; name?: string; enrolled: boolean }
  | { type: "contributor.left"; contributorId: string; name?: string }
  | { type: "peer.rejected"; remote: string; code: string; message: string }
  | {
      type: "round.opened";
      roundId: string;
      purpose: string;
      participants: number;
      seedBits: number;
      deadline: string;
    }
  | { type: "contribution.accepted"; roundId: string; contributorId: string; name?: string }
  | {
      type: "contribution.rejected";
      roundId?: string;
      contributorId?: string;
      code: string;
      message: string;
    }
  | {
      type: "round.completed";
      roundId: string;
      /** The first record the round made (the only one unless it was a batch round). */
      record: KeyRecord;
      records: number;
      accepted: number;
    }
  | { type: "round.failed"; roundId: string; code: string; message: string };

type SessionState = "handshake" | "joining" | "contributor" | "admin" | "closed";

interface Session {
  connection: Connection;
  state: SessionState;
  challenge: Uint8Array;
  contributorId?: string;
  name?: string;
  errors: number;
  handshakeTimer?: NodeJS.Timeout;
}

interface RunningRound {
  machine: RoundMachine;
  seed: Uint8Array;
  purpose: string;
  params: Record<string, unknown>;
  count: number;
  owner?: string;
  subject?: string;
  onStored?: RoundRequest["onStored"];
  participants: Map<string, Session>;
  timer: NodeJS.Timeout;
  settle: () => void;
}

/** The most results one round may make (a batch round, e.g. to fill the OTP pool). */
export const MAX_BATCH = 10_000;

export interface RoundRequest {
  purpose: string;
  params?: Record<string, unknown>;
  /** How many results (records) the round makes; 1 unless filling a pool. */
  count?: number;
  /** The requesting client entitled to the secret part. */
  owner?: string;
  /** Whom, within the owner, the result is for (a TOTP enrollment's account); needs `owner`. */
  subject?: string;
  /**
   * Told each result's secret output as soon as its record is stored (in-process only; the OTP
   * pool keeps ready codes this way instead of decrypting what the store just encrypted).
   */
  onStored?: (record: KeyRecord, secretOutput: JsonObject) => void;
}

/**
 * The owner of records an admin generates without `--for`: no requesting client can be named so
 * (requester names start with a letter or digit), so none can fetch their secret part, and the
 * OTP pool never hands them out (an admin may have seen them, with --reveal-secret).
 */
export const ADMIN_OWNER = "@admin";

const CLOSED_ROUNDS_REMEMBERED = 4096;

export class KeygenServer {
  readonly config: KeygenServerConfig;
  readonly #c: Required<Omit<KeygenServerComponents, "allowQuorumOfOne" | "requesters">> &
    Pick<KeygenServerComponents, "requesters">;
  readonly #allowQuorumOfOne: boolean;
  readonly #sessions = new Set<Session>();
  /** Authenticated contributor sessions by contributor id (one live session per contributor). */
  readonly #contributors = new Map<string, Session>();
  readonly #rounds = new Map<string, RunningRound>();
  readonly #closedRounds = new Set<string>();
  readonly #listeners: ((event: ServerEvent) => void)[] = [];
  readonly #hello: (challenge: Uint8Array) => string;
  #stopping = false;
  /** Batch rounds' per-output work, on its own thread (batch-worker.ts). */
  readonly #batches = new BatchDeriver();

  constructor(components: KeygenServerComponents, config: Partial<KeygenServerConfig> = {}) {
    this.config = { ...DEFAULT_SERVER_CONFIG, ...config };
    this.#allowQuorumOfOne = components.allowQuorumOfOne ?? false;
    const floor = this.#allowQuorumOfOne ? 1 : 2;
    if (!Number.isInteger(this.config.quorum) || this.config.quorum < floor) {
      throw new DkeygenError(
        ErrorCodes.USAGE,
        `The quorum must be an integer of at least ${floor}.`,
      );
    }
    this.#c = { clock: Date.now, random: osRandom, ...components };
    const publicKey = toBase64url(this.#c.identity.spki);
    const { fingerprint } = this.#c.identity;
    const heartbeatMs = this.config.heartbeatMs;
    this.#hello = (challenge) =>
      encodeMessage({
        type: "hello",
        v: PROTOCOL_VERSION,
        server: { publicKey, fingerprint, keyType: "rsa" },
        challenge: toBase64url(challenge),
        heartbeatMs,
      });
  }

  get fingerprint(): string {
    return this.#c.identity.fingerprint;
  }

  /** Contributors connected and authenticated right now. */
  get connectedContributors(): { id: string; name?: string }[] {
    return [...this.#contributors.values()].map((s) => ({
      id: s.contributorId!,
      ...(s.name === undefined ? {} : { name: s.name }),
    }));
  }

  onEvent(listener: (event: ServerEvent) => void): void {
    this.#listeners.push(listener);
  }

  /** Serves peers arriving on `listener`. A server may serve several listeners. */
  attach(listener: Listener): void {
    listener.onConnection((connection) => this.#accept(connection));
  }

  /** Fails running rounds and disconnects everyone. The caller closes listeners and the store. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const round of this.#rounds.values()) round.settle();
    await this.#batches.close();
    for (const session of this.#sessions) {
      session.connection.close(CloseCodes.GOING_AWAY, "server stopping");
    }
  }

  #emit(event: ServerEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#c.logger.error({ err: describeError(error) }, "event listener failed");
      }
    }
  }

  // ---- connections ---------------------------------------------------------------------------

  #accept(connection: Connection): void {
    const session: Session = {
      connection,
      state: "handshake",
      challenge: this.#c.random(CHALLENGE_BYTES),
      errors: 0,
    };
    this.#sessions.add(session);
    session.handshakeTimer = setTimeout(() => {
      if (session.state === "handshake" || session.state === "joining") {
        this.#refuse(
          session,
          new DkeygenError(ErrorCodes.TIMEOUT, "No join or admin.auth in time."),
        );
      }
    }, this.config.handshakeTimeoutMs);
    session.handshakeTimer.unref();
    connection.onFrame((frame) => this.#onFrame(session, frame));
    connection.onClose(() => this.#onClose(session));
    connection.onError((error) => {
      const tooBig = /max payload|too big/i.test(error.message);
      this.#c.logger.warn(
        {
          remote: connection.remote,
          code: tooBig ? ErrorCodes.FRAME_TOO_LARGE : ErrorCodes.OPERATIONAL,
        },
        tooBig ? "peer sent an oversized frame; disconnected" : "transport error",
      );
    });
    connection.send(this.#hello(session.challenge));
  }

  #onClose(session: Session): void {
    clearTimeout(session.handshakeTimer);
    session.state = "closed";
    this.#sessions.delete(session);
    const id = session.contributorId;
    if (id !== undefined && this.#contributors.get(id) === session) {
      this.#contributors.delete(id);
      for (const round of this.#rounds.values()) {
        if (round.participants.get(id) === session) {
          round.machine.participantLeft(id);
          if (round.machine.settled) round.settle();
        }
      }
      this.#c.logger.info({ contributorId: id, name: session.name }, "contributor left");
      this.#emit({
        type: "contributor.left",
        contributorId: id,
        ...(session.name === undefined ? {} : { name: session.name }),
      });
    }
  }

  #onFrame(session: Session, frame: Buffer): void {
    if (session.state === "closed") return;
    this.#guard(session, () => this.#dispatch(session, decodeMessage(frame)));
  }

  /**
   * The one place a peer's message is handled: whatever `work` throws, synchronously or as a
   * rejection, goes to the peer's error path (an `error` reply, a log line, maybe a disconnect).
   * Every handler runs through here, so no message can leave a promise rejected unhandled.
   */
  #guard(session: Session, work: () => void | Promise<void>): void {
    let pending: void | Promise<void>;
    try {
      pending = work();
    } catch (error) {
      this.#peerErrorSafely(session, error);
      return;
    }
    if (pending instanceof Promise) {
      pending.catch((error: unknown) => this.#peerErrorSafely(session, error));
    }
  }

  #peerErrorSafely(session: Session, error: unknown): void {
    try {
      this.#peerError(session, error);
    } catch (failure) {
      // Answering failed too (the connection is gone, say): nothing is left to tell the peer.
      this.#c.logger.error(
        { remote: session.connection.remote, err: describeError(failure) },
        "internal error while rejecting a message",
      );
    }
  }

  #dispatch(session: Session, msg: AnyMessage): void | Promise<void> {
    switch (session.state) {
      case "handshake":
        if (msg.type === "join") return this.#join(session, msg);
        if (msg.type === "admin.auth") return this.#adminAuth(session, msg);
        break;
      case "contributor":
        if (msg.type === "contribution") return this.#contribution(session, msg);
        break;
      case "admin":
        if (msg.type === "admin.generate") return this.#adminGenerate(session, msg);
        if (msg.type === "admin.status") return this.#adminStatus(session, msg);
        break;
      default:
        break;
    }
    throw new DkeygenError(
      ErrorCodes.UNEXPECTED_MESSAGE,
      `A ${msg.type} message is not expected from this peer now.`,
    );
  }

  /** Replies to a rejected message and logs it; disconnects peers that keep erring. */
  #peerError(
    session: Session,
    error: unknown,
    extra: { roundId?: string; requestId?: string } = {},
  ) {
    if (!isDkeygenError(error)) {
      // Our own bug, not the peer's fault: log it loudly and answer without details.
      this.#c.logger.error(
        { remote: session.connection.remote, err: describeError(error) },
        "internal error",
      );
      error = new DkeygenError(ErrorCodes.OPERATIONAL, "The server could not process the message.");
    }
    const e = error as DkeygenError;
    session.errors++;
    const fatal =
      session.state === "handshake" ||
      session.state === "joining" ||
      e.code === ErrorCodes.VERSION_MISMATCH ||
      session.errors >= this.config.maxPeerErrors;
    this.#c.logger.warn(
      {
        remote: session.connection.remote,
        contributorId: session.contributorId,
        code: e.code,
        ...extra,
      },
      `rejected: ${e.message}`,
    );
    this.#send(session, {
      type: "error",
      v: PROTOCOL_VERSION,
      code: e.code,
      message: e.message,
      fatal,
      ...(extra.roundId === undefined ? {} : { roundId: extra.roundId }),
      ...(extra.requestId === undefined ? {} : { requestId: extra.requestId }),
    });
    if (fatal) {
      session.state = "closed";
      session.connection.close(CloseCodes.PROTOCOL_ERROR, e.code);
    }
  }

  #refuse(session: Session, error: DkeygenError): void {
    this.#c.logger.warn(
      { remote: session.connection.remote, code: error.code },
      `refused: ${error.message}`,
    );
    this.#emit({
      type: "peer.rejected",
      remote: session.connection.remote,
      code: error.code,
      message: error.message,
    });
    this.#send(session, {
      type: "error",
      v: PROTOCOL_VERSION,
      code: error.code,
      message: error.message,
      fatal: true,
    });
    session.state = "closed";
    session.connection.close(CloseCodes.REFUSED, error.code);
  }

  #send(session: Session, msg: AnyMessage): void {
    session.connection.send(encodeMessage(msg));
  }

  // ---- handshake -----------------------------------------------------------------------------

  async #join(session: Session, msg: MessageOf<"join">): Promise<void> {
    session.state = "joining";
    let enrolled = false;
    try {
      const identity = fromBase64url(msg.identity, "identity", 32);
      const signed = joinSignedData(session.challenge, this.fingerprint, identity, msg.token ?? "");
      const id = contributorIdOf(identity);
      let entry = this.#c.registry.get(id);
      if (entry) {
        if (!verifySignature(entry.key, signed, fromBase64url(msg.signature, "signature", 64))) {
          throw new DkeygenError(ErrorCodes.BAD_SIGNATURE, "The join signature does not verify.");
        }
      } else {
        if (msg.token === undefined) {
          throw new DkeygenError(
            ErrorCodes.NOT_ENROLLED,
            `Contributor ${id} is not enrolled; join once with an enrollment token (dkeygen enroll).`,
          );
        }
        // Check possession of the key before spending the token on it.
        if (
          !verifySignature(
            publicKeyFromRaw(identity),
            signed,
            fromBase64url(msg.signature, "signature", 64),
          )
        ) {
          throw new DkeygenError(ErrorCodes.BAD_SIGNATURE, "The join signature does not verify.");
        }
        await this.#c.registry.enroll(identity, msg.token, new Date(this.#c.clock()));
        entry = this.#c.registry.get(id)!;
        enrolled = true;
      }
      if (session.state !== "joining") return; // closed while enrolling
      clearTimeout(session.handshakeTimer);
      const previous = this.#contributors.get(id);
      if (previous && previous !== session) {
        previous.connection.close(CloseCodes.POLICY, "replaced by a newer connection");
        this.#onClose(previous);
      }
      session.state = "contributor";
      session.contributorId = id;
      if (entry.name !== undefined) session.name = entry.name;
      else if (msg.name !== undefined) session.name = msg.name;
      this.#contributors.set(id, session);
      this.#send(session, {
        type: "welcome",
        v: PROTOCOL_VERSION,
        contributorId: id,
        enrolled,
        ...(session.name === undefined ? {} : { name: session.name }),
      });
      this.#c.logger.info(
        { contributorId: id, name: session.name, remote: session.connection.remote, enrolled },
        enrolled ? "contributor enrolled and joined" : "contributor joined",
      );
      this.#emit({
        type: "contributor.joined",
        contributorId: id,
        enrolled,
        ...(session.name === undefined ? {} : { name: session.name }),
      });
    } catch (error) {
      if (isDkeygenError(error)) this.#refuse(session, error);
      else {
        this.#c.logger.error({ err: describeError(error) }, "join failed");
        this.#refuse(
          session,
          new DkeygenError(ErrorCodes.OPERATIONAL, "The server could not admit the contributor."),
        );
      }
    }
  }

  #adminAuth(session: Session, msg: MessageOf<"admin.auth">): void {
    const expected = createHmac("sha256", this.#c.adminToken.expose())
      .update(adminProofData(session.challenge, this.fingerprint))
      .digest();
    const presented = fromBase64url(msg.proof, "proof", 32);
    if (!timingSafeEqual(expected, presented)) {
      this.#refuse(
        session,
        new DkeygenError(ErrorCodes.UNAUTHORIZED, "Admin authentication failed."),
      );
      return;
    }
    clearTimeout(session.handshakeTimer);
    session.state = "admin";
    this.#c.logger.info({ remote: session.connection.remote }, "admin connected");
    this.#send(session, { type: "admin.ready", v: PROTOCOL_VERSION });
  }

  // ---- admin -----------------------------------------------------------------------------------

  async #adminGenerate(session: Session, msg: MessageOf<"admin.generate">): Promise<void> {
    try {
      const revealTo = msg.revealTo === undefined ? undefined : revealKey(msg.revealTo);
      if (msg.owner !== undefined) await this.#checkOwner(msg.owner);
      const record = await this.runRound({
        purpose: msg.purpose,
        params: msg.params,
        owner: msg.owner ?? ADMIN_OWNER,
      });
      let secret: EnvelopeWire | undefined;
      if (revealTo) {
        const { output } = await readStoredSecret(this.#c.store, record.id);
        const plaintext = Buffer.from(JSON.stringify(output), "utf8");
        secret = envelopeToWire(
          sealEnvelope(
            revealTo,
            plaintext,
            revealAad(msg.requestId, record.id, this.fingerprint),
            this.#c.random,
          ),
        );
        plaintext.fill(0);
        this.#c.logger.info(
          { recordId: record.id },
          "secret part revealed to the admin, sealed to its one-off key",
        );
      }
      this.#send(session, {
        type: "admin.round",
        v: PROTOCOL_VERSION,
        requestId: msg.requestId,
        record: toPublicRecord(record),
        ...(secret === undefined ? {} : { secret }),
      });
    } catch (error) {
      const e = isDkeygenError(error)
        ? error
        : new DkeygenError(ErrorCodes.OPERATIONAL, "The round could not be completed.");
      if (!isDkeygenError(error))
        this.#c.logger.error({ err: describeError(error) }, "round failed");
      this.#send(session, {
        type: "error",
        v: PROTOCOL_VERSION,
        code: e.code,
        message: e.message,
        requestId: msg.requestId,
        fatal: false,
      });
    }
  }

  async #checkOwner(owner: string): Promise<void> {
    const registry = this.#c.requesters;
    if (!registry) return;
    await registry.reload();
    if (registry.get(owner) === undefined) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        `No requesting client named ${owner} is registered (dkeygen requester add).`,
      );
    }
  }

  #adminStatus(session: Session, msg: MessageOf<"admin.status">): void {
    this.#send(session, {
      type: "admin.status.result",
      v: PROTOCOL_VERSION,
      requestId: msg.requestId,
      contributors: this.connectedContributors,
      enrolled: this.#c.registry.size,
      roundsRunning: this.#rounds.size,
    });
  }

  // ---- rounds ----------------------------------------------------------------------------------

  /**
   * Runs one round for `purpose` with every connected contributor (up to maxParticipants) and
   * resolves to the stored record (public parts only), or rejects with QUORUM_NOT_MET.
   */
  async runRound(request: RoundRequest): Promise<KeyRecord> {
    return (await this.runBatchRound({ ...request, count: 1 }))[0]!;
  }

  /**
   * Runs one round that makes `count` results (records) at once, each from its own share of the
   * round secret (crypto/kdf.ts batchOutputSecret). Resolves once all are stored.
   */
  async runBatchRound(request: RoundRequest): Promise<KeyRecord[]> {
    const count = request.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > MAX_BATCH) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, `A round makes 1 to ${MAX_BATCH} results.`);
    }
    const derivation = derivationOf(request.purpose);
    const params = request.params ?? {};
    derivation.parseParams(params); // fail before anyone is asked for anything
    if (this.#stopping) throw new DkeygenError(ErrorCodes.UNAVAILABLE, "The server is stopping.");

    const participants = new Map([...this.#contributors].slice(0, this.config.maxParticipants));
    const { quorum } = this.config;
    if (participants.size < quorum) {
      throw new DkeygenError(
        ErrorCodes.QUORUM_NOT_MET,
        `Only ${participants.size} contributor${participants.size === 1 ? " is" : "s are"} ` +
          `connected; a round needs at least ${quorum}. Nothing was stored.`,
      );
    }
    const roundId = toBase64url(this.#c.random(16));
    const seed = this.#c.random(SEED_PHRASE_BYTES);
    const deadline = this.#c.clock() + this.config.roundTimeoutMs;
    const machine = new RoundMachine({
      roundId,
      purpose: request.purpose,
      invited: [...participants.keys()],
      quorum,
      deadline,
    });

    const settled = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.config.roundTimeoutMs);
      this.#rounds.set(roundId, {
        machine,
        seed,
        purpose: request.purpose,
        params,
        count,
        ...(request.owner === undefined ? {} : { owner: request.owner }),
        ...(request.subject === undefined ? {} : { subject: request.subject }),
        ...(request.onStored === undefined ? {} : { onStored: request.onStored }),
        participants,
        timer,
        settle: resolve,
      });
    });

    const deadlineIso = new Date(deadline).toISOString();
    const open = encodeMessage({
      type: "round.open",
      v: PROTOCOL_VERSION,
      roundId,
      purpose: request.purpose,
      seed: toBase64url(seed),
      deadline: deadlineIso,
      participants: participants.size,
    });
    for (const session of participants.values()) session.connection.send(open);
    this.#c.logger.info(
      { roundId, purpose: request.purpose, participants: participants.size, quorum },
      "round opened",
    );
    this.#emit({
      type: "round.opened",
      roundId,
      purpose: request.purpose,
      participants: participants.size,
      seedBits: SEED_PHRASE_BYTES * 8,
      deadline: deadlineIso,
    });

    await settled;
    return this.#finish(roundId);
  }

  async #finish(roundId: string): Promise<KeyRecord[]> {
    const round = this.#rounds.get(roundId)!;
    clearTimeout(round.timer);
    this.#rounds.delete(roundId);
    this.#closedRounds.add(roundId);
    if (this.#closedRounds.size > CLOSED_ROUNDS_REMEMBERED) {
      this.#closedRounds.delete(this.#closedRounds.values().next().value!);
    }
    const outcome = round.machine.close();
    const notify = (outcome: "completed" | "failed", accepted: number, reason?: string) => {
      const closed = encodeMessage({
        type: "round.closed",
        v: PROTOCOL_VERSION,
        roundId,
        outcome,
        accepted,
        ...(reason === undefined ? {} : { reason }),
      });
      for (const session of round.participants.values()) session.connection.send(closed);
    };

    if (outcome.status === "failed") {
      round.seed.fill(0);
      notify("failed", outcome.acceptedCount, outcome.error.message);
      this.#c.logger.warn({ roundId, code: outcome.error.code }, outcome.error.message);
      this.#emit({
        type: "round.failed",
        roundId,
        code: outcome.error.code,
        message: outcome.error.message,
      });
      throw outcome.error;
    }

    let records: KeyRecord[];
    try {
      const secret = combineRoundSecret({
        roundId,
        purpose: round.purpose,
        seedPhrase: round.seed,
        contributions: outcome.accepted,
      });
      round.seed.fill(0);
      for (const { phrase } of outcome.accepted) phrase.fill(0);
      const participants = outcome.accepted.map((a) => a.contributorId).sort();
      const derivation = derivationOf(round.purpose);
      const params = derivation.paramsToJson(derivation.parseParams(round.params));
      const puts: Promise<KeyRecord>[] = [];
      // Not awaited one by one: the store commits a batch of puts with one fsync.
      const store = (result: DerivedResult) => {
        const put = this.#c.store
          .put({
            purpose: round.purpose,
            roundId,
            participants,
            algorithm: result.algorithm,
            public: result.public,
            secret: result.payload,
            ...(round.owner === undefined ? {} : { owner: round.owner }),
            ...(round.subject === undefined ? {} : { subject: round.subject }),
          })
          .then((record) => {
            round.onStored?.(record, result.output);
            return record;
          })
          .finally(() => result.payload.fill(0));
        // Awaited together below; until then a failed write must not count as unhandled.
        put.catch(() => {});
        puts.push(put);
      };
      try {
        if (round.count === 1) {
          store(await deriveResult(round.purpose, secret, { index: 0, size: 1 }, params));
        } else {
          // A batch: each output's HKDF and derivation run on the derivation thread; this thread
          // stores the outputs as they come, chunk by chunk.
          await this.#batches.derive(secret, round.purpose, params, round.count, (items) => {
            for (const item of items) store(item);
          });
        }
      } finally {
        secret.fill(0);
      }
      records = await Promise.all(puts);
    } catch (error) {
      const message =
        "The round's result could not be derived or stored; nothing was acknowledged.";
      this.#c.logger.error({ roundId, err: describeError(error) }, message);
      notify("failed", outcome.accepted.length, message);
      this.#emit({ type: "round.failed", roundId, code: ErrorCodes.OPERATIONAL, message });
      throw isDkeygenError(error) && error.code === ErrorCodes.INVALID_INPUT
        ? error
        : new DkeygenError(ErrorCodes.OPERATIONAL, message, { cause: error });
    }
    notify("completed", outcome.accepted.length);
    this.#c.logger.info(
      {
        roundId,
        purpose: round.purpose,
        recordId: records[0]!.id,
        records: records.length,
        accepted: outcome.accepted.length,
      },
      "round completed; result stored",
    );
    this.#emit({
      type: "round.completed",
      roundId,
      record: records[0]!,
      records: records.length,
      accepted: outcome.accepted.length,
    });
    return records;
  }

  #contribution(session: Session, msg: MessageOf<"contribution">): void {
    const contributorId = session.contributorId!;
    const { roundId } = msg;
    const reject = (error: DkeygenError) => {
      this.#peerError(session, error, { roundId });
      this.#emit({
        type: "contribution.rejected",
        roundId,
        contributorId,
        code: error.code,
        message: error.message,
      });
    };
    if (msg.contributorId !== contributorId) {
      reject(
        new DkeygenError(
          ErrorCodes.UNAUTHORIZED,
          `The contribution names contributor ${msg.contributorId}, but this connection belongs to ${contributorId}.`,
          { culprit: contributorId },
        ),
      );
      return;
    }
    const round = this.#rounds.get(roundId);
    if (!round) {
      reject(
        this.#closedRounds.has(roundId)
          ? new DkeygenError(
              ErrorCodes.LATE_CONTRIBUTION,
              `Round ${roundId} is closed; the contribution came too late.`,
            )
          : new DkeygenError(ErrorCodes.WRONG_ROUND, `There is no round ${roundId}.`),
      );
      return;
    }
    const entry = this.#c.registry.get(contributorId)!;
    const verdict = round.machine.contribute(contributorId, this.#c.clock(), () => {
      const signed = contributionSignedData(roundId, contributorId, this.fingerprint, msg.envelope);
      if (!verifySignature(entry.key, signed, fromBase64url(msg.signature, "signature", 64))) {
        throw new DkeygenError(
          ErrorCodes.BAD_SIGNATURE,
          "The contribution's signature does not verify.",
        );
      }
      const aad = contributionAad(roundId, contributorId, this.fingerprint);
      let phrase: Uint8Array;
      try {
        phrase = openEnvelope(
          this.#c.identity.privateKey,
          envelopeFromWire(msg.envelope),
          aad,
          this.#c.random,
        );
      } catch {
        // Whatever went wrong, the sender learns the same thing.
        throw new DkeygenError(
          ErrorCodes.DECRYPTION_FAILED,
          "The contribution could not be decrypted.",
        );
      }
      if (phrase.length !== 64) {
        phrase.fill(0);
        throw new DkeygenError(
          ErrorCodes.DECRYPTION_FAILED,
          "The contribution could not be decrypted.",
        );
      }
      return phrase;
    });
    if (verdict.kind === "rejected") reject(verdict.error);
    if (verdict.kind === "rejected") return;
    this.#send(session, { type: "round.ack", v: PROTOCOL_VERSION, roundId });
    this.#c.logger.info({ roundId, contributorId, name: session.name }, "contribution accepted");
    this.#emit({
      type: "contribution.accepted",
      roundId,
      contributorId,
      ...(session.name === undefined ? {} : { name: session.name }),
    });
    if (round.machine.settled) round.settle();
  }
}

export function toPublicRecord(record: KeyRecord): PublicRecordWire {
  return {
    id: record.id,
    purpose: record.purpose,
    createdAt: record.createdAt,
    roundId: record.roundId,
    participants: record.participants,
    algorithm: record.algorithm,
    public: record.public,
    ...(record.owner === undefined ? {} : { owner: record.owner }),
  };
}

/** The one-off key an admin asked a secret part to be sealed to: RSA of at least 3072 bits. */
function revealKey(spki: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({
      key: Buffer.from(fromBase64url(spki, "revealTo")),
      format: "der",
      type: "spki",
    });
  } catch {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "revealTo is not a DER SubjectPublicKeyInfo.");
  }
  if (key.asymmetricKeyType !== "rsa" || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 3072) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "revealTo must be an RSA key of at least 3072 bits.",
    );
  }
  return key;
}
