/**
 * A round's close, once its phases are over: the outcome from its machine; for a failure or an
 * abort (naming who did not reveal), the signed closing logged and sent and the error thrown; for
 * a completion, the results derived and stored (round-results.ts), the round's entry appended to
 * the transparency log (protocol/log-entry.ts) before anyone is told, the wait for witnesses'
 * cosignatures (witnessing.ts), a pool refill's records released, and the signed closing sent. A
 * result that cannot be logged, witnessed or released is withdrawn, never handed out.
 */
import { fromBase64url } from "../crypto/base64url.js";
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import { encodeRoundEntry, roundEntryOf } from "../protocol/log-entry.js";
import { encodeMessage, type MessageOf } from "../protocol/messages.js";
import type { KeyRecord, KeyStore } from "../store/types.js";
import type { BatchDeriver } from "./batch-deriver.js";
import { storeRoundResults } from "./round-results.js";
import { closingMessage } from "./round-statements.js";
import type { RunningRound } from "./running-round.js";
import type { ServerContext } from "./server-context.js";

/**
 * Closes a round whose phases are over: a failure or an abort is logged (once the round reached a
 * commit set), told to every participant and thrown; a completion's results are derived and
 * stored (round-results.ts, a batch round's on `batches`' thread), its entry logged, witnessed
 * and released before the participants hear of it, and its records returned.
 */
export async function closeRound(
  ctx: ServerContext,
  batches: BatchDeriver,
  roundId: string,
  round: RunningRound,
): Promise<KeyRecord[]> {
  const outcome = round.failure
    ? { status: "failed" as const, error: round.failure, acceptedCount: 0 }
    : round.machine.close();
  const closing = (
    outcome: "completed" | "failed" | "aborted",
    accepted: number,
    reason?: string,
    missing?: string[],
  ) =>
    closingMessage(round.roundKey, {
      roundId,
      outcome,
      accepted,
      setHash: round.setHash,
      ...(missing === undefined ? {} : { missing }),
      ...(reason === undefined ? {} : { reason }),
    });
  const notify = (closed: MessageOf<"round.closed">) => {
    const frame = encodeMessage(closed);
    for (const peer of round.participants.values()) peer.connection.send(frame);
  };

  if (outcome.status === "failed" || outcome.status === "aborted") {
    round.seed.fill(0);
    round.serverSecret.fill(0);
    for (const { contentKey } of round.reveals.values()) contentKey.fill(0);
    round.reveals.clear();
    const { error } = outcome;
    if (outcome.status === "aborted") {
      const closed = closing(
        "aborted",
        outcome.revealed,
        error.message.slice(0, 512),
        outcome.missing,
      );
      // Logged like a completion (an abort after the reveals began is evidence), then told.
      await logRound(ctx, round, closed, undefined).catch(() => {});
      notify(closed);
      ctx.c.logger.warn(
        { roundId, code: error.code, missing: outcome.missing },
        "round aborted: committed contributors did not reveal",
      );
      ctx.emit({
        type: "round.aborted",
        roundId,
        missing: outcome.missing,
        message: error.message,
      });
    } else {
      const closed = closing("failed", outcome.acceptedCount, error.message.slice(0, 512));
      await logRound(ctx, round, closed, undefined).catch(() => {});
      notify(closed);
      ctx.c.logger.warn({ roundId, code: error.code }, error.message);
      ctx.emit({ type: "round.failed", roundId, code: error.code, message: error.message });
    }
    throw error;
  }

  let records: KeyRecord[] | undefined;
  let index: number | undefined;
  try {
    const stored = await storeRoundResults(
      { store: ctx.c.store, batches },
      roundId,
      round,
      outcome.accepted,
    );
    records = stored.records;
    // The entry is durable before anyone hears of the round: a result nobody can find in
    // the log is never handed out by this server.
    index = await logRound(
      ctx,
      round,
      closing("completed", outcome.accepted.length),
      stored.results,
    );
  } catch (error) {
    const message = "The round's result could not be derived or stored; nothing was acknowledged.";
    ctx.c.logger.error({ roundId, err: describeError(error) }, message);
    // Stored but not logged: a pool refill's records stay held; consumed too, so nobody counts
    // them as ready (best effort: the store may be what failed).
    if (records) await withdraw(ctx.c.store, records);
    const closed = closing("failed", outcome.accepted.length, message);
    await logRound(ctx, round, closed, undefined).catch(() => {});
    notify(closed);
    ctx.emit({ type: "round.failed", roundId, code: ErrorCodes.OPERATIONAL, message });
    throw isDkeygenError(error) && error.code === ErrorCodes.INVALID_INPUT
      ? error
      : new DkeygenError(ErrorCodes.OPERATIONAL, message, { cause: error });
  }
  // Handed out only once witnesses cosigned a checkpoint that covers the entry (§15.5).
  const revealMs = ctx.config.revealTimeoutMs ?? ctx.config.roundTimeoutMs;
  if (index !== undefined && !(await ctx.witnessing.whenWitnessed(index, revealMs))) {
    throw await notWitnessed(ctx, roundId, records, () =>
      notify(closing("completed", outcome.accepted.length, "result withdrawn: not witnessed")),
    );
  }
  if (round.owner === undefined) {
    // A pool refill's records were put held: witnessed (or witnessing is off and the entry is
    // durable), they become claimable now, by every process claiming from this store.
    try {
      await ctx.c.store.releaseHeld(roundId);
    } catch (error) {
      const message = `Round ${roundId}'s results could not be released; they stay held.`;
      ctx.c.logger.error({ roundId, err: describeError(error) }, message);
      notify(closing("completed", outcome.accepted.length, "result withdrawn: not released"));
      ctx.emit({ type: "round.failed", roundId, code: ErrorCodes.OPERATIONAL, message });
      throw new DkeygenError(ErrorCodes.OPERATIONAL, message, { cause: error });
    }
    for (const record of records) delete record.held;
  }
  notify(closing("completed", outcome.accepted.length));
  ctx.c.logger.info(
    {
      roundId,
      purpose: round.purpose,
      recordId: records[0]!.id,
      records: records.length,
      accepted: outcome.accepted.length,
    },
    "round completed; result stored",
  );
  ctx.emit({
    type: "round.completed",
    roundId,
    record: records[0]!,
    records: records.length,
    accepted: outcome.accepted.length,
  });
  return records;
}

