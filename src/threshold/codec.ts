/**
 * The JSON forms of the DKG's packages (canonical unpadded base64url, the shapes of
 * protocol/threshold-messages.ts), for the wire and for files.
 */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import type { Round1Package, SealedShare } from "./transcript.js";

export interface Round1Json {
  index: number;
  commitment: string[];
  proof: string;
  encryptionKey: string;
  ephemeralKey: string;
  signature: string;
}

export interface SealedShareJson {
  from: number;
  to: number;
  ciphertext: string;
  signature: string;
}

export function round1ToJson(p: Round1Package): Round1Json {
  return {
    index: p.index,
    commitment: p.commitment.map(toBase64url),
    proof: toBase64url(p.proof),
    encryptionKey: toBase64url(p.encryptionKey),
    ephemeralKey: toBase64url(p.ephemeralKey),
    signature: toBase64url(p.signature),
  };
}

export function round1FromJson(p: Round1Json): Round1Package {
  return {
    index: p.index,
    commitment: p.commitment.map((c) => fromBase64url(c, "commitment")),
    proof: fromBase64url(p.proof, "proof"),
    encryptionKey: fromBase64url(p.encryptionKey, "encryptionKey", 32),
    ephemeralKey: fromBase64url(p.ephemeralKey, "ephemeralKey", 32),
    signature: fromBase64url(p.signature, "signature", 64),
  };
}

export function shareToJson(s: SealedShare): SealedShareJson {
  return {
    from: s.from,
    to: s.to,
    ciphertext: toBase64url(s.ciphertext),
    signature: toBase64url(s.signature),
  };
}

export function shareFromJson(s: SealedShareJson): SealedShare {
  return {
    from: s.from,
    to: s.to,
    ciphertext: fromBase64url(s.ciphertext, "ciphertext"),
    signature: fromBase64url(s.signature, "signature", 64),
  };
}
