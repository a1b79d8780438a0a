/**
 * The requesting client: talks to the key distribution server's HTTP API with its credential and
 * opens what it receives with its own private key. Library and CLI share it.
 */
import { type KeyObject, randomUUID } from "node:crypto";
import type { Secret } from "../crypto/secret.js";
import { DkeygenError, type ErrorCode, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import type { DeliveryEnvelopeWire, PublicRecordWire } from "../protocol/messages.js";
import { DeliveryOpener } from "./delivery-opener.js";
import { createHttpCall, type HttpCall } from "./http-call.js";

export interface RequesterClientOptions {
  /** Base URL of the distribution server, e.g. http://127.0.0.1:7421 or https://… */
  server: string;
  /** https:// only: trust only these CA certificates (PEM) for the server's certificate. */
  ca?: string;
  credential: Secret;
  privateKey: KeyObject;
  /** Fingerprint of this requester's public key (bound into every delivery). */
  fingerprint: string;
  timeoutMs?: number;
}

export interface DeliveredOtp {
  otpId: string;
  code: string;
  subject: string;
  expiresAt: string;
  digits: number;
  requestId: string;
}

export interface VerifyOutcome {
  valid: boolean;
  reason?: "invalid" | "expired" | "used" | "replayed";
  otpId?: string;
  attemptsLeft?: number;
  lockedUntil?: string;
}

export interface TotpEnrollmentResult {
  recordId: string;
  issuer: string;
  account: string;
  algorithm: string;
  digits: number;
  period: number;
  secret: string;
  uri: string;
}

export class RequesterClient {
  readonly #o: RequesterClientOptions;
  readonly #base: string;
  readonly #opener: DeliveryOpener;
  readonly #http: HttpCall;

  constructor(options: RequesterClientOptions) {
    this.#o = options;
    this.#base = options.server.replace(/\/+$/, "");
    this.#opener = new DeliveryOpener(options.privateKey, options.fingerprint);
    this.#http = createHttpCall({
      timeoutMs: options.timeoutMs ?? 30_000,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
    });
  }

  async #call<T>(
    method: "GET" | "POST",
    path: string,
    body?: unknown,
    requestId: string = randomUUID(),
  ): Promise<T> {
    const response = await this.#http(`${this.#base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${Buffer.from(this.#o.credential.expose()).toString("utf8")}`,
        "x-request-id": requestId,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    let json: unknown;
    try {
      json = JSON.parse(response.body.toString("utf8"));
    } catch {
      throw new DkeygenError(
        ErrorCodes.MALFORMED_MESSAGE,
        `The server answered HTTP ${response.status} without JSON.`,
      );
    }
    if (response.status < 200 || response.status > 299) {
      const error = (json as { error?: { code?: string; message?: string; retryAfter?: number } })
        .error;
      throw new DkeygenError(
        (error?.code as ErrorCode | undefined) ?? ErrorCodes.OPERATIONAL,
        error?.message ?? `The server answered HTTP ${response.status}.`,
        error?.retryAfter === undefined ? {} : { retryAfterSeconds: error.retryAfter },
      );
    }
    return json as T;
  }

  /**
   * A call whose answer carries a delivery: it must answer this very request (the id this client
   * chose, bound into the delivery's associated data), not replay an answer to an earlier one.
   */
  async #delivery<T extends { requestId: string }>(
    method: "GET" | "POST",
    path: string,
    body?: unknown,
  ): Promise<T> {
    const requestId = randomUUID();
    const reply = await this.#call<T>(method, path, body, requestId);
    if (reply.requestId !== requestId) {
      throw new DkeygenError(
        ErrorCodes.MALFORMED_MESSAGE,
        "The server's answer is for another request (a replayed answer?); it was not opened.",
      );
    }
    return reply;
  }

  #open(
    kind: "otp" | "totp" | "key",
    requestId: string,
    recordId: string,
    envelope: DeliveryEnvelopeWire,
  ): JsonObject {
    return this.#opener.open(kind, requestId, recordId, envelope);
  }

  /** Requests an OTP for `subject` (default: this requester) and decrypts it. */
  async requestOtp(options: { subject?: string; ttlSeconds?: number } = {}): Promise<DeliveredOtp> {
    const reply = await this.#delivery<{
      requestId: string;
      otpId: string;
      subject: string;
      digits: number;
      expiresAt: string;
      envelope: DeliveryEnvelopeWire;
    }>("POST", "/v1/otp/request", options);
    const payload = this.#open("otp", reply.requestId, reply.otpId, reply.envelope);
    const asked = options.subject;
    if (
      payload.otpId !== reply.otpId ||
      payload.subject !== reply.subject ||
      (asked !== undefined && reply.subject !== asked)
    ) {
      throw new DkeygenError(
        ErrorCodes.DECRYPTION_FAILED,
        "The delivered OTP does not match its envelope.",
      );
    }
    return {
      otpId: reply.otpId,
      code: String(payload.code),
      subject: reply.subject,
      expiresAt: String(payload.expiresAt),
      digits: reply.digits,
      requestId: reply.requestId,
    };
  }

  verifyOtp(subject: string, code: string): Promise<VerifyOutcome> {
    return this.#call("POST", "/v1/otp/verify", { subject, code });
  }

  unlockOtp(subject: string): Promise<{ subject: string; unlocked: boolean }> {
    return this.#call("POST", "/v1/otp/unlock", { subject });
  }

  async enrollTotp(request: {
    issuer: string;
    account: string;
    algorithm?: "SHA1" | "SHA256" | "SHA512";
    digits?: 6 | 8;
    period?: number;
  }): Promise<TotpEnrollmentResult> {
    const reply = await this.#delivery<
      Omit<TotpEnrollmentResult, "secret" | "uri"> & {
        requestId: string;
        envelope: DeliveryEnvelopeWire;
      }
    >("POST", "/v1/totp/enroll", request);
    const payload = this.#open("totp", reply.requestId, reply.recordId, reply.envelope);
    const { requestId: _r, envelope: _e, ...rest } = reply;
    return { ...rest, secret: String(payload.secret), uri: String(payload.uri) };
  }

  verifyTotp(account: string, code: string): Promise<VerifyOutcome> {
    return this.#call("POST", "/v1/totp/verify", { account, code });
  }

  unlockTotp(account: string): Promise<{ subject: string; unlocked: boolean }> {
    return this.#call("POST", "/v1/totp/unlock", { subject: account });
  }

  /** A record's public part. */
  getKey(id: string): Promise<PublicRecordWire> {
    return this.#call("GET", `/v1/keys/${encodeURIComponent(id)}`);
  }

  /** A key's secret part (only for the requester it was made for), decrypted. */
  async fetchKey(id: string): Promise<{ record: PublicRecordWire; secret: JsonObject }> {
    const record = await this.getKey(id);
    const reply = await this.#delivery<{
      requestId: string;
      recordId: string;
      envelope: DeliveryEnvelopeWire;
    }>("GET", `/v1/keys/${encodeURIComponent(id)}/secret`);
    const payload = this.#open("key", reply.requestId, reply.recordId, reply.envelope);
    if (payload.recordId !== id) {
      throw new DkeygenError(
        ErrorCodes.DECRYPTION_FAILED,
        "The delivered key does not match the request.",
      );
    }
    return { record, secret: payload.secret as JsonObject };
  }
}
