/**
 * Checking one contribution (docs/PROTOCOL.md §7), as the round machine's `open` step: the
 * Ed25519 signature over the whole contribution first (one verification, before any RSA work),
 * then the envelope (RSA-OAEP + AES-GCM with the contribution's associated data, implicit
 * rejection), then the phrase's length. Every decryption failure is the same error, so the sender
 * learns nothing about which step failed.
 */
import type { KeyObject } from "node:crypto";
import { fromBase64url } from "../crypto/base64url.js";
import { openEnvelope } from "../crypto/envelope.js";
import type { RandomSource } from "../crypto/random.js";
import { verifySignature } from "../crypto/signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { envelopeFromWire } from "../protocol/envelope-wire.js";
import type { MessageOf } from "../protocol/messages.js";
import { contributionAad, contributionSignedData } from "../protocol/signed-data.js";

/** A secret phrase is 64 bytes (§7.1). */
export const PHRASE_BYTES = 64;

const undecryptable = () =>
  new DkeygenError(ErrorCodes.DECRYPTION_FAILED, "The contribution could not be decrypted.");

/**
 * The secret phrase of `msg`, from `contributorId` whose enrolled key is `identityKey`; throws
 * E_BAD_SIGNATURE or E_DECRYPTION_FAILED. The caller owns (and wipes) the returned bytes.
 */
export function openContribution(
  msg: MessageOf<"contribution">,
  contributorId: string,
  identityKey: KeyObject,
  server: { fingerprint: string; privateKey: KeyObject; random: RandomSource },
): Uint8Array {
  const { roundId } = msg;
  const signed = contributionSignedData(roundId, contributorId, server.fingerprint, msg.envelope);
  if (!verifySignature(identityKey, signed, fromBase64url(msg.signature, "signature", 64))) {
    throw new DkeygenError(
      ErrorCodes.BAD_SIGNATURE,
      "The contribution's signature does not verify.",
    );
  }
  const aad = contributionAad(roundId, contributorId, server.fingerprint);
  let phrase: Uint8Array;
  try {
    phrase = openEnvelope(server.privateKey, envelopeFromWire(msg.envelope), aad, server.random);
  } catch {
    // Whatever went wrong, the sender learns the same thing.
    throw undecryptable();
  }
  if (phrase.length !== PHRASE_BYTES) {
    phrase.fill(0);
    throw undecryptable();
  }
  return phrase;
}
