/**
 * The JSON forms of the DKG's packages (canonical unpadded base64url, the shapes of
 * protocol/threshold-messages.ts), for the wire and for files.
 */
import type { FrostPublic } from "@noble/curves/abstract/frost.js";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
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

export interface PublicPackageJson {
  commitments: string[];
  /** In index order. */
  verifyingShares: string[];
}

export function publicToJson(pub: FrostPublic, identifiers: string[]): PublicPackageJson {
  return {
    commitments: pub.commitments.map(toBase64url),
    verifyingShares: identifiers.map((id) => {
      const share = pub.verifyingShares[id];
      if (share === undefined) throw new RangeError("publicToJson: a verifying share is missing");
      return toBase64url(share);
    }),
  };
}

export function publicFromJson(
  json: PublicPackageJson,
  identifiers: string[],
  t: number,
  n: number,
): FrostPublic {
  if (json.verifyingShares.length !== identifiers.length) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "A public key package lists n verifying shares.",
    );
  }
  if (json.commitments.length !== t) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A public key package has t commitments.");
  }
  return {
    signers: { min: t, max: n },
    commitments: json.commitments.map((c) => new Uint8Array(fromBase64url(c, "commitments"))),
    verifyingShares: Object.fromEntries(
      identifiers.map((id, i) => [
        id,
        new Uint8Array(fromBase64url(json.verifyingShares[i]!, "verifyingShares")),
      ]),
    ),
  };
}
