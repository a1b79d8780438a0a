/**
 * The in-memory index every embedded store keeps: records by id, all ids in id (= creation)
 * order, and per purpose a pool of records that may still be handed out, so `claimNext` takes the
 * oldest one in O(1) amortised instead of scanning the store.
 *
 * More indexes keep lookups by owner, by subject (a record made for a subject, or claimed for one),
 * by (owner, subject) and by (requester, subject) in claim order bounded by the records they find,
 * so verifying one user's code reads neither every OTP in the store nor that user's whole history,
 * and finding an account's TOTP or HOTP enrollment (owner and subject) reads only that owner's
 * records for it, however many OTPs other requesters claimed for the same subject. Only owned
 * records are in the owner indexes: a pooled OTP (no owner) costs them nothing.
 *
 * A record is *poolable* when it has no owner, no claim, no consumption, is not held and has no
 * reservation. Held records (KeyRecord.held) are indexed by round, and `releaseRound` releases a
 * round's together, putting those still open in their pools in id order. A
 * reservation (a file store's lease, ClaimOptions "reserved") takes poolable records out of the
 * pool for one store to claim by id; a reserved record that is claimed or consumed stops being
 * reserved, `unreserve` returns one to the pool, and `voidReservations` (a replay's end: the store
 * that reserved them stopped without claiming them) leaves them out of every pool for good.
 *
 * The pool is a sorted
 * array with a read head; records that stop being poolable (claimed or consumed by id) are left in
 * place and skipped when the head reaches them, which keeps every change O(1). A rolled-back claim
 * or consumption puts its record back in order, so "oldest first" survives a failed write.
 *
 * The index holds its own object per record (`slotOf`: the record's fields, and the index's
 * bookkeeping beside them under symbol keys); stores hand callers copies (inputs.ts `copyRecord`).
 * It never deletes a property of one: a field that goes away (a released `held`, an undone claim,
 * consumption or step) is set to undefined, which readers and `copyRecord` treat as absent. V8 14
 * (Node 26) turns an object that loses a property into a dictionary (≈450 B more per record);
 * Node 20's V8 undid the last property's transition instead.
 */
import type { Claim, KeyRecord, ListQuery } from "./types.js";

/** When a record may leave the index (ms since the epoch), or undefined for never. */
export type RetirePolicy = (record: KeyRecord) => number | undefined;

/** A record's last step before a `setStep`, so a failed write can put it back. */
export interface StepMark {
  step?: number;
  at?: string;
}

/** The index's bookkeeping on each record it holds, under symbol keys: `copyRecord` copies only
 * a record's own fields and JSON leaves symbols out, so it never reaches a caller. */
const PAYLOAD = Symbol("payload");
/**
 * What a store keeps beside a record (the file store: its sealed secret part, packed, or the
 * number of its part of its round's secret: a small integer, no allocation).
 */
export type Payload = string | number;
const FLAGS = Symbol("flags");
/** In FLAGS: the id sits in its purpose's pool at or after the head. */
const QUEUED = 1;
/** In FLAGS: reserved (live, or void once its store stopped): never poolable while set. */
const RESERVED = 2;

/**
 * A record as the index holds it: the record's fields and, beside them, what the store keeps
 * with it (PAYLOAD; the file store: its sealed secret, packed) and the index's flags. One object
 * per record, not a record and a slot pointing at it.
 */
type Slot = KeyRecord & { [PAYLOAD]: Payload | undefined; [FLAGS]: number };

/**
 * The index's own object for `record`, made by one literal so every pooled OTP has one shape
 * with its fields in the object: the ones an OTP may get later (held, claim, consumedAt) have
 * their place from the start, undefined until set, instead of a property array added beside it.
 * The rarer ones (owner, subject, holders, steps) are added only when set.
 */
