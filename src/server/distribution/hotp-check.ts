/**
 * HOTP verification of an HOTP enrollment (RFC 4226 §7.2 look-ahead, §7.4 resynchronisation;
 * docs/PROTOCOL.md §12.6). The next counter an enrollment expects is its record's `lastStep` + 1
 * (its public `counter` before any code was accepted). A code is accepted when it is the HOTP value
 * of one of the `window` + 1 counters next .. next + window; the store then records that counter
 * with `useStep` (atomic, durable, only ever forward), so it and every counter before it never
 * verify again. The code of the counter last accepted is answered `replayed`, any older one
 * `invalid`.
 *
 * Auto-resynchronisation, as privacyIDEA's AutoResync: a code beyond the window but within
 * next + window + 1 .. next + resyncWindow is refused, and its counter c remembered (per
 * requester and account, in memory, for `resyncMs`); when the next code checked is the value of
 * c + 1, it is accepted and the counter moves to c + 1. Another code beyond the window replaces
 * the remembered one. A remembered counter is not a used one: nothing is written for it.
 */
import { hotpCode, type OtpAlgorithm, sameCode, verifyHotp } from "../../derive/hotp.js";
import type { KeyRecord, KeyStore } from "../../store/types.js";

export interface HotpWindows {
  /** Counters after the expected one a code may be from (default 10). */
  window: number;
  /** How far ahead a first resynchronisation code may be (default 100; ≤ window: no resync). */
  resyncWindow: number;
  /** How long a first resynchronisation code waits for its successor (default 5 min). */
  resyncMs: number;
}

export const DEFAULT_HOTP_WINDOWS: HotpWindows = {
  window: 10,
  resyncWindow: 100,
  resyncMs: 300_000,
};

interface Pending {
  recordId: string;
  counter: number;
  expiresAt: number;
}

const MAX_PENDING = 10_000;

/** The first codes of resynchronisations in progress, by lock key. */
export class HotpResync {
  readonly #pending = new Map<string, Pending>();

  take(key: string, recordId: string, now: number): number | undefined {
    const pending = this.#pending.get(key);
    this.#pending.delete(key);
    return pending && pending.recordId === recordId && now < pending.expiresAt
      ? pending.counter
      : undefined;
  }

  remember(key: string, pending: Pending, now: number): void {
    if (this.#pending.size >= MAX_PENDING) {
      for (const [k, p] of this.#pending) if (p.expiresAt <= now) this.#pending.delete(k);
      // Still full: the oldest goes (Map order is insertion order).
      if (this.#pending.size >= MAX_PENDING)
        this.#pending.delete(this.#pending.keys().next().value!);
    }
    this.#pending.delete(key);
    this.#pending.set(key, pending);
  }

  forget(key: string): void {
    this.#pending.delete(key);
  }
}

/** The counter `record` expects next. */
export function nextCounter(record: KeyRecord): number {
  const initial = Number(record.public.counter ?? 0);
  return record.lastStep === undefined ? initial : Math.max(initial, record.lastStep + 1);
}

/**
 * Checks `code` against HOTP enrollment `record` (whose shared secret is `secret`), recording the
 * counter it is accepted at. `key` is the verification's lock key (one resync per account).
 */
export async function checkHotp(
  store: KeyStore,
  record: KeyRecord,
  secret: Uint8Array,
  code: string,
  context: { key: string; now: number; windows: HotpWindows; resync: HotpResync },
): Promise<"valid" | "invalid" | "replayed"> {
  const { key, now, windows, resync } = context;
  const options = {
    algorithm: record.public.algorithm as OtpAlgorithm,
    digits: record.public.digits as number,
  };
  const next = nextCounter(record);
  // Counters stay safe integers (the store's steps are); none beyond 2^53 − 1 is tried.
  const room = (ahead: number) => Math.max(-1, Math.min(ahead, Number.MAX_SAFE_INTEGER - next));
  const accept = async (counter: number) =>
    (await store.useStep(record.id, counter, new Date(now))) ? "valid" : "replayed";

  const lookAhead = room(windows.window);
  const inWindow = lookAhead < 0 ? null : verifyHotp(secret, code, next, { ...options, lookAhead });
  if (inWindow !== null) {
    resync.forget(key);
    return accept(Number(inWindow));
  }
  const first = resync.take(key, record.id, now);
  if (
    first !== undefined &&
    first + 1 > next &&
    first + 1 <= Number.MAX_SAFE_INTEGER &&
    sameCode(hotpCode(secret, first + 1, options), code)
  ) {
    return accept(first + 1);
  }
  // The code last accepted, again: named a replay (older counters are simply wrong).
  if (record.lastStep !== undefined && sameCode(hotpCode(secret, record.lastStep, options), code)) {
    return "replayed";
  }
  const start = next + windows.window + 1;
  const span = room(windows.resyncWindow) - windows.window - 1;
  if (span >= 0 && start <= Number.MAX_SAFE_INTEGER) {
    const far = verifyHotp(secret, code, start, { ...options, lookAhead: span });
    if (far !== null) {
      resync.remember(
        key,
        { recordId: record.id, counter: Number(far), expiresAt: now + windows.resyncMs },
        now,
      );
    }
  }
  return "invalid";
}
