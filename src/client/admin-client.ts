/**
 * The admin side of the key generation server's WebSocket endpoint: authenticates with an HMAC of
 * both challenges under the admin token (the token itself never travels), checks the server's
 * proof that it holds the pinned key, then asks for rounds and status over a MACed session.
 * Used by `dkeygen generate` and the demo.
 */
import { createHmac, generateKeyPair, randomUUID } from "node:crypto";
import { promisify } from "node:util";
import { toBase64url } from "../crypto/base64url.js";
import { openEnvelope } from "../crypto/envelope.js";
import { osRandom } from "../crypto/random.js";
import type { Secret } from "../crypto/secret.js";
import {
  DkeygenError,
  describeError,
  type ErrorCode,
  ErrorCodes,
  isDkeygenError,
} from "../errors.js";
import type { JsonObject } from "../json.js";
import { AdminChannel, adminSessionKeys } from "../protocol/admin-channel.js";
import { ADMIN_PHASES, PhaseMachine } from "../protocol/client-session.js";
import { envelopeFromWire } from "../protocol/envelope-wire.js";
import {
  type AnyMessage,
  decodeMessage,
  encodeMessage,
  type MessageOf,
  type PublicRecordWire,
} from "../protocol/messages.js";
import {
  adminProofData,
  adminReadyProofData,
  exportAad,
  openingAad,
  revealAad,
} from "../protocol/signed-data.js";
import { CHALLENGE_BYTES, PROTOCOL_VERSION } from "../protocol/version.js";
import type { Connection } from "../transport/types.js";
import { dialWs } from "../transport/ws.js";
import type { PinStore } from "./pins.js";
import { checkServerHello, checkServerProof, confirmServer, type ServerKey } from "./server-key.js";
import { unreachableHint } from "./unreachable.js";

export interface AdminClientOptions {
  url: string;
  token: Secret;
  /** When given, the server must present this key fingerprint (pinned in advance). */
  expectedFingerprint?: string;
  /**
   * Pins (trust on first use): the server's key is recorded on first contact and required from
   * then on, unless `expectedFingerprint` says otherwise. One of the two is required.
   */
  pins?: PinStore;
  timeoutMs?: number;
  /** How to reach the server; WebSocket by default (tests pass an in-memory transport). */
  dial?: (url: string) => Promise<Connection>;
  /** wss:// only: trust only these CA certificates (PEM) for the server's certificate. */
  ca?: string;
}

const generateRsa = promisify(generateKeyPair);

type Pending = { resolve: (msg: AnyMessage) => void; reject: (error: Error) => void };

/**
 * An authenticated admin session. The handshake runs through the admin phase machine
 * (protocol/client-session.ts): `hello` (the server's key checked against the pin) → `admin.auth`
 * (HMAC under the admin token over both challenges) → `admin.ready` (the server's signature over
 * both challenges, checked with the pinned key) → every later message both ways in MACed admin
 * frames (protocol/admin-channel.ts). Anything else from the server ends the session.
 */
export class AdminClient {
  readonly fingerprint: string;
  /** The server's WebSocket URL this session was opened at (contributors join there too). */
  readonly url: string;
  readonly #connection: Connection;
  readonly #channel: AdminChannel;
  readonly #pending = new Map<string, Pending>();
  #closedError: DkeygenError | undefined;

  private constructor(
    connection: Connection,
    url: string,
    fingerprint: string,
    channel: AdminChannel,
  ) {
    this.#connection = connection;
    this.url = url;
    this.fingerprint = fingerprint;
    this.#channel = channel;
  }

