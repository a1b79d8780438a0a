/**
 * The state of verification attempts that must hold across processes: failure counts, attempts in
 * progress and lockouts, per lock key (verifier.ts makes the keys: kind, requester id, subject).
 * Each subject gets `maxFailures` wrong codes; the failure that reaches the limit locks that
 * subject, and only that subject, until `lockMs` passes or the requester unlocks it. A success
 * clears the count. Keys are per requester, so one relying service cannot lock out another's
 * users, and an attacker guessing codes for one user locks out only that user.
 *
 * Every method is one atomic step on one key: however many verifications of a subject run at
 * once, in this process or in others on the same store, at most `maxFailures` wrong codes are
 * checked between two locks. Methods may answer at once (memory) or later (a database); callers
 * await them either way. The behaviour every implementation must have is
 * test/distribution/attempt-store-compliance.ts.
 */

/** Values an implementation may answer synchronously (memory) or asynchronously (a database). */
export type Awaitable<T> = T | Promise<T>;

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
 * limit as if it had failed.
 */
export interface AttemptStore {
  /** Reserves an attempt unless the subject is locked or has none left (see AttemptStart). */
  begin(key: string, now: number): Awaitable<AttemptStart>;
  /** Ends a reserved attempt as a failure; the failure that reaches the limit locks. */
  fail(key: string, now: number): Awaitable<AttemptState>;
  /** Ends a reserved attempt as a success: the subject's failures are forgotten. */
  succeed(key: string): Awaitable<void>;
  /** Ends a reserved attempt that checked no code (an error): not counted. */
  abandon(key: string): Awaitable<void>;
  /** Lifts a lock and forgets the failures (attempts in progress stay reserved). */
  unlock(key: string): Awaitable<void>;
}
