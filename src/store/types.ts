/**
 * The key store: where every round's result is kept. One interface, several backends (the
 * `key_store` file, memory, PostgreSQL later), one compliance suite (test/store/compliance.ts)
 * that every backend passes.
 *
 * A record has a public part (shown to anyone allowed to list records) and a secret part that the
 * store keeps encrypted at rest and hands out only through `readSecret`. Records are never
 * rewritten: later facts about a record (it was claimed, it was consumed, a TOTP time step of it
 * was used) are appended as events and folded into the record the store returns.
 */
import type { JsonObject } from "../json.js";

/** What a caller gives the store. The store assigns `id` and, unless given, `createdAt`. */
export interface RecordInput {
  purpose: string;
  roundId: string;
  /** Contributor ids whose contributions were combined into the round secret. */
  participants: string[];
  /** The derivation that produced the record, with its version, e.g. "otp/v1". */
  algorithm: string;
  public: JsonObject;
  /**
   * The secret part, already serialized; the store encrypts it before it touches disk. Exactly
   * one of `secret` and `roundPart`.
   */
  secret?: Uint8Array;
  /**
   * Instead of `secret`: the record's secret part is part `roundPart` of its round's secret
   * (`putRoundSecret`, put for `roundId` before; E_INVALID_INPUT when it has none). The store
   * keeps only this number with the record, and `readSecretPart` hands back the round's secret
   * with it, from which the caller derives the record's own (a batch round's output `roundPart`:
   * a pool of OTPs keeps one secret per round instead of one per OTP). An integer, 0 to
   * MAX_ROUND_PART; the caller gives each record of a round its own.
   */
  roundPart?: number;
  /** The requesting client entitled to the secret part, when the record was made for one. */
  owner?: string;
  /**
   * Whom (a user, an account) the record was made for, within its owner: a TOTP enrollment's
   * account. Needs `owner`. Indexed, so finding a subject's records does not scan the store.
   */
  subject?: string;
  /**
   * A split record's holders (registration ids, 1 to 64, no repeats): holder i is entitled to its
   * own share of the secret part only (a multisig set's key i; PROTOCOL §13.9), never the rest.
   */
  holders?: string[];
  /**
   * Put the record *held*: kept, listed and readable, but never claimed and not counted by
   * `countUnclaimed` until `releaseHeld(roundId)` releases its round's held records. For a pool
   * record (no owner: a TypeError naming `input.held` otherwise) whose round must not hand anything out yet: a
   * refill whose log entry is not witnessed (docs/PROTOCOL.md §15.5). Decided by the store, so
   * every process claiming from one store sees it.
   */
  held?: true;
  createdAt?: Date;
}

/** A claim on a record: the record was handed to `requester` for `subject` until `expiresAt`. */
export interface Claim {
  requester: string;
  subject: string;
  requestId: string;
  claimedAt: string;
  expiresAt: string;
}

export interface KeyRecord {
  /** 26-character ULID (Crockford base32), sortable by creation time. */
  id: string;
  purpose: string;
  createdAt: string;
  roundId: string;
  participants: string[];
  algorithm: string;
  public: JsonObject;
  owner?: string;
  /** Whom the record was made for (RecordInput.subject), if set. */
  subject?: string;
  /** A split record's holders (RecordInput.holders), if set. */
  holders?: string[];
  claim?: Claim;
  consumedAt?: string;
  /** The greatest TOTP time step recorded with `useStep`, if any. */
  lastStep?: number;
  /** When `lastStep` was recorded (the `at` of that `useStep`). */
  lastStepAt?: string;
  /** Put held (RecordInput.held) and not released since: `claimNext` never takes it. */
  held?: true;
}

