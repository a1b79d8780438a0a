/**
 * The `key_store` file format, version 1: an append-only text file, one line per event, each
 * line MACed into a hash chain, secret parts encrypted. docs/PROTOCOL.md §"The key_store file"
 * copies this comment.
 *
 * Keys. From the 32-byte store key (kept apart from the file), with HKDF-SHA-256 (RFC 5869), an
 * empty salt and L = 32:
 *   K_mac    = HKDF(storeKey, salt = "", info = "dkeygen/v1/store/line-mac")
 *   K_secret = HKDF(storeKey, salt = "", info = "dkeygen/v1/store/secret")
 *
 * Lines. Every line is exactly these bytes (UTF-8), with nothing before, between or after:
 *   {"mac":"<64 lowercase hex>","body":<body>}\n
 * <body> is a JSON object on one line (JSON.stringify output: no raw newline can occur). A reader
 * takes the body as the raw bytes between the fixed prefix `{"mac":"<hex>","body":` (81 bytes) and
 * the final `}` before the newline, so the MAC covers exactly the bytes on disk, whatever JSON
 * library wrote them. A line, newline included, is at most 4 MiB (MAX_LINE_BYTES).
 *
 * Chain. mac_0 = 32 zero bytes; for line i (from 1):
 *   mac_i = HMAC-SHA-256(K_mac, mac_{i-1} ‖ body_i)
 * where mac_{i-1} is the 32 bytes the previous line's hex stands for and body_i its raw body bytes.
 * An edited, deleted, inserted or reordered line breaks the chain at that line or the next. Cutting
 * whole lines off the end, or restoring an older copy, cannot be seen from the file alone: the
 * head file (head-file.ts) records the durable end, and `FileKeyStore.chain` gives it.
 *
 * Bodies. Every body has `t` (kind) and `v` (1); no other fields than those listed are allowed.
 * Timestamps are ISO 8601 UTC with milliseconds (Date.prototype.toISOString); ids are ULIDs.
 *   {"t":"record","v":1,"id","purpose","createdAt","roundId","participants"?:[string],"algorithm",
 *    "public":{...},"owner"?,"subject"?,"holders"?,"held"?:true,
 *    "secret":{"iv":b64url,"ct":b64url,"tag":b64url} | "part":n}
 *   ("subject" only with "owner": whom the record was made for, e.g. a TOTP enrollment's account;
 *   "holders", also only with "owner": a split record's holders, 1 or more distinct strings;
 *   "held" only without "owner": the record was put held, KeyStore RecordInput.held;
 *   "participants" left out: the record's are those of the last record line before it that has
 *   them, which must be of the same roundId, whatever other lines come between; a writer leaves
 *   them out when they are equal, so a batch round's records name them once;
 *   "part" instead of "secret": the record's secret part is part n (an integer, 0 to 2^32 − 1) of
 *   its round's secret, which a roundsecret line of its roundId before it holds, not yet
 *   retired)
 *   {"t":"records","v":1,"purpose","createdAt","roundId","participants"?:[string],"algorithm",
 *    "held"?:true,"records":[{"id","public":{...},"secret":{"iv","ct","tag"} | "part":n}]}
 *   (1 to 256 records of one round with the header's fields and no owner, read exactly as that
 *   many record lines in order; a writer puts there the records of a round it puts in one turn
 *   of its event loop, a lone one or one over 8 KiB on a record line; "participants" left out as
 *   for a record line, whose carrier a records line with them becomes)
 *   {"t":"claim","v":1,"id","requester","subject","requestId","claimedAt","expiresAt"}
 *   {"t":"consume","v":1,"id","at"}
 *   {"t":"consumes","v":1,"at","ids":[id]}
 *   {"t":"step","v":1,"id","step","at"}
 *   {"t":"claims","v":1,"claims":[{"id","requester"?,"subject","requestId","claimedAt"?,
 *    "expiresAt"?}]}
 *   (the first entry has every field; a later one leaving out requester, claimedAt or
 *   expiresAt has the entry before's: a writer leaves out exactly those equal to it)
 *   {"t":"lease","v":1,"ids":[id]}
 *   {"t":"release","v":1,"ids":[id]}
 *   {"t":"rollback","v":1,"at","reason","found":{"lines","head"},"expected"?:{"lines","head"}}
 *   {"t":"tlog","v":1,"index","leaf":b64url}
 *   {"t":"opening","v":1,"roundId","secret":{"iv":b64url,"ct":b64url,"tag":b64url}}
 *   {"t":"roundsecret","v":1,"roundId","secret":{"iv":b64url,"ct":b64url,"tag":b64url}}
 *   {"t":"unhold","v":1,"roundId","at"}
 *   {"t":"retire","v":1,"at","ids":[id],"rounds"?:[roundId]}
 *   {"t":"compacted","v":1,"at","from":{"lines","head"},"dropped","cutoff","generation"}
 *   {"t":"switched","v":1,"from":{"lines","head"}}
 * (retire, compacted and switched: docs/PROTOCOL.md §10 and §10.2; `LINE_KINDS` lists every
 * kind.)
 * An unhold line releases every record of round `roundId` put held on an earlier line and not
 * released since (KeyStore releaseHeld), consumed ones included; at least one, or it is
 * corruption. A held record is never leased or claimed (so a lease or claim of one is corruption);
 * it may be consumed. A file without unhold lines (and without "held") reads as before.
 * A claim, consume or step refers to a record on an earlier line; each record is claimed and
 * consumed at most once. A consumes line holds 1 to 4096 distinct ids, each consumed at `at`,
 * exactly as that many consume lines in that order would: the consumptions one turn of the
 * writer's event loop made at the same time, written as one line (a writer writes a lone one as
 * a consume line). A claims line holds 1 to 1024 claims, each as a claim line's fields
 * without "t" and "v", in the order they were made: the claims acknowledged "reserved" that one
 * turn of the writer's event loop made, written as one line. A lease reserves records (1 to 4096 distinct ids, each an earlier record
 * with no owner, claim, consumption or live lease) for the writer to claim without waiting for
 * each claim's fsync (ClaimOptions "reserved"); a release (same shape, ids leased and still
 * unclaimed and unconsumed) hands leased records back, as a writer does when it closes cleanly.
 * A record stays leased until it is claimed, consumed or released. Records still leased when the
 * file ends were leased by a writer that stopped without claiming them; they are *void*: never
 * claimed, never leased again (so a record that was handed out but whose claim line was lost in a
 * crash can never be handed out a second time). A step line records that TOTP time step `step` (a non-negative safe
 * integer, RFC 6238 counter T) of the record was used at `at`; each step line of a record has a
 * greater step than every step line of that record before it, and the last one is the record's
 * `lastStep` (so an OTP is never accepted twice, RFC 6238 §5.2).
 *
 * A tlog line is entry `index` of the transparency log (docs/PROTOCOL.md §15): its exact leaf
 * bytes (1 byte to 1 MiB, public: the log is published), the indexes 0, 1, 2, … in file order
 * with none skipped or repeated.
 *
 * An opening line keeps a completed round's opening (docs/PROTOCOL.md §15.6), sealed as a secret
 * part is (below, with its own associated data); at most one per round id.
 *
 * A roundsecret line keeps a round's secret (KeyStore putRoundSecret: a batch round of OTPs keeps
 * its round secret once, and each record only its "part", from which the reader derives the
 * record's own secret), sealed as a secret part is, with its own associated data; at most one
 * per round id while it is held. It is held until a retire line names its round in "rounds":
 * that line's ids, or earlier lines', retired the last record with a part of it (so none is
 * live; a retire line naming a round not held, or one with a live record, is corruption), and no
 * later record may have a part of it. A retire line names 1 to 4096 distinct rounds, if any.
 *
 * A rollback line records that a writer opened the file although it did not match its head file
 * (head-file.ts), because its operator said so: `reason` is "shorter", "diverged", "missing" (no
 * head file) or "unreadable" (no valid slot); `found` is the file as it was opened — `lines` the
 * number of lines before this one and `head` (64 lowercase hex) the MAC of the line before it
 * (mac_0 for none), both checked on replay; `expected` (only for "shorter" and "diverged") is what
 * the head file named, `lines` greater than found's for "shorter" and not greater for "diverged".
 *
 * Reading. A line counts only with its newline: a writer appends a line and its newline in one
 * write and acknowledges it only after fdatasync. So bytes after the last newline are a torn write
 * from a crash, never acknowledged: a reader sets them aside (the file store copies them to
 * `<file>.torn-<time>` and cuts them off) and never merges them. A complete line that fails any
 * check (frame, MAC, JSON, schema, an event for an unknown or already claimed/consumed record, or
 * a step not greater than that record's last step) is corruption or tampering: the reader refuses
 * the file, naming the line (1-based).
 *
 * Secret parts. AES-256-GCM (NIST SP 800-38D) under K_secret, a fresh random 96-bit IV per record,
 * a 128-bit tag, and associated data
 *   AAD = LP("dkeygen/v1/store/secret", id, purpose, roundId)
 * (LP as in src/crypto/canonical.ts), so a secret part cannot be moved to another record. A round
 * opening is sealed the same way under the same key, with
 *   AAD = LP("dkeygen/v1/store/round-opening", roundId)
 * so it cannot be moved to another round, nor taken for a record's secret part; a round secret
 * likewise, with
 *   AAD = LP("dkeygen/v1/store/round-secret", roundId)
 * iv, ct and tag are unpadded base64url (RFC 4648 §5).
 */
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { lengthPrefixed } from "../crypto/canonical.js";
import { aesGcmOpen, aesGcmSeal } from "../crypto/envelope.js";
import type { RandomSource } from "../crypto/random.js";
import type { JsonObject } from "../json.js";
import { isUlid } from "./record-id.js";
import { type Claim, type KeyRecord, MAX_LOG_LEAF_BYTES, MAX_ROUND_PART } from "./types.js";

