/**
 * What the admin asks to be sealed to it: the one-off key it names in `revealTo` (checked here),
 * and the sealing of a JSON answer to that key (admin.generate's secret part, admin.export's
 * derivation export, admin.opening's record opening), each under its own associated data
 * (protocol/signed-data.ts). The plaintext is wiped once sealed.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { fromBase64url } from "../crypto/base64url.js";
import { sealEnvelope } from "../crypto/envelope.js";
import type { RandomSource } from "../crypto/random.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { envelopeToWire } from "../protocol/envelope-wire.js";
import type { EnvelopeWire } from "../protocol/messages.js";

/** RSA public exponent every key dkeygen accepts must have (RFC 8017 recommends F4). */
const F4 = "AQAB";

/**
 * The one-off key an admin asked a secret part to be sealed to: exactly one DER
 * SubjectPublicKeyInfo (no trailing bytes), RSA of at least 3072 bits with e = 65537.
 */
export function revealKey(spki: string): KeyObject {
  const der = Buffer.from(fromBase64url(spki, "revealTo"));
  let key: KeyObject;
  try {
    key = createPublicKey({ key: der, format: "der", type: "spki" });
  } catch {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "revealTo is not a DER SubjectPublicKeyInfo.");
  }
  // OpenSSL ignores bytes after the structure; re-encoding shows whether there were any.
  if (!key.export({ type: "spki", format: "der" }).equals(der)) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "revealTo must be exactly one DER SubjectPublicKeyInfo, with nothing after it.",
    );
  }
  if (key.asymmetricKeyType !== "rsa" || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 3072) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "revealTo must be an RSA key of at least 3072 bits.",
    );
  }
  if (key.export({ format: "jwk" }).e !== F4) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "revealTo's public exponent must be 65537.");
  }
  return key;
}

/** `value` as UTF-8 JSON, sealed to `revealTo` under `aad`; the JSON bytes are wiped after. */
export function sealJsonTo(
  revealTo: KeyObject,
  value: unknown,
  aad: Uint8Array,
  random: RandomSource,
): EnvelopeWire {
  const plaintext = Buffer.from(JSON.stringify(value), "utf8");
  try {
    return envelopeToWire(sealEnvelope(revealTo, plaintext, aad, random));
  } finally {
    plaintext.fill(0);
  }
}
