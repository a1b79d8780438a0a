/**
 * Threshold-key sessions into the transparency log (protocol/dkg-log-entry.ts, PROTOCOL §15.1):
 * the coordinators (dkg-coordinator.ts, refresh-coordinator.ts) hand over a finished session's
 * evidence; a completed one is durable in the log before any holder is sent the certificate, so a
 * key nobody can find in the log is never kept by its holders.
 */
import { describeError } from "../errors.js";
import { type DkgSessionEvidence, dkgEntryOf, encodeDkgEntry } from "../protocol/dkg-log-entry.js";
import type { DkgSessionParams } from "../threshold/transcript.js";
import type { ServerContext } from "./server-context.js";

type SessionFacts = Omit<DkgSessionEvidence, "server" | "closedAt" | "completed" | "aborted">;

/**
 * The public facts of a session as its log entry shows them: a DKG's (no `refresh`), or a
 * refresh's (the key it refreshes, its public package hash before, its dealers).
 */
export function sessionFacts(
  session: { sessionId: Uint8Array; members: readonly string[] },
  params: Omit<DkgSessionParams, "serverFingerprint">,
  refresh?: SessionFacts["refresh"],
): SessionFacts {
  return {
    session: refresh === undefined ? "keygen" : "refresh",
    sessionId: session.sessionId,
    suite: params.suite,
    t: params.t,
    n: params.n,
    nonce: params.nonce,
    holders: session.members.map((contributorId, i) => ({
      contributorId,
      identity: params.identities[i]!,
    })),
    ...(refresh === undefined ? {} : { refresh }),
  };
}

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