export interface ListQuery {
  purpose?: string;
  owner?: string;
  /** Only records with (true) or without (false) a claim. */
  claimed?: boolean;
  /**
   * Only records for this subject: made for it (`subject`) or claimed for it (`claim.subject`).
   * Indexed: the work is bounded by that subject's records, not the store's size. With `owner`
   * too (an account's enrollments), by that owner's records for the subject alone, however many
   * OTPs other requesters claimed for it.
   */
  subject?: string;
  /** Only records with (true) or without (false) a consumption. */
  consumed?: boolean;
  /** Only records claimed by this requester. */
  claimedBy?: string;
  /**
   * Needs `claimedBy` and `subject`: only records among that requester's `latestClaims` most
   * recent claims for that subject, listed in claim order (oldest claim first) rather than id
   * order. Indexed: the work is bounded by this number, not by the subject's history.
   */
  latestClaims?: number;
  /** At most this many, oldest first. */
  limit?: number;
}

export interface ClaimInput {
  requester: string;
  subject: string;
  requestId: string;
  expiresAt: Date;
  claimedAt?: Date;
}

/** How `claimNext` acknowledges a claim. */
export interface ClaimOptions {
  /**
   * "durable" (the default): the claim resolves once the claim itself is on stable storage.
   *
   * "reserved": it resolves once the record is durably reserved for this store (a store that
   * writes to disk leases records ahead, a batch at a time), and the claim is written in the
   * background, within one group commit. The promise that matters holds either way: no crash can
   * let the record be handed out twice. What a crash can lose is the claim itself: a record that
   * was reserved and handed out but whose claim never reached the disk is *void* after a restart,
   * never claimed again, and its holder's OTP fails verification (fails closed; the user asks for
   * a new one). For OTP delivery, where waiting for a disk flush per request halves throughput.
   * Anything written after such a claim (a consumption) is written after it, so a consumption
   * that is acknowledged implies a durable claim.
   */
  ack?: "durable" | "reserved";
}