export const LINE_MAC_INFO = "dkeygen/v1/store/line-mac";
export const SECRET_INFO = "dkeygen/v1/store/secret";
/** The associated data label of a sealed round opening. */
export const OPENING_AAD_LABEL = "dkeygen/v1/store/round-opening";
/** The associated data label of a sealed round secret. */
export const ROUND_SECRET_AAD_LABEL = "dkeygen/v1/store/round-secret";
export const FORMAT_VERSION = 1;
/** No line is longer than this; a longer one is refused when written and corrupt when read. */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;

const MAC_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const PREFIX = Buffer.from('{"mac":"', "utf8");
const MIDDLE = Buffer.from('","body":', "utf8");
const SUFFIX = Buffer.from("}\n", "utf8");
const BODY_START = PREFIX.length + 2 * MAC_BYTES + MIDDLE.length;
const CLOSE_BRACE = 0x7d;
const HEX = /^[0-9a-f]{64}$/;

/** mac_0: the chain starts from 32 zero bytes. */
export const CHAIN_START: Uint8Array = new Uint8Array(MAC_BYTES);

export interface StoreKeys {
  mac: Buffer;
  secret: Buffer;
}

export function deriveStoreKeys(storeKey: Uint8Array): StoreKeys {
  const empty = new Uint8Array(0);
  return {
    mac: Buffer.from(hkdfSync("sha256", storeKey, empty, LINE_MAC_INFO, 32)),
    secret: Buffer.from(hkdfSync("sha256", storeKey, empty, SECRET_INFO, 32)),
  };
}

export interface SealedSecret {
  iv: Uint8Array;
  ct: Uint8Array;
  tag: Uint8Array;
}

/**
 * What a record line or records entry keeps of a record's secret part: its own, sealed, or the
 * number of its part of its round's secret (a roundsecret line; KeyStore RecordInput.roundPart).
 */
export type RecordPart = SealedSecret | number;

export interface RecordBody extends Omit<KeyRecord, "participants"> {
  t: "record";
  v: 1;
  /** Absent: those of the last record line before it that has them, of the same round. */
  participants?: string[];
  /** Exactly one of `secret` and `part`. */
  secret?: { iv: string; ct: string; tag: string };
  part?: number;
}

/**
 * The round and participants of the last record line that has `participants`: a record line of
 * the same round and participants right after it may leave them out (the writer's choice).
 */
export interface Carrier {
  roundId: string;
  participants: string[];
}

/** True when a record of round `roundId` with `participants` may leave them to `carrier`. */
export function carriedBy(
  carrier: Carrier | undefined,
  roundId: string,
  participants: readonly string[],
): boolean {
  return (
    carrier !== undefined &&
    carrier.roundId === roundId &&
    carrier.participants.length === participants.length &&
    carrier.participants.every((p, i) => p === participants[i])
  );
}
export interface ClaimBody extends Claim {
  t: "claim";
  v: 1;
  id: string;
}
export interface ConsumeBody {
  t: "consume";
  v: 1;
  id: string;
  at: string;
}
export interface ConsumesBody {
  t: "consumes";
  v: 1;
  at: string;
  ids: string[];
}
/** The most ids one consumes line holds. */
export const MAX_CONSUMES_PER_LINE = 4096;
export interface StepBody {
  t: "step";
  v: 1;
  id: string;
  step: number;
  at: string;
}
/** One claim inside a claims line, all its fields. */
export type ClaimEntry = Omit<ClaimBody, "t" | "v">;
/**
 * A claims line's entry as written: after the first, `requester`, `claimedAt` and `expiresAt`
 * are left out when equal to the entry before's (`claimsBody`; `expandClaims` puts them back).
 */
