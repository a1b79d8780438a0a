/**
 * A threshold-key session's entry in the transparency log (docs/PROTOCOL.md §15.1, §16): every
 * distributed key generation and every share refresh the server coordinated, completed or
 * aborted, beside the rounds. What it carries lets anyone check, from the log alone, that the n
 * holders named took part in a session of exactly these parameters and, for a completed one,
 * that every one of them signed the same transcript and public key package (the success
 * certificate). It never carries the group key, a verifying share, an address or the owner: a
 * completed entry commits to the public package through the hash the holders signed, which only
 * someone who has the package (the key's holders and owner) can compare.
 *
 * The leaf is the UTF-8 canonical JSON (RFC 8785) of the entry, like a round's (log-entry.ts);
 * `roundId` is the first 16 bytes of the session id, which is also the key record's `roundId`.
 * The signature checks are in threshold/session-entry.ts (they need the threshold layer's hashes).
 */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { canonicalJson } from "../crypto/canonical-json.js";
import { isFingerprint } from "../crypto/fingerprint.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import { MAX_DKG_PARTICIPANTS } from "./threshold-messages.js";
import { PROTOCOL_VERSION } from "./version.js";

export const DKG_ENTRY_TYPE = "dkeygen/dkg";
/** The suites a threshold key can have (§16.1). */
export const ENTRY_SUITES = ["secp256k1-tr", "ed25519", "p256"] as const;
/** The fault kinds of §16.3 an aborted session's entry may name. */
export const ENTRY_FAULTS = [
  "signature",
  "proof",
  "commitment",
  "encryption-key",
  "share",
  "equivocation",
  "certificate",
  "missing",
  "replay",
  "parameters",
  "protocol",
  "aborted",
] as const;

export interface DkgEntryHolder {
  contributorId: string;
  /** Its Ed25519 identity key, raw 32 bytes (base64url); `contributorId` is its fingerprint. */
  identity: string;
}

export interface DkgEntry {
  type: typeof DKG_ENTRY_TYPE;
  protocol: number;
  server: string;
  /** The first 16 bytes of `sessionId` (base64url): the key record's round id. */
  roundId: string;
  /** A distributed key generation, or a refresh of an existing key's shares. */
  session: "keygen" | "refresh";
  sessionId: string;
  suite: (typeof ENTRY_SUITES)[number];
  t: number;
  n: number;
  /** The session's 32-byte nonce. */
  nonce: string;
  /** The holders in index order (index 1 first). */
  holders: DkgEntryHolder[];
  /** Refresh only: the refreshed key's record id. */
  keyId?: string;
  /** Refresh only: the hash of the key's public package before the refresh. */
  previous?: string;
  /** Refresh only: the dealers' indices. */
  dealers?: number[];
  outcome: "completed" | "aborted";
  /** Completed only: the transcript hash, the public package hash, and all n confirmations. */
  transcript?: string;
  publicHash?: string;
  certificate?: string[];
  /** Aborted only: what went wrong (§16.3), and the holder blamed when one was proven. */
  fault?: (typeof ENTRY_FAULTS)[number];
  culprit?: string;
  closedAt: string;
}

export function encodeDkgEntry(entry: DkgEntry): Uint8Array {
  return new TextEncoder().encode(canonicalJson(entry as unknown as JsonObject));
}

const DKG_TYPE_MEMBER = Buffer.from(`"type":"${DKG_ENTRY_TYPE}"`);

/**
 * Whether a leaf is a threshold session's entry rather than a round's. No string value of either
 * kind of entry can hold a quotation mark, so the member can only be the entry's own `type`; a
 * leaf sent to the wrong parser is refused by it either way.
 */
export function isDkgEntryLeaf(leaf: Uint8Array): boolean {
  return Buffer.from(leaf.buffer, leaf.byteOffset, leaf.byteLength).includes(DKG_TYPE_MEMBER);
}

const FIELDS = new Set([
  "type",
  "protocol",
  "server",
  "roundId",
  "session",
  "sessionId",
  "suite",
  "t",
  "n",
  "nonce",
  "holders",
  "keyId",
  "previous",
  "dealers",
  "outcome",
  "transcript",
  "publicHash",
  "certificate",
  "fault",
  "culprit",
  "closedAt",
]);
const REFRESH_FIELDS = ["keyId", "previous", "dealers"] as const;
const COMPLETED_FIELDS = ["transcript", "publicHash", "certificate"] as const;
const RECORD_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

