/**
 * Deliveries to requesting clients: a JSON payload encrypted with the hybrid envelope — AES-256-GCM
 * under a content key wrapped with RSA-OAEP-256 to the requester's registered key — with the kind,
 * request id, requester fingerprint and record id as GCM associated data (protocol/signed-data.ts
 * deliveryAad). Only the holder of the requester's private key can open it, and only as the
 * answer to that request.
 *
 * The wrapped content key (a "delivery key", named by a random 16-byte `kid`) is reused for one
 * requester for a short time (default 5 minutes, at most 2^20 deliveries) instead of being made
 * per delivery. The RSA wrap is the single most expensive step of a delivery on both sides (tens
 * of microseconds to encrypt on the server, milliseconds to decrypt on the client), and a relying
 * service fetching thousands of OTPs pays it once. What stays per delivery: a fresh 96-bit IV and
 * the per-request associated data, so no delivery can be replayed as the answer to another. GCM's
 * limit for random IVs under one key (2^32 messages) is far away. The wrapped key is bound to its
 * requester and kid by its OAEP label:
 *
 *   label = LP("dkeygen/v1/delivery-key", V, requesterFingerprint, kid)
 *
 * A lifetime of 0 makes a fresh delivery key for every delivery.
 */
import { createSecretKey, type KeyObject } from "node:crypto";
import { toBase64url } from "../../crypto/base64url.js";
import { aesGcmSeal, ENVELOPE_ALG, rsaOaepEncrypt } from "../../crypto/envelope.js";
import type { RandomSource } from "../../crypto/random.js";
import type { JsonObject } from "../../json.js";
import type { DeliveryEnvelopeWire } from "../../protocol/messages.js";
import { deliveryAad, deliveryKeyLabel } from "../../protocol/signed-data.js";
import type { Requester } from "../requesters.js";

export type DeliveryKind = "otp" | "totp" | "key";

interface DeliveryKey {
  kid: string;
  key: KeyObject;
  ek: string;
  expiresAt: number;
  uses: number;
}

export const DEFAULT_DELIVERY_KEY_TTL_MS = 5 * 60_000;
const MAX_USES = 1 << 20;

export class DeliverySealer {
  readonly #ttlMs: number;
  readonly #random: RandomSource;
  readonly #clock: () => number;
  /** By requester fingerprint (a re-registered key gets a new entry). */
  readonly #keys = new Map<string, DeliveryKey>();

  constructor(options: { ttlMs: number; random: RandomSource; clock: () => number }) {
    this.#ttlMs = options.ttlMs;
    this.#random = options.random;
    this.#clock = options.clock;
  }

  #keyFor(requester: Requester): DeliveryKey {
    const now = this.#clock();
    const current = this.#keys.get(requester.fingerprint);
    if (current && current.expiresAt > now && current.uses < MAX_USES) return current;
    const kidBytes = this.#random(16);
    const raw = this.#random(32);
    const kid = toBase64url(kidBytes);
    const wrapped = rsaOaepEncrypt(
      requester.publicKey,
      raw,
      deliveryKeyLabel(requester.fingerprint, kid),
    );
    const fresh: DeliveryKey = {
      kid,
      key: createSecretKey(raw),
      ek: toBase64url(wrapped),
      expiresAt: now + this.#ttlMs,
      uses: 0,
    };
    raw.fill(0);
    if (this.#ttlMs > 0) this.#keys.set(requester.fingerprint, fresh);
    return fresh;
  }

  seal(
    requester: Requester,
    kind: DeliveryKind,
    requestId: string,
    recordId: string,
    payload: JsonObject,
  ): DeliveryEnvelopeWire {
    const deliveryKey = this.#keyFor(requester);
    deliveryKey.uses++;
    const plaintext = Buffer.from(JSON.stringify(payload), "utf8");
    const iv = this.#random(12);
    try {
      const aad = deliveryAad(kind, requestId, requester.fingerprint, recordId);
      const { ciphertext, tag } = aesGcmSeal(deliveryKey.key, iv, plaintext, aad);
      return {
        alg: ENVELOPE_ALG,
        kid: deliveryKey.kid,
        ek: deliveryKey.ek,
        iv: toBase64url(iv),
        ct: toBase64url(ciphertext),
        tag: toBase64url(tag),
      };
    } finally {
      plaintext.fill(0);
    }
  }
}
