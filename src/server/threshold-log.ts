/**
 * Threshold-key sessions into the transparency log (protocol/dkg-log-entry.ts, PROTOCOL §15.1):
 * the coordinators (dkg-coordinator.ts, refresh-coordinator.ts) hand over a finished session's
 * evidence; a completed one is durable in the log before any holder is sent the certificate, so a
 * key nobody can find in the log is never kept by its holders.
 */
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
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

/**
 * Appends the session's entry (the holders get it to check as witnesses of the log); resolves to
 * its index. Rejects if the log fails (logged here).
 */
export async function logThresholdSession(
  ctx: ServerContext,
  evidence: Omit<DkgSessionEvidence, "server" | "closedAt">,
): Promise<number> {
  const entry = dkgEntryOf({
    ...evidence,
    server: ctx.fingerprint,
    closedAt: new Date(ctx.c.clock()),
  });
  let index: number;
  try {
    const leaf = encodeDkgEntry(entry);
    ctx.witnessing.expect(
      entry.roundId,
      leaf,
      entry.holders.map((h) => h.contributorId),
    );
    index = await ctx.log.append(leaf, entry.roundId);
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
  } catch (error) {
    ctx.c.logger.error(
      { sessionId: entry.sessionId, err: describeError(error) },
      "the threshold session could not be written to the transparency log",
    );
    throw error;
  }
  return index;
}

/**
 * Waits until a checkpoint covering a completed session's entry has the cosignatures witnessing
 * asks for (§15.5), as a round's result does before it is handed out. Rejects E_UNAVAILABLE if
 * none does in time: the caller withdraws the key.
 */
export async function sessionWitnessed(ctx: ServerContext, index: number): Promise<void> {
  const timeoutMs = ctx.config.revealTimeoutMs ?? ctx.config.roundTimeoutMs;
  if (await ctx.witnessing.whenWitnessed(index, timeoutMs)) return;
  const k = ctx.witnessing.minCosignatures;
  throw new DkeygenError(
    ErrorCodes.UNAVAILABLE,
    `it was not witnessed: no checkpoint covering its log entry ${index} got ${k} ` +
      `cosignature${k === 1 ? "" : "s"} in time`,
  );
}
