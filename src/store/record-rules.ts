/**
 * The record rules the embedded stores share (memory.ts, file.ts and the file's replay,
 * replay.ts): which event may happen to a record in which state. One function per event says
 * whether the rules allow it (undefined) or why not (a `Refusal`); `RecordCore` applies allowed
 * events to the index (record-index.ts). What a refusal means is the caller's: a live store
 * answers E_NOT_FOUND for an unknown record and `false` for a repeat (a second consumption, a
 * replayed TOTP step), while a replay reports any refusal as corruption at its line.
 *
 * | event          | refused when the record is …                                           |
 * |----------------|------------------------------------------------------------------------|
 * | add            | stored already                                                         |
 * | claim (by id)  | unknown, claimed already, or held                                      |
 * | consume        | unknown, or consumed already                                           |
 * | step           | unknown, or its last step is at or above the new one                  |
 * | lease          | unknown, or not claimable (owned, claimed, consumed, held, leased)     |
 * | release        | not a live lease (never leased, or claimed or consumed since)          |
 * | unhold (round) | the round has no held record                                           |
 * | retire         | unknown, or not due to retire at the retirement's time (retirePolicy)  |
 *
 * The PostgreSQL store keeps the same rules in SQL (postgres.ts, postgres-schema.ts); the
 * compliance suite holds all three to them.
 */
import { notFound } from "./inputs.js";
import { type Payload, RecordIndex, type RetirePolicy, type StepMark } from "./record-index.js";
import type { Claim, KeyRecord } from "./types.js";

export type { StepMark };

/** Why the rules refuse an event. */
export type Refusal =
  | { rule: "stored-twice"; id: string }
  | {
      rule: "unknown";
      id: string;
      event: "claims" | "consumes" | "uses a step of" | "leases" | "retires";
    }
  | { rule: "not-retirable"; id: string }
  | { rule: "claimed-twice"; id: string }
  | { rule: "claim-held"; id: string }
  | { rule: "consumed-twice"; id: string }
  | { rule: "step-not-above"; id: string; step: number; last: number }
  | { rule: "not-leasable"; id: string }
  | { rule: "not-leased"; id: string }
  | { rule: "nothing-held"; roundId: string };

/** A refusal as a replay reports it: the reason a line breaks the rules. */
export function describeRefusal(refusal: Refusal): string {
  switch (refusal.rule) {
    case "stored-twice":
      return `record ${refusal.id} appears a second time`;
    case "unknown":
      return `it ${refusal.event} record ${refusal.id}, not stored before`;
    case "claimed-twice":
      return `record ${refusal.id} is claimed a second time`;
    case "claim-held":
      return `it claims record ${refusal.id}, which is held`;
    case "consumed-twice":
      return `record ${refusal.id} is consumed a second time`;
    case "step-not-above":
      return (
        `it uses step ${refusal.step} of record ${refusal.id}, not above step ` +
        `${refusal.last} used before (a replayed or reordered step)`
      );
    case "not-leasable":
      return `it leases record ${refusal.id}, which is owned, claimed, consumed or leased already`;
    case "not-leased":
      return `it releases record ${refusal.id}, which is not leased (or was claimed or consumed since)`;
    case "not-retirable":
      return `it retires record ${refusal.id}, which is not due to retire then`;
    case "nothing-held":
      return (
        `it releases round ${refusal.roundId}, which has no held record (none put held, or ` +
        "released before)"
      );
  }
}

/** The purpose of pooled one-time passwords (the distribution server's OTP_PURPOSE). */
export const RETIRING_PURPOSE = "otp";

/** How long an OTP stays after its claim expires, so a late verification still hears
 * "expired" or "used" rather than "wrong code". */
export const RETIRE_GRACE_MS = 60_000;

/**
 * Which records retire — leave a store's memory for good — and when: a pooled OTP (no owner)
 * once its claim has expired, `graceMs` after the expiry, consumed or not; one consumed without
 * a claim (withdrawn), at its consumption — held or not: a pool refill's records withdrawn
 * before their round was released (not witnessed in time, or stored but never logged) are
 * never handed out, and would otherwise stay in memory for good. A held record not consumed
 * waits for its round's release. Nothing else ever retires: TOTP and HOTP enrollments, keys,
 * recovery codes and anything owned stay.
 */
export function retirePolicy(graceMs: number = RETIRE_GRACE_MS): RetirePolicy {
  return (record) => {
    if (record.purpose !== RETIRING_PURPOSE || record.owner !== undefined) return undefined;
    if (record.claim) return Date.parse(record.claim.expiresAt) + graceMs;
    if (record.consumedAt !== undefined) return Date.parse(record.consumedAt);
    return undefined;
  };
}

/** The retire rule a line is held to: due once the claim expired (no grace). */
const RETIRE_RULE = retirePolicy(0);

export function claimRule(id: string, record: KeyRecord | undefined): Refusal | undefined {
  if (!record) return { rule: "unknown", id, event: "claims" };
  if (record.claim) return { rule: "claimed-twice", id };
  if (record.held) return { rule: "claim-held", id };
  return undefined;
}

export function consumeRule(id: string, record: KeyRecord | undefined): Refusal | undefined {
  if (!record) return { rule: "unknown", id, event: "consumes" };
  if (record.consumedAt !== undefined) return { rule: "consumed-twice", id };
  return undefined;
}