/**
 * A completed round whose entry no checkpoint with enough cosignatures covered in time: its
 * records are consumed (never handed out, by the pool or anyone; a pool refill's also stay
 * held), participants get the closing
 * the log holds, and the round fails with E_UNAVAILABLE.
 */
async function notWitnessed(
  ctx: ServerContext,
  roundId: string,
  records: KeyRecord[],
  notify: () => void,
): Promise<DkeygenError> {
  const k = ctx.config.minCosignatures;
  const message =
    `Round ${roundId} was not witnessed: no checkpoint covering its log entry got ${k} ` +
    `cosignature${k === 1 ? "" : "s"} in time; its results are withdrawn.`;
  await withdraw(ctx.c.store, records);
  notify();
  ctx.c.logger.error({ roundId, records: records.length }, message);
  ctx.emit({ type: "round.failed", roundId, code: ErrorCodes.UNAVAILABLE, message });
  return new DkeygenError(ErrorCodes.UNAVAILABLE, message);
}

/** Consumes a round's records so none is ever handed out (best effort; a pool refill's stay held,
 * and retire at once: record-rules.ts `retirePolicy`). */
async function withdraw(store: KeyStore, records: KeyRecord[]): Promise<void> {
  await Promise.all(records.map((r) => store.consume(r.id).catch(() => false)));
}

/**
 * Appends a round's entry to the transparency log (protocol/log-entry.ts), if the round got as
 * far as a commit set: before one, nothing was revealed, and a round that failed then told the
 * server nothing about its result. Resolves to its index; rejects if the log could not take it
 * (logged here).
 */
async function logRound(
  ctx: ServerContext,
  round: RunningRound,
  closed: MessageOf<"round.closed">,
  results: { recordId: string; commitment: Uint8Array }[] | undefined,
): Promise<number | undefined> {
  const commits = round.commitsMessage;
  if (commits === undefined) return undefined;
  const { roundId } = closed;
  try {
    const entry = roundEntryOf({
      server: ctx.fingerprint,
      open: round.openMessage,
      commits: commits.commits.map((c) => ({
        contributorId: c.contributorId,
        identity: round.commitSignatures.get(c.contributorId)!.identity,
        commitment: fromBase64url(c.commitment, "commitment", 32),
        signature: round.commitSignatures.get(c.contributorId)!.signature,
        ...(round.revealSignatures.has(c.contributorId)
          ? { reveal: round.revealSignatures.get(c.contributorId)! }
          : {}),
      })),
      setSignature: commits.signature,
      closed: {
        outcome: closed.outcome,
        accepted: closed.accepted,
        ...(closed.missing === undefined ? {} : { missing: closed.missing }),
        signature: closed.signature,
      },
      ...(results === undefined ? {} : { results }),
      closedAt: new Date(ctx.c.clock()),
    });
    const leaf = encodeRoundEntry(entry);
    ctx.witnessing.expect(
      roundId,
      leaf,
      entry.commits.map((c) => c.contributorId),
    );
    const index = await ctx.log.append(leaf, roundId);
    ctx.c.logger.info({ roundId, index, outcome: closed.outcome }, "round logged");
    ctx.emit({
      type: "round.logged",
      roundId,
      outcome: closed.outcome,
      index,
      size: ctx.log.size,
    });
    return index;
  } catch (error) {
    ctx.c.logger.error(
      { roundId, err: describeError(error) },
      "the round could not be written to the transparency log",
    );
    throw error;
  }
}