export type ClaimsLineEntry = Pick<ClaimEntry, "id" | "subject" | "requestId"> &
  Partial<Pick<ClaimEntry, "requester" | "claimedAt" | "expiresAt">>;
export interface ClaimsBody {
  t: "claims";
  v: 1;
  claims: ClaimsLineEntry[];
}
/** The most claims one claims line holds. */
export const MAX_CLAIMS_PER_LINE = 1024;

export interface LeaseBody {
  t: "lease" | "release";
  v: 1;
  ids: string[];
}
/** One record inside a records line: what is not the round's (the line's header). */
export interface RecordsEntry {
  id: string;
  public: JsonObject;
  /** Exactly one of `secret` and `part`, as in a record line. */
  secret?: { iv: string; ct: string; tag: string };
  part?: number;
}
/**
 * Records of one round put together (one turn of the writer's event loop), with the same purpose,
 * createdAt, roundId, participants, algorithm and held, and no owner: the header once, then each
 * record's id, public part and sealed secret part. Read exactly as that many record lines.
 */
export interface RecordsBody {
  t: "records";
  v: 1;
  purpose: string;
  createdAt: string;
  roundId: string;
  /** Absent: carried, as a record line's (Carrier). */
  participants?: string[];
  algorithm: string;
  held?: true;
  records: RecordsEntry[];
}
/** The most records one records line holds. */
export const MAX_RECORDS_PER_LINE = 256;

/** A chain position in a rollback line: a line count and the MAC of that line, in hex. */
export interface ChainPoint {
  lines: number;
  head: string;
}
export const ROLLBACK_REASONS = ["shorter", "diverged", "missing", "unreadable"] as const;
export interface RollbackBody {
  t: "rollback";
  v: 1;
  at: string;
  reason: (typeof ROLLBACK_REASONS)[number];
  found: ChainPoint;
  expected?: ChainPoint;
}
export interface TlogBody {
  t: "tlog";
  v: 1;
  index: number;
  leaf: string;
}
export interface UnholdBody {
  t: "unhold";
  v: 1;
  roundId: string;
  at: string;
}
/** Records that left the store's memory for good (an OTP consumed, or past its claim's expiry):
 * no later line may name them. */
export interface RetireBody {
  t: "retire";
  v: 1;
  at: string;
  ids: string[];
  /** Round secrets that left with their round's last record (this line's or an earlier one's). */
  rounds?: string[];
}
/** Line 1 of a compacted file: the old file's chain where the copy was cut, and what was left
 * out. */
export interface CompactedBody {
  t: "compacted";
  v: 1;
  at: string;
  from: ChainPoint;
  /** Records left out (retired before the retention cutoff), and the cutoff. */
  dropped: number;
  cutoff: string;
  /** Compactions of this store so far, this one included. */
  generation: number;
}
/** The last line a compaction writes: the old file's final chain position at the switch. */
export interface SwitchedBody {
  t: "switched";
  v: 1;
  from: ChainPoint;
}
export interface OpeningBody {
  t: "opening";
  v: 1;
  roundId: string;
  secret: { iv: string; ct: string; tag: string };
}
/** A round's secret, which the records of the round put with a part share (KeyStore
 * putRoundSecret). */
export interface RoundSecretBody {
  t: "roundsecret";
  v: 1;
  roundId: string;
  secret: { iv: string; ct: string; tag: string };
}
export type LogBody =
  | TlogBody
  | OpeningBody
  | RoundSecretBody
  | UnholdBody
  | RecordBody
  | RecordsBody
  | ClaimBody
  | ClaimsBody
  | ConsumeBody
  | ConsumesBody
  | StepBody
  | LeaseBody
  | RollbackBody
  | RetireBody
  | CompactedBody
  | SwitchedBody;

/** Every line kind, one entry each: a kind added to the bodies without an entry here, or an entry
 * that is no kind, fails to compile. */
const KINDS: Record<LogBody["t"] | ParsedBody["t"], true> = {
  record: true,
  records: true,
  claim: true,
  consume: true,
  consumes: true,
  step: true,
  claims: true,
  lease: true,
  release: true,
  rollback: true,
  tlog: true,
  opening: true,
  roundsecret: true,
  unhold: true,
  retire: true,
  compacted: true,
  switched: true,
};
export type LineKind = keyof typeof KINDS;
/** Every kind of line the format has (test/store/head-file.test.ts cuts a file at each). */
export const LINE_KINDS: readonly LineKind[] = Object.keys(KINDS) as LineKind[];

/** The most ids one lease or release line names. */
export const MAX_LEASE_IDS = 4096;

function secretAad(id: string, purpose: string, roundId: string): Uint8Array {
  return lengthPrefixed(SECRET_INFO, id, purpose, roundId);
}

export function sealSecret(
  key: Uint8Array,
  random: RandomSource,
  record: Pick<KeyRecord, "id" | "purpose" | "roundId">,
  plaintext: Uint8Array,
): SealedSecret {
  const iv = new Uint8Array(random(IV_BYTES));
  if (iv.length !== IV_BYTES)
    throw new TypeError(`the random source must return ${IV_BYTES} bytes`);
  const aad = secretAad(record.id, record.purpose, record.roundId);
  const { ciphertext, tag } = aesGcmSeal(key, iv, plaintext, aad);
  return { iv, ct: ciphertext, tag };
}

/** Decrypts a secret part; throws whatever GCM throws when the tag does not verify. */
export function openSecret(
  key: Uint8Array,
  record: Pick<KeyRecord, "id" | "purpose" | "roundId">,
  sealed: SealedSecret,
): Uint8Array {
  const aad = secretAad(record.id, record.purpose, record.roundId);
  return aesGcmOpen(key, sealed.iv, sealed.ct, sealed.tag, aad);
}