function slotOf(record: KeyRecord, payload: Payload | undefined): Slot {
  const slot: Slot = {
    id: record.id,
    purpose: record.purpose,
    createdAt: record.createdAt,
    roundId: record.roundId,
    participants: record.participants,
    algorithm: record.algorithm,
    public: record.public,
    held: record.held,
    claim: record.claim,
    consumedAt: record.consumedAt,
    [PAYLOAD]: payload,
    [FLAGS]: 0,
  };
  if (record.owner !== undefined) slot.owner = record.owner;
  if (record.subject !== undefined) slot.subject = record.subject;
  if (record.holders !== undefined) slot.holders = record.holders;
  if (record.lastStep !== undefined) slot.lastStep = record.lastStep;
  if (record.lastStepAt !== undefined) slot.lastStepAt = record.lastStepAt;
  return slot;
}

interface Pool {
  ids: string[];
  head: number;
  /** Poolable records of this purpose (the pool array may also hold stale ids). */
  count: number;
}

function claimantKey(requester: string, subject: string): string {
  return `${requester}\u0000${subject}`;
}

function ownedKey(owner: string, subject: string): string {
  return `${owner}\u0000${subject}`;
}

/** Compact a pool's array once this many ids before the head are dead weight. */
const COMPACT_AFTER = 1024;
/**
 * Cut an id list down once this many of its ids are removed and they are at least half of it.
 * Small: there is a list per subject and per (requester, subject), each holding one or two live
 * OTPs while its subject is in use, so a list that waited for 1024 removed ids kept up to 1024
 * retired ids per subject (a soak at full rate over 100,000 subjects grew the heap by ≈ 50 B per
 * request for the hour it ran).
 */
export const LIST_COMPACT_AFTER = 16;

function isOpen(record: KeyRecord): boolean {
  return (
    record.owner === undefined &&
    record.claim === undefined &&
    record.consumedAt === undefined &&
    record.held === undefined
  );
}

function isPoolable(slot: Slot): boolean {
  return (slot[FLAGS] & RESERVED) === 0 && isOpen(slot);
}

/**
 * An id list that records leave from the front, as retired OTPs do (oldest first, mostly): a
 * removed id is left in place and skipped by readers (`has` says which are still there), the
 * read head moves past removed ids at the front (letting go of them: the slots before the head
 * hold ""), and the array is cut down once the dead part is at least half of it and at least
 * LIST_COMPACT_AFTER. So every change is O(1) amortised however long the list, and a list holds
 * at most about twice its live ids plus LIST_COMPACT_AFTER. Exported for its tests.
 */
export class IdList {
  ids: string[] = [];
  /** A claimant list's requester and subject, shared by its claims. */
  names: [string, string] | undefined;
  head = 0;
  /** Removed ids still in the array after the head. */
  stale = 0;

  /** Ids still in the list (present ones only, at or after the head). */
  get length(): number {
    return this.ids.length - this.head - this.stale;
  }

  /** Inserts `id` in ascending order (at the end when it is the greatest, the usual case). */
  insertSorted(id: string): void {
    insertSorted(this.ids, id, this.head);
  }

  push(id: string): void {
    this.ids.push(id);
  }

  /** Counts one id as removed (call it once `has` says it is gone); `has` tells which are. */
  removed(has: (id: string) => boolean): void {
    this.stale++;
    while (this.head < this.ids.length && !has(this.ids[this.head]!)) {
      this.stale--;
      this.ids[this.head] = "";
      this.head++;
    }
    if (
      this.head + this.stale >= LIST_COMPACT_AFTER &&
      (this.head + this.stale) * 2 >= this.ids.length
    ) {
      this.ids = this.ids.slice(this.head).filter(has);
      this.head = 0;
      this.stale = 0;
    }
  }

  /** Removes `id` outright (undoing a change), wherever it is. */
  take(id: string): void {
    const at = this.ids.lastIndexOf(id);
    if (at >= this.head) this.ids.splice(at, 1);
  }

  /** The present ids, in list order (the array itself when none is stale). */
  live(has: (id: string) => boolean): readonly string[] {
    if (this.stale === 0) return this.head === 0 ? this.ids : this.ids.slice(this.head);
    const out: string[] = [];
    for (let i = this.head; i < this.ids.length; i++) {
      const id = this.ids[i]!;
      if (has(id)) out.push(id);
    }
    return out;
  }

