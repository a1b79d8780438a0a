/**
 * What every key store checks at its public boundary, and how it copies records in and out. All
 * backends share these, so they accept and refuse exactly the same inputs: a wrong type is a
 * `TypeError` naming the argument (a programming error), never a half-stored record.
 *
 * Records handed to callers are fresh copies: a caller that edits one cannot change the store.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { Json, JsonObject } from "../json.js";
import {
  type Claim,
  type ClaimInput,
  type KeyRecord,
  type ListQuery,
  MAX_LOG_LEAF_BYTES,
  MAX_ROUND_OPENING_BYTES,
  MAX_ROUND_PART,
  MAX_ROUND_SECRET_BYTES,
  type RecordInput,
} from "./types.js";

/** Longest identifier-like string (purpose, round id, owner, subject, ...) a store accepts. */
export const MAX_NAME_LENGTH = 1024;
/** Largest secret part, in bytes. Keys and wallets are a few KiB; this leaves ample room. */
export const MAX_SECRET_BYTES = 1024 * 1024;
const MAX_JSON_DEPTH = 32;
/** Most holders a split record has (RecordInput.holders). */
export const MAX_HOLDERS = 64;

function assertName(value: unknown, name: string): asserts value is string {
  if (typeof value !== "string" || value.length === 0) {
    throw new TypeError(`${name} must be a non-empty string`);
  }
  if (value.length > MAX_NAME_LENGTH) {
    throw new TypeError(`${name} must be at most ${MAX_NAME_LENGTH} characters`);
  }
}

function assertDate(value: unknown, name: string): asserts value is Date {
  if (!(value instanceof Date) || !Number.isFinite(value.getTime())) {
    throw new TypeError(`${name} must be a valid Date`);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function assertJson(value: unknown, name: string, depth: number): asserts value is Json {
  if (depth > MAX_JSON_DEPTH) throw new TypeError(`${name} is nested too deeply`);
  if (value === null || typeof value === "boolean" || typeof value === "string") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`${name} must be a finite number`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      assertJson(item, `${name}[${i}]`, depth + 1);
    });
    return;
  }
  if (isPlainObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      assertJson(item, `${name}.${key}`, depth + 1);
    }
    return;
  }
  throw new TypeError(`${name} must be JSON (null, boolean, number, string, array, object)`);
}

/** A deep copy of JSON data. `Object.fromEntries` keeps a "__proto__" key as plain data. */
export function copyJson<T extends Json>(value: T): T {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((item) => copyJson(item)) as T;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copyJson(v)])) as T;
}

/** Checks a `put` argument. Throws TypeError naming the bad field. */
export function checkRecordInput(input: RecordInput): void {
  if (!isPlainObject(input)) throw new TypeError("put: input must be an object");
  assertName(input.purpose, "input.purpose");
  assertName(input.roundId, "input.roundId");
  assertName(input.algorithm, "input.algorithm");
  if (!Array.isArray(input.participants)) {
    throw new TypeError("input.participants must be an array of strings");
  }
  input.participants.forEach((p, i) => {
    assertName(p, `input.participants[${i}]`);
  });
  if (!isPlainObject(input.public)) throw new TypeError("input.public must be a JSON object");
  assertJson(input.public, "input.public", 0);
  if (input.roundPart !== undefined) {
    if (input.secret !== undefined) {
      throw new TypeError("input.secret and input.roundPart exclude each other");
    }
    if (
      !Number.isSafeInteger(input.roundPart) ||
      input.roundPart < 0 ||
      input.roundPart > MAX_ROUND_PART
    ) {
      throw new TypeError(`input.roundPart must be an integer from 0 to ${MAX_ROUND_PART}`);
    }
  } else if (!(input.secret instanceof Uint8Array)) {
    throw new TypeError("input.secret must be a Uint8Array (or input.roundPart given)");
  } else if (input.secret.length > MAX_SECRET_BYTES) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `A record's secret part may be at most ${MAX_SECRET_BYTES} bytes; got ${input.secret.length}.`,
    );
  }
  if (input.owner !== undefined) assertName(input.owner, "input.owner");
  if (input.subject !== undefined) {
    assertName(input.subject, "input.subject");
    if (input.owner === undefined) throw new TypeError("input.subject needs input.owner");
  }
  if (input.holders !== undefined) {
    const holders: unknown = input.holders;
    if (!Array.isArray(holders) || holders.length === 0 || holders.length > MAX_HOLDERS) {
      throw new TypeError(`input.holders must be an array of 1 to ${MAX_HOLDERS} strings`);
    }
    holders.forEach((h, i) => {
      assertName(h, `input.holders[${i}]`);
    });
    if (new Set(holders).size !== holders.length) {
      throw new TypeError("input.holders must not repeat a holder");
    }
    // An owned record never pools: a split record's shares are for its holders alone.
    if (input.owner === undefined) throw new TypeError("input.holders needs input.owner");
  }
  if (input.held !== undefined) {
    if (input.held !== true) throw new TypeError("input.held must be true or absent");
    // Holding keeps a record out of the pool; an owned record is never in it.
    if (input.owner !== undefined) throw new TypeError("input.held needs no input.owner");
  }
  if (input.createdAt !== undefined) assertDate(input.createdAt, "input.createdAt");
}