/** Seals `plaintext` for round `roundId` under associated data LP(label, roundId). */
function sealForRound(
  key: Uint8Array,
  random: RandomSource,
  label: string,
  roundId: string,
  plaintext: Uint8Array,
): SealedSecret {
  const iv = new Uint8Array(random(IV_BYTES));
  if (iv.length !== IV_BYTES)
    throw new TypeError(`the random source must return ${IV_BYTES} bytes`);
  const { ciphertext, tag } = aesGcmSeal(key, iv, plaintext, lengthPrefixed(label, roundId));
  return { iv, ct: ciphertext, tag };
}

function openForRound(
  key: Uint8Array,
  label: string,
  roundId: string,
  sealed: SealedSecret,
): Uint8Array {
  return aesGcmOpen(key, sealed.iv, sealed.ct, sealed.tag, lengthPrefixed(label, roundId));
}

/** Seals round `roundId`'s opening as a secret part is sealed, under its own associated data. */
export function sealOpening(
  key: Uint8Array,
  random: RandomSource,
  roundId: string,
  plaintext: Uint8Array,
): SealedSecret {
  return sealForRound(key, random, OPENING_AAD_LABEL, roundId, plaintext);
}

/** Decrypts a round opening; throws whatever GCM throws when the tag does not verify. */
export function openOpening(key: Uint8Array, roundId: string, sealed: SealedSecret): Uint8Array {
  return openForRound(key, OPENING_AAD_LABEL, roundId, sealed);
}

/** Seals round `roundId`'s round secret (KeyStore putRoundSecret), under its own associated data. */
export function sealRoundSecret(
  key: Uint8Array,
  random: RandomSource,
  roundId: string,
  plaintext: Uint8Array,
): SealedSecret {
  return sealForRound(key, random, ROUND_SECRET_AAD_LABEL, roundId, plaintext);
}

/** Decrypts a round secret; throws whatever GCM throws when the tag does not verify. */
export function openRoundSecret(
  key: Uint8Array,
  roundId: string,
  sealed: SealedSecret,
): Uint8Array {
  return openForRound(key, ROUND_SECRET_AAD_LABEL, roundId, sealed);
}

function sealedJson(sealed: SealedSecret): { iv: string; ct: string; tag: string } {
  return { iv: toBase64url(sealed.iv), ct: toBase64url(sealed.ct), tag: toBase64url(sealed.tag) };
}

/** A record's secret part as a record line or records entry writes it: `secret` or `part`. */
function partJson(part: RecordPart): { secret: ReturnType<typeof sealedJson> } | { part: number } {
  return typeof part === "number" ? { part } : { secret: sealedJson(part) };
}

export function openingBody(roundId: string, sealed: SealedSecret): OpeningBody {
  return { t: "opening", v: 1, roundId, secret: sealedJson(sealed) };
}

export function roundSecretBody(roundId: string, sealed: SealedSecret): RoundSecretBody {
  return { t: "roundsecret", v: 1, roundId, secret: sealedJson(sealed) };
}

/**
 * A record line's body, fields in their documented order; `part`: its sealed secret part or
 * its round part; `carried`: leave `participants` out (see Carrier).
 */
export function recordBody(record: KeyRecord, part: RecordPart, carried = false): RecordBody {
  return {
    t: "record",
    v: 1,
    id: record.id,
    purpose: record.purpose,
    createdAt: record.createdAt,
    roundId: record.roundId,
    ...(carried ? {} : { participants: record.participants }),
    algorithm: record.algorithm,
    public: record.public,
    ...(record.owner === undefined ? {} : { owner: record.owner }),
    ...(record.subject === undefined ? {} : { subject: record.subject }),
    ...(record.holders === undefined ? {} : { holders: record.holders }),
    // "held" only without an owner, last before the secret part.
    ...(record.held === true ? { held: true as const } : {}),
    ...partJson(part),
  };
}

/** A claim's fields in their documented order. */
export function claimEntry(id: string, claim: Claim): ClaimEntry {
  return {
    id,
    requester: claim.requester,
    subject: claim.subject,
    requestId: claim.requestId,
    claimedAt: claim.claimedAt,
    expiresAt: claim.expiresAt,
  };
}

export function claimBody(id: string, claim: Claim): ClaimBody {
  return { t: "claim", v: 1, ...claimEntry(id, claim) };
}

/**
 * A claims line of `claims` (1 to MAX_CLAIMS_PER_LINE, in order): each entry after the first
 * leaves out `requester`, `claimedAt` and `expiresAt` where they equal the entry before's.
 */
export function claimsBody(claims: readonly ClaimEntry[]): ClaimsBody {
  const entries: ClaimsLineEntry[] = [];
  let before: ClaimEntry | undefined;
  for (const claim of claims) {
    if (before === undefined) {
      entries.push(claimEntry(claim.id, claim));
    } else {
      entries.push({
        id: claim.id,
        ...(claim.requester === before.requester ? {} : { requester: claim.requester }),
        subject: claim.subject,
        requestId: claim.requestId,
        ...(claim.claimedAt === before.claimedAt ? {} : { claimedAt: claim.claimedAt }),
        ...(claim.expiresAt === before.expiresAt ? {} : { expiresAt: claim.expiresAt }),
      });
    }
    before = claim;
  }
  return { t: "claims", v: 1, claims: entries };
}

/**
 * A claims line's entries with every field: one left out is the entry before's. Throws
 * BodyError when the first entry lacks one (the line was checked when the file was opened, so
 * only a reader of an unchecked line sees it).
 */
export function expandClaims(entries: readonly ClaimsLineEntry[]): ClaimEntry[] {
  const out: ClaimEntry[] = [];
  let before: ClaimEntry | undefined;
  for (const entry of entries) {
    const requester = entry.requester ?? before?.requester;
    const claimedAt = entry.claimedAt ?? before?.claimedAt;
    const expiresAt = entry.expiresAt ?? before?.expiresAt;
    if (requester === undefined || claimedAt === undefined || expiresAt === undefined) {
      throw new BodyError("the first entry of its claims body lacks a field");
    }
    before = {
      id: entry.id,
      requester,
      subject: entry.subject,
      requestId: entry.requestId,
      claimedAt,
      expiresAt,
    };
    out.push(before);
  }
  return out;
}

/** True when `record` may go into a records line (no owner, subject nor holders). */
export function batchable(record: KeyRecord): boolean {
  return record.owner === undefined && record.subject === undefined && record.holders === undefined;
}

/**
 * The most bytes one record may take in a records line: larger ones get a record line of their
 * own, so a full records line (MAX_RECORDS_PER_LINE of them and the header) stays far below
 * MAX_LINE_BYTES.
 */
export const MAX_RECORDS_ENTRY_BYTES = 8 * 1024;

