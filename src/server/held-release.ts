/**
 * The start-up release of held records (docs/PROTOCOL.md §12.5, §15.5). A pool refill's records
 * are put held and released once the round's log entry is witnessed (round-runner.ts); a server
 * that stops between the two — killed, or its store failed the release — would leave them held
 * for good, counted nowhere and never handed out. So at every start the server looks for held
 * records that are still unclaimed and unconsumed, and for each of their rounds:
 *
 * - a round whose latest log entry is `completed` is released once a checkpoint covering that
 *   entry carries the cosignatures the server needs (witnesses cosign again when they reconnect;
 *   with `minCosignatures` 0 at once); until then it stays held, and it is tried again while the
 *   server runs;
 * - a round whose entry is `aborted` or `failed` was never acknowledged to anyone and never will
 *   be: its records are withdrawn (consumed while held, as the round's own close withdraws them),
 *   so they retire with the other used OTPs instead of staying for good;
 * - a round with no entry is withdrawn likewise when no other process can be running it (the
 *   `key_store` file, which this process holds locked) and it is not running here; on a store
 *   other servers may share (PostgreSQL) it could be one in flight there, so its records stay
 *   held (nothing ever hands them out).
 *
 * It never releases what the round runner would not have: the same entry, the same witnessing.
 */
import { describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import type { Logger } from "../logging.js";
import { parseRoundEntry } from "../protocol/log-entry.js";
import type { KeyStore } from "../store/types.js";
import type { TransparencyLog } from "./transparency-log.js";

export interface HeldReleaseDeps {
  store: KeyStore;
  log: TransparencyLog;
  /** Resolves true once entry `index` is witnessed, false after `timeoutMs` or when stopping. */
  whenWitnessed(index: number, timeoutMs: number): Promise<boolean>;
  logger: Logger;
  /** True once the server is stopping: no further attempt. */
  stopping(): boolean;
  /** How long one wait for witnesses lasts before the round is tried again (default 60 s). */
  retryMs?: number;
  /** Whether round `roundId` is running in this process now (its records are not left over). */
  running?(roundId: string): boolean;
  /** Whether no other process writes this store, so a round not logged is never going to be. */
  exclusive?: boolean;
}

/**
 * What the pass found: rounds released, still waiting for witnesses, never acknowledged and
 * withdrawn (their records consumed), and never acknowledged and left held (a round not logged on
 * a shared store).
 */
export interface HeldReleaseReport {
  released: string[];
  waiting: string[];
  withdrawn: string[];
  unacknowledged: string[];
}

/** The records that are held, not claimed and not consumed, by round. */
export async function heldRounds(store: KeyStore): Promise<Map<string, string[]>> {
  const rounds = new Map<string, string[]>();
  for (const record of await store.list({ claimed: false, consumed: false })) {
    if (record.held !== true) continue;
    const ids = rounds.get(record.roundId);
    if (ids === undefined) rounds.set(record.roundId, [record.id]);
    else ids.push(record.id);
  }
  return rounds;
}

/**
 * Finds the held rounds and releases those whose completed entry is witnessed; resolves once
 * every round is released, found never acknowledged, or the server stops. Never rejects: a
 * failure is logged and the round tried again after `retryMs`.
 */
export async function releaseHeldRounds(deps: HeldReleaseDeps): Promise<HeldReleaseReport> {
  const report: HeldReleaseReport = {
    released: [],
    waiting: [],
    withdrawn: [],
    unacknowledged: [],
  };
  let pending: { roundId: string; index: number }[];
  try {
    await deps.log.ready();
    pending = [];
    for (const [roundId, ids] of await heldRounds(deps.store)) {
      if (deps.running?.(roundId) === true) continue;
      const index = deps.log.indexOf(roundId);
      const [leaf] = index === undefined ? [] : await deps.log.entries(index, index + 1);
      const outcome = leaf === undefined ? undefined : roundOutcome(leaf);
      if (index !== undefined && outcome === "completed") {
        pending.push({ roundId, index });
      } else if (
        outcome === "aborted" ||
        outcome === "failed" ||
        (index === undefined && deps.exclusive === true)
      ) {
        // Never acknowledged, and never will be: consumed unseen, they retire like used OTPs.
        // All at once, so the store makes them durable together (a refill is up to 10,000). One
        // the round's own close withdrew meanwhile may have retired already.
        await Promise.all(
          ids.map((id) =>
            deps.store.consume(id).catch((error: unknown) => {
              if (!isDkeygenError(error, ErrorCodes.NOT_FOUND)) throw error;
              return false;
            }),
          ),
        );
        report.withdrawn.push(roundId);
        deps.logger.info(
          { roundId, outcome: outcome ?? "not logged", records: ids.length },
          "held records of a round that was never acknowledged were withdrawn",
        );
      } else {
        report.unacknowledged.push(roundId);
        deps.logger.info(
          { roundId, outcome: outcome ?? "not logged" },
          "held records of a round that was never acknowledged stay held (another server on this store may still log it)",
        );
      }
    }
  } catch (error) {
    deps.logger.error(
      { err: describeError(error) },
      "could not look for held records at start; they stay held until the next start",
    );
    return report;
  }
  const retryMs = deps.retryMs ?? 60_000;
  await Promise.all(
    pending.map(async ({ roundId, index }) => {
      while (!deps.stopping()) {
        if (await deps.whenWitnessed(index, retryMs)) {
          try {
            const count = await deps.store.releaseHeld(roundId);
            report.released.push(roundId);
            deps.logger.info({ roundId, records: count }, "held records released at start");
            return;
          } catch (error) {
            deps.logger.error(
              { roundId, err: describeError(error) },
              "held records could not be released; trying again",
            );
            await pause(retryMs, deps.stopping);
          }
        } else if (!deps.stopping()) {
          deps.logger.info({ roundId, index }, "held records wait for witnesses to cosign");
        }
      }
      report.waiting.push(roundId);
    }),
  );
  return report;
}

/** The outcome of a round entry; undefined for a threshold session's entry. */
function roundOutcome(leaf: Uint8Array): string | undefined {
  try {
    return parseRoundEntry(leaf).outcome;
  } catch {
    return undefined;
  }
}

/** Waits `ms`, or less when the server starts stopping (checked every 100 ms). */
async function pause(ms: number, stopping: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!stopping() && Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(100, end - Date.now())));
  }
}