function malformed(what: string): DkeygenError {
  return new DkeygenError(ErrorCodes.INVALID_INPUT, `Malformed log entry: ${what}.`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function b64(value: unknown, field: string, length: number): Uint8Array {
  if (typeof value !== "string") throw malformed(`"${field}" is missing or not a string`);
  try {
    return fromBase64url(value, field, length);
  } catch {
    throw malformed(`"${field}" is not canonical base64url of ${length} bytes`);
  }
}

function isInt(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max;
}

function isTime(value: unknown): value is string {
  if (typeof value !== "string") return false;
  const t = Date.parse(value);
  return Number.isFinite(t) && new Date(t).toISOString() === value;
}

/**
 * Parses a threshold session's leaf: canonical JSON of an entry that follows the schema (every
 * field's type, length and encoding; the fields of its kind and outcome, and no others). Throws
 * E_INVALID_INPUT. Signatures and the session id are checked by threshold/session-entry.ts.
 */
export function parseDkgEntry(leaf: Uint8Array): DkgEntry {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(leaf));
  } catch {
    throw malformed("it is not UTF-8 JSON");
  }
  if (!isObject(value)) throw malformed("it is not a JSON object");
  for (const key of Object.keys(value)) {
    if (!FIELDS.has(key)) throw malformed("the entry has an unknown field");
  }
  if (value.type !== DKG_ENTRY_TYPE) throw malformed(`"type" is not "${DKG_ENTRY_TYPE}"`);
  if (value.protocol !== PROTOCOL_VERSION) {
    throw malformed(`"protocol" is not ${PROTOCOL_VERSION}, the version this dkeygen checks`);
  }
  if (typeof value.server !== "string" || !isFingerprint(value.server)) {
    throw malformed(`"server" is not a fingerprint`);
  }
  if (value.session !== "keygen" && value.session !== "refresh") {
    throw malformed(`"session" is not keygen or refresh`);
  }
  const sessionId = b64(value.sessionId, "sessionId", 32);
  if (value.roundId !== toBase64url(sessionId.subarray(0, 16))) {
    throw malformed(`"roundId" is not the first 16 bytes of the session id`);
  }
  if (!(ENTRY_SUITES as readonly unknown[]).includes(value.suite)) {
    throw malformed(`"suite" is not one of ${ENTRY_SUITES.join(", ")}`);
  }
  if (!isInt(value.n, 2, MAX_DKG_PARTICIPANTS)) {
    throw malformed(`"n" is not an integer from 2 to ${MAX_DKG_PARTICIPANTS}`);
  }
  if (!isInt(value.t, 2, value.n)) throw malformed(`"t" is not an integer from 2 to n`);
  const n = value.n;
  b64(value.nonce, "nonce", 32);
  if (!Array.isArray(value.holders) || value.holders.length !== n) {
    throw malformed(`"holders" is not a list of n holders`);
  }
  const ids = new Set<string>();
  for (const holder of value.holders as unknown[]) {
    if (!isObject(holder)) throw malformed("a holder is not an object");
    const keys = Object.keys(holder).sort().join(",");
    if (keys !== "contributorId,identity")
      throw malformed("a holder has missing or unknown fields");
    if (typeof holder.contributorId !== "string" || !isFingerprint(holder.contributorId)) {
      throw malformed(`a holder's "contributorId" is not a fingerprint`);
    }
    ids.add(holder.contributorId);
    b64(holder.identity, "holders[].identity", 32);
  }
  if (ids.size !== n) throw malformed(`"holders" repeats a contributor`);
  const refresh = value.session === "refresh";
  for (const field of REFRESH_FIELDS) {
    if ((value[field] !== undefined) !== refresh) {
      throw malformed(`"${field}" is ${refresh ? "missing from a refresh" : "only for a refresh"}`);
    }
  }
  if (refresh) {
    if (typeof value.keyId !== "string" || !RECORD_ID.test(value.keyId)) {
      throw malformed(`"keyId" is not a record id`);
    }
    b64(value.previous, "previous", 32);
    const dealers = value.dealers;
    if (
      !Array.isArray(dealers) ||
      dealers.length !== value.t ||
      !dealers.every((d, i) => isInt(d, 1, n) && (i === 0 || d > dealers[i - 1]))
    ) {
      throw malformed(`"dealers" is not t ascending holder indices`);
    }
  }
  if (value.outcome !== "completed" && value.outcome !== "aborted") {
    throw malformed(`"outcome" is not completed or aborted`);
  }
  const completed = value.outcome === "completed";
  for (const field of COMPLETED_FIELDS) {
    if ((value[field] !== undefined) !== completed) {
      throw malformed(
        `"${field}" is ${completed ? "missing from" : "only for"} a completed session`,
      );
    }
  }
  if (completed) {
    b64(value.transcript, "transcript", 32);
    b64(value.publicHash, "publicHash", 32);
    if (!Array.isArray(value.certificate) || value.certificate.length !== n) {
      throw malformed(`"certificate" is not a list of n signatures`);
    }
    for (const signature of value.certificate) b64(signature, "certificate[]", 64);
  } else {
    if (!(ENTRY_FAULTS as readonly unknown[]).includes(value.fault)) {
      throw malformed(`"fault" is not a fault kind of §16.3`);
    }
    if (value.culprit !== undefined && !ids.has(value.culprit as string)) {
      throw malformed(`"culprit" is not one of the holders`);
    }
  }
  if (completed && (value.fault !== undefined || value.culprit !== undefined)) {
    throw malformed(`a completed session names no fault`);
  }
  if (!isTime(value.closedAt)) throw malformed(`"closedAt" is not an ISO 8601 UTC time`);
  const entry = value as unknown as DkgEntry;
  if (!Buffer.from(encodeDkgEntry(entry)).equals(Buffer.from(leaf))) {
    throw malformed("it is not in canonical JSON form");
  }
  return entry;
}

