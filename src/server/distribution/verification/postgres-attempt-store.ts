/**
 * The attempt store on PostgreSQL (attempt-store.ts), for several distribution servers on one
 * database: a subject is locked after the configured number of wrong codes in all of them
 * together, not in each. Each step is one transaction on the key's row (`verification_attempts`,
 * schema version 2: src/store/postgres-schema.ts) under `SELECT … FOR UPDATE`, running the same
 * rules as the memory store (attempt-rules.ts), so concurrent steps on one key, from any process,
 * are serialized by the database.
 *
 * One difference, because a process can die between `begin` and its end: a reservation on a key
 * nobody touched for RESERVATION_MS is dropped (counted as abandoned), so a crashed distributor
 * leaves a subject busy for at most that long, not for good. Keys are stored as SHA-256 of the
 * lock key: fixed size, and no subject in the clear. Rows nobody needs (no failures, no lock,
 * nothing in progress) are deleted at once; idle ones (no lock, nothing in progress, untouched
 * for a lock period) are swept at most once a second per process.
 */
import { createHash } from "node:crypto";
import type { PostgresKeyStore } from "../../../store/postgres.js";
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

/** A reservation older than this, on a key untouched since, is from a process that died. */
export const RESERVATION_MS = 60_000;

interface Row {
  failures: number;
  pending: number;
  locked_until: string;
  touched: string;
}

const keyHash = (key: string) => createHash("sha256").update(key, "utf8").digest();

export class PostgresAttemptStore implements AttemptStore {
  readonly #store: PostgresKeyStore;
  readonly #limits: AttemptLimits;
  readonly #clock: () => number;
  #lastSweep = Number.NEGATIVE_INFINITY;

  /** `store` must be open (its schema at version 2 or later); `clock` dates the ends of attempts. */
  constructor(
    store: PostgresKeyStore,
    options: { maxFailures: number; lockMs: number; clock?: () => number },
  ) {
    this.#store = store;
    this.#limits = { maxFailures: options.maxFailures, lockMs: options.lockMs };
    this.#clock = options.clock ?? Date.now;
  }

  async begin(key: string, now: number): Promise<AttemptStart> {
    const start = await this.#step(key, now, true, (e) => beginAttempt(e, now, this.#limits));
    await this.#sweep(now);
    return start!;
  }

  async fail(key: string, now: number): Promise<AttemptState> {
    return (await this.#step(key, now, true, (e) => failAttempt(e, now, this.#limits)))!;
  }

  async succeed(key: string): Promise<void> {
    await this.#step(key, this.#clock(), false, succeedAttempt);
  }

  async abandon(key: string): Promise<void> {
    await this.#step(key, this.#clock(), false, abandonAttempt);
  }

  async unlock(key: string): Promise<void> {
    await this.#step(key, this.#clock(), false, unlockAttempt);
  }

  /**
   * Runs `rule` on the key's entry inside one transaction holding its row lock, and writes the
   * entry back (or deletes it when idle). Without `create`, a key with no row is left alone.
   */
  #step<T>(
    key: string,
    now: number,
    create: boolean,
    rule: (entry: AttemptEntry) => T,
  ): Promise<T | undefined> {
    const hash = keyHash(key);
    return this.#store.transaction(async (query) => {
      // With `create`, one statement makes the row or locks the one there: an insert followed by
      // a separate SELECT … FOR UPDATE could find nothing, when another process's step deleted
      // the row (idle) in between — that was a 500, and for `fail` an uncounted failure.
      const [row] = await query<Row & Record<string, unknown>>(
        create
          ? "INSERT INTO verification_attempts AS a (key_hash, touched) VALUES ($1, $2) " +
              "ON CONFLICT (key_hash) DO UPDATE SET touched = a.touched " +
              "RETURNING failures, pending, locked_until, touched"
          : "SELECT failures, pending, locked_until, touched FROM verification_attempts WHERE key_hash = $1 FOR UPDATE",
        create ? [hash, now] : [hash],
      );
      if (row === undefined) return undefined;
      const entry: AttemptEntry = {
        ...freshEntry(Number(row.touched)),
        failures: row.failures,
        pending: row.pending,
        lockedUntil: Number(row.locked_until),
      };
      if (entry.pending > 0 && now - entry.touched > RESERVATION_MS) entry.pending = 0;
      const result = rule(entry);
      if (isIdle(entry)) {
        await query("DELETE FROM verification_attempts WHERE key_hash = $1", [hash]);
      } else {
        await query(
          "UPDATE verification_attempts SET failures = $2, pending = $3, locked_until = $4, touched = $5 WHERE key_hash = $1",
          [hash, entry.failures, entry.pending, entry.lockedUntil, entry.touched],
        );
      }
      return result;
    });
  }

  /** Deletes rows of keys that are idle: no lock, nothing in progress, untouched a lock period. */
  async #sweep(now: number): Promise<void> {
    if (now - this.#lastSweep < 1_000) return;
    this.#lastSweep = now;
    await this.#store.transaction((query) =>
      query(
        "DELETE FROM verification_attempts WHERE pending = 0 AND locked_until < $1 AND touched < $2",
        [now, now - this.#limits.lockMs],
      ),
    );
  }
}
