/**
 * The admin session's message authentication. After the admin proves it holds the admin token
 * (admin.auth) and the server proves it holds its key (admin.ready), both derive two session keys
 * from the token and the two challenges of this connection:
 *
 *   K_dir = HKDF-SHA-256(IKM = adminToken, salt = serverChallenge ‖ clientChallenge,
 *                        info = LP("dkeygen/v1/admin-session", V, serverFingerprint, dir), L = 32)
 *
 * with dir "to-server" or "to-admin". Every later message in either direction travels as an
 * `admin.frame`: the inner message's JSON (`body`), its sequence number in that direction
 * (0, 1, 2, …) and mac = HMAC-SHA-256(K_dir, LP("dkeygen/v1/admin-frame", V, dir, seq, body)).
 * A receiver accepts exactly the next sequence number with a valid MAC, then decodes the body; so
 * nothing can be injected, dropped, replayed, reordered or reflected without the session failing.
 * A man in the middle of a plain ws:// connection sees the admin's requests but cannot add one.
 *
 * Pure apart from HMAC: no sockets, no clock.
 */
import {
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  timingSafeEqual,
} from "node:crypto";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { type AnyMessage, decodeMessage, encodeMessage, type MessageOf } from "./messages.js";
import { article } from "./session.js";
import { type AdminDirection, adminFrameMacData, adminSessionKeyInfo } from "./signed-data.js";
import { PROTOCOL_VERSION } from "./version.js";

export interface AdminSessionKeys {
  toServer: KeyObject;
  toAdmin: KeyObject;
}

/** Both directions' keys for one admin connection (see the header). */
export function adminSessionKeys(
  adminToken: Uint8Array,
  serverChallenge: Uint8Array,
  clientChallenge: Uint8Array,
  serverFingerprint: string,
): AdminSessionKeys {
  const salt = Buffer.concat([serverChallenge, clientChallenge]);
  const key = (direction: AdminDirection) =>
    createSecretKey(
      Buffer.from(
        hkdfSync("sha256", adminToken, salt, adminSessionKeyInfo(serverFingerprint, direction), 32),
      ),
    );
  return { toServer: key("to-server"), toAdmin: key("to-admin") };
}

function macOf(key: KeyObject, direction: AdminDirection, seq: number, body: string): Buffer {
  return createHmac("sha256", key)
    .update(adminFrameMacData(direction, seq, body))
    .digest();
}

/** The message types each side may put inside an admin.frame. */
const INNER: Record<AdminDirection, ReadonlySet<AnyMessage["type"]>> = {
  "to-server": new Set([
    "admin.generate",
    "admin.status",
    "admin.export",
    "admin.opening",
    "admin.threshold.keygen",
    "admin.threshold.sign",
    "admin.threshold.refresh",
    "admin.threshold.recover",
  ]),
  "to-admin": new Set([
    "admin.round",
    "admin.status.result",
    "admin.export.result",
    "admin.opening.result",
    "admin.threshold.key",
    "admin.threshold.signature",
    "admin.threshold.recovery",
    "error",
  ]),
};

/** One side of an admin session: seals what it sends, opens what it receives. */
export class AdminChannel {
  readonly #sendKey: KeyObject;
  readonly #receiveKey: KeyObject;
  readonly #sendDirection: AdminDirection;
  readonly #receiveDirection: AdminDirection;
  #sent = 0;
  #received = 0;

  constructor(keys: AdminSessionKeys, side: "server" | "admin") {
    this.#sendDirection = side === "server" ? "to-admin" : "to-server";
    this.#receiveDirection = side === "server" ? "to-server" : "to-admin";
    this.#sendKey = side === "server" ? keys.toAdmin : keys.toServer;
    this.#receiveKey = side === "server" ? keys.toServer : keys.toAdmin;
  }

  /** The admin.frame carrying `inner`, as the text to send. */
  seal(inner: AnyMessage): string {
    if (!INNER[this.#sendDirection].has(inner.type)) {
      throw new TypeError(
        `AdminChannel: a ${inner.type} message does not travel ${this.#sendDirection}`,
      );
    }
    const body = encodeMessage(inner);
    const seq = this.#sent++;
    const mac = macOf(this.#sendKey, this.#sendDirection, seq, body);
    return encodeMessage({
      type: "admin.frame",
      v: PROTOCOL_VERSION,
      seq,
      body,
      mac: toBase64url(mac),
    });
  }

  /**
   * The inner message of a received admin.frame. Throws E_BAD_SIGNATURE for a wrong sequence
   * number or MAC (the session is then unusable: the caller closes it), E_MALFORMED_MESSAGE or
   * E_UNEXPECTED_MESSAGE for an authentic body that is not an admin message for this side.
   */
  open(frame: MessageOf<"admin.frame">): AnyMessage {
    const expected = macOf(this.#receiveKey, this.#receiveDirection, frame.seq, frame.body);
    const presented = fromBase64url(frame.mac, "mac", 32);
    // The sequence number is covered by the MAC, so comparing it first leaks nothing.
    if (frame.seq !== this.#received || !timingSafeEqual(expected, presented)) {
      throw new DkeygenError(
        ErrorCodes.BAD_SIGNATURE,
        "An admin frame failed its check (wrong MAC or out of sequence); the session is closed.",
      );
    }
    this.#received++;
    const inner = decodeMessage(frame.body);
    if (!INNER[this.#receiveDirection].has(inner.type)) {
      throw new DkeygenError(
        ErrorCodes.UNEXPECTED_MESSAGE,
        `${article(inner.type)} ${inner.type} message cannot travel inside an admin frame ${this.#receiveDirection}.`,
      );
    }
    return inner;
  }
}