  /** The last `count` present ids, in list order. */
  last(count: number, has: (id: string) => boolean): string[] {
    const out: string[] = [];
    for (let i = this.ids.length - 1; i >= this.head && out.length < count; i--) {
      const id = this.ids[i]!;
      if (has(id)) out.push(id);
    }
    return out.reverse();
  }
}

/** Adds `id` to the ascending id list `key` names in `index`, making the list if needed. */
function indexUnder(index: Map<string, IdList>, key: string, id: string): void {
  let ids = index.get(key);
  if (!ids) {
    ids = new IdList();
    index.set(key, ids);
  }
  ids.insertSorted(id);
}

/** Inserts `id` into the ascending array `ids` within [from, ids.length). */
function insertSorted(ids: string[], id: string, from = 0): void {
  const last = ids[ids.length - 1];
  if (ids.length === from || (last !== undefined && last < id)) {
    ids.push(id);
    return;
  }
  let lo = from;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  ids.splice(lo, 0, id);
}

export class RecordIndex {
  readonly #slots = new Map<string, Slot>();
  readonly #byPurpose = new Map<string, IdList>();
  readonly #pools = new Map<string, Pool>();
  readonly #byOwner = new Map<string, IdList>();
  /** Records made for a subject, and records claimed for one (a record has at most one). */
  readonly #bySubject = new Map<string, IdList>();
  /** Per (owner, subject), the owner's records for that subject (made for it, or claimed for it
   * should an owned record ever be claimed): a list naming both reads no one else's. */
  readonly #byOwned = new Map<string, IdList>();
  /** Per (requester, subject), the ids claimed by that requester for that subject, in claim
   * order: a verification reads the latest few without walking the subject's history. */
  readonly #byClaimant = new Map<string, IdList>();
  /** Per purpose, the live reservations: reserved, neither claimed nor consumed, not void. */
  readonly #reserved = new Map<string, Set<string>>();
  /** Per round, the ids of its records still held (consumed ones included). */
  readonly #held = new Map<string, IdList>();
  /**
   * Records due to retire (leave the index for good), bucketed by the second they are due in:
   * an OTP claimed (due when its claim expires, plus the store's grace) or consumed unclaimed
   * (due at once). Candidates only: `dueForRetirement` checks each against its record again.
   */
  readonly #retiring = new Map<number, string[]>();
  #newest: string | undefined;
  #lastClaim: Claim | undefined;
  readonly #has = (id: string): boolean => this.#slots.has(id);

  readonly #retireAt: RetirePolicy;

  /** `retireAt`: when a record may leave the index for good (ms since the epoch), or undefined
   * for never; asked each time a record is claimed or consumed. None retire by default. */
  constructor(retireAt: RetirePolicy = () => undefined) {
    this.#retireAt = retireAt;
  }

  get size(): number {
    return this.#slots.size;
  }

