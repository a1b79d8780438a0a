/**
 * The contributor: connects to a key generation server, checks the server's key (server-key.ts:
 * key type, pin, and its proof of possession in `welcome`), joins with its identity key (and, the
 * first time, an enrollment token), and answers every round it is invited to whose invitation the
 * server signed (round-answer.ts): a secret phrase computed by its own keyed generator from the
 * round's seed phrase and fresh entropy, encrypted to the server and signed. Its phases are an
 * explicit machine (protocol/client-session.ts). It stays up for many rounds and reconnects with
 * backoff when the server goes away.
 *
 * Fatal for the contributor (it stops and does not reconnect): a pin mismatch, a server that
 * cannot prove it holds its key, a server certificate it does not trust (E_TLS), a refused
 * enrollment, a protocol version mismatch. Everything else is a reason to reconnect.
 */
import { osRandom, type RandomSource } from "../crypto/random.js";
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import { type Logger, silentLogger } from "../logging.js";
import { CONTRIBUTOR_PHASES, PhaseMachine } from "../protocol/client-session.js";
import {
  type AnyMessage,
  decodeMessage,
  encodeMessage,
  type MessageOf,
} from "../protocol/messages.js";
import { CHALLENGE_BYTES, MAX_SERVER_FRAME_BYTES } from "../protocol/version.js";
import type { Connection } from "../transport/types.js";
import { dialWs } from "../transport/ws.js";
import { AnsweredJournal } from "./answered-rounds.js";
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import { checkWelcome, FATAL_DURING_HANDSHAKE, joinMessage } from "./contributor-handshake.js";
import { ContributorRounds, type RoundEvent } from "./contributor-rounds.js";
import type { ContributorState } from "./contributor-state.js";
import { ContributorThreshold, type ThresholdEvent } from "./contributor-threshold.js";
import type { EntropyPool } from "./entropy.js";
import type { PinStore } from "./pins.js";
import { checkServerHello, confirmServer, type ServerKey } from "./server-key.js";
import { Witness } from "./witness.js";

export type ContributorEvent =
  | { type: "connected"; url: string; fingerprint: string; pin: "pinned" | "matched" }
  | { type: "joined"; contributorId: string; enrolled: boolean; name?: string }
  | RoundEvent
  | ThresholdEvent
  | { type: "server.error"; code: string; message: string; roundId?: string }
  | { type: "disconnected"; retryInMs?: number; reason: string }
  | { type: "stopped"; error?: DkeygenError };

export type Dialer = (url: string) => Promise<Connection & { watchHeartbeat?(ms: number): void }>;

export interface ContributorOptions {
  serverUrl: string;
  state: ContributorState;
  entropy: EntropyPool;
  pins: PinStore;
  /** A fingerprint pinned in advance (--server-fingerprint); overrides trust on first use. */
  serverFingerprint?: string;
  /** Single-use enrollment token, needed only the first time. */
  token?: string;
  name?: string;
  logger?: Logger;
  random?: RandomSource;
  /** false: do not reconnect (tests, one-shot use). */
  reconnect?: BackoffOptions | false;
  dial?: Dialer;
  /** wss:// only: trust only these CA certificates (PEM) for the server's certificate. */
  ca?: string;
  /** How long to wait for the server's hello and welcome. */
  handshakeTimeoutMs?: number;
}

export class Contributor {
  readonly #o: ContributorOptions;
  readonly #logger: Logger;
  readonly #random: RandomSource;
  readonly #listeners: ((event: ContributorEvent) => void)[] = [];
  #connection: Connection | undefined;
  #server: ServerKey | undefined;
  /** The rounds this contributor takes part in (each answered once, across connections). */
  readonly #rounds: ContributorRounds;
  readonly #journal: AnsweredJournal;
  /** Witnesses the server's transparency log: checks and cosigns its checkpoints (witness.ts). */
  readonly #witness: Witness;
  /** Threshold-key sessions: DKG, refresh, recovery, signing (contributor-threshold.ts). */
  readonly #threshold: ContributorThreshold;
  #stopped = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #firstJoin: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #done: Promise<DkeygenError | undefined>;
  #resolveDone!: (e: DkeygenError | undefined) => void;

