/**
 * A round's entry in the transparency log (docs/PROTOCOL.md §15.1): everything an outsider needs
 * to check, from the log alone, that the round ran as the protocol says — the signed invitation,
 * each contributor's signed commitment and countersignature of the commit set, the signed set,
 * the signed closing — and a salted commitment to each result, never the result itself (the log is
 * public; an OTP, a key or a wallet's xpub is not).
 *
 * The leaf is the UTF-8 canonical JSON (RFC 8785, crypto/canonical-json.ts) of the entry object,
 * so it has exactly one byte form; a parser refuses any other.
 */
import { createHash, type KeyObject } from "node:crypto";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { lengthPrefixed } from "../crypto/canonical.js";
import { canonicalJson } from "../crypto/canonical-json.js";
import { fingerprintOfSpki, isFingerprint, spkiDer } from "../crypto/fingerprint.js";
import { serverVerify } from "../crypto/server-signature.js";
import { isStrongEd25519Key, publicKeyFromRaw, verifySignature } from "../crypto/signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { Json, JsonObject } from "../json.js";
import { contributorIdOf } from "./identity.js";
import { MAX_INVITED } from "./messages.js";
import {
  commitSetHash,
  commitSetSignedData,
  commitSignedData,
  revealSignedData,
  roundClosedSignedData,
  roundOpenSignedData,
} from "./signed-data.js";
import { PROTOCOL_VERSION } from "./version.js";

const V = String(PROTOCOL_VERSION);
export const ENTRY_TYPE = "dkeygen/round";

/** One contributor of the commit set, as the log shows it. */
export interface EntryCommit {
  contributorId: string;
  /** Its Ed25519 identity key, raw 32 bytes (base64url); `contributorId` is its fingerprint. */
  identity: string;
  commitment: string;
  /** Its `commit` signature. */
  signature: string;
  /** Its accepted `reveal`'s signature (which countersigns the set); absent if it did not reveal. */
  reveal?: string;
}

export type EntryOutcome = "completed" | "aborted" | "failed";

export interface RoundEntry {
  type: typeof ENTRY_TYPE;
  /** The protocol version whose signed-data rules (§5) the signatures follow. */
  protocol: number;
  server: string;
  roundId: string;
  purpose: string;
  paramsHash: string;
  seed: string;
  serverCommitment: string;
  roundKey: string;
  commitDeadline: string;
  revealDeadline: string;
  invited: string[];
  /** round.open's RSASSA-PSS signature by the server key. */
  openSignature: string;
  /** The commit set, sorted by contributorId. */
  commits: EntryCommit[];
  /** round.commits' signature by the round key. */
  setSignature: string;
  outcome: EntryOutcome;
  accepted: number;
  missing?: string[];
  /** round.closed's signature by the round key. */
  closedSignature: string;
  /** A completed round's results: how many, and the hash of their commitments (§15.1). */
  results?: { count: number; hash: string };
  closedAt: string;
}

/** The leaf bytes of an entry. */
export function encodeRoundEntry(entry: RoundEntry): Uint8Array {
  return new TextEncoder().encode(canonicalJson(entry as unknown as JsonObject));
}

const ENTRY_FIELDS = new Set([
  "type",
  "protocol",
  "server",
  "roundId",
  "purpose",
  "paramsHash",
  "seed",
  "serverCommitment",
  "roundKey",
  "commitDeadline",
  "revealDeadline",
  "invited",
  "openSignature",
  "commits",
  "setSignature",
  "outcome",
  "accepted",
  "missing",
  "closedSignature",
  "results",
  "closedAt",
]);
const COMMIT_FIELDS = new Set(["contributorId", "identity", "commitment", "signature", "reveal"]);
const OUTCOMES = new Set(["completed", "aborted", "failed"]);
const ROUND_ID = /^[A-Za-z0-9_-]{22}$/;
const PURPOSE = /^[a-z][a-z0-9-]{0,31}$/;

function malformed(what: string): DkeygenError {
  return new DkeygenError(ErrorCodes.INVALID_INPUT, `Malformed log entry: ${what}.`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function only(value: Record<string, unknown>, allowed: Set<string>, where: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) throw malformed(`${where} has an unknown field`);
  }
}

function b64(value: unknown, field: string, length?: number): Uint8Array {
  if (typeof value !== "string") throw malformed(`"${field}" is missing or not a string`);
  try {
    return fromBase64url(value, field, length);
  } catch {
    throw malformed(`"${field}" is not canonical base64url${length ? ` of ${length} bytes` : ""}`);
  }
}