  static async connect(options: AdminClientOptions): Promise<AdminClient> {
    let connection: Connection;
    try {
      connection = options.dial
        ? await options.dial(options.url)
        : await dialWs(options.url, {
            timeoutMs: options.timeoutMs ?? 10_000,
            ...(options.ca === undefined ? {} : { ca: options.ca }),
          });
    } catch (cause) {
      if (cause instanceof DkeygenError && cause.code === ErrorCodes.TLS) throw cause;
      throw new DkeygenError(
        ErrorCodes.UNAVAILABLE,
        `Cannot reach the key generation server at ${options.url}: ${
          unreachableHint(cause, options.url, "websocket") ?? (cause as Error).message
        }`,
        { cause },
      );
    }
    const session = new PhaseMachine(ADMIN_PHASES, "hello");
    const clientChallenge = osRandom(CHALLENGE_BYTES);
    const token = options.token.expose();
    let server: ServerKey | undefined;
    let client: AdminClient | undefined;

    return new Promise<AdminClient>((resolve, reject) => {
      /** Ends the session: the handshake (if still running) and every pending request fail. */
      const fail = (error: DkeygenError) => {
        clearTimeout(timer);
        reject(error);
        if (client) {
          client.#closedError ??= error;
          client.#failPending(error);
        }
        if (session.phase !== "closed") {
          session.transition("closed");
          connection.close(1002);
        }
      };
      const timer = setTimeout(() => {
        fail(
          new DkeygenError(ErrorCodes.TIMEOUT, "The server did not answer the admin handshake."),
        );
      }, options.timeoutMs ?? 10_000);
      connection.onClose((info) => {
        clearTimeout(timer);
        if (session.phase !== "closed") session.transition("closed");
        const error =
          (client ? client.#closedError : undefined) ??
          new DkeygenError(
            ErrorCodes.UNAVAILABLE,
            `The server closed the connection (${info.code}).`,
          );
        reject(error);
        if (client) {
          client.#closedError ??= error;
          client.#failPending(error);
        }
      });
      const onMessage = async (msg: AnyMessage): Promise<void> => {
        if (!session.accepts(msg.type)) {
          // After admin.ready the server speaks only in MACed frames: this is not the server.
          throw new DkeygenError(
            ErrorCodes.UNEXPECTED_MESSAGE,
            `The server sent an unexpected ${msg.type} message; the session is closed.`,
          );
        }
        switch (msg.type) {
          case "hello": {
            session.transition("auth");
            server = await checkServerHello(msg, {
              url: options.url,
              ...(options.pins === undefined ? {} : { pins: options.pins }),
              ...(options.expectedFingerprint === undefined
                ? {}
                : { expectedFingerprint: options.expectedFingerprint }),
            });
            const proof = createHmac("sha256", token)
              .update(adminProofData(server.challenge, server.fingerprint, clientChallenge))
              .digest();
            connection.send(
              encodeMessage({
                type: "admin.auth",
                v: PROTOCOL_VERSION,
                clientChallenge: toBase64url(clientChallenge),
                proof: toBase64url(proof),
              }),
            );
            return;
          }
          case "admin.ready": {
            const known = server!;
            checkServerProof(
              known,
              adminReadyProofData(known.challenge, clientChallenge, known.fingerprint),
              msg.proof,
            );
            await confirmServer(known);
            session.transition("ready");
            const keys = adminSessionKeys(
              token,
              known.challenge,
              clientChallenge,
              known.fingerprint,
            );
            client = new AdminClient(
              connection,
              options.url,
              known.fingerprint,
              new AdminChannel(keys, "admin"),
            );
            clearTimeout(timer);
            resolve(client);
            return;
          }
          case "admin.frame":
            client!.#route(client!.#channel.open(msg));
            return;
          case "error":
            throw new DkeygenError(msg.code as ErrorCode, msg.message);
          default:
            return;
        }
      };
      connection.onFrame((frame) => {
        if (session.phase === "closed") return;
        let msg: AnyMessage;
        try {
          msg = decodeMessage(frame);
        } catch (cause) {
          // The server broke the protocol (or speaks another version): nothing it says on this
          // connection can be trusted to answer a request, so fail them rather than wait forever.
          fail(
            new DkeygenError(
              ErrorCodes.MALFORMED_MESSAGE,
              `The server sent a message this client cannot read: ${describeError(cause)}`,
            ),
          );
          return;
        }
        onMessage(msg).catch((error: unknown) =>
          fail(
            isDkeygenError(error)
              ? error
              : new DkeygenError(ErrorCodes.OPERATIONAL, describeError(error)),
          ),
        );
      });
    });
  }

  #failPending(error: DkeygenError): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }

  #route(msg: AnyMessage): void {
    const requestId = "requestId" in msg ? msg.requestId : undefined;
    if (requestId === undefined) {
      // An error about the session as a whole (sealed, so it is the server's). Only a fatal one
      // ends it; the server closes the connection after it.
      if (msg.type === "error" && msg.fatal) {
        this.#closedError = new DkeygenError(msg.code as ErrorCode, msg.message);
        this.#failPending(this.#closedError);
      }
      return;
    }
    const pending = this.#pending.get(requestId);
    if (!pending) return;
    this.#pending.delete(requestId);
    pending.resolve(msg);
  }

  #request(msg: AnyMessage & { requestId: string }): Promise<AnyMessage> {
    return new Promise((resolve, reject) => {
      if (this.#closedError) {
        reject(this.#closedError);
        return;
      }
      this.#pending.set(msg.requestId, { resolve, reject });
      this.#connection.send(this.#channel.seal(msg));
    });
  }

