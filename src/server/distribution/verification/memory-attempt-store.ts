/**
 * The attempt store in memory (attempt-store.ts): right for one distribution server on the
 * key_store file. Several servers on one PostgreSQL store keep the counts in the database
 * instead, with the same behaviour (test/distribution/attempt-store-compliance.ts).
 */
import type { AttemptStart, AttemptState, AttemptStore } from "./attempt-store.js";

interface Entry {
  failures: number;
  /** Attempts reserved and not yet ended. */
  pending: number;
  /** 0 when not locked. */
  lockedUntil: number;
  touched: number;
}

export class MemoryAttemptStore implements AttemptStore {
  readonly #max: number;
  readonly #lockMs: number;
  readonly #entries = new Map<string, Entry>();
  #lastSweep = Number.NEGATIVE_INFINITY;

  constructor(options: { maxFailures: number; lockMs: number }) {
    this.#max = options.maxFailures;
    this.#lockMs = options.lockMs;
  }

  begin(key: string, now: number): AttemptStart {
    let entry = this.#entries.get(key);
    if (entry && entry.lockedUntil !== 0 && entry.lockedUntil <= now) {
      // The lock has expired: a fresh start.
      entry.failures = 0;
      entry.lockedUntil = 0;
    }
    if (entry && entry.lockedUntil > now) {
      return { locked: true, busy: false, remaining: 0, lockedUntil: entry.lockedUntil };
    }
    const used = entry ? entry.failures + entry.pending : 0;
    if (used >= this.#max) return { locked: false, busy: true, remaining: 0 };
    if (!entry) {
      entry = { failures: 0, pending: 0, lockedUntil: 0, touched: now };
      this.#entries.set(key, entry);
      this.#sweep(now);
    }
    entry.pending++;
    entry.touched = now;
    return { locked: false, busy: false, remaining: this.#max - used };
  }

  fail(key: string, now: number): AttemptState {
    let entry = this.#entries.get(key);
    if (!entry) {
      // A failure without a reserved attempt (callers always begin first): still counted.
      entry = { failures: 0, pending: 0, lockedUntil: 0, touched: now };
      this.#entries.set(key, entry);
    }
    entry.pending = Math.max(0, entry.pending - 1);
    entry.failures++;
    entry.touched = now;
    if (entry.failures >= this.#max && entry.lockedUntil <= now) {
      entry.lockedUntil = now + this.#lockMs;
    }
    return entry.lockedUntil > now
      ? { locked: true, remaining: 0, lockedUntil: entry.lockedUntil }
      : { locked: false, remaining: this.#max - entry.failures };
  }

  succeed(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    entry.pending = Math.max(0, entry.pending - 1);
    entry.failures = 0;
    entry.lockedUntil = 0;
    this.#forgetIfIdle(key, entry);
  }

  abandon(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    entry.pending = Math.max(0, entry.pending - 1);
    this.#forgetIfIdle(key, entry);
  }

  unlock(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    entry.failures = 0;
    entry.lockedUntil = 0;
    this.#forgetIfIdle(key, entry);
  }

  #forgetIfIdle(key: string, entry: Entry): void {
    if (entry.pending === 0 && entry.failures === 0 && entry.lockedUntil === 0) {
      this.#entries.delete(key);
    }
  }

  /** Forgets counts nobody has touched for a lock period, so the map cannot grow without bound. */
  #sweep(now: number): void {
    if (this.#entries.size < 10_000 || now - this.#lastSweep < 1_000) return;
    this.#lastSweep = now;
    for (const [key, entry] of this.#entries) {
      if (entry.pending === 0 && entry.lockedUntil < now && now - entry.touched > this.#lockMs) {
        this.#entries.delete(key);
      }
    }
  }
}
