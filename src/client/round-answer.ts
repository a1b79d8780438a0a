/**
 * A contributor's part in one round, commit then reveal (PROTOCOL §5, §7): check that the server's
 * key signed the `round.open` and that it invites us; compute the secret phrase with the
 * contributor's own keyed generator from the round id, the seed phrase and fresh entropy; seal it
 * to the server's key with the contribution's associated data; send only a signed commitment to
 * that envelope. When the signed commit set comes, check our own entry and reveal the envelope,
 * signing the set's hash (our countersignature of the set) with the envelope's commitment; check
 * the server's signed receipt of the reveal. Pure apart from the crypto and the entropy pool it is
 * given; the phrase is wiped as soon as it is sealed.
 */
import type { KeyObject } from "node:crypto";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { sealEnvelope } from "../crypto/envelope.js";
import { secretPhraseInput } from "../crypto/phrase-generators.js";
import type { RandomSource } from "../crypto/random.js";
import { serverVerify } from "../crypto/server-signature.js";
import { publicKeyFromRaw, signMessage, verifySignature } from "../crypto/signature.js";
import { envelopeToWire } from "../protocol/envelope-wire.js";
import type { EnvelopeWire, MessageOf } from "../protocol/messages.js";
import {
  commitSetHash,
  commitSetSignedData,
  commitSignedData,
  compareIds,
  contributionAad,
  contributionCommitment,
  revealReceiptSignedData,
  revealSignedData,
  roundClosedSignedData,
  roundOpenSignedData,
} from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { ContributorState } from "./contributor-state.js";
import type { EntropyPool } from "./entropy.js";
import type { ServerKey } from "./server-key.js";

/** Whether the server's key signed this invitation, every field of it. */
export function invitationSigned(server: ServerKey, open: MessageOf<"round.open">): boolean {
  const signed = roundOpenSignedData({
    roundId: open.roundId,
    purpose: open.purpose,
    paramsHash: fromBase64url(open.paramsHash, "paramsHash", 32),
    seed: fromBase64url(open.seed, "seed", 32),
    serverCommitment: fromBase64url(open.serverCommitment, "serverCommitment", 32),
    roundKey: fromBase64url(open.roundKey, "roundKey", 32),
    commitDeadline: open.commitDeadline,
    revealDeadline: open.revealDeadline,
    invited: open.invited,
  });
  return serverVerify(server.key, signed, fromBase64url(open.signature, "signature"));
}

/** What a contributor keeps between its commit and its reveal. */
export interface PendingContribution {
  roundId: string;
  /** The round's Ed25519 key, from the round.open the server's RSA key signed. */
  roundKey: KeyObject;
  envelope: EnvelopeWire;
  commitment: Uint8Array;
  /** The commit set's hash, once we have revealed against it. */
  setHash?: Uint8Array;
  /** The server's signed receipt of our reveal, once it came. */
  receipt?: MessageOf<"round.receipt">;
  /** The commit set left our commitment out: nothing was revealed. */
  excluded?: boolean;
}

/**
 * The sealed contribution answering `open` (its signature already checked by the caller), kept
 * for the reveal, and the `commit` message that is all the server gets of it for now.
 */
export function commitFor(
  open: MessageOf<"round.open">,
  server: ServerKey,
  state: ContributorState,
  entropy: EntropyPool,
  random: RandomSource,
): { pending: PendingContribution; commit: MessageOf<"commit"> } {
  const id = state.contributorId;
  const drawn = entropy.draw();
  const phrase = state.generator.compute(
    state.generatorKey.expose(),
    secretPhraseInput(open.roundId, fromBase64url(open.seed, "seed", 32), drawn),
  );
  drawn.fill(0);
  const aad = contributionAad(open.roundId, id, server.fingerprint);
  let envelope: EnvelopeWire;
  try {
    envelope = envelopeToWire(sealEnvelope(server.key, phrase, aad, random));
  } finally {
    phrase.fill(0);
  }
  const commitment = contributionCommitment(open.roundId, id, server.fingerprint, envelope);
  const signature = signMessage(
    state.privateKey,
    commitSignedData(open.roundId, id, server.fingerprint, commitment),
  );
  return {
    pending: {
      roundId: open.roundId,
      roundKey: publicKeyFromRaw(fromBase64url(open.roundKey, "roundKey", 32)),
      envelope,
      commitment,
    },
    commit: {
      type: "commit",
      v: PROTOCOL_VERSION,
      roundId: open.roundId,
      contributorId: id,
      commitment: toBase64url(commitment),
      signature: toBase64url(signature),
    },
  };
}