export interface KeyStore {
  /** A short name for logs: "file", "memory", "postgres". */
  readonly kind: string;
  open(): Promise<void>;
  close(): Promise<void>;
  /** Adds a record; resolves only once it is durable (written and fsynced for the file store). */
  put(input: RecordInput): Promise<KeyRecord>;
  get(id: string): Promise<KeyRecord | undefined>;
  list(query?: ListQuery): Promise<KeyRecord[]>;
  /**
   * The decrypted secret part (a fresh copy). Throws a NOT_FOUND DkeygenError for an unknown id,
   * and E_INVALID_INPUT for a record put with `roundPart` (it has no secret of its own: read it
   * with `readSecretPart`).
   */
  readSecret(id: string): Promise<Uint8Array>;
  /**
   * Record `id`'s secret part, decrypted (fresh copies): its own (`secret`), or its round's
   * secret and its part number (`roundPart`). Throws a NOT_FOUND DkeygenError for an unknown id.
   */
  readSecretPart(id: string): Promise<SecretPart>;
  /**
   * Keeps round `roundId`'s secret (1 byte to MAX_ROUND_SECRET_BYTES; secret), which the records
   * put with `roundPart` share, encrypted at rest like a record's secret part. At most one per
   * round: a second is refused (E_INVALID_INPUT), also when two calls race. Resolves once
   * durable. The caller's buffer is not kept. It stays as long as any record of the round does:
   * a store that lets records go (retention) lets the round's secret go with its last record,
   * never before.
   */
  putRoundSecret(roundId: string, secret: Uint8Array): Promise<void>;
  /**
   * Atomically claims the oldest record of `purpose` that has no owner, no claim, no
   * consumption and is not held (records made for a named owner are never pooled; held ones are
   * not, until released). Resolves to the claimed record,
   * or undefined when none is left. Two concurrent calls never get the same record. Durable
   * before it resolves, unless `options.ack` is "reserved" (ClaimOptions).
   */
  claimNext(
    purpose: string,
    claim: ClaimInput,
    options?: ClaimOptions,
  ): Promise<KeyRecord | undefined>;
  /**
   * Marks a record consumed (an OTP used). Resolves true if this call consumed it, false if it was
   * consumed before. Durable before it resolves. Throws NOT_FOUND for an unknown id. A held
   * record can be consumed too: it is withdrawn for good, never claimable, even once released.
   */
  consume(id: string, at?: Date): Promise<boolean>;
  /**
   * Records that time step `step` (a TOTP counter, a non-negative safe integer) of record `id` was
   * used, if and only if it is greater than every step recorded for it before. Resolves true if
   * this call recorded it, false if an equal or greater step was already recorded (a replay: RFC
   * 6238 §5.2, an OTP is accepted at most once). Atomic (two concurrent calls with the same step:
   * exactly one gets true) and durable before it resolves, also when it resolves false (the step
   * that makes it a replay is durable by then). Throws NOT_FOUND for an unknown id, and a
   * TypeError naming `step` or `at` when they are malformed. The record's `lastStep` and
   * `lastStepAt` show the latest step recorded.
   */
  useStep(id: string, step: number, at?: Date): Promise<boolean>;
  /**
   * How many records of `purpose` `claimNext` could still hand out: neither owned, claimed,
   * consumed nor held (nor void: reserved by a store that stopped before claiming them).
   */
  countUnclaimed(purpose: string): Promise<number>;
  /**
   * Releases every held record of round `roundId` (RecordInput.held), all together: from then on
   * they show no `held` and those not consumed are claimable, oldest first among
   * all of `purpose`'s claimable records. Durable before it resolves (a reopened store has them
   * released). Idempotent: resolves to how many records this call released, 0 when the round has
   * none held (released before, or never put held). Records put held whose round is never
   * released stay held for good.
   */
  releaseHeld(roundId: string): Promise<number>;
  /**
   * Appends one entry (its exact leaf bytes, 1 byte to MAX_LOG_LEAF_BYTES) to the transparency log
   * kept in the store beside the records it vouches for (src/tlog, docs/PROTOCOL.md §15).
   * Resolves to its index (0 for the first) once it is durable. Entries get their indexes in call
   * order; an entry is never changed or removed.
   */
  appendLogEntry(leaf: Uint8Array): Promise<number>;
  /** The number of durable log entries. */
  logSize(): number;
  /**
   * Copies of the leaves of entries `start` (included) to `end` (excluded) of the durable log.
   * Throws a TypeError unless 0 ≤ start ≤ end ≤ logSize().
   */
  logEntries(start: number, end: number): Promise<Uint8Array[]>;
  /**
   * Keeps round `roundId`'s opening (docs/PROTOCOL.md §15.6: what re-derives its results and
   * opens its commitments; secret), encrypted at rest like a record's secret part. At most one per
   * round: a second is refused (E_INVALID_INPUT), also when two calls race. Resolves once durable.
   * The caller's buffer is not kept.
   */
  putRoundOpening(roundId: string, opening: Uint8Array): Promise<void>;
  /** Round `roundId`'s opening, decrypted (a fresh copy), or undefined when it has none. */
  readRoundOpening(roundId: string): Promise<Uint8Array | undefined>;
  /**
   * The durable end of the store's own hash chain, for a store that has one (the `key_store`
   * file: its line count and the last line's MAC in hex). Folded into the log's checkpoints.
   */
  readonly chain?: { lines: number; head: string };
}

/** A record's secret part as `readSecretPart` hands it back (fresh copies: wipe them after use). */
export type SecretPart =
  | { kind: "own"; secret: Uint8Array }
  | { kind: "round"; roundSecret: Uint8Array; roundPart: number };

/** The largest round secret a store takes (`putRoundSecret`). */
export const MAX_ROUND_SECRET_BYTES = 64 * 1024;
/** The greatest `roundPart` (RecordInput): 2^32 − 1. */
export const MAX_ROUND_PART = 0xffffffff;

/** The largest log entry a store takes (a round's entry with 256 contributors is ≈ 130 KiB). */
export const MAX_LOG_LEAF_BYTES = 1024 * 1024;

/**
 * The largest round opening a store takes (2 MiB: a batch round of 10 000 results with 256
 * contributors needs about 1.3 MiB; sealed and in base64url it still fits a key_store line).
 */
export const MAX_ROUND_OPENING_BYTES = 2 * 1024 * 1024;