/** At least the bytes `record`'s entry takes in a records line (its id, public and secret part). */
export function recordsEntryBytes(record: KeyRecord, part: RecordPart): number {
  const base64 = (bytes: Uint8Array) => Math.ceil((bytes.length * 4) / 3);
  const secret =
    typeof part === "number" ? 10 : base64(part.iv) + base64(part.ct) + base64(part.tag);
  return Buffer.byteLength(JSON.stringify(record.public), "utf8") + secret + record.id.length + 64;
}

/** What records must share to go into one records line (their header), as a string. */
export function recordsHeaderKey(record: KeyRecord): string {
  return JSON.stringify([
    record.purpose,
    record.createdAt,
    record.roundId,
    record.participants,
    record.algorithm,
    record.held === true,
  ]);
}

/**
 * A records line of `records` (1 to MAX_RECORDS_PER_LINE, `batchable`, the same
 * `recordsHeaderKey`, in order) with their secret parts (sealed, or round parts); `carried`:
 * leave `participants` out (Carrier).
 */
export function recordsBody(
  records: readonly KeyRecord[],
  parts: readonly RecordPart[],
  carried = false,
): RecordsBody {
  const first = records[0]!;
  return {
    t: "records",
    v: 1,
    purpose: first.purpose,
    createdAt: first.createdAt,
    roundId: first.roundId,
    ...(carried ? {} : { participants: first.participants }),
    algorithm: first.algorithm,
    ...(first.held === true ? { held: true as const } : {}),
    records: records.map((record, i) => ({
      id: record.id,
      public: record.public,
      ...partJson(parts[i]!),
    })),
  };
}

export function consumeBody(id: string, at: string): ConsumeBody {
  return { t: "consume", v: 1, id, at };
}

export function consumesBody(at: string, ids: string[]): ConsumesBody {
  return { t: "consumes", v: 1, at, ids };
}

export function stepBody(id: string, step: number, at: string): StepBody {
  return { t: "step", v: 1, id, step, at };
}

export function leaseBody(t: "lease" | "release", ids: string[]): LeaseBody {
  return { t, v: 1, ids };
}

export function retireBody(at: string, ids: string[], rounds: string[] = []): RetireBody {
  return { t: "retire", v: 1, at, ids, ...(rounds.length > 0 ? { rounds } : {}) };
}

export function compactedBody(
  at: string,
  from: ChainPoint,
  dropped: number,
  cutoff: string,
  generation: number,
): CompactedBody {
  return { t: "compacted", v: 1, at, from, dropped, cutoff, generation };
}

export function switchedBody(from: ChainPoint): SwitchedBody {
  return { t: "switched", v: 1, from };
}

export function unholdBody(roundId: string, at: string): UnholdBody {
  return { t: "unhold", v: 1, roundId, at };
}

export function tlogBody(index: number, leaf: Uint8Array): TlogBody {
  return { t: "tlog", v: 1, index, leaf: toBase64url(leaf) };
}

export function rollbackBody(
  at: string,
  reason: RollbackBody["reason"],
  found: ChainPoint,
  expected: ChainPoint | undefined,
): RollbackBody {
  return { t: "rollback", v: 1, at, reason, found, ...(expected ? { expected } : {}) };
}

function chainMac(macKey: Uint8Array, previous: Uint8Array, body: Uint8Array): Buffer {
  return createHmac("sha256", macKey).update(previous).update(body).digest();
}

/** A line (newline included) for body bytes already serialized, and its MAC. */
export function encodeBodyBytes(
  macKey: Uint8Array,
  previous: Uint8Array,
  bodyBytes: Uint8Array,
): { line: Buffer; mac: Buffer } {
  const mac = chainMac(macKey, previous, bodyBytes);
  const hex = Buffer.from(mac.toString("hex"), "latin1");
  return { line: Buffer.concat([PREFIX, hex, MIDDLE, bodyBytes, SUFFIX]), mac };
}

/** A line's claimed MAC and body bytes, by its frame alone (nothing verified), or undefined. */
export function lineParts(line: Buffer): { mac: Buffer; body: Buffer } | undefined {
  if (
    line.length < BODY_START + 1 ||
    !line.subarray(0, PREFIX.length).equals(PREFIX) ||
    !line.subarray(PREFIX.length + 2 * MAC_BYTES, BODY_START).equals(MIDDLE) ||
    line[line.length - 1] !== CLOSE_BRACE
  ) {
    return undefined;
  }
  const mac = Buffer.from(
    line.toString("latin1", PREFIX.length, BODY_START - MIDDLE.length),
    "hex",
  );
  if (mac.length !== MAC_BYTES) return undefined;
  return { mac, body: line.subarray(BODY_START, line.length - 1) };
}

/**
 * Checks one line's frame and MAC against the chain without parsing its body: the body's bytes
 * and the MAC, or why not. For a reader that already trusts the lines' schema (a compaction
 * copying its own store's lines).
 */
export function verifyLineBytes(
  macKey: Uint8Array,
  previous: Uint8Array,
  line: Uint8Array,
): { ok: true; mac: Buffer; body: Buffer } | { ok: false; reason: string } {
  const parts = lineParts(Buffer.from(line.buffer, line.byteOffset, line.byteLength));
  if (!parts) return { ok: false, reason: "it is not a key_store line" };
  const mac = chainMac(macKey, previous, parts.body);
  if (!timingSafeEqual(mac, parts.mac)) return { ok: false, reason: "its MAC does not verify" };
  return { ok: true, mac, body: parts.body };
}

/** One line's bytes (newline included) and its MAC, the next line's `previous`. */
export function encodeLine(
  macKey: Uint8Array,
  previous: Uint8Array,
  body: LogBody,
): { line: Buffer; mac: Buffer } {
  return encodeBodyBytes(macKey, previous, Buffer.from(JSON.stringify(body), "utf8"));
}

export type LineCheck =
  | { ok: true; mac: Buffer; value: unknown }
  | {
      ok: false;
      reason: string;
      /** The MAC the line claims, when its frame is intact (for telling a wrong key apart). */
      claimedMac?: Buffer;
    };