function isTime(value: unknown): value is string {
  if (typeof value !== "string") return false;
  const t = Date.parse(value);
  return Number.isFinite(t) && new Date(t).toISOString() === value;
}

function fingerprints(value: unknown, field: string, min: number): string[] {
  if (
    !Array.isArray(value) ||
    value.length < min ||
    value.length > MAX_INVITED ||
    !value.every((id) => typeof id === "string" && isFingerprint(id))
  ) {
    throw malformed(`"${field}" is not a list of ${min} to ${MAX_INVITED} fingerprints`);
  }
  return value as string[];
}

/**
 * Parses a leaf: canonical JSON of an entry that follows the schema (every field's type, length
 * and encoding). Throws E_INVALID_INPUT. Signatures are checked by `verifyRoundEntry`.
 */
export function parseRoundEntry(leaf: Uint8Array): RoundEntry {
  let value: unknown;
  const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  try {
    value = JSON.parse(text.decode(leaf));
  } catch {
    throw malformed("it is not UTF-8 JSON");
  }
  if (!isObject(value)) throw malformed("it is not a JSON object");
  only(value, ENTRY_FIELDS, "the entry");
  if (value.type !== ENTRY_TYPE) throw malformed(`"type" is not "${ENTRY_TYPE}"`);
  if (value.protocol !== PROTOCOL_VERSION) {
    throw malformed(`"protocol" is not ${PROTOCOL_VERSION}, the version this dkeygen checks`);
  }
  if (typeof value.server !== "string" || !isFingerprint(value.server)) {
    throw malformed(`"server" is not a fingerprint`);
  }
  if (typeof value.roundId !== "string" || !ROUND_ID.test(value.roundId)) {
    throw malformed(`"roundId" is not 16 bytes of base64url`);
  }
  b64(value.roundId, "roundId", 16);
  if (typeof value.purpose !== "string" || !PURPOSE.test(value.purpose)) {
    throw malformed(`"purpose" is not a purpose name`);
  }
  for (const field of ["paramsHash", "seed", "serverCommitment", "roundKey"]) {
    b64(value[field], field, 32);
  }
  for (const field of ["commitDeadline", "revealDeadline", "closedAt"]) {
    if (!isTime(value[field])) throw malformed(`"${field}" is not an ISO 8601 UTC time`);
  }
  const invited = fingerprints(value.invited, "invited", 1);
  if (new Set(invited).size !== invited.length) throw malformed(`"invited" repeats an id`);
  b64(value.openSignature, "openSignature");
  if (!Array.isArray(value.commits) || value.commits.length < 1) {
    throw malformed(`"commits" is not a non-empty list`);
  }
  let previous = "";
  for (const commit of value.commits as unknown[]) {
    if (!isObject(commit)) throw malformed("a commit is not an object");
    only(commit, COMMIT_FIELDS, "a commit");
    const id = commit.contributorId;
    if (typeof id !== "string" || !isFingerprint(id)) {
      throw malformed(`a commit's "contributorId" is not a fingerprint`);
    }
    if (Buffer.compare(Buffer.from(previous), Buffer.from(id)) >= 0) {
      throw malformed(`"commits" is not sorted by contributorId without repeats`);
    }
    previous = id;
    b64(commit.identity, "commits[].identity", 32);
    b64(commit.commitment, "commits[].commitment", 32);
    b64(commit.signature, "commits[].signature", 64);
    if (commit.reveal !== undefined) b64(commit.reveal, "commits[].reveal", 64);
  }
  b64(value.setSignature, "setSignature", 64);
  if (typeof value.outcome !== "string" || !OUTCOMES.has(value.outcome)) {
    throw malformed(`"outcome" is not completed, aborted or failed`);
  }
  if (
    typeof value.accepted !== "number" ||
    !Number.isSafeInteger(value.accepted) ||
    value.accepted < 0 ||
    value.accepted > MAX_INVITED
  ) {
    throw malformed(`"accepted" is not an integer from 0 to ${MAX_INVITED}`);
  }
  if (value.missing !== undefined) fingerprints(value.missing, "missing", 1);
  b64(value.closedSignature, "closedSignature", 64);
  if (value.results !== undefined) {
    const results = value.results;
    if (!isObject(results)) throw malformed(`"results" is not an object`);
    only(results, new Set(["count", "hash"]), `"results"`);
    if (
      typeof results.count !== "number" ||
      !Number.isSafeInteger(results.count) ||
      results.count < 1
    ) {
      throw malformed(`"results.count" is not a positive integer`);
    }
    b64(results.hash, "results.hash", 32);
  }
  const entry = value as unknown as RoundEntry;
  // One byte form only: what was parsed must encode back to the very same leaf.
  if (!Buffer.from(encodeRoundEntry(entry)).equals(Buffer.from(leaf))) {
    throw malformed("it is not in canonical JSON form");
  }
  return entry;
}

