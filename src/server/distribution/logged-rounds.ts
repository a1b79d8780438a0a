/**
 * Whether a round's entry is in the transparency log, read from the PostgreSQL store itself: the
 * OTP pool's `logged` check (otp-pool.ts) in a `dkeygen distributor`, which has no log of its own
 * (the key generation server keeps it and signs its checkpoints).
 *
 * Records stored held (PROTOCOL §10, §12.5) never need it: the server releases them only once
 * their round's entry is witnessed. It guards records stored before held records existed, which
 * the server handed out only when their round was logged; the distributor keeps that rule instead
 * of refusing them, so a store upgraded with such records serves them the same from every
 * process. A round's entry carries `"roundId":"<22 base64url characters>"` (PROTOCOL §15.1);
 * entries are never changed or removed (a trigger refuses it), so a round found stays found and
 * is remembered, and the newest entries are searched first (the rounds of records claimed now).
 */
import type { PostgresKeyStore } from "../../store/postgres.js";

const ROUND_ID = /^[A-Za-z0-9_-]{22}$/;

/** Rounds remembered as logged, at most; past it the set starts again (one query per round). */
const REMEMBERED = 10_000;

export function loggedInStore(store: PostgresKeyStore): (roundId: string) => Promise<boolean> {
  const known = new Set<string>();
  return async (roundId) => {
    if (known.has(roundId)) return true;
    if (!ROUND_ID.test(roundId)) return false;
    const member = Buffer.from(`"roundId":"${roundId}"`, "latin1");
    const found = await store.transaction((query) =>
      query(
        "SELECT idx FROM log_entries WHERE position($1::bytea IN leaf) > 0 ORDER BY idx DESC LIMIT 1",
        [member],
      ),
    );
    if (found.length === 0) return false;
    if (known.size >= REMEMBERED) known.clear();
    known.add(roundId);
    return true;
  };
}
