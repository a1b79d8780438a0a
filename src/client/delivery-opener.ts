/**
 * Opens deliveries from the distribution server (see src/server/distribution/delivery.ts): unwraps
 * the delivery key with this requester's private key (RSA-OAEP-256, label bound to this requester
 * and the key's kid), keeps a few unwrapped keys so a busy client pays the RSA decryption once per
 * key rather than per delivery, and opens the AES-256-GCM payload against the associated data of
 * the request it answers. Every failure is one error, E_DECRYPTION_FAILED.
 */
import { createHash, createSecretKey, type KeyObject } from "node:crypto";
import { fromBase64url } from "../crypto/base64url.js";
import { aesGcmOpen, rsaOaepDecrypt } from "../crypto/envelope.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import type { DeliveryEnvelopeWire } from "../protocol/messages.js";
import { deliveryAad, deliveryKeyLabel } from "../protocol/signed-data.js";

const CACHED_KEYS = 16;

export class DeliveryOpener {
  readonly #privateKey: KeyObject;
  readonly #fingerprint: string;
  /** Unwrapped delivery keys by hash of (kid, ek), oldest first. */
  readonly #keys = new Map<string, KeyObject>();

  constructor(privateKey: KeyObject, fingerprint: string) {
    this.#privateKey = privateKey;
    this.#fingerprint = fingerprint;
  }

  #key(envelope: DeliveryEnvelopeWire): KeyObject {
    const id = createHash("sha256")
      .update(envelope.kid)
      .update(".")
      .update(envelope.ek)
      .digest("base64");
    const cached = this.#keys.get(id);
    if (cached) return cached;
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
    kind: "otp" | "totp" | "key",
    requestId: string,
    recordId: string,
    envelope: DeliveryEnvelopeWire,
  ): JsonObject {
    let plaintext: Uint8Array;
    try {
      plaintext = aesGcmOpen(
        this.#key(envelope),
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