  /**
   * Runs a round for `purpose`; resolves to the stored record's public data. `holders` (multisig
   * only, without `owner`): the registered requesters key 0, 1, … of the set is for, each alone.
   */
  async generate(
    purpose: string,
    params: Record<string, unknown> = {},
    owner?: string,
    holders?: string[],
  ): Promise<PublicRecordWire> {
    return (await this.#generate(purpose, params, owner, undefined, holders)).record;
  }

  /**
   * Runs a round and also receives the record's secret part, sealed by the server to a one-off
   * RSA-3072 key made for this request alone (the secret never crosses the wire in the clear).
   */
  async generateRevealed(
    purpose: string,
    params: Record<string, unknown> = {},
    owner?: string,
    /** Only for the server to refuse: a split set is not revealed to anyone whole. */
    holders?: string[],
  ): Promise<{ record: PublicRecordWire; secret: JsonObject }> {
    const { privateKey, publicKey } = await generateRsa("rsa", { modulusLength: 3072 });
    const spki = publicKey.export({ type: "spki", format: "der" });
    const requestId = randomUUID();
    const reply = await this.#generate(
      purpose,
      params,
      owner,
      { requestId, spki: toBase64url(spki) },
      holders,
    );
    if (!reply.secret) {
      throw new DkeygenError(
        ErrorCodes.MALFORMED_MESSAGE,
        "The server did not send the secret part.",
      );
    }
    const plaintext = openEnvelope(
      privateKey,
      envelopeFromWire(reply.secret),
      revealAad(requestId, reply.record.id, this.fingerprint),
    );
    try {
      return {
        record: reply.record,
        secret: JSON.parse(Buffer.from(plaintext).toString("utf8")) as JsonObject,
      };
    } finally {
      plaintext.fill(0);
    }
  }

