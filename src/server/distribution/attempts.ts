/**
 * Lockout after failed verifications. Each subject (a requester's end user) gets `maxFailures`
 * wrong codes; the last of them locks that subject, and only that subject, until `lockMs` passes
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

/** What `begin` answers: an attempt was reserved, or why not. */
export interface AttemptStart extends AttemptState {
  /**
   * True when the subject is not locked but every attempt it has left is already in progress
   * (concurrent verifications): this one is refused, so concurrency cannot buy extra guesses.
   */
  busy: boolean;
}

/**
 * Verifications reserve an attempt before any work that may wait (a store read, a write) and end
 * it with exactly one of `fail`, `succeed` or `abandon`. An attempt in progress counts against the
 * limit as if it had failed, so however many verifications of one subject run at once, at most
 * `maxFailures` wrong codes are ever checked between two locks.
 */
export interface AttemptLimiter {
  /** Reserves an attempt unless the subject is locked or has none left (see AttemptStart). */
  begin(key: string, now: number): AttemptStart;
  /** Ends a reserved attempt as a failure; the failure that reaches the limit locks. */
  fail(key: string, now: number): AttemptState;
  /** Ends a reserved attempt as a success: the subject's failures are forgotten. */
  succeed(key: string): void;
  /** Ends a reserved attempt that checked no code (an error): not counted. */
  abandon(key: string): void;
  /** Lifts a lock and forgets the failures (attempts in progress stay reserved). */
  unlock(key: string): void;
}

interface Entry {
  failures: number;
  /** Attempts reserved and not yet ended. */
  pending: number;
  /** 0 when not locked. */
  lockedUntil: number;
  touched: number;
}

export class MemoryAttemptLimiter implements AttemptLimiter {
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
