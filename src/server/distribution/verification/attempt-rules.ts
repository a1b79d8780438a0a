/**
 * The rules of verification attempts (attempt-store.ts) as pure steps on one key's entry, shared
 * by the memory store and the PostgreSQL one (which runs each step inside a transaction holding
 * the key's row lock): one set of rules, however the entry is kept.
 */
import type { AttemptStart, AttemptState } from "./attempt-store.js";

/** One lock key's state. */
export interface AttemptEntry {
  failures: number;
  /** Attempts reserved and not yet ended. */
  pending: number;
  /** 0 when not locked; else epoch milliseconds when the lock ends. */
  lockedUntil: number;
  /** When the entry last changed by `begin` or `fail` (epoch milliseconds). */
  touched: number;
}

export interface AttemptLimits {
  maxFailures: number;
  lockMs: number;
}

export const freshEntry = (now: number): AttemptEntry => ({
  failures: 0,
  pending: 0,
  lockedUntil: 0,
  touched: now,
});

/** An entry with nothing to remember: its key may be forgotten. */
export const isIdle = (e: AttemptEntry): boolean =>
  e.pending === 0 && e.failures === 0 && e.lockedUntil === 0;

/** Reserves an attempt unless the key is locked or has none left. */
export function beginAttempt(e: AttemptEntry, now: number, limits: AttemptLimits): AttemptStart {
  if (e.lockedUntil !== 0 && e.lockedUntil <= now) {
    // The lock has expired: a fresh start.
    e.failures = 0;
    e.lockedUntil = 0;
  }
  if (e.lockedUntil > now) {
    return { locked: true, busy: false, remaining: 0, lockedUntil: e.lockedUntil };
  }
  const used = e.failures + e.pending;
  if (used >= limits.maxFailures) return { locked: false, busy: true, remaining: 0 };
  e.pending++;
  e.touched = now;
  return { locked: false, busy: false, remaining: limits.maxFailures - used };
}

/** Ends a reserved attempt as a failure (one without a reservation still counts). */
export function failAttempt(e: AttemptEntry, now: number, limits: AttemptLimits): AttemptState {
  e.pending = Math.max(0, e.pending - 1);
  e.failures++;
  e.touched = now;
  if (e.failures >= limits.maxFailures && e.lockedUntil <= now) {
    e.lockedUntil = now + limits.lockMs;
  }
  return e.lockedUntil > now
    ? { locked: true, remaining: 0, lockedUntil: e.lockedUntil }
    : { locked: false, remaining: limits.maxFailures - e.failures };
}

/** Ends a reserved attempt as a success: the failures are forgotten. */
export function succeedAttempt(e: AttemptEntry): void {
  e.pending = Math.max(0, e.pending - 1);
  e.failures = 0;
  e.lockedUntil = 0;
}

/** Ends a reserved attempt that checked no code: not counted. */
export function abandonAttempt(e: AttemptEntry): void {
  e.pending = Math.max(0, e.pending - 1);
}

/** Lifts a lock and forgets the failures (attempts in progress stay reserved). */
export function unlockAttempt(e: AttemptEntry): void {
  e.failures = 0;
  e.lockedUntil = 0;
}