export type CommitSetVerdict =
  | { kind: "reveal"; reveal: MessageOf<"reveal">; setHash: Uint8Array }
  /** The set is the server's, but our commitment is not in it: the server left us out. */
  | { kind: "excluded"; setHash: Uint8Array }
  | { kind: "refused"; reason: string };

/**
 * Checks a commit set against what we committed: signed by the server's key over the hash of
 * exactly these entries, sorted by contributor id without repeats, and holding our own
 * commitment unchanged. Only then the reveal, signed over the set's hash and our commitment.
 */
export function revealFor(
  msg: MessageOf<"round.commits">,
  pending: PendingContribution,
  server: ServerKey,
  state: ContributorState,
): CommitSetVerdict {
  const entries = msg.commits.map((c) => ({
    contributorId: c.contributorId,
    commitment: fromBase64url(c.commitment, "commitment", 32),
  }));
  for (let i = 1; i < entries.length; i++) {
    if (compareIds(entries[i - 1]!.contributorId, entries[i]!.contributorId) >= 0) {
      return {
        kind: "refused",
        reason: "the commit set is not sorted by contributor id without repeats",
      };
    }
  }
  const setHash = commitSetHash(msg.roundId, server.fingerprint, entries);
  const signed = commitSetSignedData(msg.roundId, setHash);
  if (!verifySignature(pending.roundKey, signed, fromBase64url(msg.signature, "signature", 64))) {
    return { kind: "refused", reason: "the round's key did not sign the commit set" };
  }
  const own = entries.find((e) => e.contributorId === state.contributorId);
  if (own === undefined) return { kind: "excluded", setHash };
  if (Buffer.compare(own.commitment, pending.commitment) !== 0) {
    return { kind: "refused", reason: "the commit set holds another commitment in our name" };
  }
  const id = state.contributorId;
  const signature = signMessage(
    state.privateKey,
    revealSignedData(msg.roundId, id, server.fingerprint, setHash, pending.commitment),
  );
  return {
    kind: "reveal",
    setHash,
    reveal: {
      type: "reveal",
      v: PROTOCOL_VERSION,
      roundId: msg.roundId,
      contributorId: id,
      setHash: toBase64url(setHash),
      envelope: pending.envelope,
      signature: toBase64url(signature),
    },
  };
}

/** Whether the round's key signed this round.closed, every field of it but `reason`. */
export function closingSigned(roundKey: KeyObject, msg: MessageOf<"round.closed">): boolean {
  return verifySignature(
    roundKey,
    roundClosedSignedData({
      roundId: msg.roundId,
      outcome: msg.outcome,
      accepted: msg.accepted,
      setHash: msg.setHash === undefined ? undefined : fromBase64url(msg.setHash, "setHash", 32),
      missing: msg.missing ?? [],
    }),
    fromBase64url(msg.signature, "signature", 64),
  );
}

/** Whether a receipt is the server's, for our reveal against the set we countersigned. */
export function receiptValid(
  msg: MessageOf<"round.receipt">,
  pending: PendingContribution,
  contributorId: string,
): boolean {
  if (pending.setHash === undefined || msg.contributorId !== contributorId) return false;
  const setHash = fromBase64url(msg.setHash, "setHash", 32);
  const commitment = fromBase64url(msg.commitment, "commitment", 32);
  if (Buffer.compare(setHash, pending.setHash) !== 0) return false;
  if (Buffer.compare(commitment, pending.commitment) !== 0) return false;
  return verifySignature(
    pending.roundKey,
    revealReceiptSignedData(msg.roundId, contributorId, setHash, commitment),
    fromBase64url(msg.signature, "signature", 64),
  );
}