  /**
   * The records due to retire at `now` (ms), oldest due first, taken off the schedule: each is
   * held, and its policy says it retires at or before `now`. The caller retires them (`remove`)
   * or puts back those it cannot retire yet (`scheduleRetirement`).
   */
  dueForRetirement(now: number): string[] {
    // An id may be on the schedule twice (claimed, then consumed): it is due once.
    const due = new Set<string>();
    const last = Math.floor(now / 1000);
    const seconds = [...this.#retiring.keys()].filter((second) => second <= last);
    for (const second of seconds.sort((a, b) => a - b)) {
      const ids = this.#retiring.get(second)!;
      // Taken off first: an id not due yet goes back under the same second, seen next time.
      this.#retiring.delete(second);
      for (const id of ids) {
        const record = this.#slots.get(id);
        if (!record) continue;
        const at = this.#retireAt(record);
        if (at === undefined) continue;
        if (at <= now) due.add(id);
        else this.scheduleRetirement(id, at);
      }
    }
    return [...due];
  }

  /** Puts `id` on the retirement schedule for `at` (ms). */
  scheduleRetirement(id: string, at: number): void {
    const second = Math.floor(at / 1000);
    const ids = this.#retiring.get(second);
    if (ids) ids.push(id);
    else this.#retiring.set(second, [id]);
  }

  /**
   * Removes a record from the index for good (it retired: nothing may name it again). Returns
   * the removed record, or undefined for an unknown id.
   */
  remove(id: string): KeyRecord | undefined {
    const slot = this.#slots.get(id);
    if (!slot) return undefined;
    const record = slot;
    if (isPoolable(slot)) this.#pools.get(record.purpose)!.count--;
    this.#dropReservation(slot);
    this.#slots.delete(id);
    this.#unlist(this.#byPurpose, record.purpose);
    if (record.owner !== undefined) this.#unlist(this.#byOwner, record.owner);
    if (record.subject !== undefined) this.#unlist(this.#bySubject, record.subject);
    if (record.owner !== undefined && record.subject !== undefined) {
      this.#unlist(this.#byOwned, ownedKey(record.owner, record.subject));
    }
    const claim = record.claim;
    if (claim) {
      if (claim.subject !== record.subject) {
        this.#unlist(this.#bySubject, claim.subject);
        if (record.owner !== undefined) {
          this.#unlist(this.#byOwned, ownedKey(record.owner, claim.subject));
        }
      }
      this.#unlist(this.#byClaimant, claimantKey(claim.requester, claim.subject));
    }
    if (record.held === true) this.#unlist(this.#held, record.roundId);
    return record;
  }

  #unlist(index: Map<string, IdList>, key: string): void {
    const ids = index.get(key);
    if (!ids) return;
    ids.removed(this.#has);
    if (ids.length === 0) index.delete(key);
  }

  #scheduleIfRetiring(record: KeyRecord): void {
    const at = this.#retireAt(record);
    if (at !== undefined) this.scheduleRetirement(record.id, at);
  }

  /** The index's own record object (not a copy), or undefined. */
  get(id: string): KeyRecord | undefined {
    return this.#slots.get(id);
  }

  /** The greatest id held, if any. */
  get newestId(): string | undefined {
    return this.#newest;
  }

  /** What the store put beside record `id` (`add`), or undefined. */
  payload(id: string): Payload | undefined {
    return this.#slots.get(id)?.[PAYLOAD];
  }

