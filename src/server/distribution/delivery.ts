/**
 * Deliveries to requesting clients: a JSON payload sealed with the hybrid envelope (RSA-OAEP-256
 * wrapping AES-256-GCM, src/crypto/envelope.ts) to the requester's registered key, with the kind,
 * request id, requester fingerprint and record id as associated data (protocol/signed-data.ts
 * deliveryAad). Only the holder of the requester's private key can open it, and only as the
 * answer to that request.
 */
import { sealEnvelope } from "../../crypto/envelope.js";
import type { RandomSource } from "../../crypto/random.js";
import type { JsonObject } from "../../json.js";
import { envelopeToWire } from "../../protocol/envelope-wire.js";
import type { EnvelopeWire } from "../../protocol/messages.js";
import { deliveryAad } from "../../protocol/signed-data.js";
import type { Requester } from "../requesters.js";

export function sealDelivery(
  requester: Requester,
  kind: "otp" | "totp" | "key",
  requestId: string,
  recordId: string,
  payload: JsonObject,
  random: RandomSource,
): EnvelopeWire {
  const plaintext = Buffer.from(JSON.stringify(payload), "utf8");
  try {
    const aad = deliveryAad(kind, requestId, requester.fingerprint, recordId);
    return envelopeToWire(sealEnvelope(requester.publicKey, plaintext, aad, random));
  } finally {
    plaintext.fill(0);
  }
}
