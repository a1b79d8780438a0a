/**
 * Checking commits and reveals (docs/PROTOCOL.md §7), as the round machine's check steps: the
 * Ed25519 signature first (one verification, before any RSA work; for a reveal after its set hash,
 * and over that hash and the commitment computed from the envelope), then for a reveal that
 * commitment against the committed one, then the envelope (RSA-OAEP + AES-GCM with the
 * contribution's associated data, implicit rejection), then the phrase's length. Every decryption
 * failure is the same error, so the sender learns nothing about which step failed.
 */
import { type KeyObject, timingSafeEqual } from "node:crypto";
import { fromBase64url } from "../crypto/base64url.js";
import { openEnvelopeWithKey } from "../crypto/envelope.js";
import type { RandomSource } from "../crypto/random.js";
import { verifySignature } from "../crypto/signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { envelopeFromWire } from "../protocol/envelope-wire.js";
import type { MessageOf } from "../protocol/messages.js";
import {
  commitSignedData,
  contributionAad,
  contributionCommitment,
  revealSignedData,
} from "../protocol/signed-data.js";

/** A secret phrase is 64 bytes (§7.1). */
export const PHRASE_BYTES = 64;

const undecryptable = () =>
  new DkeygenError(ErrorCodes.DECRYPTION_FAILED, "The contribution could not be decrypted.");

/**
 * The commitment of a `commit` from `contributorId`, whose enrolled key is `identityKey`, once its
 * signature verifies; throws E_BAD_SIGNATURE.
 */
export function checkCommit(
  msg: MessageOf<"commit">,
  contributorId: string,
  identityKey: KeyObject,
  serverFingerprint: string,
): Uint8Array {
  const commitment = fromBase64url(msg.commitment, "commitment", 32);
  const signed = commitSignedData(msg.roundId, contributorId, serverFingerprint, commitment);
  if (!verifySignature(identityKey, signed, fromBase64url(msg.signature, "signature", 64))) {
    throw new DkeygenError(ErrorCodes.BAD_SIGNATURE, "The commitment's signature does not verify.");
  }
  return commitment;
}

/**
 * The secret phrase of a `reveal` from `contributorId`, checked in this order: it countersigns
 * the commit set the server sent (`setHash`), its signature verifies under the enrolled key over
 * that set hash and the commitment computed from the revealed envelope, that commitment is the
 * one committed to, and the envelope opens to 64 bytes. Throws E_COMMITMENT_MISMATCH,
 * E_BAD_SIGNATURE or E_DECRYPTION_FAILED. With the phrase comes the envelope's content key K
 * (32 bytes), kept for the round's opening (docs/PROTOCOL.md §15.6): with it the owner of a
 * result checks that the committed envelope holds this phrase. The caller owns (and wipes) both.
 */
export function openReveal(
  msg: MessageOf<"reveal">,
  contributorId: string,
  identityKey: KeyObject,
  expected: { setHash: Uint8Array; commitment: Uint8Array },
  server: { fingerprint: string; privateKey: KeyObject; random: RandomSource },
): { phrase: Uint8Array; contentKey: Uint8Array } {
  const { roundId } = msg;
  const setHash = fromBase64url(msg.setHash, "setHash", 32);
  if (!timingSafeEqual(setHash, expected.setHash)) {
    throw new DkeygenError(
      ErrorCodes.COMMITMENT_MISMATCH,
      "The reveal countersigns another commit set than the one this server sent.",
    );
  }
  // The signature covers the envelope through its commitment (§5), so the commitment is
  // computed first, from the envelope as received, and then checked against the committed one.
  const commitment = contributionCommitment(
    roundId,
    contributorId,
    server.fingerprint,
    msg.envelope,
  );
  const signed = revealSignedData(roundId, contributorId, server.fingerprint, setHash, commitment);
  if (!verifySignature(identityKey, signed, fromBase64url(msg.signature, "signature", 64))) {
    throw new DkeygenError(ErrorCodes.BAD_SIGNATURE, "The reveal's signature does not verify.");
  }
  if (!timingSafeEqual(commitment, expected.commitment)) {
    throw new DkeygenError(
      ErrorCodes.COMMITMENT_MISMATCH,
      "The revealed envelope is not the one the contributor committed to.",
    );
  }
  const aad = contributionAad(roundId, contributorId, server.fingerprint);
  let opened: { plaintext: Uint8Array; contentKey: Uint8Array };
  try {
    opened = openEnvelopeWithKey(
      server.privateKey,
      envelopeFromWire(msg.envelope),
      aad,
      server.random,
    );
  } catch {
    // Whatever went wrong, the sender learns the same thing.
    throw undecryptable();
  }
  if (opened.plaintext.length !== PHRASE_BYTES) {
    opened.plaintext.fill(0);
    opened.contentKey.fill(0);
    throw undecryptable();
  }
  return { phrase: opened.plaintext, contentKey: opened.contentKey };
}