/** What a coordinator hands over when a session ends, to become its entry. */
export interface DkgSessionEvidence {
  server: string;
  session: "keygen" | "refresh";
  sessionId: Uint8Array;
  suite: DkgEntry["suite"];
  t: number;
  n: number;
  nonce: Uint8Array;
  holders: { contributorId: string; identity: Uint8Array }[];
  refresh?: { keyId: string; previous: Uint8Array; dealers: number[] };
  completed?: { transcript: Uint8Array; publicHash: Uint8Array; certificate: Uint8Array[] };
  /** Absent from a completed session; an aborted one without it is logged as kind `aborted`. */
  aborted?: { fault: NonNullable<DkgEntry["fault"]>; culprit?: string };
  closedAt: Date;
}

export function dkgEntryOf(e: DkgSessionEvidence): DkgEntry {
  return {
    type: DKG_ENTRY_TYPE,
    protocol: PROTOCOL_VERSION,
    server: e.server,
    roundId: toBase64url(e.sessionId.subarray(0, 16)),
    session: e.session,
    sessionId: toBase64url(e.sessionId),
    suite: e.suite,
    t: e.t,
    n: e.n,
    nonce: toBase64url(e.nonce),
    holders: e.holders.map((h) => ({
      contributorId: h.contributorId,
      identity: toBase64url(h.identity),
    })),
    ...(e.refresh === undefined
      ? {}
      : {
          keyId: e.refresh.keyId,
          previous: toBase64url(e.refresh.previous),
          dealers: [...e.refresh.dealers],
        }),
    outcome: e.completed === undefined ? "aborted" : "completed",
    ...(e.completed === undefined
      ? {}
      : {
          transcript: toBase64url(e.completed.transcript),
          publicHash: toBase64url(e.completed.publicHash),
          certificate: e.completed.certificate.map((s) => toBase64url(s)),
        }),
    ...(e.completed !== undefined
      ? {}
      : {
          fault: e.aborted?.fault ?? "aborted",
          ...(e.aborted?.culprit === undefined ? {} : { culprit: e.aborted.culprit }),
        }),
    closedAt: e.closedAt.toISOString(),
  };
}
