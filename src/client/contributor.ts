/**
 * The contributor: connects to a key generation server, checks the server's key against its pin,
 * joins with its identity key (and, the first time, an enrollment token), and answers every round
 * it is invited to with a secret phrase computed by its own keyed generator from the round's seed
 * phrase and fresh entropy, encrypted to the server and signed. It stays up for many rounds and
 * reconnects with backoff when the server goes away.
 *
 * Fatal for the contributor (it stops and does not reconnect): a pin mismatch, a refused
 * enrollment, a protocol version mismatch. Everything else is a reason to reconnect.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { sealEnvelope } from "../crypto/envelope.js";
import { fingerprintOfSpki } from "../crypto/fingerprint.js";
import { secretPhraseInput } from "../crypto/phrase-generators.js";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { signMessage } from "../crypto/signature.js";
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import { type Logger, silentLogger } from "../logging.js";
import { envelopeToWire } from "../protocol/envelope-wire.js";
import {
  type AnyMessage,
  decodeMessage,
  encodeMessage,
  type MessageOf,
} from "../protocol/messages.js";
import {
  contributionAad,
  contributionSignedData,
  joinSignedData,
} from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { Connection } from "../transport/types.js";
import { dialWs } from "../transport/ws.js";
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import type { ContributorState } from "./contributor-state.js";
import type { EntropyPool } from "./entropy.js";
import { checkPin, type PinStore } from "./pins.js";

export type ContributorEvent =
  | { type: "connected"; url: string; fingerprint: string; pin: "pinned" | "matched" }
  | { type: "joined"; contributorId: string; enrolled: boolean; name?: string }
  | { type: "round.invited"; roundId: string; purpose: string; participants: number }
  | { type: "round.contributed"; roundId: string }
  | { type: "round.accepted"; roundId: string }
  | { type: "round.closed"; roundId: string; outcome: "completed" | "failed"; accepted: number }
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
  /** How long to wait for the server's hello and welcome. */
  handshakeTimeoutMs?: number;
}

interface ServerView {
  url: string;
  publicKey: KeyObject;
  fingerprint: string;
}