function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

/** A result's salt (§15.1), from its derivation secret `S`: only holders of `S` can compute it. */
export function resultSalt(derivationSecret: Uint8Array): Uint8Array {
  return sha256(lengthPrefixed("dkeygen/v1/result-salt", V, derivationSecret));
}

/**
 * The commitment to one result (§15.1): binds the record id, its algorithm and public part, and,
 * through its salt (`resultSalt`), hides them from everyone who does not hold the result's
 * derivation secret (an OTP's six digits could otherwise be guessed from the log).
 */
export function resultCommitment(
  recordId: string,
  algorithm: string,
  publicPart: JsonObject,
  salt: Uint8Array,
): Uint8Array {
  return sha256(
    lengthPrefixed(
      "dkeygen/v1/result-commitment",
      V,
      recordId,
      algorithm,
      canonicalJson(publicPart as Json),
      salt,
    ),
  );
}

/** The hash of a completed round's result commitments, in the order the round made them. */
export function resultsHash(
  roundId: string,
  results: readonly { recordId: string; commitment: Uint8Array }[],
): Uint8Array {
  const fields: (string | Uint8Array)[] = [
    "dkeygen/v1/round-results",
    V,
    roundId,
    String(results.length),
  ];
  for (const r of results) fields.push(r.recordId, r.commitment);
  return sha256(lengthPrefixed(...fields));
}

/** What an entry's commit set hashes to (§5), from the entry. */
export function entrySetHash(entry: RoundEntry): Uint8Array {
  return commitSetHash(
    entry.roundId,
    entry.server,
    entry.commits.map((c) => ({
      contributorId: c.contributorId,
      commitment: fromBase64url(c.commitment, "commitment", 32),
    })),
  );
}

function bad(what: string): DkeygenError {
  return new DkeygenError(ErrorCodes.BAD_SIGNATURE, what);
}

/**
 * Checks a parsed entry against the server key `serverKey` (its RSA public key): every signature
 * in it (round.open by the server key; the commit set and the closing by the round key the
 * invitation certifies; each commitment and countersignature by the contributor's identity key,
 * whose fingerprint is its id) and the rules that tie them together (§15.1). Throws
 * E_BAD_SIGNATURE naming the first failure.
 */
