/**
 * The requesting client: talks to the key distribution server's HTTP API with its credential and
 * opens what it receives with its own private key. Library and CLI share it.
 *
 * Every answer must carry the MAC of docs/PROTOCOL.md §12.8 under the response key this client
 * derives from its own credential; an answer without one, or with a wrong one, is refused
 * (E_ANSWER_NOT_AUTHENTIC) before any of its fields is read, error answers included.
 */
import { createHash, createSecretKey, type KeyObject, randomUUID } from "node:crypto";
import type { Secret } from "../crypto/secret.js";
import { DkeygenError, type ErrorCode, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import { ANSWER_MAC_HEADER, answerMacMatches, deriveResponseKey } from "../protocol/answer-auth.js";
import type { DeliveryEnvelopeWire, PublicRecordWire } from "../protocol/messages.js";
import type { DeliveryKind } from "../protocol/signed-data.js";
import { DeliveryOpener } from "./delivery-opener.js";
import { createHttpCall, type HttpCall } from "./http-call.js";
import {
  openedEnrollment,
  type TotpEnrollmentReply,
  type TotpEnrollmentResult,
  type TotpEnrollRequest,
} from "./totp-enrollment.js";

export type { TotpEnrollmentResult, TotpEnrollRequest } from "./totp-enrollment.js";

import { wrongPortHint } from "./unreachable.js";

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
  /** Recovery verification: the account's unused recovery codes left. */
  recoveryCodesLeft?: number;
}

function notAuthentic(status: number, hadMac: boolean): DkeygenError {
  const hint = hadMac
    ? "its MAC does not verify: it was forged or altered on the way, or answers another request."
    : status === 401
      ? "it carries no MAC. The server refused this credential, or this registration predates authenticated answers: the admin re-registers it with dkeygen requester add NAME --replace --public-key FILE, and you store the new credential (dkeygen requester login)."
      : "it carries no MAC (not from a dkeygen distribution server that knows this credential, or the registration predates authenticated answers: ask the admin for dkeygen requester add NAME --replace).";
  return new DkeygenError(
    ErrorCodes.ANSWER_NOT_AUTHENTIC,
    `The distribution server's answer (HTTP ${status}) is not authentic and was not used: ${hint}`,
  );
}

export class RequesterClient {
  readonly #o: RequesterClientOptions;
  readonly #base: string;
  readonly #opener: DeliveryOpener;
  readonly #http: HttpCall;

  /** K_resp: authenticates the server's answers to this credential. */
  readonly #responseKey: KeyObject;