export class Contributor {
  readonly #o: ContributorOptions;
  readonly #logger: Logger;
  readonly #random: RandomSource;
  readonly #listeners: ((event: ContributorEvent) => void)[] = [];
  #connection: Connection | undefined;
  #server: ServerView | undefined;
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
    const dial = this.#o.dial ?? ((url: string) => dialWs(url));
    let connection: Awaited<ReturnType<Dialer>>;
    try {
      connection = await dial(this.#o.serverUrl);
    } catch (error) {
      this.#retry(`cannot connect: ${describeError(error)}`);
      return;
    }
    if (this.#stopped) {
      connection.close(1000, "contributor stopping");
      return;
    }
    this.#connection = connection;
    let phase: "hello" | "welcome" | "ready" = "hello";
    const handshakeTimer = setTimeout(() => {
      if (phase !== "ready") {
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
        msg = decodeMessage(frame);
      } catch (error) {
        this.#logger.warn(
          { err: describeError(error) },
          "ignored a malformed message from the server",
        );
        return;
      }
      try {
        if (phase === "hello" && msg.type === "hello") {
          phase = "welcome";
          this.#onHello(connection, msg).catch((error: unknown) => this.#fail(error));
        } else if (phase === "welcome" && msg.type === "welcome") {
          phase = "ready";
          clearTimeout(handshakeTimer);
          this.#onWelcome(connection, msg);
        } else if (phase === "ready" && msg.type === "round.open") {
          this.#onRoundOpen(connection, msg);
        } else if (phase === "ready" && msg.type === "round.ack") {
          this.#emit({ type: "round.accepted", roundId: msg.roundId });
        } else if (phase === "ready" && msg.type === "round.closed") {
          this.#logger.info(
            { roundId: msg.roundId, outcome: msg.outcome, accepted: msg.accepted },
            `round ${msg.outcome}`,
          );
          this.#emit({
            type: "round.closed",
            roundId: msg.roundId,
            outcome: msg.outcome,
            accepted: msg.accepted,
          });
        } else if (msg.type === "error") {
          this.#onServerError(msg, phase !== "ready");
        } else {
          this.#logger.warn({ type: msg.type }, "ignored an unexpected message from the server");
        }
      } catch (error) {
        this.#fail(error);
      }
    });
  }

  async #onHello(connection: Connection, msg: MessageOf<"hello">): Promise<void> {
    const spki = fromBase64url(msg.server.publicKey, "server public key");
    // Never trust the fingerprint the server claims: compute it from the key it sent.
    const fingerprint = fingerprintOfSpki(spki);
    if (fingerprint !== msg.server.fingerprint) {
      throw new DkeygenError(
        ErrorCodes.PIN_MISMATCH,
        `The server at ${this.#o.serverUrl} claims fingerprint ${msg.server.fingerprint} but its key's is ${fingerprint}.`,
      );
    }
    const pin = await checkPin(
      this.#o.pins,
      this.#o.serverUrl,
      fingerprint,
      this.#o.serverFingerprint,
    );
    const publicKey = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
    if (
      publicKey.asymmetricKeyType !== "rsa" ||
      (publicKey.asymmetricKeyDetails?.modulusLength ?? 0) < 3072
    ) {
      throw new DkeygenError(
        ErrorCodes.PIN_MISMATCH,
        "The server's key is not an RSA key of at least 3072 bits.",
      );
    }
    this.#server = { url: this.#o.serverUrl, publicKey, fingerprint };
    (connection as { watchHeartbeat?(ms: number): void }).watchHeartbeat?.(msg.heartbeatMs);
    this.#logger.info({ url: this.#o.serverUrl, fingerprint, pin }, "connected to server");
    this.#emit({ type: "connected", url: this.#o.serverUrl, fingerprint, pin });

    const { state } = this.#o;
    const token = this.#o.token ?? "";
    const challenge = fromBase64url(msg.challenge, "challenge", 32);
    const signature = signMessage(
      state.privateKey,
      joinSignedData(challenge, fingerprint, state.identity, token),
    );
    connection.send(
      encodeMessage({
        type: "join",
        v: PROTOCOL_VERSION,
        identity: toBase64url(state.identity),
        signature: toBase64url(signature),
        ...(this.#o.token === undefined ? {} : { token: this.#o.token }),
        ...(this.#o.name === undefined ? {} : { name: this.#o.name }),
      }),
    );
  }

  #onWelcome(_connection: Connection, msg: MessageOf<"welcome">): void {
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

  #onRoundOpen(connection: Connection, msg: MessageOf<"round.open">): void {
    const server = this.#server!;
    const { state } = this.#o;
    const id = state.contributorId;
    this.#emit({
      type: "round.invited",
      roundId: msg.roundId,
      purpose: msg.purpose,
      participants: msg.participants,
    });
    const seed = fromBase64url(msg.seed, "seed", 32);
    const entropy = this.#o.entropy.draw();
    const phrase = state.generator.compute(
      state.generatorKey.expose(),
      secretPhraseInput(msg.roundId, seed, entropy),
    );
    entropy.fill(0);
    const aad = contributionAad(msg.roundId, id, server.fingerprint);
    const sealed = sealEnvelope(server.publicKey, phrase, aad, this.#random);
    phrase.fill(0);
    const envelope = envelopeToWire(sealed);
    const signature = signMessage(
      state.privateKey,
      contributionSignedData(msg.roundId, id, server.fingerprint, envelope),
    );
    connection.send(
      encodeMessage({
        type: "contribution",
        v: PROTOCOL_VERSION,
        roundId: msg.roundId,
        contributorId: id,
        envelope,
        signature: toBase64url(signature),
      }),
    );
    this.#logger.info({ roundId: msg.roundId, purpose: msg.purpose }, "contribution sent");
    this.#emit({ type: "round.contributed", roundId: msg.roundId });
  }

  #onServerError(msg: MessageOf<"error">, duringHandshake: boolean): void {
    this.#logger.warn({ code: msg.code, roundId: msg.roundId }, `server error: ${msg.message}`);
    this.#emit({
      type: "server.error",
      code: msg.code,
      message: msg.message,
      ...(msg.roundId === undefined ? {} : { roundId: msg.roundId }),
    });
    const fatalCodes: string[] = [
      ErrorCodes.NOT_ENROLLED,
      ErrorCodes.VERSION_MISMATCH,
      ErrorCodes.BAD_SIGNATURE,
    ];
    if (duringHandshake && fatalCodes.includes(msg.code)) {
      this.#stop(new DkeygenError(msg.code as DkeygenError["code"], msg.message));
    }
  }

  #fail(error: unknown): void {
    if (isDkeygenError(error) && error.code === ErrorCodes.PIN_MISMATCH) {
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
