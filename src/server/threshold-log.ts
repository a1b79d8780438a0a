/**
 * Threshold-key sessions into the transparency log (protocol/dkg-log-entry.ts, PROTOCOL §15.1):
 * the coordinators (dkg-coordinator.ts, refresh-coordinator.ts) hand over a finished session's
 * evidence; a completed one is durable in the log before any holder is sent the certificate, so a
 * key nobody can find in the log is never kept by its holders.
 */
import { describeError } from "../errors.js";
import { type DkgSessionEvidence, dkgEntryOf, encodeDkgEntry } from "../protocol/dkg-log-entry.js";
import type { ServerContext } from "./server-context.js";

/** Appends the session's entry; resolves to its index. Rejects (logged here) if the log fails. */
export async function logThresholdSession(
  ctx: ServerContext,
  evidence: Omit<DkgSessionEvidence, "server" | "closedAt">,
): Promise<number> {
  const entry = dkgEntryOf({
    ...evidence,
    server: ctx.fingerprint,
    closedAt: new Date(ctx.c.clock()),
  });
  try {
    const index = await ctx.log.append(encodeDkgEntry(entry), entry.roundId);
    ctx.c.logger.info(
      { sessionId: entry.sessionId, session: entry.session, index, outcome: entry.outcome },
      "threshold session logged",
    );
    ctx.emit({
      type: "dkg.logged",
      sessionId: entry.sessionId,
      session: entry.session,
      outcome: entry.outcome,
      index,
      size: ctx.log.size,
    });
    return index;
  } catch (error) {
    ctx.c.logger.error(
      { sessionId: entry.sessionId, err: describeError(error) },
      "the threshold session could not be written to the transparency log",
    );
    throw error;
  }
}