  async #generate(
    purpose: string,
    params: Record<string, unknown>,
    owner: string | undefined,
    reveal: { requestId: string; spki: string } | undefined,
    holders?: string[],
  ): Promise<MessageOf<"admin.round">> {
    const reply = await this.#request({
      type: "admin.generate",
      v: PROTOCOL_VERSION,
      requestId: reveal?.requestId ?? randomUUID(),
      purpose,
      params,
      ...(owner === undefined ? {} : { owner }),
      ...(holders === undefined ? {} : { holders }),
      ...(reveal === undefined ? {} : { revealTo: reveal.spki }),
    });
    if (reply.type === "error") throw new DkeygenError(reply.code as ErrorCode, reply.message);
    if (reply.type !== "admin.round") {
      throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `Unexpected ${reply.type} reply.`);
    }
    return reply;
  }

  /**
   * A distributed key generation among n connected contributors (docs/PROTOCOL.md §16): resolves
   * to the key's public description once every participant has confirmed it.
   */
  async thresholdKeygen(request: {
    suite: "secp256k1-tr" | "ed25519" | "p256";
    t: number;
    n: number;
    owner?: string;
  }): Promise<MessageOf<"admin.threshold.key">["key"]> {
    const reply = await this.#request({
      type: "admin.threshold.keygen",
      v: PROTOCOL_VERSION,
      requestId: randomUUID(),
      suite: request.suite,
      t: request.t,
      n: request.n,
      ...(request.owner === undefined ? {} : { owner: request.owner }),
    });
    if (reply.type === "error") throw new DkeygenError(reply.code as ErrorCode, reply.message);
    if (reply.type !== "admin.threshold.key") {
      throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `Unexpected ${reply.type} reply.`);
    }
    return reply.key;
  }

  /** New shares of threshold key `keyId` among its holders (same key); the refreshed key. */
  /** Asks every connected holder of `keyId` to check its share and rebuild it if lost (§16.8). */
  async thresholdRecover(keyId: string): Promise<MessageOf<"admin.threshold.recovery">["holders"]> {
    const reply = await this.#request({
      type: "admin.threshold.recover",
      v: PROTOCOL_VERSION,
      requestId: randomUUID(),
      keyId,
    });
    if (reply.type === "error") throw new DkeygenError(reply.code as ErrorCode, reply.message);
    if (reply.type !== "admin.threshold.recovery") {
      throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `Unexpected ${reply.type} reply.`);
    }
    return reply.holders;
  }

  async thresholdRefresh(keyId: string): Promise<MessageOf<"admin.threshold.key">["key"]> {
    const reply = await this.#request({
      type: "admin.threshold.refresh",
      v: PROTOCOL_VERSION,
      requestId: randomUUID(),
      keyId,
    });
    if (reply.type === "error") throw new DkeygenError(reply.code as ErrorCode, reply.message);
    if (reply.type !== "admin.threshold.key") {
      throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `Unexpected ${reply.type} reply.`);
    }
    return reply.key;
  }

  /** A FROST signature of `message` by t holders of threshold key `keyId` (admin-owned). */
  async thresholdSign(
    keyId: string,
    message: Uint8Array,
  ): Promise<Omit<MessageOf<"admin.threshold.signature">, "type" | "v" | "requestId">> {
    const reply = await this.#request({
      type: "admin.threshold.sign",
      v: PROTOCOL_VERSION,
      requestId: randomUUID(),
      keyId,
      message: toBase64url(message),
    });
    if (reply.type === "error") throw new DkeygenError(reply.code as ErrorCode, reply.message);
    if (reply.type !== "admin.threshold.signature") {
      throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `Unexpected ${reply.type} reply.`);
    }
    return { keyId: reply.keyId, signature: reply.signature, signers: reply.signers };
  }

  /**
   * Record `recordId`'s derivation secret and parameters (server/derivation-export.ts), sealed by
   * the server to a one-off RSA-3072 key made for this request alone, opened here.
   */
  async exportDerivationSecret(
    recordId: string,
  ): Promise<{ record: PublicRecordWire; exported: JsonObject }> {
    const { privateKey, publicKey } = await generateRsa("rsa", { modulusLength: 3072 });
    const requestId = randomUUID();
    const reply = await this.#request({
      type: "admin.export",
      v: PROTOCOL_VERSION,
      requestId,
      recordId,
      revealTo: toBase64url(publicKey.export({ type: "spki", format: "der" })),
    });
    if (reply.type === "error") throw new DkeygenError(reply.code as ErrorCode, reply.message);
    if (reply.type !== "admin.export.result" || reply.record.id !== recordId) {
      throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `Unexpected ${reply.type} reply.`);
    }
    const plaintext = openEnvelope(
      privateKey,
      envelopeFromWire(reply.secret),
      exportAad(requestId, recordId, this.fingerprint),
    );
    try {
      const exported = JSON.parse(Buffer.from(plaintext).toString("utf8")) as JsonObject;
      if (exported.recordId !== recordId) {
        throw new DkeygenError(
          ErrorCodes.DECRYPTION_FAILED,
          "The exported derivation secret is for another record.",
        );
      }
      return { record: reply.record, exported };
    } finally {
      plaintext.fill(0);
    }
  }

  /**
   * Record `recordId`'s opening (docs/PROTOCOL.md §15.6; only for a record the admin owns, never a
   * nonce record's), sealed by the server to a one-off RSA-3072 key made for this request alone,
   * opened here: what `dkeygen audit record --admin` checks against the round's log entry.
   */
  async fetchOpening(recordId: string): Promise<{ record: PublicRecordWire; opening: JsonObject }> {
    const { privateKey, publicKey } = await generateRsa("rsa", { modulusLength: 3072 });
    const requestId = randomUUID();
    const reply = await this.#request({
      type: "admin.opening",
      v: PROTOCOL_VERSION,
      requestId,
      recordId,
      revealTo: toBase64url(publicKey.export({ type: "spki", format: "der" })),
    });
    if (reply.type === "error") throw new DkeygenError(reply.code as ErrorCode, reply.message);
    if (reply.type !== "admin.opening.result" || reply.record.id !== recordId) {
      throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `Unexpected ${reply.type} reply.`);
    }
    const plaintext = openEnvelope(
      privateKey,
      envelopeFromWire(reply.opening),
      openingAad(requestId, recordId, this.fingerprint),
    );
    try {
      const opening = JSON.parse(Buffer.from(plaintext).toString("utf8")) as JsonObject;
      if (opening.recordId !== recordId) {
        throw new DkeygenError(
          ErrorCodes.DECRYPTION_FAILED,
          "The delivered opening does not match the request.",
        );
      }
      return { record: reply.record, opening };
    } finally {
      plaintext.fill(0);
    }
  }

  async status(): Promise<Omit<MessageOf<"admin.status.result">, "type" | "v" | "requestId">> {
    const reply = await this.#request({
      type: "admin.status",
      v: PROTOCOL_VERSION,
      requestId: randomUUID(),
    });
    if (reply.type === "error") throw new DkeygenError(reply.code as ErrorCode, reply.message);
    if (reply.type !== "admin.status.result") {
      throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `Unexpected ${reply.type} reply.`);
    }
    const { type: _t, v: _v, requestId: _r, ...status } = reply;
    return status;
  }

  close(): void {
    this.#connection.close(1000, "admin done");
  }
}