  /** Adds a new record (its id must be new). The index keeps its own object for it (`slotOf`:
   * the same field values, none copied); later changes are made to that one, not to `record`. */
  add(record: KeyRecord, payload?: Payload): void {
    if (this.#slots.has(record.id)) throw new Error(`RecordIndex: duplicate id ${record.id}`);
    const slot = slotOf(record, payload);
    this.#slots.set(record.id, slot);
    if (this.#newest === undefined || record.id > this.#newest) this.#newest = record.id;
    indexUnder(this.#byPurpose, record.purpose, record.id);
    if (record.owner !== undefined) indexUnder(this.#byOwner, record.owner, record.id);
    const subject = record.subject ?? record.claim?.subject;
    if (subject !== undefined) indexUnder(this.#bySubject, subject, record.id);
    if (record.owner !== undefined && subject !== undefined) {
      indexUnder(this.#byOwned, ownedKey(record.owner, subject), record.id);
    }
    if (record.held === true) indexUnder(this.#held, record.roundId, record.id);
    if (isPoolable(slot)) this.#enqueue(slot);
  }

  /** True while round `roundId` has held records. */
  hasHeld(roundId: string): boolean {
    return this.#held.has(roundId);
  }

  /**
   * Releases round `roundId`'s held records: they stop being held, and those still open join
   * their pools in id order. Returns how many were released (0 if none was held).
   */
  releaseRound(roundId: string): number {
    const ids = this.#held.get(roundId);
    if (!ids) return 0;
    this.#held.delete(roundId);
    for (const id of ids.live(this.#has)) {
      const slot = this.#slot(id);
      slot.held = undefined;
      if (isPoolable(slot)) this.#enqueue(slot);
    }
    return ids.length;
  }

  /**
   * Records matching `query`, oldest first (the store's own objects). Reads only the narrowest
   * index the query names: an owner's records for a subject, a subject's, an owner's, a
   * purpose's, or else all.
   */
  list(query: ListQuery = {}): KeyRecord[] {
    const ids =
      query.latestClaims !== undefined
        ? this.#latestClaims(query.claimedBy!, query.subject!, query.latestClaims)
        : query.subject !== undefined && query.owner !== undefined
          ? this.#byOwned.get(ownedKey(query.owner, query.subject))?.live(this.#has)
          : query.subject !== undefined
            ? this.#bySubject.get(query.subject)?.live(this.#has)
            : query.owner !== undefined
              ? this.#byOwner.get(query.owner)?.live(this.#has)
              : query.purpose !== undefined
                ? this.#byPurpose.get(query.purpose)?.live(this.#has)
                : this.#allIds();
    const limit = query.limit ?? Number.POSITIVE_INFINITY;
    const out: KeyRecord[] = [];
    for (const id of ids ?? []) {
      if (out.length >= limit) break;
      const record = this.#slots.get(id)!;
      if (query.purpose !== undefined && record.purpose !== query.purpose) continue;
      if (query.owner !== undefined && record.owner !== query.owner) continue;
      if (query.claimed !== undefined && (record.claim !== undefined) !== query.claimed) continue;
      if (query.claimedBy !== undefined && record.claim?.requester !== query.claimedBy) continue;
      if (
        query.subject !== undefined &&
        record.subject !== query.subject &&
        record.claim?.subject !== query.subject
      ) {
        continue;
      }
      if (query.consumed !== undefined && (record.consumedAt !== undefined) !== query.consumed) {
        continue;
      }
      out.push(record);
    }
    return out;
  }

  /** Every id in id order: the purposes' lists merged (only a query naming nothing reads it). */
  #allIds(): string[] {
    const ids: string[] = [];
    for (const list of this.#byPurpose.values()) {
      for (const id of list.live(this.#has)) ids.push(id);
    }
    return this.#byPurpose.size > 1 ? ids.sort() : ids;
  }

  /** The ids of `requester`'s `count` latest claims for `subject`, oldest claim first. */
  #latestClaims(requester: string, subject: string, count: number): string[] {
    const claims = this.#byClaimant.get(claimantKey(requester, subject));
    return count === 0 || !claims ? [] : claims.last(count, this.#has);
  }

  /** Claims the oldest poolable record of `purpose`, or returns undefined when none is left. */
  claimOldest(purpose: string, claim: Claim): KeyRecord | undefined {
    const pool = this.#pools.get(purpose);
    if (!pool || pool.count === 0) return undefined;
    while (pool.head < pool.ids.length) {
      const slot = this.#slots.get(pool.ids[pool.head]!);
      pool.head++;
      if (!slot) continue; // retired since it left the pool
      slot[FLAGS] &= ~QUEUED;
      if (isPoolable(slot)) {
        this.#compact(pool);
        this.setClaim(slot.id, claim);
        return slot;
      }
    }
    this.#compact(pool);
    return undefined;
  }

  /**
   * Reserves up to `max` of the oldest poolable records of `purpose` (fewer when fewer are left);
   * returns their ids, oldest first.
   */
  reserve(purpose: string, max: number): string[] {
    const pool = this.#pools.get(purpose);
    const ids: string[] = [];
    if (!pool) return ids;
    while (ids.length < max && pool.count > 0 && pool.head < pool.ids.length) {
      const slot = this.#slots.get(pool.ids[pool.head]!);
      pool.head++;
      if (!slot) continue; // retired since it left the pool
      slot[FLAGS] &= ~QUEUED;
      if (isPoolable(slot)) {
        this.#markReserved(slot);
        ids.push(slot.id);
      }
    }
    this.#compact(pool);
    return ids;
  }

  /** Reserves one poolable record by id (replaying a lease); false if it is not poolable. */
  reserveById(id: string): boolean {
    const slot = this.#slots.get(id);
    if (!slot || !isPoolable(slot)) return false;
    this.#markReserved(slot);
    return true;
  }

  /** True if `id` is a live reservation (reserved, unclaimed, unconsumed, not void). */
  isReserved(id: string): boolean {
    const slot = this.#slots.get(id);
    return slot !== undefined && this.#reserved.get(slot.purpose)?.has(id) === true;
  }

  /** Ends a live reservation and puts the record back in its pool. */
  unreserve(id: string): void {
    const slot = this.#slot(id);
    if (!this.#dropReservation(slot)) throw new Error(`RecordIndex: ${id} is not reserved`);
    slot[FLAGS] &= ~RESERVED;
    this.#enqueue(slot);
  }

  /** Every live reservation becomes void: never poolable, never claimable again. Returns how
   * many did. */
  voidReservations(): number {
    let count = 0;
    for (const live of this.#reserved.values()) count += live.size;
    this.#reserved.clear();
    return count;
  }

  /**
   * True for a void record: reserved by a store that stopped without claiming it
   * (`voidReservations`), so never handed out again.
   */
  isVoid(id: string): boolean {
    const slot = this.#slots.get(id);
    // A reserved record that was claimed or consumed since keeps `reserved` but is neither.
    return (
      slot !== undefined &&
      (slot[FLAGS] & RESERVED) !== 0 &&
      !this.isReserved(id) &&
      slot.claim === undefined &&
      slot.consumedAt === undefined
    );
  }

  /**
   * Every claimed record's id, grouped per (requester, subject), each group in claim order:
   * the order `list` with `latestClaims` reads (store copies keep it).
   */
  *claimGroups(): IterableIterator<readonly string[]> {
    for (const claims of this.#byClaimant.values()) {
      const ids = [...claims.live(this.#has)];
      if (ids.length > 0) yield ids;
    }
  }

  /** The ids of every live reservation. */
  liveReservations(): string[] {
    return [...this.#reserved.values()].flatMap((live) => [...live]);
  }

  /** Live reservations of `purpose`. */
  countReserved(purpose: string): number {
    return this.#reserved.get(purpose)?.size ?? 0;
  }

  /** Records a claim on a record that has none (a reserved one stops being reserved). */
  setClaim(id: string, claim: Claim): void {
    const slot = this.#slot(id);
    const record = slot;
    if (record.claim !== undefined) throw new Error(`RecordIndex: ${id} is already claimed`);
    if (isPoolable(slot)) this.#pools.get(record.purpose)!.count--;
    else this.#dropReservation(slot);
    record.claim = claim;
    if (record.subject !== claim.subject) {
      indexUnder(this.#bySubject, claim.subject, id);
      // The stores claim only unowned records; a replayed claim of an owned one is still found.
      if (record.owner !== undefined) {
        indexUnder(this.#byOwned, ownedKey(record.owner, claim.subject), id);
      }
    }
    const key = claimantKey(claim.requester, claim.subject);
    let claims = this.#byClaimant.get(key);
    if (!claims) {
      claims = new IdList();
      claims.names = [claim.requester, claim.subject];
      this.#byClaimant.set(key, claims);
    } else if (claims.names) {
      // One copy of the names for all of a claimant's claims.
      claim.requester = claims.names[0];
      claim.subject = claims.names[1];
    }
    claims.push(id);
    // Claims made in the same millisecond (a turn's batch) share their time strings.
    const last = this.#lastClaim;
    if (last && last.claimedAt === claim.claimedAt) claim.claimedAt = last.claimedAt;
    if (last && last.expiresAt === claim.expiresAt) claim.expiresAt = last.expiresAt;
    this.#lastClaim = claim;
    this.#scheduleIfRetiring(record);
  }

  /** Undoes `setClaim` (a claim whose write failed). */
  clearClaim(id: string): void {
    const slot = this.#slot(id);
    const claim = slot.claim;
    const subject = claim?.subject;
    if (claim) {
      const key = claimantKey(claim.requester, claim.subject);
      const claims = this.#byClaimant.get(key);
      claims?.take(id);
      if (claims?.length === 0) this.#byClaimant.delete(key);
    }
    slot.claim = undefined;
    if (subject !== undefined && subject !== slot.subject) {
      const ids = this.#bySubject.get(subject);
      ids?.take(id);
      if (ids?.length === 0) this.#bySubject.delete(subject);
      const owner = slot.owner;
      if (owner !== undefined) {
        const key = ownedKey(owner, subject);
        const owned = this.#byOwned.get(key);
        owned?.take(id);
        if (owned?.length === 0) this.#byOwned.delete(key);
      }
    }
    if (isPoolable(slot)) this.#enqueue(slot);
  }

  /** Records a consumption on a record that has none (a reserved one stops being reserved). */
  setConsumed(id: string, at: string): void {
    const slot = this.#slot(id);
    const record = slot;
    if (record.consumedAt !== undefined) throw new Error(`RecordIndex: ${id} is already consumed`);
    if (isPoolable(slot)) this.#pools.get(record.purpose)!.count--;
    else this.#dropReservation(slot);
    record.consumedAt = at;
    this.#scheduleIfRetiring(record);
  }

  /** Undoes `setConsumed` (of a record that was not reserved). */
  clearConsumed(id: string): void {
    const slot = this.#slot(id);
    slot.consumedAt = undefined;
    if (isPoolable(slot)) this.#enqueue(slot);
  }

  /**
   * Records `step` as a record's last used TOTP step; it must be greater than the one recorded
   * (if any). Returns what it replaced, for `restoreStep`. Steps do not affect pooling.
   */
  setStep(id: string, step: number, at: string): StepMark {
    const record = this.#slot(id);
    if (record.lastStep !== undefined && step <= record.lastStep) {
      throw new Error(`RecordIndex: step ${step} of ${id} is not above ${record.lastStep}`);
    }
    const previous: StepMark = {};
    if (record.lastStep !== undefined) previous.step = record.lastStep;
    if (record.lastStepAt !== undefined) previous.at = record.lastStepAt;
    record.lastStep = step;
    record.lastStepAt = at;
    return previous;
  }

  /** Undoes `setStep` (a step whose write failed); undo newest first. */
  restoreStep(id: string, previous: StepMark): void {
    const record = this.#slot(id);
    if (previous.step === undefined) record.lastStep = undefined;
    else record.lastStep = previous.step;
    if (previous.at === undefined) record.lastStepAt = undefined;
    else record.lastStepAt = previous.at;
  }

  countPoolable(purpose: string): number {
    return this.#pools.get(purpose)?.count ?? 0;
  }

  #markReserved(slot: Slot): void {
    const purpose = slot.purpose;
    this.#pools.get(purpose)!.count--;
    slot[FLAGS] |= RESERVED;
    let live = this.#reserved.get(purpose);
    if (!live) {
      live = new Set();
      this.#reserved.set(purpose, live);
    }
    live.add(slot.id);
  }

  /** Removes `slot` from the live reservations; false if it was not one. */
  #dropReservation(slot: Slot): boolean {
    return this.#reserved.get(slot.purpose)?.delete(slot.id) === true;
  }

  #slot(id: string): Slot {
    const slot = this.#slots.get(id);
    if (!slot) throw new Error(`RecordIndex: unknown id ${id}`);
    return slot;
  }

  /** Counts a record that became poolable and puts it in its pool unless it is still there. */
  #enqueue(slot: Slot): void {
    const purpose = slot.purpose;
    let pool = this.#pools.get(purpose);
    if (!pool) {
      pool = { ids: [], head: 0, count: 0 };
      this.#pools.set(purpose, pool);
    }
    pool.count++;
    if ((slot[FLAGS] & QUEUED) === 0) {
      insertSorted(pool.ids, slot.id, pool.head);
      slot[FLAGS] |= QUEUED;
    }
  }

  #compact(pool: Pool): void {
    if (pool.head >= COMPACT_AFTER && pool.head * 2 >= pool.ids.length) {
      pool.ids = pool.ids.slice(pool.head);
      pool.head = 0;
    }
  }
}