  constructor(options: RequesterClientOptions) {
    this.#o = options;
    this.#base = options.server.replace(/\/+$/, "");
    this.#http = createHttpCall({
      timeoutMs: options.timeoutMs ?? 30_000,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
    });
    const credential = Buffer.from(options.credential.expose()).toString("utf8");
    const parts = /^dkr_([A-Za-z0-9][A-Za-z0-9._@-]{0,63})\.([A-Za-z0-9_-]{43})$/.exec(credential);
    if (!parts) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "That is not a requester credential (dkr_<name>.<secret>).",
      );
    }
    const raw = deriveResponseKey(parts[1]!, parts[2]!);
    this.#responseKey = createSecretKey(raw);
    raw.fill(0);
    this.#opener = new DeliveryOpener(options.privateKey, options.fingerprint, this.#responseKey);
  }

  /**
   * One authenticated call. The answer's MAC is checked before anything of it is used; only a
   * delivery's 200 answer (`sealed`) may come without one, because the caller opens its envelope
   * under a delivery key whose MAC it checks, and every field of it is bound to that envelope.
   */
  async #call<T>(
    method: "GET" | "POST",
    path: string,
    body?: unknown,
    requestId: string = randomUUID(),
    sealed = false,
  ): Promise<T> {
    const url = `${this.#base}${path}`;
    const response = await this.#http(url, {
      method,
      headers: {
        authorization: `Bearer ${Buffer.from(this.#o.credential.expose()).toString("utf8")}`,
        "x-request-id": requestId,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    // Nothing of an answer is used before its MAC verifies: not its status, not its body.
    const header = response.headers[ANSWER_MAC_HEADER];
    const mac = typeof header === "string" ? header : null;
    const sealedDelivery = sealed && response.status === 200 && mac === null;
    if (response.status === 426 && mac === null) {
      // An upgrade required: the WebSocket port, not the distribution server.
      throw new DkeygenError(ErrorCodes.UNAVAILABLE, wrongPortHint(this.#base, "distribution"));
    }
    if (
      !sealedDelivery &&
      !answerMacMatches(
        mac,
        this.#responseKey,
        requestId,
        method,
        new URL(url).pathname,
        response.status,
        response.body,
      )
    ) {
      throw notAuthentic(response.status, mac !== null);
    }
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
    const reply = await this.#call<T>(method, path, body, requestId, true);
    if (reply.requestId !== requestId) {
      throw new DkeygenError(
        ErrorCodes.MALFORMED_MESSAGE,
        "The server's answer is for another request (a replayed answer?); it was not opened.",
      );
    }
    return reply;
  }

  #open(
    kind: DeliveryKind,
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
      payload.expiresAt !== reply.expiresAt ||
      typeof payload.code !== "string" ||
      payload.code.length !== reply.digits ||
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

  /** The registration this credential is for: its name and its registered key's fingerprint. */
  registration(): Promise<{ name: string; fingerprint: string }> {
    return this.#call("GET", "/v1/requester");
  }

  /**
   * Refuses (E_UNAUTHORIZED) a credential registered with another key than this client's: every
   * secret the server sent it would be sealed to that other key.
   */
  async checkRegistration(): Promise<{ name: string; fingerprint: string }> {
    const registered = await this.registration();
    if (registered.fingerprint !== this.#o.fingerprint) {
      throw new DkeygenError(
        ErrorCodes.UNAUTHORIZED,
        `This credential is for ${registered.name}'s key ${registered.fingerprint}, not this client's key ${this.#o.fingerprint}; nothing sent to it could be decrypted here. Ask the admin to register this client's key (dkeygen requester add ${registered.name} --replace --public-key FILE) and log in with the credential that prints.`,
      );
    }
    return registered;
  }

  verifyOtp(subject: string, code: string): Promise<VerifyOutcome> {
    return this.#call("POST", "/v1/otp/verify", { subject, code });
  }

  unlockOtp(subject: string): Promise<{ subject: string; unlocked: boolean }> {
    return this.#call("POST", "/v1/otp/unlock", { subject });
  }

  /**
   * Enrolls `request.account` for two-factor authentication (TOTP, or HOTP with type "hotp") and
   * opens what comes back: the secret, its otpauth:// URI and the recovery codes.
   */
  async enrollTotp(request: TotpEnrollRequest): Promise<TotpEnrollmentResult> {
    const reply = await this.#delivery<
      TotpEnrollmentReply & { requestId: string; envelope: DeliveryEnvelopeWire }
    >("POST", "/v1/totp/enroll", request);
    const payload = this.#open("totp", reply.requestId, reply.recordId, reply.envelope);
    return openedEnrollment(request, reply, payload);
  }

  verifyTotp(account: string, code: string): Promise<VerifyOutcome> {
    return this.#call("POST", "/v1/totp/verify", { account, code });
  }

  /** Checks and uses up one of `account`'s recovery codes; says how many are left. */
  verifyRecoveryCode(account: string, code: string): Promise<VerifyOutcome> {
    return this.#call("POST", "/v1/recovery/verify", { account, code });
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

  /**
   * A FROST signature of `message` by t holders of threshold key `id` (only for the requester the
   * key was made for), opened and checked against the request: the signature (hex), the suite,
   * the key it verifies under (hex) and the holders that signed.
   */
  async thresholdSign(
    id: string,
    message: Uint8Array,
  ): Promise<{ signature: string; suite: string; verifyKey: string; signers: string[] }> {
    const reply = await this.#delivery<{
      requestId: string;
      recordId: string;
      envelope: DeliveryEnvelopeWire;
    }>("POST", `/v1/keys/${encodeURIComponent(id)}/sign`, {
      message: Buffer.from(message).toString("base64url"),
    });
    const payload = this.#open("signature", reply.requestId, reply.recordId, reply.envelope);
    const digest = createHash("sha256").update(message).digest("hex");
    if (payload.recordId !== id || payload.messageSha256 !== digest) {
      throw new DkeygenError(
        ErrorCodes.DECRYPTION_FAILED,
        "The delivered signature is not for this key and message.",
      );
    }
    return {
      signature: String(payload.signature),
      suite: String(payload.suite),
      verifyKey: String(payload.verifyKey),
      signers: payload.signers as string[],
    };
  }

  /**
   * A record's derivation secret and parameters (only for the requester it was made for; never a
   * nonce record's), decrypted: what `dkeygen derive` re-derives the record from.
   */
  async exportDerivationSecret(
    id: string,
  ): Promise<{ record: PublicRecordWire; exported: JsonObject }> {
    const record = await this.getKey(id);
    const reply = await this.#delivery<{
      requestId: string;
      recordId: string;
      envelope: DeliveryEnvelopeWire;
    }>("POST", `/v1/keys/${encodeURIComponent(id)}/derivation-secret`, {});
    const exported = this.#open(
      "derivation-secret",
      reply.requestId,
      reply.recordId,
      reply.envelope,
    );
    if (exported.recordId !== id || record.id !== id) {
      throw new DkeygenError(
        ErrorCodes.DECRYPTION_FAILED,
        "The exported derivation secret does not match the request.",
      );
    }
    return { record, exported };
  }

  /**
   * A record's opening (docs/PROTOCOL.md §15.6; only for the requester it was made for, never a
   * nonce record's), decrypted: what `dkeygen audit record` checks against the round's log entry.
   */
  async fetchOpening(id: string): Promise<{ record: PublicRecordWire; opening: JsonObject }> {
    const record = await this.getKey(id);
    const reply = await this.#delivery<{
      requestId: string;
      recordId: string;
      envelope: DeliveryEnvelopeWire;
    }>("POST", `/v1/keys/${encodeURIComponent(id)}/opening`, {});
    const opening = this.#open("opening", reply.requestId, reply.recordId, reply.envelope);
    if (opening.recordId !== id || record.id !== id) {
      throw new DkeygenError(
        ErrorCodes.DECRYPTION_FAILED,
        "The delivered opening does not match the request.",
      );
    }
    return { record, opening };
  }

  /**
   * A GET of the transparency log's public routes (docs/PROTOCOL.md §15.3) on this client's
   * server: no credential and no answer MAC, since what a caller trusts of the log it checks
   * itself (the server key's signature of the log key, checkpoints, proofs). The body, for a 200
   * answer; otherwise an error with the answer's code and message.
   */
  async logGet(pathAndQuery: string): Promise<Buffer> {
    const response = await this.#http(`${this.#base}${pathAndQuery}`, { method: "GET" });
    if (response.status === 200) return response.body;
    let error: { code?: string; message?: string } | undefined;
    try {
      error = (JSON.parse(response.body.toString("utf8")) as { error?: typeof error }).error;
    } catch {
      // not a JSON error document
    }
    throw new DkeygenError(
      (error?.code as ErrorCode | undefined) ??
        (response.status === 404 ? ErrorCodes.NOT_FOUND : ErrorCodes.UNAVAILABLE),
      `GET ${pathAndQuery.split("?")[0]} answered HTTP ${response.status}${error?.message ? `: ${error.message}` : "."}`,
    );
  }
}