/** Checks one line (without its newline) against the chain; parses the body if the MAC holds. */
export function checkLine(macKey: Uint8Array, previous: Uint8Array, line: Uint8Array): LineCheck {
  const bytes = Buffer.from(line.buffer, line.byteOffset, line.byteLength);
  if (
    bytes.length < BODY_START + 1 ||
    !bytes.subarray(0, PREFIX.length).equals(PREFIX) ||
    !bytes.subarray(PREFIX.length + 2 * MAC_BYTES, BODY_START).equals(MIDDLE) ||
    bytes[bytes.length - 1] !== CLOSE_BRACE
  ) {
    return { ok: false, reason: "it is not a key_store line" };
  }
  const hex = bytes.toString("latin1", PREFIX.length, PREFIX.length + 2 * MAC_BYTES);
  if (!HEX.test(hex)) return { ok: false, reason: "its MAC is not 64 lowercase hex digits" };
  const claimedMac = Buffer.from(hex, "hex");
  const body = bytes.subarray(BODY_START, bytes.length - 1);
  if (!timingSafeEqual(chainMac(macKey, previous, body), claimedMac)) {
    return {
      ok: false,
      reason:
        "its MAC does not verify (the line was changed, or a line before it was removed, " +
        "inserted or reordered)",
      claimedMac,
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    return { ok: false, reason: "its body is not JSON", claimedMac };
  }
  return { ok: true, mac: claimedMac, value };
}

/** Thrown by `parseBody` with a reason that names fields, never values. */
export class BodyError extends Error {}

function isIsoTime(value: unknown): value is string {
  if (typeof value !== "string") return false;
  const time = Date.parse(value);
  return Number.isFinite(time) && new Date(time).toISOString() === value;
}

function isName(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function onlyFields(body: Record<string, unknown>, allowed: readonly string[], kind: string): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key))
      throw new BodyError(`its ${kind} body has an unknown field "${key}"`);
  }
}

function need(ok: boolean, kind: string, field: string): void {
  if (!ok) throw new BodyError(`its ${kind} body has a missing or malformed "${field}"`);
}

function b64(value: unknown, kind: string, field: string, length?: number): Uint8Array {
  need(typeof value === "string", kind, field);
  try {
    return fromBase64url(value as string, field, length);
  } catch {
    throw new BodyError(`its ${kind} body has a malformed "${field}"`);
  }
}

const RECORD_FIELDS = [
  "t",
  "v",
  "id",
  "purpose",
  "createdAt",
  "roundId",
  "participants",
  "algorithm",
  "public",
  "owner",
  "subject",
  "holders",
  "held",
  "secret",
  "part",
] as const;
const CLAIM_FIELDS = [
  "t",
  "v",
  "id",
  "requester",
  "subject",
  "requestId",
  "claimedAt",
  "expiresAt",
] as const;
const CLAIM_ENTRY_FIELDS = CLAIM_FIELDS.slice(2);
const RECORDS_FIELDS = [
  "t",
  "v",
  "purpose",
  "createdAt",
  "roundId",
  "participants",
  "algorithm",
  "held",
  "records",
] as const;
const RECORDS_ENTRY_FIELDS = ["id", "public", "secret", "part"] as const;
const CLAIMS_FIELDS = ["t", "v", "claims"] as const;
const CONSUME_FIELDS = ["t", "v", "id", "at"] as const;
const CONSUMES_FIELDS = ["t", "v", "at", "ids"] as const;
const STEP_FIELDS = ["t", "v", "id", "step", "at"] as const;
const LEASE_FIELDS = ["t", "v", "ids"] as const;
const ROLLBACK_FIELDS = ["t", "v", "at", "reason", "found", "expected"] as const;
const POINT_FIELDS = ["lines", "head"] as const;
const TLOG_FIELDS = ["t", "v", "index", "leaf"] as const;
const OPENING_FIELDS = ["t", "v", "roundId", "secret"] as const;
const ROUND_SECRET_FIELDS = OPENING_FIELDS;
const UNHOLD_FIELDS = ["t", "v", "roundId", "at"] as const;
const RETIRE_FIELDS = ["t", "v", "at", "ids", "rounds"] as const;
const COMPACTED_FIELDS = ["t", "v", "at", "from", "dropped", "cutoff", "generation"] as const;
const SWITCHED_FIELDS = ["t", "v", "from"] as const;

export type ParsedBody =
  | { t: "tlog"; index: number; leaf: Uint8Array }
  | { t: "opening"; roundId: string; sealed: SealedSecret }
  | { t: "roundsecret"; roundId: string; sealed: SealedSecret }
  | { t: "unhold"; roundId: string; at: string }
  | {
      t: "record";
      /** `participants` is [] when `carried`: the reader takes them from the carrier. */
      record: KeyRecord;
      part: RecordPart;
      carried: boolean;
    }
  | {
      t: "records";
      /** Each record's `participants` is [] when `carried`, as for a record line. */
      records: Array<{ record: KeyRecord; part: RecordPart }>;
      carried: boolean;
    }
  | { t: "claim"; id: string; claim: Claim }
  | { t: "claims"; claims: Array<{ id: string; claim: Claim }> }
  | { t: "consume"; id: string; at: string }
  | { t: "consumes"; at: string; ids: string[] }
  | { t: "step"; id: string; step: number; at: string }
  | { t: "lease" | "release"; ids: string[] }
  | { t: "retire"; at: string; ids: string[]; rounds: string[] }
  | {
      t: "compacted";
      at: string;
      from: ChainPoint;
      dropped: number;
      cutoff: string;
      generation: number;
    }
  | { t: "switched"; from: ChainPoint }
  | {
      t: "rollback";
      at: string;
      reason: RollbackBody["reason"];
      found: ChainPoint;
      expected: ChainPoint | undefined;
    };

function parsePoint(value: unknown, field: string, kind = "rollback"): ChainPoint {
  need(isObject(value), kind, field);
  const point = value as Record<string, unknown>;
  onlyFields(point, POINT_FIELDS, `${kind} ${field}`);
  need(
    typeof point.lines === "number" && Number.isSafeInteger(point.lines) && point.lines >= 0,
    kind,
    `${field}.lines`,
  );
  need(typeof point.head === "string" && HEX.test(point.head), kind, `${field}.head`);
  return { lines: point.lines as number, head: point.head as string };
}

/** A lease, release, retire or consumes line's ids: 1 to `most` distinct ULIDs. */
function idList(ids: unknown, kind: string, most = MAX_LEASE_IDS): string[] {
  need(
    Array.isArray(ids) &&
      ids.length > 0 &&
      ids.length <= most &&
      ids.every(isUlid) &&
      new Set(ids).size === ids.length,
    kind,
    "ids",
  );
  return ids as string[];
}

/** A claim's fields (of a claim line, or an entry of a claims line). */
function parseClaim(value: Record<string, unknown>, kind: string): Claim {
  for (const field of ["requester", "subject", "requestId"] as const) {
    need(isName(value[field]), kind, field);
  }
  need(isIsoTime(value.claimedAt), kind, "claimedAt");
  need(isIsoTime(value.expiresAt), kind, "expiresAt");
  return {
    requester: value.requester as string,
    subject: value.subject as string,
    requestId: value.requestId as string,
    claimedAt: value.claimedAt as string,
    expiresAt: value.expiresAt as string,
  };
}

