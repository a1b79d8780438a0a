/**
 * What the server signs in a round (PROTOCOL §5), as the wire messages that carry it: the
 * invitation under its RSA key (which certifies the round's own Ed25519 key), then the commit set,
 * each receipt and the closing under that round key. The round runner decides when; this module
 * is the one place that says what the signatures cover.
 */
import type { KeyObject } from "node:crypto";
import { toBase64url } from "../crypto/base64url.js";
import { serverSign } from "../crypto/server-signature.js";
import { signMessage } from "../crypto/signature.js";
import type { MessageOf } from "../protocol/messages.js";
import {
  type CommitEntry,
  commitSetSignedData,
  type RoundOpenFields,
  revealReceiptSignedData,
  roundClosedSignedData,
  roundOpenSignedData,
} from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";

/** round.open, signed by the server's RSA key. */
export function roundOpenMessage(
  serverKey: KeyObject,
  fields: RoundOpenFields,
): MessageOf<"round.open"> {
  return {
    type: "round.open",
    v: PROTOCOL_VERSION,
    roundId: fields.roundId,
    purpose: fields.purpose,
    paramsHash: toBase64url(fields.paramsHash),
    seed: toBase64url(fields.seed),
    serverCommitment: toBase64url(fields.serverCommitment),
    roundKey: toBase64url(fields.roundKey),
    commitDeadline: fields.commitDeadline,
    revealDeadline: fields.revealDeadline,
    invited: [...fields.invited],
    signature: toBase64url(serverSign(serverKey, roundOpenSignedData(fields))),
  };
}

/** round.commits: the commit set (sorted), signed by the round key over its hash. */
export function commitSetMessage(
  roundKey: KeyObject,
  roundId: string,
  commits: readonly CommitEntry[],
  setHash: Uint8Array,
): MessageOf<"round.commits"> {
  return {
    type: "round.commits",
    v: PROTOCOL_VERSION,
    roundId,
    commits: commits.map((c) => ({
      contributorId: c.contributorId,
      commitment: toBase64url(c.commitment),
    })),
    signature: toBase64url(signMessage(roundKey, commitSetSignedData(roundId, setHash))),
  };
}

/** round.receipt: this contributor's reveal against this set matched its commitment. */
export function receiptMessage(
  roundKey: KeyObject,
  roundId: string,
  contributorId: string,
  setHash: Uint8Array,
  commitment: Uint8Array,
): MessageOf<"round.receipt"> {
  return {
    type: "round.receipt",
    v: PROTOCOL_VERSION,
    roundId,
    contributorId,
    setHash: toBase64url(setHash),
    commitment: toBase64url(commitment),
    signature: toBase64url(
      signMessage(roundKey, revealReceiptSignedData(roundId, contributorId, setHash, commitment)),
    ),
  };
}

/** round.closed: how the round ended, against which set, naming who did not reveal. */
export function closingMessage(
  roundKey: KeyObject,
  closing: {
    roundId: string;
    outcome: "completed" | "failed" | "aborted";
    accepted: number;
    setHash: Uint8Array | undefined;
    missing?: string[];
    reason?: string;
  },
): MessageOf<"round.closed"> {
  const { roundId, outcome, accepted, setHash, missing, reason } = closing;
  const signed = roundClosedSignedData({
    roundId,
    outcome,
    accepted,
    setHash,
    missing: missing ?? [],
  });
  return {
    type: "round.closed",
    v: PROTOCOL_VERSION,
    roundId,
    outcome,
    accepted,
    ...(missing === undefined ? {} : { missing }),
    ...(reason === undefined ? {} : { reason }),
    ...(setHash === undefined ? {} : { setHash: toBase64url(setHash) }),
    signature: toBase64url(signMessage(roundKey, signed)),
  };
}
