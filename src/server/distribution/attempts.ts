/**
 * Lockout after failed verifications. Each subject (a requester's end user) gets `maxFailures`
 * wrong codes; the next failure locks that subject, and only that subject, until `lockMs` passes
 * or the requester unlocks it. A success clears the count. Keys are "requester\0subject", so one
 * relying service cannot lock out another's users, and an attacker guessing codes for one user
 * locks out only that user.
 *
 * This limiter keeps its counts in memory, which is right for one distribution server on the
 * key_store file; several servers on PostgreSQL will need the counts in the shared store.
 */

export interface AttemptState {
  locked: boolean;
  /** Failures left before the lock (0 when locked). */
  remaining: number;
  /** When locked: epoch milliseconds when the lock ends. */
  lockedUntil?: number;
}

export interface AttemptLimiter {
  check(key: string, now: number): AttemptState;
  fail(key: string, now: number): AttemptState;
  succeed(key: string): void;
  unlock(key: string): void;
}

interface Entry {
  failures: number;
  lockedUntil: number;
  touched: number;
}

export class MemoryAttemptLimiter implements AttemptLimiter {
  readonly #max: number;
  readonly #lockMs: number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: { maxFailures: number; lockMs: number }) {
    this.#max = options.maxFailures;
    this.#lockMs = options.lockMs;
  }

  check(key: string, now: number): AttemptState {
    const entry = this.#entries.get(key);
    if (!entry) return { locked: false, remaining: this.#max };
    if (entry.lockedUntil > now)
      return { locked: true, remaining: 0, lockedUntil: entry.lockedUntil };
    if (entry.lockedUntil !== 0) {
      // The lock has expired: a fresh start.
      this.#entries.delete(key);
      return { locked: false, remaining: this.#max };
    }
    return { locked: false, remaining: this.#max - entry.failures };
  }

  fail(key: string, now: number): AttemptState {
    const entry = this.#entries.get(key) ?? { failures: 0, lockedUntil: 0, touched: now };
    entry.failures++;
    entry.touched = now;
    if (entry.failures >= this.#max) entry.lockedUntil = now + this.#lockMs;
    this.#entries.set(key, entry);
    this.#sweep(now);
    return entry.lockedUntil > now
      ? { locked: true, remaining: 0, lockedUntil: entry.lockedUntil }
      : { locked: false, remaining: this.#max - entry.failures };
  }

  succeed(key: string): void {
    this.#entries.delete(key);
  }

  unlock(key: string): void {
    this.#entries.delete(key);
  }

  /** Forgets counts nobody has touched for a lock period, so the map cannot grow without bound. */
  #sweep(now: number): void {
    if (this.#entries.size < 10_000) return;
    for (const [key, entry] of this.#entries) {
      if (entry.lockedUntil < now && now - entry.touched > this.#lockMs) this.#entries.delete(key);
    }
  }
}