/** A body's sealed `secret` (a record's secret part, a round's opening). */
function parseSealed(value: Record<string, unknown>, kind: string): SealedSecret {
  need(isObject(value.secret), kind, "secret");
  const secret = value.secret as Record<string, unknown>;
  onlyFields(secret, ["iv", "ct", "tag"], "secret");
  return {
    iv: b64(secret.iv, kind, "secret.iv", IV_BYTES),
    ct: b64(secret.ct, kind, "secret.ct"),
    tag: b64(secret.tag, kind, "secret.tag", TAG_BYTES),
  };
}

/** A record line's or records entry's secret part: `secret` (sealed) or `part`, exactly one. */
function parsePart(value: Record<string, unknown>, kind: string): RecordPart {
  if (value.part === undefined) return parseSealed(value, kind);
  const part = value.part;
  need(
    value.secret === undefined &&
      typeof part === "number" &&
      Number.isSafeInteger(part) &&
      part >= 0 &&
      part <= MAX_ROUND_PART &&
      !Object.is(part, -0),
    kind,
    "part",
  );
  return part as number;
}

/**
 * The round fields a record line and a records line's header share (purpose, roundId, algorithm,
 * createdAt, participants); true when `participants` is left out (carried).
 */
function checkRoundFields(value: Record<string, unknown>, kind: string): boolean {
  for (const field of ["purpose", "roundId", "algorithm"] as const) {
    need(isName(value[field]), kind, field);
  }
  need(isIsoTime(value.createdAt), kind, "createdAt");
  const carried = value.participants === undefined;
  need(
    carried || (Array.isArray(value.participants) && value.participants.every(isName)),
    kind,
    "participants",
  );
  return carried;
}

/** A records line's body (kind checked by the caller). */
function parseRecords(value: Record<string, unknown>): ParsedBody {
  const kind = "records";
  onlyFields(value, RECORDS_FIELDS, kind);
  const carried = checkRoundFields(value, kind);
  need(value.held === undefined || value.held === true, kind, "held");
  const list = value.records;
  need(
    Array.isArray(list) && list.length > 0 && list.length <= MAX_RECORDS_PER_LINE,
    kind,
    "records",
  );
  const participants = carried ? [] : (value.participants as string[]);
  const records = (list as unknown[]).map((entry) => {
    need(isObject(entry), kind, "records");
    const fields = entry as Record<string, unknown>;
    onlyFields(fields, RECORDS_ENTRY_FIELDS, "records entry");
    need(isUlid(fields.id), kind, "records[].id");
    need(isObject(fields.public), kind, "records[].public");
    const record: KeyRecord = {
      id: fields.id as string,
      purpose: value.purpose as string,
      createdAt: value.createdAt as string,
      roundId: value.roundId as string,
      participants,
      algorithm: value.algorithm as string,
      public: fields.public as JsonObject,
    };
    if (value.held === true) record.held = true;
    return { record, part: parsePart(fields, "records entry") };
  });
  return { t: "records", records, carried };
}