  constructor(options: ContributorOptions) {
    this.#o = options;
    this.#logger = options.logger ?? silentLogger;
    this.#random = options.random ?? osRandom;
    this.#journal = new AnsweredJournal(options.state.dataDir, this.#logger);
    this.#rounds = new ContributorRounds({
      state: options.state,
      entropy: options.entropy,
      random: this.#random,
      logger: this.#logger,
      emit: (event) => this.#emit(event),
      journal: this.#journal,
    });
    this.#witness = new Witness({
      dataDir: options.state.dataDir,
      contributorId: options.state.contributorId,
      privateKey: options.state.privateKey,
      publicKey: options.state.publicKey,
      rounds: this.#rounds,
      logger: this.#logger,
    });
    this.#threshold = new ContributorThreshold({
      state: options.state,
      random: this.#random,
      logger: this.#logger,
      emit: (event) => this.#emit(event),
    });
    this.#done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  get contributorId(): string {
    return this.#o.state.contributorId;
  }

  onEvent(listener: (event: ContributorEvent) => void): void {
    this.#listeners.push(listener);
  }

  /** Resolves once joined the first time; rejects if the first attempt fails fatally. */
  start(): Promise<void> {
    const joined = new Promise<void>((resolve, reject) => {
      this.#firstJoin = { resolve, reject };
    });
    this.#connectGuarded();
    return joined;
  }

  /** Resolves when the contributor has stopped for good: the fatal error, or undefined. */
  get done(): Promise<DkeygenError | undefined> {
    return this.#done;
  }

  async stop(): Promise<void> {
    this.#stop();
    await this.#done;
    await this.#journal.flushed();
  }

  #stop(error?: DkeygenError): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#connection?.close(1000, "contributor stopping");
    if (error) this.#firstJoin?.reject(error);
    this.#firstJoin = undefined;
    this.#emit({ type: "stopped", ...(error ? { error } : {}) });
    this.#resolveDone(error);
  }

  #emit(event: ContributorEvent): void {
    for (const listener of this.#listeners) listener(event);
  }

  /** Connects; a failure nobody expected is handled like any other, never left unhandled. */
  #connectGuarded(): void {
    this.#connect().catch((error: unknown) => this.#fail(error));
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const ca = this.#o.ca;
    // The server's frames may be larger than a peer's: log.checkpoint carries round entries.
    const dial =
      this.#o.dial ??
      ((url: string) =>
        dialWs(url, { maxPayload: MAX_SERVER_FRAME_BYTES, ...(ca === undefined ? {} : { ca }) }));
    let connection: Awaited<ReturnType<Dialer>>;
    try {
      connection = await dial(this.#o.serverUrl);
    } catch (error) {
      // An untrusted certificate will not become trusted by retrying.
      if (isDkeygenError(error, ErrorCodes.TLS)) this.#fail(error);
      else this.#retry(`cannot connect: ${describeError(error)}`);
      return;
    }
    if (this.#stopped) {
      connection.close(1000, "contributor stopping");
      return;
    }
    this.#connection = connection;
    const session = new PhaseMachine(CONTRIBUTOR_PHASES, "hello");
    // Chosen here, covered by the server's proof in `welcome`: a recorded proof cannot be replayed.
    const clientChallenge = this.#random(CHALLENGE_BYTES);
    const handshakeTimer = setTimeout(() => {
      if (session.phase !== "ready") {
        this.#logger.warn(
          { url: this.#o.serverUrl },
          "server did not complete the handshake in time",
        );
        connection.close(4001, "handshake timeout");
      }
    }, this.#o.handshakeTimeoutMs ?? 10_000);
    handshakeTimer.unref();

    connection.onClose((info) => {
      clearTimeout(handshakeTimer);
      session.transition("closed");
      if (this.#connection === connection) this.#connection = undefined;
      if (!this.#stopped)
        this.#retry(`connection closed (${info.code}${info.reason ? ` ${info.reason}` : ""})`);
    });
    connection.onError((error) =>
      this.#logger.debug({ err: describeError(error) }, "transport error"),
    );
    connection.onFrame((frame) => {
      let msg: AnyMessage;
      try {
        msg = decodeMessage(frame, MAX_SERVER_FRAME_BYTES);
      } catch (error) {
        this.#logger.warn(
          { err: describeError(error) },
          "ignored a malformed message from the server",
        );
        return;
      }
      if (!session.accepts(msg.type)) {
        this.#logger.warn(
          { type: msg.type, phase: session.phase },
          "ignored an unexpected message from the server",
        );
        return;
      }
      // One guard for every handler, synchronous or not: a failure closes this connection.
      const handled = (async () => {
        switch (msg.type) {
          case "hello":
            session.transition("welcome");
            await this.#onHello(connection, msg, clientChallenge);
            break;
          case "welcome":
            // Ready as soon as the proof checks, before the pin is written: an invitation may
            // follow the welcome at once.
            checkWelcome(this.#server!, this.contributorId, msg, clientChallenge);
            session.transition("ready");
            clearTimeout(handshakeTimer);
            await this.#joined(msg);
            break;
          case "round.open":
            this.#rounds.open(connection, this.#server!, msg);
            break;
          case "round.commits":
            this.#rounds.commits(connection, this.#server!, msg);
            break;
          case "round.receipt":
            this.#rounds.receipt(msg);
            break;
          case "round.closed":
            this.#rounds.closed(msg);
            break;
          case "log.checkpoint": {
            const answer = await this.#witness.handle(this.#server!, msg);
            if (answer !== undefined) connection.send(encodeMessage(answer));
            break;
          }
          case "error":
            this.#onServerError(msg, session.phase !== "ready");
            break;
          default:
            // dkg.*, refresh.*, sign.*: a threshold-key session's (contributor-threshold.ts).
            if (this.#threshold.handles(msg)) {
              await this.#threshold.handle(connection, this.#server!, msg);
            }
            break;
        }
      })();
      handled.catch((error: unknown) => this.#fail(error));
    });
  }

  async #onHello(
    connection: Connection,
    msg: MessageOf<"hello">,
    clientChallenge: Uint8Array,
  ): Promise<void> {
    const server = await checkServerHello(msg, {
      url: this.#o.serverUrl,
      pins: this.#o.pins,
      ...(this.#o.serverFingerprint === undefined
        ? {}
        : { expectedFingerprint: this.#o.serverFingerprint }),
    });
    this.#server = server;
    (connection as { watchHeartbeat?(ms: number): void }).watchHeartbeat?.(msg.heartbeatMs);

    connection.send(encodeMessage(joinMessage(this.#o, server, clientChallenge)));
  }

  /** Joined: a key seen for the first time is pinned now that its holder proved it. */
  async #joined(msg: MessageOf<"welcome">): Promise<void> {
    const server = this.#server!;
    const pin = (await confirmServer(server)) === "matched" ? "matched" : "pinned";
    const { fingerprint } = server;
    this.#logger.info({ url: this.#o.serverUrl, fingerprint, pin }, "connected to server");
    this.#emit({ type: "connected", url: this.#o.serverUrl, fingerprint, pin });
    this.#attempt = 0;
    this.#logger.info(
      { contributorId: msg.contributorId, name: msg.name, enrolled: msg.enrolled },
      msg.enrolled ? "enrolled and joined" : "joined",
    );
    this.#emit({
      type: "joined",
      contributorId: msg.contributorId,
      enrolled: msg.enrolled,
      ...(msg.name === undefined ? {} : { name: msg.name }),
    });
    this.#firstJoin?.resolve();
    this.#firstJoin = undefined;
  }

  #onServerError(msg: MessageOf<"error">, duringHandshake: boolean): void {
    this.#logger.warn({ code: msg.code, roundId: msg.roundId }, `server error: ${msg.message}`);
    this.#emit({
      type: "server.error",
      code: msg.code,
      message: msg.message,
      ...(msg.roundId === undefined ? {} : { roundId: msg.roundId }),
    });
    if (duringHandshake && FATAL_DURING_HANDSHAKE.includes(msg.code)) {
      this.#stop(new DkeygenError(msg.code as DkeygenError["code"], msg.message));
    }
  }

  #fail(error: unknown): void {
    // A server that is not the pinned one, cannot prove it is, or whose certificate is not
    // trusted: refuse it for good, loudly.
    if (
      isDkeygenError(error) &&
      (error.code === ErrorCodes.PIN_MISMATCH ||
        error.code === ErrorCodes.BAD_SIGNATURE ||
        error.code === ErrorCodes.TLS)
    ) {
      this.#logger.error({ code: error.code }, error.message);
      this.#stop(error);
      return;
    }
    this.#logger.error({ err: describeError(error) }, "contributor error");
    this.#connection?.close(4000, "client error");
  }

  #retry(reason: string): void {
    if (this.#stopped) return;
    if (this.#o.reconnect === false) {
      this.#emit({ type: "disconnected", reason });
      this.#stop(
        new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `Disconnected from ${this.#o.serverUrl}: ${reason}`,
        ),
      );
      return;
    }
    const unit = this.#random(4).reduce((acc, b) => acc * 256 + b, 0) / 2 ** 32;
    const delay = backoffDelay(this.#attempt++, this.#o.reconnect ?? DEFAULT_BACKOFF, unit);
    this.#logger.info({ retryInMs: delay }, `disconnected: ${reason}`);
    this.#emit({ type: "disconnected", retryInMs: delay, reason });
    this.#retryTimer = setTimeout(() => this.#connectGuarded(), delay);
  }
}