/** RFC 6238 §5.2: a time step is accepted at most once, so only a greater step is recorded. */
export function stepRule(
  id: string,
  record: KeyRecord | undefined,
  step: number,
): Refusal | undefined {
  if (!record) return { rule: "unknown", id, event: "uses a step of" };
  if (record.lastStep !== undefined && step <= record.lastStep) {
    return { rule: "step-not-above", id, step, last: record.lastStep };
  }
  return undefined;
}

/** A record's last step, to put back with `RecordCore.undoStep` if recording a newer one fails. */
export function stepMark(record: KeyRecord): StepMark {
  const mark: StepMark = {};
  if (record.lastStep !== undefined) mark.step = record.lastStep;
  if (record.lastStepAt !== undefined) mark.at = record.lastStepAt;
  return mark;
}

/**
 * What a live store answers for an event the rules judged: true when it was allowed (and
 * applied), false for a repeat (consumed before, a replayed step). Throws E_NOT_FOUND for an
 * unknown record, and a plain Error for any other refusal: a live store decides only consume and
 * step by id, so another refusal is a bug in the store.
 */
export function liveAnswer(refusal: Refusal | undefined): boolean {
  if (refusal === undefined) return true;
  if (refusal.rule === "unknown") throw notFound(refusal.id);
  if (refusal.rule === "consumed-twice" || refusal.rule === "step-not-above") return false;
  mustApply(refusal);
  return false;
}

/** For a change the store decided is allowed: a refusal here is a bug in the store. */
export function mustApply(refusal: Refusal | undefined): void {
  if (refusal !== undefined) throw new Error(`key store: unexpected refusal ${refusal.rule}`);
}

/**
 * The records of an embedded store: the index (record-index.ts), changed only through the rules.
 * Its reads hand out the store's own objects (copy them for callers: inputs.ts `copyRecord`).
 */
export class RecordCore {
  /** The records and their indexes, to read (`get`, `list`, ...); change them only through the
   * methods below, so every change passes the rules. */
  readonly index: RecordIndex;

  /** `retireAt`: which records retire and when (`retirePolicy`); by default none do. */
  constructor(retireAt: RetirePolicy = () => undefined) {
    this.index = new RecordIndex(retireAt);
  }

  /** Retires record `id` at `at` (ms): refused unless its policy says it is due by then. */
  retire(id: string, at: number): Refusal | undefined {
    const record = this.index.get(id);
    if (!record) return { rule: "unknown", id, event: "retires" };
    // Judged without the grace, which is the writer's setting: any expired claim may retire.
    const due = RETIRE_RULE(record);
    if (due === undefined || due > at) return { rule: "not-retirable", id };
    this.index.remove(id);
    return undefined;
  }

  /** Records `claimNext` could take, leased ones included (a lease is claimed in order). */
  countClaimable(purpose: string): number {
    return this.index.countPoolable(purpose) + this.index.countReserved(purpose);
  }

  /** Adds a new record, with what the store keeps beside it (`RecordIndex.payload`). */
  add(record: KeyRecord, payload?: Payload): Refusal | undefined {
    if (this.index.get(record.id)) return { rule: "stored-twice", id: record.id };
    this.index.add(record, payload);
    return undefined;
  }

  /** Claims the oldest claimable (not leased) record of `purpose`, if any. */
  claimOldest(purpose: string, claim: Claim): KeyRecord | undefined {
    return this.index.claimOldest(purpose, claim);
  }

  claim(id: string, claim: Claim): Refusal | undefined {
    const refusal = claimRule(id, this.index.get(id));
    if (!refusal) this.index.setClaim(id, claim);
    return refusal;
  }

  consume(id: string, at: string): Refusal | undefined {
    const refusal = consumeRule(id, this.index.get(id));
    if (!refusal) this.index.setConsumed(id, at);
    return refusal;
  }

  useStep(id: string, step: number, at: string): Refusal | undefined {
    const refusal = stepRule(id, this.index.get(id), step);
    if (!refusal) this.index.setStep(id, step, at);
    return refusal;
  }

  hasHeld(roundId: string): boolean {
    return this.index.hasHeld(roundId);
  }

  /** Releases round `roundId`'s held records; refused when it has none. */
  releaseRound(roundId: string): { released: number } | Refusal {
    const released = this.index.releaseRound(roundId);
    return released === 0 ? { rule: "nothing-held", roundId } : { released };
  }

  /** Leases up to `max` of the oldest claimable records of `purpose`; their ids, oldest first. */
  leaseOldest(purpose: string, max: number): string[] {
    return this.index.reserve(purpose, max);
  }

  lease(id: string): Refusal | undefined {
    if (!this.index.get(id)) return { rule: "unknown", id, event: "leases" };
    return this.index.reserveById(id) ? undefined : { rule: "not-leasable", id };
  }

  /** Ends a live lease: the record is claimable again. */
  release(id: string): Refusal | undefined {
    if (!this.index.isReserved(id)) return { rule: "not-leased", id };
    this.index.unreserve(id);
    return undefined;
  }

  isLeased(id: string): boolean {
    return this.index.isReserved(id);
  }

  liveLeases(): string[] {
    return this.index.liveReservations();
  }

  /** Every live lease becomes void (its store stopped first): never claimable again. */
  voidLeases(): number {
    return this.index.voidReservations();
  }

  /** Undoes a claim whose write failed. */
  undoClaim(id: string): void {
    this.index.clearClaim(id);
  }

  /** Undoes a consumption whose write failed. */
  undoConsume(id: string): void {
    this.index.clearConsumed(id);
  }

  /** Undoes a step whose write failed; undo newest first. */
  undoStep(id: string, previous: StepMark): void {
    this.index.restoreStep(id, previous);
  }
}
