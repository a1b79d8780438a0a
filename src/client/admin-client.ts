/**
 * The admin side of the key generation server's WebSocket endpoint: authenticates with an HMAC of
 * the server's challenge under the admin token (the token itself never travels), then asks for
 * rounds and status. Used by `dkeygen generate` and the demo.
 */
import { createHmac, generateKeyPair, randomUUID } from "node:crypto";
import { promisify } from "node:util";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { openEnvelope } from "../crypto/envelope.js";
import { fingerprintOfSpki } from "../crypto/fingerprint.js";
import type { Secret } from "../crypto/secret.js";
import { DkeygenError, describeError, type ErrorCode, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import { envelopeFromWire } from "../protocol/envelope-wire.js";
import {
  type AnyMessage,
  decodeMessage,
  encodeMessage,
  type MessageOf,
  type PublicRecordWire,
} from "../protocol/messages.js";
import { adminProofData, revealAad } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { Connection } from "../transport/types.js";
import { dialWs } from "../transport/ws.js";
import { pinMismatch } from "./pins.js";

export interface AdminClientOptions {
  url: string;
  token: Secret;
  /** When given, the server must present this key fingerprint. */
  expectedFingerprint?: string;
  timeoutMs?: number;
  /** wss:// only: trust only these CA certificates (PEM) for the server's certificate. */
  ca?: string;
}

const generateRsa = promisify(generateKeyPair);

type Pending = { resolve: (msg: AnyMessage) => void; reject: (error: Error) => void };

export class AdminClient {
  readonly fingerprint: string;
  readonly #connection: Connection;
  readonly #pending = new Map<string, Pending>();
  #closedError: DkeygenError | undefined;

  private constructor(connection: Connection, fingerprint: string) {
    this.#connection = connection;
    this.fingerprint = fingerprint;
  }

  static async connect(options: AdminClientOptions): Promise<AdminClient> {
    let connection: Connection;
    try {
      connection = await dialWs(options.url, {
        timeoutMs: options.timeoutMs ?? 10_000,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
      });
    } catch (cause) {
      if (cause instanceof DkeygenError && cause.code === ErrorCodes.TLS) throw cause;
      throw new DkeygenError(
        ErrorCodes.UNAVAILABLE,
        `Cannot reach the key generation server at ${options.url}: ${(cause as Error).message}`,
        { cause },
      );
    }
    const handshake = new Promise<AdminClient>((resolve, reject) => {
      let client: AdminClient | undefined;
      const timer = setTimeout(
        () =>
          reject(
            new DkeygenError(ErrorCodes.TIMEOUT, "The server did not answer the admin handshake."),
          ),
        options.timeoutMs ?? 10_000,
      );
      connection.onClose((info) => {
        clearTimeout(timer);
        const error =
          (client ? client.#closedError : undefined) ??
          new DkeygenError(
            ErrorCodes.UNAVAILABLE,
            `The server closed the connection (${info.code}).`,
          );
        reject(error);
        if (client) {
          for (const pending of client.#pending.values()) pending.reject(error);
          client.#pending.clear();
        }
      });
      connection.onFrame((frame) => {
        let msg: AnyMessage;
        try {
          msg = decodeMessage(frame);
        } catch (cause) {
          // The server broke the protocol (or speaks another version): nothing it says on this
          // connection can be trusted to answer a request, so fail them rather than wait forever.
          const error = new DkeygenError(
            ErrorCodes.MALFORMED_MESSAGE,
            `The server sent a message this client cannot read: ${describeError(cause)}`,
          );
          if (client) client.#closedError = error;
          clearTimeout(timer);
          reject(error);
          connection.close(1002);
          return;
        }
        if (msg.type === "hello") {
          const spki = fromBase64url(msg.server.publicKey, "server public key");
          const fingerprint = fingerprintOfSpki(spki);
          const expected = options.expectedFingerprint ?? fingerprint;
          if (fingerprint !== msg.server.fingerprint || fingerprint !== expected) {
            clearTimeout(timer);
            reject(pinMismatch(options.url, expected, fingerprint));
            connection.close(1000);
            return;
          }
          client = new AdminClient(connection, fingerprint);
          const proof = createHmac("sha256", options.token.expose())
            .update(adminProofData(fromBase64url(msg.challenge, "challenge", 32), fingerprint))
            .digest();
          connection.send(
            encodeMessage({ type: "admin.auth", v: PROTOCOL_VERSION, proof: toBase64url(proof) }),
          );
        } else if (msg.type === "admin.ready" && client) {
          clearTimeout(timer);
          resolve(client);
        } else if (msg.type === "error" && (!client || msg.requestId === undefined)) {
          const error = new DkeygenError(msg.code as ErrorCode, msg.message);
          if (client) client.#closedError = error;
          clearTimeout(timer);
          reject(error);
        } else if (client) {
          client.#route(msg);
        }
      });
    });
    return handshake;
  }

  #route(msg: AnyMessage): void {
    const requestId = "requestId" in msg ? msg.requestId : undefined;
    if (requestId === undefined) return;
    const pending = this.#pending.get(requestId);
    if (!pending) return;
    this.#pending.delete(requestId);
    pending.resolve(msg);
  }

  #request(msg: AnyMessage & { requestId: string }): Promise<AnyMessage> {
    return new Promise((resolve, reject) => {
      this.#pending.set(msg.requestId, { resolve, reject });
      this.#connection.send(encodeMessage(msg));
    });
  }

  /** Runs a round for `purpose`; resolves to the stored record's public data. */
  async generate(
    purpose: string,
    params: Record<string, unknown> = {},
    owner?: string,
  ): Promise<PublicRecordWire> {
    return (await this.#generate(purpose, params, owner, undefined)).record;
  }

  /**
   * Runs a round and also receives the record's secret part, sealed by the server to a one-off
   * RSA-3072 key made for this request alone (the secret never crosses the wire in the clear).
   */
  async generateRevealed(
    purpose: string,
    params: Record<string, unknown> = {},
    owner?: string,
  ): Promise<{ record: PublicRecordWire; secret: JsonObject }> {
    const { privateKey, publicKey } = await generateRsa("rsa", { modulusLength: 3072 });
    const spki = publicKey.export({ type: "spki", format: "der" });
    const requestId = randomUUID();
    const reply = await this.#generate(purpose, params, owner, {
      requestId,
      spki: toBase64url(spki),
    });
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
  ): Promise<MessageOf<"admin.round">> {
    const reply = await this.#request({
      type: "admin.generate",
      v: PROTOCOL_VERSION,
      requestId: reveal?.requestId ?? randomUUID(),
      purpose,
      params,
      ...(owner === undefined ? {} : { owner }),
      ...(reveal === undefined ? {} : { revealTo: reveal.spki }),
    });
    if (reply.type === "error") throw new DkeygenError(reply.code as ErrorCode, reply.message);
    if (reply.type !== "admin.round") {
      throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `Unexpected ${reply.type} reply.`);
    }
    return reply;
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