/** Validates a MAC-verified body. Throws BodyError. */
export function parseBody(value: unknown): ParsedBody {
  if (!isObject(value)) throw new BodyError("its body is not a JSON object");
  if (value.v !== FORMAT_VERSION) {
    throw new BodyError(
      `its body has format version ${JSON.stringify(value.v)}; this dkeygen reads version ` +
        `${FORMAT_VERSION} (was the file written by a newer dkeygen?)`,
    );
  }
  const kind = value.t;
  if (kind === "claims") {
    onlyFields(value, CLAIMS_FIELDS, kind);
    const list = value.claims;
    need(
      Array.isArray(list) && list.length > 0 && list.length <= MAX_CLAIMS_PER_LINE,
      kind,
      "claims",
    );
    let before: Claim | undefined;
    return {
      t: "claims",
      claims: (list as unknown[]).map((entry) => {
        need(isObject(entry), kind, "claims");
        const fields = entry as Record<string, unknown>;
        onlyFields(fields, CLAIM_ENTRY_FIELDS, "claims entry");
        need(isUlid(fields.id), kind, "claims[].id");
        // After the first entry, requester, claimedAt and expiresAt default to the one before's.
        const claim = parseClaim(
          before === undefined
            ? fields
            : {
                // Only an absent field takes the one before's: a null one is malformed.
                requester: fields.requester === undefined ? before.requester : fields.requester,
                subject: fields.subject,
                requestId: fields.requestId,
                claimedAt: fields.claimedAt === undefined ? before.claimedAt : fields.claimedAt,
                expiresAt: fields.expiresAt === undefined ? before.expiresAt : fields.expiresAt,
              },
          "claims entry",
        );
        before = claim;
        return { id: fields.id as string, claim };
      }),
    };
  }
  if (kind === "records") return parseRecords(value);
  if (kind === "retire") {
    onlyFields(value, RETIRE_FIELDS, kind);
    need(isIsoTime(value.at), kind, "at");
    const rounds = value.rounds;
    need(
      rounds === undefined ||
        (Array.isArray(rounds) &&
          rounds.length > 0 &&
          rounds.length <= MAX_LEASE_IDS &&
          rounds.every(isName) &&
          new Set(rounds).size === rounds.length),
      kind,
      "rounds",
    );
    return {
      t: kind,
      at: value.at as string,
      ids: idList(value.ids, kind),
      rounds: (rounds as string[] | undefined) ?? [],
    };
  }
  if (kind === "consumes") {
    onlyFields(value, CONSUMES_FIELDS, kind);
    need(isIsoTime(value.at), kind, "at");
    return { t: kind, at: value.at as string, ids: idList(value.ids, kind, MAX_CONSUMES_PER_LINE) };
  }
  if (kind === "compacted") {
    onlyFields(value, COMPACTED_FIELDS, kind);
    need(isIsoTime(value.at), kind, "at");
    need(isIsoTime(value.cutoff), kind, "cutoff");
    const count = (field: "dropped" | "generation", least: number) => {
      const n = value[field];
      need(typeof n === "number" && Number.isSafeInteger(n) && n >= least, kind, field);
      return n as number;
    };
    return {
      t: kind,
      at: value.at as string,
      from: parsePoint(value.from, "from", kind),
      dropped: count("dropped", 0),
      cutoff: value.cutoff as string,
      generation: count("generation", 1),
    };
  }
  if (kind === "switched") {
    onlyFields(value, SWITCHED_FIELDS, kind);
    return { t: kind, from: parsePoint(value.from, "from", kind) };
  }
  if (kind === "lease" || kind === "release") {
    onlyFields(value, LEASE_FIELDS, kind);
    return { t: kind, ids: idList(value.ids, kind) };
  }
  if (kind === "tlog") {
    onlyFields(value, TLOG_FIELDS, kind);
    const index = value.index;
    need(typeof index === "number" && Number.isSafeInteger(index) && index >= 0, kind, "index");
    const leaf = b64(value.leaf, kind, "leaf");
    need(leaf.length > 0 && leaf.length <= MAX_LOG_LEAF_BYTES, kind, "leaf");
    return { t: "tlog", index: index as number, leaf };
  }
  if (kind === "opening") {
    onlyFields(value, OPENING_FIELDS, kind);
    need(isName(value.roundId), kind, "roundId");
    return { t: "opening", roundId: value.roundId as string, sealed: parseSealed(value, kind) };
  }
  if (kind === "roundsecret") {
    onlyFields(value, ROUND_SECRET_FIELDS, kind);
    need(isName(value.roundId), kind, "roundId");
    return { t: "roundsecret", roundId: value.roundId as string, sealed: parseSealed(value, kind) };
  }
  if (kind === "unhold") {
    onlyFields(value, UNHOLD_FIELDS, kind);
    need(isName(value.roundId), kind, "roundId");
    need(isIsoTime(value.at), kind, "at");
    return { t: "unhold", roundId: value.roundId as string, at: value.at as string };
  }
  if (kind === "rollback") {
    onlyFields(value, ROLLBACK_FIELDS, kind);
    need(isIsoTime(value.at), kind, "at");
    const reason = value.reason as RollbackBody["reason"];
    need(ROLLBACK_REASONS.includes(reason), kind, "reason");
    const found = parsePoint(value.found, "found");
    const withExpected = reason === "shorter" || reason === "diverged";
    need(withExpected === (value.expected !== undefined), kind, "expected");
    const expected = withExpected ? parsePoint(value.expected, "expected") : undefined;
    if (expected) {
      need(
        reason === "shorter" ? expected.lines > found.lines : expected.lines <= found.lines,
        kind,
        "expected.lines",
      );
    }
    return { t: "rollback", at: value.at as string, reason, found, expected };
  }
  if (kind !== "record" && kind !== "claim" && kind !== "consume" && kind !== "step") {
    throw new BodyError(`its body has an unknown kind ${JSON.stringify(kind)}`);
  }
  need(isUlid(value.id), kind, "id");
  const id = value.id as string;
  switch (kind) {
    case "record": {
      onlyFields(value, RECORD_FIELDS, kind);
      const carried = checkRoundFields(value, kind);
      need(isObject(value.public), kind, "public");
      need(value.owner === undefined || isName(value.owner), kind, "owner");
      need(
        value.subject === undefined || (isName(value.subject) && value.owner !== undefined),
        kind,
        "subject",
      );
      need(
        value.holders === undefined ||
          (Array.isArray(value.holders) &&
            value.owner !== undefined &&
            value.holders.length > 0 &&
            value.holders.every(isName) &&
            new Set(value.holders).size === value.holders.length),
        kind,
        "holders",
      );
      need(
        value.held === undefined || (value.held === true && value.owner === undefined),
        kind,
        "held",
      );
      const part = parsePart(value, kind);
      const record: KeyRecord = {
        id,
        purpose: value.purpose as string,
        createdAt: value.createdAt as string,
        roundId: value.roundId as string,
        participants: carried ? [] : (value.participants as string[]),
        algorithm: value.algorithm as string,
        public: value.public as JsonObject,
      };
      if (value.owner !== undefined) record.owner = value.owner as string;
      if (value.subject !== undefined) record.subject = value.subject as string;
      if (value.holders !== undefined) record.holders = value.holders as string[];
      if (value.held === true) record.held = true;
      return { t: "record", record, part, carried };
    }
    case "claim": {
      onlyFields(value, CLAIM_FIELDS, kind);
      return { t: "claim", id, claim: parseClaim(value, kind) };
    }
    case "consume": {
      onlyFields(value, CONSUME_FIELDS, kind);
      need(isIsoTime(value.at), kind, "at");
      return { t: "consume", id, at: value.at as string };
    }
    case "step": {
      onlyFields(value, STEP_FIELDS, kind);
      const step = value.step;
      need(
        typeof step === "number" && Number.isSafeInteger(step) && step >= 0 && !Object.is(step, -0),
        kind,
        "step",
      );
      need(isIsoTime(value.at), kind, "at");
      return { t: "step", id, step: step as number, at: value.at as string };
    }
  }
}

export interface Segment {
  /** The line without its newline; undefined when it is longer than MAX_LINE_BYTES. */
  bytes: Buffer | undefined;
  /** Byte offsets in the file: [start, end), `end` past the newline when complete. */
  start: number;
  end: number;
  /** False for a last line with no newline: a torn write. */
  complete: boolean;
}

/** The file's lines in order from byte `from` (a line start), read in 1 MiB chunks; the last
 * may be incomplete. */
export async function* readSegments(handle: FileHandle, from = 0): AsyncGenerator<Segment> {
  const chunk = Buffer.allocUnsafe(1 << 20);
  let position = from;
  let start = from;
  let parts: Buffer[] = [];
  let length = 0;
  let oversized = false;
  for (;;) {
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
    if (bytesRead === 0) break;
    const view = chunk.subarray(0, bytesRead);
    let from = 0;
    while (from < bytesRead) {
      const newline = view.indexOf(0x0a, from);
      const stop = newline === -1 ? bytesRead : newline;
      if (!oversized) {
        if (length + (stop - from) > MAX_LINE_BYTES) {
          oversized = true;
          parts = [];
          length = 0;
        } else if (stop > from) {
          parts.push(Buffer.from(view.subarray(from, stop))); // a copy: `chunk` is reused
          length += stop - from;
        }
      }
      if (newline === -1) break;
      const end = position + newline + 1;
      yield {
        bytes: oversized ? undefined : Buffer.concat(parts, length),
        start,
        end,
        complete: true,
      };
      start = end;
      parts = [];
      length = 0;
      oversized = false;
      from = newline + 1;
    }
    position += bytesRead;
  }
  if (position > start) {
    yield {
      bytes: oversized ? undefined : Buffer.concat(parts, length),
      start,
      end: position,
      complete: false,
    };
  }
}