export function verifyRoundEntry(entry: RoundEntry, serverKey: KeyObject): void {
  const server = fingerprintOfSpki(spkiDer(serverKey));
  if (entry.server !== server) {
    throw bad(`The entry is from server ${entry.server}, not ${server}.`);
  }
  const roundKey = fromBase64url(entry.roundKey, "roundKey", 32);
  const open = roundOpenSignedData({
    roundId: entry.roundId,
    purpose: entry.purpose,
    paramsHash: fromBase64url(entry.paramsHash, "paramsHash", 32),
    seed: fromBase64url(entry.seed, "seed", 32),
    serverCommitment: fromBase64url(entry.serverCommitment, "serverCommitment", 32),
    roundKey,
    commitDeadline: entry.commitDeadline,
    revealDeadline: entry.revealDeadline,
    invited: entry.invited,
  });
  if (!serverVerify(serverKey, open, fromBase64url(entry.openSignature, "openSignature"))) {
    throw bad("The server's signature of the round's invitation does not verify.");
  }
  if (!isStrongEd25519Key(roundKey)) throw bad("The round key is a weak Ed25519 key.");
  const roundPublic = publicKeyFromRaw(roundKey);
  const invited = new Set(entry.invited);
  for (const c of entry.commits) {
    if (!invited.has(c.contributorId)) {
      throw bad(`Contributor ${c.contributorId} is in the commit set but was not invited.`);
    }
    const identity = fromBase64url(c.identity, "identity", 32);
    if (!isStrongEd25519Key(identity) || contributorIdOf(identity) !== c.contributorId) {
      throw bad(`Contributor ${c.contributorId}'s identity key is not the one its id names.`);
    }
  }
  const setHash = entrySetHash(entry);
  if (
    !verifySignature(
      roundPublic,
      commitSetSignedData(entry.roundId, setHash),
      fromBase64url(entry.setSignature, "setSignature", 64),
    )
  ) {
    throw bad("The round key's signature of the commit set does not verify.");
  }
  const unrevealed: string[] = [];
  for (const c of entry.commits) {
    const identity = publicKeyFromRaw(fromBase64url(c.identity, "identity", 32));
    const commitment = fromBase64url(c.commitment, "commitment", 32);
    const signed = commitSignedData(entry.roundId, c.contributorId, server, commitment);
    if (!verifySignature(identity, signed, fromBase64url(c.signature, "signature", 64))) {
      throw bad(`Contributor ${c.contributorId}'s commitment signature does not verify.`);
    }
    if (c.reveal === undefined) {
      unrevealed.push(c.contributorId);
      continue;
    }
    const countersigned = revealSignedData(
      entry.roundId,
      c.contributorId,
      server,
      setHash,
      commitment,
    );
    if (!verifySignature(identity, countersigned, fromBase64url(c.reveal, "reveal", 64))) {
      throw bad(`Contributor ${c.contributorId}'s countersignature of the set does not verify.`);
    }
  }
  const revealed = entry.commits.length - unrevealed.length;
  const missing = entry.missing ?? [];
  const closed = roundClosedSignedData({
    roundId: entry.roundId,
    outcome: entry.outcome,
    accepted: entry.accepted,
    setHash,
    missing,
  });
  if (
    !verifySignature(
      roundPublic,
      closed,
      fromBase64url(entry.closedSignature, "closedSignature", 64),
    )
  ) {
    throw bad("The round key's signature of the closing does not verify.");
  }
  const rule = (ok: boolean, what: string) => {
    if (!ok) throw bad(`The entry breaks a rule of §15.1: ${what}.`);
  };
  if (entry.outcome === "completed") {
    rule(unrevealed.length === 0, "a completed round used every committed contribution");
    rule(entry.accepted === entry.commits.length, "a completed round accepted every commitment");
    rule(entry.missing === undefined, "a completed round names no one missing");
    rule(entry.results !== undefined, "a completed round commits to its results");
  } else {
    rule(entry.results === undefined, "a round that did not complete has no results");
    if (entry.outcome === "aborted") {
      rule(
        missing.length > 0 && missing.join("\n") === unrevealed.join("\n"),
        "an aborted round names exactly the committed contributors whose reveal it lacks",
      );
      rule(entry.accepted === revealed, "an aborted round counts the reveals it accepted");
    } else {
      rule(entry.missing === undefined, "a failed round names no one missing");
    }
  }
}

/** The parts of a round the runner hands over when it closes, to become its log entry. */
export interface ClosedRoundEvidence {
  server: string;
  open: {
    roundId: string;
    purpose: string;
    paramsHash: string;
    seed: string;
    serverCommitment: string;
    roundKey: string;
    commitDeadline: string;
    revealDeadline: string;
    invited: string[];
    signature: string;
  };
  commits: {
    contributorId: string;
    identity: Uint8Array;
    commitment: Uint8Array;
    signature: string;
    reveal?: string;
  }[];
  setSignature: string;
  closed: {
    outcome: EntryOutcome;
    accepted: number;
    missing?: string[];
    signature: string;
  };
  results?: { recordId: string; commitment: Uint8Array }[];
  closedAt: Date;
}

/** Builds the entry of a closed round from its signed messages and the contributors' signatures. */
export function roundEntryOf(evidence: ClosedRoundEvidence): RoundEntry {
  const { open, closed } = evidence;
  const commits = [...evidence.commits]
    .sort((a, b) => Buffer.compare(Buffer.from(a.contributorId), Buffer.from(b.contributorId)))
    .map((c) => ({
      contributorId: c.contributorId,
      identity: toBase64url(c.identity),
      commitment: toBase64url(c.commitment),
      signature: c.signature,
      ...(c.reveal === undefined ? {} : { reveal: c.reveal }),
    }));
  return {
    type: ENTRY_TYPE,
    protocol: PROTOCOL_VERSION,
    server: evidence.server,
    roundId: open.roundId,
    purpose: open.purpose,
    paramsHash: open.paramsHash,
    seed: open.seed,
    serverCommitment: open.serverCommitment,
    roundKey: open.roundKey,
    commitDeadline: open.commitDeadline,
    revealDeadline: open.revealDeadline,
    invited: [...open.invited],
    openSignature: open.signature,
    commits,
    setSignature: evidence.setSignature,
    outcome: closed.outcome,
    accepted: closed.accepted,
    ...(closed.missing === undefined ? {} : { missing: [...closed.missing] }),
    closedSignature: closed.signature,
    ...(evidence.results === undefined
      ? {}
      : {
          results: {
            count: evidence.results.length,
            hash: toBase64url(resultsHash(open.roundId, evidence.results)),
          },
        }),
    closedAt: evidence.closedAt.toISOString(),
  };
}
