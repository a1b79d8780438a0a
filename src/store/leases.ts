/**
 * The `key_store` file's claims acknowledged "reserved" (ClaimOptions; what the OTP pool makes):
 * a claim takes a record the store leased beforehand — a `lease` line reserving the next
 * `leaseSize` claimable records, durable before any of them is handed out, written ahead when half
 * is used — and its claim goes into one `claims` line per event-loop turn, not awaited. A crash
 * voids the leased records whose claims were not yet durable (replay.ts), so nothing is handed
 * out twice; a clean close releases the unclaimed rest (`release` lines).
 *
 * The store (file.ts) owns the file; this module only decides what to lease and claim, through
 * the record core's rules (record-rules.ts), and asks the store to write the lines.
 */

import type { LineRef } from "./compact-memory.js";
import {
  type ClaimEntry,
  claimEntry,
  claimsBody,
  type LogBody,
  leaseBody,
  MAX_CLAIMS_PER_LINE,
  MAX_LEASE_IDS,
} from "./log-format.js";
import { mustApply, type RecordCore } from "./record-rules.js";
import type { Claim, KeyRecord } from "./types.js";

export interface LineHooks {
  /** `line`: where the line is in the file, for a store that reads it back from there. */
  onDurable?(line: LineRef): void;
  onFailed?(): void;
}

/** What the leases need from their store. */
export interface LeaseStore {
  /** The store's record core (the one replay built). */
  core(): RecordCore;
  /** Encodes a line onto the chain and hands it to group commit, now. */
  appendLine(body: LogBody, hooks: LineHooks): Promise<void>;
  /** Throws the store's failure, if it has failed (or is closed). */
  assertWritable(): void;
  /** True once the store failed: nothing more is written. */
  failed(): boolean;
}

/** Records leased for one purpose, claimed in order. */
interface Lease {
  ids: string[];
  head: number;
  /** The lease line being written, if one is. */
  pending: Promise<void> | undefined;
}

/** Compact a lease's id array once this many taken ids lead it. */
const LEASE_COMPACT_AFTER = 1024;

export class LeasedClaims {
  readonly #store: LeaseStore;
  readonly #size: number;
  readonly #leases = new Map<string, Lease>();
  /** Claims made this turn of the event loop, written as one claims line after it. */
  #pending: ClaimEntry[] = [];
  #scheduled = false;

  /** `size`: records one lease line reserves. */
  constructor(store: LeaseStore, size: number) {
    this.#store = store;
    this.#size = size;
  }

  /**
   * A "reserved" claim: takes the next leased record, leasing more (and waiting) if none is. The
   * store's own record, claimed (copy it for the caller), or undefined when none is left.
   */
  async claim(purpose: string, claim: Claim): Promise<KeyRecord | undefined> {
    let lease = this.#leases.get(purpose);
    if (!lease) {
      lease = { ids: [], head: 0, pending: undefined };
      this.#leases.set(purpose, lease);
    }
    for (;;) {
      const record = this.#take(lease);
      if (record) {
        mustApply(this.#store.core().claim(record.id, claim));
        this.#claimLater(claimEntry(record.id, claim));
        if (lease.ids.length - lease.head < this.#size / 2) {
          this.#extend(purpose, lease)?.catch(() => {});
        }
        return record;
      }
      const extending = this.#extend(purpose, lease);
      if (!extending) return undefined;
      await extending;
      this.#store.assertWritable();
    }
  }

  /**
   * A durable claim of the oldest record leased for `purpose` (leased records are the oldest
   * claimable ones), decided synchronously: its claim goes into a claims line of its own, which
   * `durable` awaits. Undefined when this store holds no leased record of `purpose`.
   */
  claimDurable(
    purpose: string,
    claim: Claim,
  ): { record: KeyRecord; durable: Promise<void> } | undefined {
    const lease = this.#leases.get(purpose);
    const record = lease && this.#take(lease);
    if (!record) return undefined;
    mustApply(this.#store.core().claim(record.id, claim));
    // If the line fails the store fails, as for a reserved claim: the record stays claimed here
    // and is void after a restart, never handed out again.
    return { record, durable: this.#append(claimsBody([claimEntry(record.id, claim)]), {}) };
  }

  /** Writes the claims queued this turn now; the store calls it before any other line. */
  flush(): void {
    if (this.#pending.length === 0) return;
    const claims = this.#pending;
    this.#pending = [];
    this.#store.appendLine(claimsBody(claims), {}).catch(() => {});
  }

  /**
   * On close: hands the leased records no claim took back to the pool (release lines). Call it
   * after `flush` and once group commit drained.
   */
  async releaseAll(): Promise<void> {
    if (this.#store.failed()) return;
    const core = this.#store.core();
    const ids = core.liveLeases();
    this.#leases.clear();
    for (let from = 0; from < ids.length; from += MAX_LEASE_IDS) {
      const chunk = ids.slice(from, from + MAX_LEASE_IDS);
      try {
        await this.#append(leaseBody("release", chunk), {
          onDurable: () => {
            for (const id of chunk) mustApply(core.release(id));
          },
        });
      } catch {
        // The store failed (and said so); the records stay leased, void after a restart.
        return;
      }
    }
  }

  /**
   * Queues a claim for the claims line written after this turn of the event loop (one MAC and
   * one line for all the turn's claims). Any other line written before then flushes the queue
   * first, so the file keeps every event in order. Not awaited: the lease already ensures no crash
   * can hand the record out again. If the write fails, the store fails (group commit logs it once)
   * and the records stay claimed here, burned; after a restart they are void.
   */
  #claimLater(entry: ClaimEntry): void {
    this.#pending.push(entry);
    if (this.#pending.length >= MAX_CLAIMS_PER_LINE) {
      this.flush();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
  }

  #take(lease: Lease): KeyRecord | undefined {
    const core = this.#store.core();
    let found: KeyRecord | undefined;
    while (!found && lease.head < lease.ids.length) {
      const id = lease.ids[lease.head++]!;
      // Skipped: a leased record consumed by id since.
      if (core.isLeased(id)) found = core.index.get(id);
    }
    if (lease.head >= LEASE_COMPACT_AFTER && lease.head * 2 >= lease.ids.length) {
      lease.ids = lease.ids.slice(lease.head);
      lease.head = 0;
    }
    return found;
  }

  /** Writes a lease line for the next records of `purpose`, unless one is being written; the
   * promise of the line in flight, or undefined when there is nothing to lease. */
  #extend(purpose: string, lease: Lease): Promise<void> | undefined {
    if (lease.pending) return lease.pending;
    const core = this.#store.core();
    const ids = core.leaseOldest(purpose, this.#size);
    if (ids.length === 0) return undefined;
    const written = this.#append(leaseBody("lease", ids), {
      onDurable: () => {
        lease.ids.push(...ids);
      },
      onFailed: () => {
        for (const id of ids) mustApply(core.release(id));
      },
    });
    lease.pending = written.finally(() => {
      lease.pending = undefined;
    });
    return lease.pending;
  }

  #append(body: LogBody, hooks: LineHooks): Promise<void> {
    this.flush();
    return this.#store.appendLine(body, hooks);
  }
}
