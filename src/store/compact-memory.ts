/**
 * What keeps an embedded store's memory small per record (issue 17: at most ≈500 bytes of heap
 * per live record):
 *
 * - `RecordInterner`: a batch round's records share their round's participants array, public
 *   part, name strings and creation time instead of each holding a copy (a replayed line parses
 *   its own); claims made in one millisecond share their time strings (record-index.ts). The
 *   shared objects are never changed: stores hand callers copies (inputs.ts `copyRecord`).
 * - `packSealed` / `unpackSealed`: a sealed secret kept as one latin1 string (iv ‖ tag ‖ ct)
 *   instead of an object and three typed arrays.
 * - `LineRef`: round openings and log entries stay on disk; memory keeps where they are.
 */
import { createHash } from "node:crypto";
import type { JsonObject } from "../json.js";
import type { SealedSecret } from "./log-format.js";
import type { KeyRecord } from "./types.js";

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** One string for a sealed secret: iv ‖ tag ‖ ct, one character per byte. */
export function packSealed(sealed: SealedSecret): string {
  return Buffer.concat([sealed.iv, sealed.tag, sealed.ct]).toString("latin1");
}

export function unpackSealed(packed: string): SealedSecret {
  const bytes = Buffer.from(packed, "latin1");
  return {
    iv: bytes.subarray(0, IV_BYTES),
    tag: bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES),
    ct: bytes.subarray(IV_BYTES + TAG_BYTES),
  };
}

interface RoundShared {
  roundId: string;
  participants: string[];
}

/** Rounds remembered at once; a store's records arrive round by round. */
const ROUNDS = 64;
/** Public parts shared when their JSON is at most this long (an OTP's `{"digits":6}`). */
const SMALL_PUBLIC = 64;
const PUBLICS = 256;

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class RecordInterner {
  readonly #rounds = new Map<string, RoundShared>();
  readonly #publics = new Map<string, JsonObject>();
  readonly #names = new Map<string, string>();
  #createdAt = "";

  /** Points `record`'s round id, participants, purpose, algorithm and small public part at
   * shared copies (the first record of a round sets them). */
  intern(record: KeyRecord): void {
    let round = this.#rounds.get(record.roundId);
    if (!round || !sameStrings(round.participants, record.participants)) {
      if (this.#rounds.size >= ROUNDS) this.#rounds.clear();
      round = { roundId: record.roundId, participants: record.participants };
      this.#rounds.set(record.roundId, round);
    }
    // A round's records are made in the same millisecond or so: one string for their time.
    if (record.createdAt === this.#createdAt) record.createdAt = this.#createdAt;
    else this.#createdAt = record.createdAt;
    record.roundId = round.roundId;
    record.participants = round.participants;
    record.purpose = this.#name(record.purpose);
    record.algorithm = this.#name(record.algorithm);
    const json = JSON.stringify(record.public);
    if (json.length <= SMALL_PUBLIC) {
      const shared = this.#publics.get(json);
      if (shared) record.public = shared;
      else if (this.#publics.size < PUBLICS) this.#publics.set(json, record.public);
    }
  }

  #name(value: string): string {
    const shared = this.#names.get(value);
    if (shared !== undefined) return shared;
    if (this.#names.size < PUBLICS) this.#names.set(value, value);
    return value;
  }
}

/**
 * Where a line the store keeps on disk only (a round opening, a transparency log entry) is:
 * its offset and length (without the newline) and a digest of its bytes, so reading it back
 * gets exactly the line the replay verified or the store wrote.
 */
export interface LineRef {
  offset: number;
  length: number;
  /** The first 16 bytes of SHA-256 over the line, as a latin1 string. */
  digest: string;
}

export function digestOf(line: Uint8Array): string {
  return createHash("sha256").update(line).digest().toString("latin1", 0, 16);
}

/** A reference to `line` (without its newline) at `offset`. */
export function lineRef(offset: number, line: Uint8Array): LineRef {
  return { offset, length: line.length, digest: digestOf(line) };
}
