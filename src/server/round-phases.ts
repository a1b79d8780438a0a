/**
 * A round's commit and reveal phases, one contributor message at a time (round-runner.ts finds
 * the round and runs the phases): a commit checked (contribution-check.ts) and fed into the
 * round's machine; the commit set signed and sent when the commit phase ends; a reveal checked on
 * a reveal-checking thread (reveal-pool.ts) and answered with a signed receipt; and a commit or
 * reveal that was not accepted, answered with an error.
 */
import { rawPublicKey } from "../crypto/signature.js";
import { type DkeygenError, describeError } from "../errors.js";
import { encodeMessage, type MessageOf } from "../protocol/messages.js";
import { commitSetHash } from "../protocol/signed-data.js";
import { checkCommit } from "./contribution-check.js";
import type { RevealPool } from "./reveal-pool.js";
import { commitSetMessage, receiptMessage } from "./round-statements.js";
import type { RunningRound } from "./running-round.js";
import type { Peer, ServerContext } from "./server-context.js";

/**
 * Ends the commit phase. With a quorum of commitments, signs the commit set and sends it to
 * every invited contributor still connected (so one whose commitment is missing sees that) and
 * returns true; otherwise false (the round fails when it closes, nothing having been revealed).
 */
export function sendCommitSet(ctx: ServerContext, roundId: string, round: RunningRound): boolean {
  const closed = round.machine.closeCommits();
  if (closed.status === "failed") {
    round.failure = closed.error;
    return false;
  }
  const setHash = commitSetHash(roundId, ctx.fingerprint, closed.commits);
  round.setHash = setHash;
  round.commitsMessage = commitSetMessage(round.roundKey, roundId, closed.commits, setHash);
  const frame = encodeMessage(round.commitsMessage);
  for (const peer of round.participants.values()) peer.connection.send(frame);
  // Committed contributors that left before the set was sent can no longer reveal.
  for (const [id, peer] of round.participants) {
    if (ctx.contributors.get(id) !== peer) round.machine.participantLeft(id);
  }
  ctx.c.logger.info({ roundId, commits: closed.commits.length }, "commit set sent");
  ctx.emit({
    type: "round.committed",
    roundId,
    commits: closed.commits.length,
    setHash: Buffer.from(setHash).toString("hex"),
  });
  return true;
}

/** Answers a commit or reveal that was not accepted, and tells the server's observers. */
export function rejectContribution(
  ctx: ServerContext,
  peer: Peer,
  roundId: string,
  error: DkeygenError,
): void {
  ctx.reject(peer, error, { roundId });
  ctx.emit({
    type: "contribution.rejected",
    roundId,
    contributorId: peer.contributorId!,
    code: error.code,
    message: error.message,
  });
}

/** A commitment from `peer`, an authenticated contributor, to `round`. */
export function acceptCommit(
  ctx: ServerContext,
  round: RunningRound,
  peer: Peer,
  msg: MessageOf<"commit">,
): void {
  const contributorId = peer.contributorId!;
  const entry = ctx.c.registry.get(contributorId)!;
  const verdict = round.machine.commit(contributorId, ctx.c.clock(), () =>
    checkCommit(msg, contributorId, entry.key, ctx.fingerprint),
  );
  if (verdict.kind === "rejected") {
    rejectContribution(ctx, peer, msg.roundId, verdict.error);
    return;
  }
  round.commitSignatures.set(contributorId, {
    signature: msg.signature,
    identity: rawPublicKey(entry.key),
  });
  ctx.c.logger.info(
    { roundId: msg.roundId, contributorId, name: peer.name },
    "commitment accepted",
  );
  ctx.emit({
    type: "commit.accepted",
    roundId: msg.roundId,
    contributorId,
    ...(peer.name === undefined ? {} : { name: peer.name }),
  });
  if (round.machine.settled) round.settle();
}

/**
 * A reveal from `peer`, an authenticated contributor: the cheap checks here, the costly ones on
 * a reveal-checking thread (reveal-pool.ts); answered with the thread's signed receipt.
 */
export function acceptReveal(
  ctx: ServerContext,
  reveals: RevealPool,
  round: RunningRound,
  peer: Peer,
  msg: MessageOf<"reveal">,
): void {
  const contributorId = peer.contributorId!;
  const { roundId } = msg;
  const begun = round.machine.beginReveal(contributorId, ctx.c.clock());
  if (begun.kind === "rejected") {
    rejectContribution(ctx, peer, roundId, begun.error);
    return;
  }
  const { commitment } = begun;
  const entry = ctx.c.registry.get(contributorId)!;
  const checked = reveals
    .open({
      contributorId,
      identity: rawPublicKey(entry.key),
      serverFingerprint: ctx.fingerprint,
      setHash: round.setHash!,
      commitment,
      reveal: msg,
    })
    .then(
      (opened) => {
        const verdict = round.machine.finishReveal(contributorId, { phrase: opened.phrase });
        if (verdict.kind === "rejected") {
          opened.contentKey.fill(0);
          return rejectContribution(ctx, peer, roundId, verdict.error);
        }
        // Kept for the round's opening (round-opening.ts), wiped once it is sealed.
        round.reveals.set(contributorId, {
          envelope: msg.envelope,
          contentKey: opened.contentKey,
        });
        round.revealSignatures.set(contributorId, msg.signature);
        ctx.send(
          peer,
          receiptMessage(round.roundKey, roundId, contributorId, round.setHash!, commitment),
        );
        ctx.c.logger.info({ roundId, contributorId, name: peer.name }, "contribution revealed");
        ctx.emit({
          type: "contribution.accepted",
          roundId,
          contributorId,
          ...(peer.name === undefined ? {} : { name: peer.name }),
        });
      },
      (error: unknown) => {
        const verdict = round.machine.finishReveal(contributorId, { error });
        if (verdict.kind === "rejected") rejectContribution(ctx, peer, roundId, verdict.error);
      },
    )
    .catch((error: unknown) => {
      // A bug in the code above, not the peer's doing: logged; the round goes on.
      ctx.c.logger.error({ roundId, err: describeError(error) }, "a reveal could not be handled");
    })
    .finally(() => {
      round.opening.delete(checked);
      if (round.machine.settled || round.machine.doomed) round.settle();
    });
  round.opening.add(checked);
}