/** The public record a `put` stores, with its new id and creation time. */
export function newRecord(id: string, input: RecordInput, now: Date): KeyRecord {
  const record: KeyRecord = {
    id,
    purpose: input.purpose,
    createdAt: (input.createdAt ?? now).toISOString(),
    roundId: input.roundId,
    participants: [...input.participants],
    algorithm: input.algorithm,
    public: copyJson(input.public),
  };
  if (input.owner !== undefined) record.owner = input.owner;
  if (input.subject !== undefined) record.subject = input.subject;
  if (input.holders !== undefined) record.holders = [...input.holders];
  if (input.held === true) record.held = true;
  return record;
}

/** Checks a `claimNext` call and builds the claim it records. */
export function checkClaim(purpose: string, input: ClaimInput, now: Date): Claim {
  assertName(purpose, "purpose");
  if (!isPlainObject(input)) throw new TypeError("claimNext: claim must be an object");
  assertName(input.requester, "claim.requester");
  assertName(input.subject, "claim.subject");
  assertName(input.requestId, "claim.requestId");
  assertDate(input.expiresAt, "claim.expiresAt");
  if (input.claimedAt !== undefined) assertDate(input.claimedAt, "claim.claimedAt");
  return {
    requester: input.requester,
    subject: input.subject,
    requestId: input.requestId,
    claimedAt: (input.claimedAt ?? now).toISOString(),
    expiresAt: input.expiresAt.toISOString(),
  };
}

export function checkId(id: unknown, name = "id"): asserts id is string {
  if (typeof id !== "string") throw new TypeError(`${name} must be a string`);
}

export function checkConsumeAt(at: unknown): asserts at is Date | undefined {
  if (at !== undefined) assertDate(at, "at");
}

/**
 * Checks a `useStep` step: a TOTP counter, so a non-negative safe integer. Returns it with -0 made
 * 0, so every backend stores and returns the same number.
 */
export function checkStep(step: unknown): number {
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
    throw new TypeError("step must be a non-negative safe integer");
  }
  return step === 0 ? 0 : step;
}

/** Checks a log entry's leaf and returns the store's own copy of it. */
export function copyLogLeaf(leaf: unknown): Uint8Array {
  if (!(leaf instanceof Uint8Array) || leaf.length === 0 || leaf.length > MAX_LOG_LEAF_BYTES) {
    throw new TypeError(`leaf must be a Uint8Array of 1 to ${MAX_LOG_LEAF_BYTES} bytes`);
  }
  return new Uint8Array(leaf);
}

/** Checks a `putRoundOpening` call and returns the store's own copy of the opening. */
export function checkRoundOpening(roundId: unknown, opening: unknown): Uint8Array {
  assertName(roundId, "roundId");
  if (!(opening instanceof Uint8Array) || opening.length === 0) {
    throw new TypeError("opening must be a non-empty Uint8Array");
  }
  if (opening.length > MAX_ROUND_OPENING_BYTES) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `A round opening may be at most ${MAX_ROUND_OPENING_BYTES} bytes; got ${opening.length}.`,
    );
  }
  return new Uint8Array(opening);
}

