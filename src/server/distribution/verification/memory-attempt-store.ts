/**
 * The attempt store in memory (attempt-store.ts): right for one distribution server on the
 * key_store file. Several servers on one PostgreSQL store keep the counts in the database
 * instead (postgres-attempt-store.ts), with the same rules (attempt-rules.ts) and behaviour
 * (test/distribution/attempt-store-compliance.ts).
 */
import {
  type AttemptEntry,
  type AttemptLimits,
  abandonAttempt,
  beginAttempt,
  failAttempt,
  freshEntry,
  isIdle,
  succeedAttempt,
  unlockAttempt,
} from "./attempt-rules.js";
import type { AttemptStart, AttemptState, AttemptStore } from "./attempt-store.js";

export class MemoryAttemptStore implements AttemptStore {
  readonly #limits: AttemptLimits;
  readonly #entries = new Map<string, AttemptEntry>();
  #lastSweep = Number.NEGATIVE_INFINITY;

  constructor(options: { maxFailures: number; lockMs: number }) {
    this.#limits = { maxFailures: options.maxFailures, lockMs: options.lockMs };
  }

  begin(key: string, now: number): AttemptStart {
    const known = this.#entries.get(key);
    const entry = known ?? freshEntry(now);
    const start = beginAttempt(entry, now, this.#limits);
    if (known === undefined && !isIdle(entry)) {
      this.#entries.set(key, entry);
      this.#sweep(now);
    }
    return start;
  }

  fail(key: string, now: number): AttemptState {
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = freshEntry(now);
      this.#entries.set(key, entry);
    }
    return failAttempt(entry, now, this.#limits);
  }

  succeed(key: string): void {
    this.#end(key, succeedAttempt);
  }

  abandon(key: string): void {
    this.#end(key, abandonAttempt);
  }

  unlock(key: string): void {
    this.#end(key, unlockAttempt);
  }

  #end(key: string, step: (entry: AttemptEntry) => void): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    step(entry);
    if (isIdle(entry)) this.#entries.delete(key);
  }

  /** Forgets counts nobody has touched for a lock period, so the map cannot grow without bound. */
  #sweep(now: number): void {
    if (this.#entries.size < 10_000 || now - this.#lastSweep < 1_000) return;
    this.#lastSweep = now;
    for (const [key, entry] of this.#entries) {
      if (
        entry.pending === 0 &&
        entry.lockedUntil < now &&
        now - entry.touched > this.#limits.lockMs
      ) {
        this.#entries.delete(key);
      }
    }
  }
}
