/**
 * Opens deliveries from the distribution server (see src/server/distribution/delivery.ts): unwraps
 * the delivery key with this requester's private key (RSA-OAEP-256, label bound to this requester
 * and the key's kid), keeps a few unwrapped keys so a busy client pays the RSA decryption once per
 * key rather than per delivery, and opens the AES-256-GCM payload against the associated data of
 * the request it answers. Before it uses a delivery key it checks the key's MAC (`km`) under this
 * requester's response key: only the server knows that key too, so a key (and every payload it
 * opens) that anyone holding just this requester's public key made is refused, with
 * E_ANSWER_NOT_AUTHENTIC. Every other failure is one error, E_DECRYPTION_FAILED.
 */
import { createHash, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto";
import { fromBase64url } from "../crypto/base64url.js";
import { aesGcmOpen, rsaOaepDecrypt } from "../crypto/envelope.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import { deliveryKeyMac } from "../protocol/answer-auth.js";
import type { DeliveryEnvelopeWire } from "../protocol/messages.js";
import { type DeliveryKind, deliveryAad, deliveryKeyLabel } from "../protocol/signed-data.js";

const CACHED_KEYS = 16;

export class DeliveryOpener {
  readonly #privateKey: KeyObject;
  readonly #fingerprint: string;
  readonly #responseKey: KeyObject;
  /** Unwrapped delivery keys whose `km` verified, by hash of (kid, ek, km), oldest first. */
  readonly #keys = new Map<string, KeyObject>();

  constructor(privateKey: KeyObject, fingerprint: string, responseKey: KeyObject) {
    this.#privateKey = privateKey;
    this.#fingerprint = fingerprint;
    this.#responseKey = responseKey;
  }

  #key(envelope: DeliveryEnvelopeWire): KeyObject {
    const id = createHash("sha256")
      .update(envelope.kid)
      .update(".")
      .update(envelope.ek)
      .update(".")
      .update(envelope.km)
      .digest("base64");
    const cached = this.#keys.get(id);
    if (cached) return cached;
    const expected = deliveryKeyMac(
      this.#responseKey,
      this.#fingerprint,
      envelope.kid,
      envelope.ek,
    );
    if (!timingSafeEqual(expected, fromBase64url(envelope.km, "envelope.km", 32))) {
      throw new DkeygenError(
        ErrorCodes.ANSWER_NOT_AUTHENTIC,
        "The delivery's key is not the server's (its MAC under this requester's response key does not verify); it was not opened.",
      );
    }
    const raw = rsaOaepDecrypt(
      this.#privateKey,
      fromBase64url(envelope.ek, "envelope.ek"),
      deliveryKeyLabel(this.#fingerprint, envelope.kid),
    );
    if (raw.length !== 32) throw new Error("delivery key length");
    const key = createSecretKey(raw);
    raw.fill(0);
    this.#keys.set(id, key);
    if (this.#keys.size > CACHED_KEYS) this.#keys.delete(this.#keys.keys().next().value!);
    return key;
  }

  open(
    kind: DeliveryKind,
    requestId: string,
    recordId: string,
    envelope: DeliveryEnvelopeWire,
  ): JsonObject {
    // A key that is not the server's is said so; anything else that fails is one error.
    const key = this.#key(envelope);
    let plaintext: Uint8Array;
    try {
      plaintext = aesGcmOpen(
        key,
        fromBase64url(envelope.iv, "envelope.iv", 12),
        fromBase64url(envelope.ct, "envelope.ct"),
        fromBase64url(envelope.tag, "envelope.tag", 16),
        deliveryAad(kind, requestId, this.#fingerprint, recordId),
      );
    } catch (cause) {
      throw new DkeygenError(ErrorCodes.DECRYPTION_FAILED, "The delivery could not be decrypted.", {
        cause,
      });
    }
    try {
      return JSON.parse(Buffer.from(plaintext).toString("utf8")) as JsonObject;
    } finally {
      plaintext.fill(0);
    }
  }
}