/** Checks `putRoundSecret`'s arguments; returns the store's own copy of the secret. */
export function checkRoundSecret(roundId: unknown, secret: unknown): Uint8Array {
  assertName(roundId, "roundId");
  if (!(secret instanceof Uint8Array) || secret.length === 0) {
    throw new TypeError("secret must be a non-empty Uint8Array");
  }
  if (secret.length > MAX_ROUND_SECRET_BYTES) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `A round secret may be at most ${MAX_ROUND_SECRET_BYTES} bytes; got ${secret.length}.`,
    );
  }
  return new Uint8Array(secret);
}

export function roundSecretExists(roundId: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.INVALID_INPUT,
    `Round ${roundId} already has a round secret; a round has at most one.`,
  );
}

/** A record put with a `roundPart` of a round that has no round secret (or no longer has one). */
export function noRoundSecret(roundId: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.INVALID_INPUT,
    `Round ${roundId} has no round secret for a record's roundPart; put it first (putRoundSecret).`,
  );
}

/** `readSecret` of a record that shares its round's secret. */
export function notOwnSecret(id: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.INVALID_INPUT,
    `Record ${id} has no secret part of its own but a part of its round's secret; read it with readSecretPart.`,
  );
}

export function checkRoundId(roundId: unknown): asserts roundId is string {
  assertName(roundId, "roundId");
}

/** A second opening for a round that has one. */
export function openingExists(roundId: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.INVALID_INPUT,
    `Round ${roundId} already has an opening; a round has at most one.`,
  );
}

/** Checks a `logEntries` range against the log's size. */
export function checkLogRange(start: unknown, end: unknown, size: number): void {
  if (
    typeof start !== "number" ||
    typeof end !== "number" ||
    !Number.isSafeInteger(start) ||
    !Number.isSafeInteger(end) ||
    start < 0 ||
    start > end ||
    end > size
  ) {
    throw new TypeError(`start and end must be integers with 0 <= start <= end <= ${size}`);
  }
}

export function checkPurpose(purpose: unknown): asserts purpose is string {
  assertName(purpose, "purpose");
}

export function checkListQuery(query: ListQuery): void {
  if (!isPlainObject(query)) throw new TypeError("list: query must be an object");
  if (query.purpose !== undefined) assertName(query.purpose, "query.purpose");
  if (query.owner !== undefined) assertName(query.owner, "query.owner");
  if (query.subject !== undefined) assertName(query.subject, "query.subject");
  if (query.claimed !== undefined && typeof query.claimed !== "boolean") {
    throw new TypeError("query.claimed must be a boolean");
  }
  if (query.consumed !== undefined && typeof query.consumed !== "boolean") {
    throw new TypeError("query.consumed must be a boolean");
  }
  if (query.claimedBy !== undefined) assertName(query.claimedBy, "query.claimedBy");
  const latest: unknown = query.latestClaims;
  if (latest !== undefined) {
    if (typeof latest !== "number" || !Number.isSafeInteger(latest) || latest < 0) {
      throw new TypeError("query.latestClaims must be a non-negative integer");
    }
    if (query.claimedBy === undefined || query.subject === undefined) {
      throw new TypeError("query.latestClaims needs query.claimedBy and query.subject");
    }
  }
  const limit: unknown = query.limit;
  if (
    limit !== undefined &&
    (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit < 0)
  ) {
    throw new TypeError("query.limit must be a non-negative integer");
  }
}

/** A caller's copy of a stored record. */
export function copyRecord(record: KeyRecord): KeyRecord {
  const out: KeyRecord = {
    id: record.id,
    purpose: record.purpose,
    createdAt: record.createdAt,
    roundId: record.roundId,
    participants: [...record.participants],
    algorithm: record.algorithm,
    public: copyJson(record.public as JsonObject),
  };
  if (record.owner !== undefined) out.owner = record.owner;
  if (record.subject !== undefined) out.subject = record.subject;
  if (record.holders !== undefined) out.holders = [...record.holders];
  if (record.claim !== undefined) out.claim = { ...record.claim };
  if (record.consumedAt !== undefined) out.consumedAt = record.consumedAt;
  if (record.lastStep !== undefined) out.lastStep = record.lastStep;
  if (record.lastStepAt !== undefined) out.lastStepAt = record.lastStepAt;
  if (record.held === true) out.held = true;
  return out;
}

export function notFound(id: string): DkeygenError {
  // The id comes from a caller; cap what of it reaches a message.
  const shown = JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}...` : id);
  return new DkeygenError(ErrorCodes.NOT_FOUND, `The key store holds no record with id ${shown}.`);
}
