/** The hybrid envelope's wire form: its four byte fields as unpadded base64url, with its algorithm. */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { ENVELOPE_ALG, type SealedEnvelope } from "../crypto/envelope.js";
import type { EnvelopeWire } from "./messages.js";

export function envelopeToWire(sealed: SealedEnvelope): EnvelopeWire {
  return {
    alg: ENVELOPE_ALG,
    ek: toBase64url(sealed.wrappedKey),
    iv: toBase64url(sealed.iv),
    ct: toBase64url(sealed.ciphertext),
    tag: toBase64url(sealed.tag),
  };
}

/** Decodes the byte fields; a malformed field throws INVALID_INPUT naming it. */
export function envelopeFromWire(wire: EnvelopeWire): SealedEnvelope {
  return {
    wrappedKey: fromBase64url(wire.ek, "envelope.ek"),
    iv: fromBase64url(wire.iv, "envelope.iv", 12),
    ciphertext: fromBase64url(wire.ct, "envelope.ct"),
    tag: fromBase64url(wire.tag, "envelope.tag", 16),
  };
}
