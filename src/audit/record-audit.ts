/**
 * `dkeygen audit record`'s checker (docs/PROTOCOL.md §15.6): given a record's public part, its
 * opening (sealed to its owner by the server) and what the server publishes to anyone — the log
 * identity, a checkpoint, the round's entry and its inclusion proof — checks, trusting none of it,
 * that the record came from a committed round of the entry's contributors and that nobody could
 * choose it. No network and no files here: the caller fetches (src/cli/commands/audit-record.ts).
 *
 * Steps, in order (stable names: `--json` prints them): identity, checkpoint, inclusion, entry,
 * opening, server-secret, contributions, completed, derivation, results. Every step runs whose
 * inputs could be established; one whose inputs could not is `skipped`. A step's message names
 * what failed, never a secret (phrases, content keys, the server secret, derivation secrets).
 */

import { type KeyObject, timingSafeEqual } from "node:crypto";
import { fromBase64url } from "../crypto/base64url.js";
import { canonicalJson } from "../crypto/canonical-json.js";
import { aesGcmOpen } from "../crypto/envelope.js";
import { batchOutputSecret, combineRoundSecret } from "../crypto/kdf.js";
import { derivePurpose } from "../derive/index.js";
import { describeError, isDkeygenError } from "../errors.js";
import type { Json, JsonObject } from "../json.js";
import {
  parseRoundEntry,
  type RoundEntry,
  resultCommitment,
  resultSalt,
  resultsHash,
  verifyRoundEntry,
} from "../protocol/log-entry.js";
import {
  contributionAad,
  contributionCommitment,
  serverSecretCommitment,
} from "../protocol/signed-data.js";
import { type Checkpoint, openCheckpoint } from "../tlog/checkpoint.js";
import { hashesEqual, hashLeaf, verifyInclusion } from "../tlog/merkle.js";
import { verifyLogIdentity } from "./log-audit.js";
import { auditThresholdKey, THRESHOLD_KEY_PURPOSE } from "./threshold-record-audit.js";

export const RECORD_AUDIT_STEPS = [
  "identity",
  "checkpoint",
  "inclusion",
  "entry",
  "opening",
  "server-secret",
  "contributions",
  "completed",
  "derivation",
  "results",
] as const;
/**
 * A threshold key's steps (it has no opening: threshold-record-audit.ts): the first four, then its
 * record against its session's entry.
 */
export const THRESHOLD_AUDIT_STEPS = [
  "identity",
  "checkpoint",
  "inclusion",
  "entry",
  "certificate",
] as const;
export type RecordAuditStep =
  | (typeof RECORD_AUDIT_STEPS)[number]
  | (typeof THRESHOLD_AUDIT_STEPS)[number];

export interface RecordAuditStepResult {
  step: RecordAuditStep;
  status: "passed" | "failed" | "skipped";
  message: string;
}

/** The record as `GET /v1/keys/{id}` shows it (the fields the audit reads). */
export interface AuditedRecord {
  id: string;
  purpose: string;
  roundId: string;
  algorithm: string;
  public: JsonObject;
}

export interface RecordAuditInput {
  record: AuditedRecord;
  /** The record opening (§15.6), as opened from its delivery. */
  opening: unknown;
  /** GET /v1/log/identity. */
  identity: unknown;
  /** The server fingerprint to require (pinned); without it the identity's own is reported. */
  serverFingerprint?: string;
  /** GET /v1/log/checkpoint: the signed note's text. */
  checkpoint: string;
  /** GET /v1/log/proof/inclusion?roundId=…&size=<the checkpoint's size>. */
  proof: unknown;
  /** The round's entry's leaf (GET /v1/log/entries at the proof's index). */
  leaf: Uint8Array;
  /** A wallet's passphrase, when its record was made with one (never part of an opening). */
  passphrase?: string;
}

export interface RecordAuditReport {
  ok: boolean;
  recordId: string;
  roundId: string;
  server?: { fingerprint: string; pinned: boolean };
  checkpoint?: { size: number; rootHash: string };
  entryIndex?: number;
  /** The contributors of the round's commit set, once the entry checked. */
  contributors?: string[];
  steps: RecordAuditStepResult[];
}

/** A step's failure, with its message (never a secret). */
class StepFailure extends Error {}

const fail = (message: string): never => {
  throw new StepFailure(message);
};

function reasonOf(error: unknown): string {
  if (error instanceof StepFailure) return error.message;
  return isDkeygenError(error) ? error.message : describeError(error);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Lowercase hex of exactly `bytes` bytes. */
function hexBytes(value: unknown, bytes: number, what: string): Uint8Array {
  if (typeof value !== "string" || !new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(value)) {
    fail(`the opening's ${what} is not ${bytes} bytes of lowercase hex`);
  }
  return new Uint8Array(Buffer.from(value as string, "hex"));
}

/** Standard base64 with padding (the log routes' hashes), strictly. */
function base64Hash(value: unknown, what: string): Uint8Array {
  if (typeof value === "string") {
    const bytes = Buffer.from(value, "base64");
    if (bytes.length === 32 && bytes.toString("base64") === value) return new Uint8Array(bytes);
  }
  return fail(`the inclusion proof's ${what} is not a base64 SHA-256 hash`);
}

interface Contribution {
  contributorId: string;
  envelope: { alg: string; ek: string; iv: string; ct: string; tag: string };
  contentKey: Uint8Array;
  phrase: Uint8Array;
}

interface ParsedOpening {
  recordId: string;
  roundId: string;
  purpose: string;
  algorithm: string;
  params: JsonObject;
  batch: { index: number; size: number };
  serverSecret: Uint8Array;
  contributions: Contribution[];
  results: { recordId: string; commitment: Uint8Array }[];
}

/** Checks the opening's shape; throws StepFailure naming the first malformed member. */
function parseOpening(value: unknown): ParsedOpening {
  if (!isObject(value)) fail("the opening is not a JSON object");
  const o = value as Record<string, unknown>;
  for (const field of ["recordId", "roundId", "purpose", "algorithm"] as const) {
    if (typeof o[field] !== "string") fail(`the opening has no "${field}" string`);
  }
  if (!isObject(o.params)) fail('the opening has no "params" object');
  const batch = o.batch as Record<string, unknown> | undefined;
  if (
    !isObject(batch) ||
    !Number.isSafeInteger(batch.index) ||
    !Number.isSafeInteger(batch.size) ||
    (batch.index as number) < 0 ||
    (batch.size as number) < 1 ||
    (batch.index as number) >= (batch.size as number)
  ) {
    fail('the opening\'s "batch" is not {index, size} with 0 ≤ index < size');
  }
  if (!Array.isArray(o.contributions)) fail('the opening has no "contributions" list');
  if (!Array.isArray(o.results)) fail('the opening has no "results" list');
  const contributions = (o.contributions as unknown[]).map((item, i): Contribution => {
    if (!isObject(item)) return fail(`the opening's contribution ${i} is not an object`);
    for (const field of ["contributorId", "alg", "ek", "iv", "ct", "tag"] as const) {
      if (typeof item[field] !== "string") {
        fail(`the opening's contribution ${i} has no "${field}" string`);
      }
    }
    const id = item.contributorId as string;
    return {
      contributorId: id,
      envelope: {
        alg: item.alg as string,
        ek: item.ek as string,
        iv: item.iv as string,
        ct: item.ct as string,
        tag: item.tag as string,
      },
      contentKey: hexBytes(item.contentKey, 32, `content key of ${id}`),
      phrase: hexBytes(item.phrase, 64, `phrase of ${id}`),
    };
  });
  const results = (o.results as unknown[]).map((item, i) => {
    if (!isObject(item) || typeof item.recordId !== "string") {
      return fail(`the opening's result ${i} has no "recordId" string`);
    }
    let commitment: Uint8Array;
    try {
      commitment = fromBase64url(item.commitment as string, "commitment", 32);
    } catch {
      return fail(`the opening's result ${i} has no 32-byte base64url "commitment"`);
    }
    return { recordId: item.recordId, commitment };
  });
  return {
    recordId: o.recordId as string,
    roundId: o.roundId as string,
    purpose: o.purpose as string,
    algorithm: o.algorithm as string,
    params: o.params as JsonObject,
    batch: { index: batch!.index as number, size: batch!.size as number },
    serverSecret: hexBytes(o.serverSecret, 32, "server secret"),
    contributions,
    results,
  };
}

/**
 * The log identity (§15.3), checked as `audit log` checks it (log-audit.ts verifyLogIdentity),
 * its reason worded as this report's steps are.
 */
function checkIdentity(document: unknown, pinned: string | undefined) {
  try {
    const { serverKey, fingerprint, origin, logVerifier } = verifyLogIdentity(document, pinned);
    return { serverKey, fingerprint, origin, verifier: logVerifier };
  } catch (error) {
    const message = reasonOf(error).replace(/\.$/, "");
    return fail(message.charAt(0).toLowerCase() + message.slice(1));
  }
}

/**
 * Runs every step (§15.6) and reports each. `ok` only when every step passed. Throws nothing for
 * bad input: whatever does not check is a failed (or skipped) step.
 */
export async function auditRecord(input: RecordAuditInput): Promise<RecordAuditReport> {
  const { record } = input;
  const steps: RecordAuditStepResult[] = [];
  const report: RecordAuditReport = {
    ok: false,
    recordId: record.id,
    roundId: record.roundId,
    steps,
  };
  /** Runs `body` as step `step` if every step it needs passed (else skips it). */
  const step = async <T>(
    name: RecordAuditStep,
    needs: readonly (RecordAuditStep | false)[],
    body: () => T | Promise<T>,
    passed: (value: T) => string,
  ): Promise<T | undefined> => {
    const missing = needs.find(
      (n) => n === false || steps.find((s) => s.step === n)?.status !== "passed",
    );
    if (missing !== undefined) {
      steps.push({
        step: name,
        status: "skipped",
        message: missing === false ? "its inputs are missing" : `needs the ${missing} step`,
      });
      return undefined;
    }
    try {
      const value = await body();
      steps.push({ step: name, status: "passed", message: passed(value) });
      return value;
    } catch (error) {
      steps.push({ step: name, status: "failed", message: reasonOf(error) });
      return undefined;
    }
  };

  const identity = await step(
    "identity",
    [],
    () => checkIdentity(input.identity, input.serverFingerprint),
    (id) =>
      `server ${id.fingerprint}${input.serverFingerprint === undefined ? " (not pinned)" : " as pinned"}; its signature of the log key verifies`,
  );
  if (identity) {
    report.server = {
      fingerprint: identity.fingerprint,
      pinned: input.serverFingerprint !== undefined,
    };
  }

  const checkpoint = await step(
    "checkpoint",
    ["identity"],
    (): Checkpoint =>
      openCheckpoint(input.checkpoint, identity!.origin, identity!.verifier).checkpoint,
    (c) => `size ${c.size}, signed by the log key`,
  );
  if (checkpoint) {
    report.checkpoint = {
      size: checkpoint.size,
      rootHash: Buffer.from(checkpoint.rootHash).toString("base64"),
    };
  }

  await step(
    "inclusion",
    ["checkpoint"],
    () => {
      const proof = input.proof;
      if (!isObject(proof) || !Number.isSafeInteger(proof.index) || !Array.isArray(proof.proof)) {
        fail("the inclusion proof is not {index, size, leafHash, proof}");
      }
      const p = proof as Record<string, unknown>;
      if (p.size !== checkpoint!.size) {
        fail(
          `the inclusion proof is for tree size ${String(p.size)}, not the checkpoint's ${checkpoint!.size}`,
        );
      }
      const leafHash = hashLeaf(input.leaf);
      if (!hashesEqual(leafHash, base64Hash(p.leafHash, "leafHash"))) {
        fail("the entry's leaf does not hash to the proof's leafHash");
      }
      const hashes = (p.proof as unknown[]).map((h, i) => base64Hash(h, `hash ${i}`));
      verifyInclusion(p.index as number, checkpoint!.size, leafHash, hashes, checkpoint!.rootHash);
      report.entryIndex = p.index as number;
      return p.index as number;
    },
    (index) => `entry ${index} is in the checkpoint's tree`,
  );

  if (record.purpose === THRESHOLD_KEY_PURPOSE) {
    const holders = await auditThresholdKey(record, input.leaf, () => identity!.fingerprint, step);
    if (holders) report.contributors = holders;
    report.ok = steps.every((s) => s.status === "passed");
    return report;
  }

  const entry = await step(
    "entry",
    ["identity"],
    (): RoundEntry => {
      const parsed = parseRoundEntry(input.leaf);
      verifyRoundEntry(parsed, identity!.serverKey as KeyObject);
      if (parsed.roundId !== record.roundId) {
        fail(`the entry is of round ${parsed.roundId}, not the record's ${record.roundId}`);
      }
      return parsed;
    },
    (e) =>
      `round ${e.roundId} (${e.purpose}, ${e.outcome}): every signature verifies under the server key (commits, countersignatures, set, closing)`,
  );
  if (entry) report.contributors = entry.commits.map((c) => c.contributorId);

  const opening: ParsedOpening | undefined = await step(
    "opening",
    ["entry"],
    () => {
      const o = parseOpening(input.opening);
      if (o.recordId !== record.id)
        fail(`the opening is of record ${o.recordId}, not ${record.id}`);
      if (o.roundId !== entry!.roundId)
        fail(`the opening is of round ${o.roundId}, not the entry's ${entry!.roundId}`);
      if (o.purpose !== entry!.purpose || o.purpose !== record.purpose) {
        fail(
          `the opening's purpose ${o.purpose} is not the entry's ${entry!.purpose} and the record's ${record.purpose}`,
        );
      }
      if (o.algorithm !== record.algorithm) {
        fail(`the opening's algorithm ${o.algorithm} is not the record's ${record.algorithm}`);
      }
      if (entry!.results !== undefined && o.batch.size !== entry!.results.count) {
        fail(
          `the opening's batch size ${o.batch.size} is not the entry's ${entry!.results.count} results`,
        );
      }
      return o;
    },
    (o) =>
      `record ${o.recordId} is result ${o.batch.index + 1} of ${o.batch.size} of round ${o.roundId} (${o.purpose}, ${o.algorithm})`,
  );

  await step(
    "server-secret",
    ["entry", "opening"],
    () => {
      const commitment = serverSecretCommitment(entry!.roundId, opening!.serverSecret);
      if (!bytesEqual(commitment, fromBase64url(entry!.serverCommitment, "serverCommitment", 32))) {
        fail("the server secret does not hash to the commitment in round.open (serverCommitment)");
      }
    },
    () => "it is the secret the server committed to in round.open, before any contribution",
  );

  await step(
    "contributions",
    ["entry", "opening"],
    () => {
      const problems: string[] = [];
      const byId = new Map<string, Contribution>();
      for (const c of opening!.contributions) {
        if (byId.has(c.contributorId)) problems.push(`${c.contributorId} appears twice`);
        byId.set(c.contributorId, c);
      }
      const committed = new Set(entry!.commits.map((c) => c.contributorId));
      for (const commit of entry!.commits) {
        const id = commit.contributorId;
        const c = byId.get(id);
        if (!c) {
          problems.push(`${id} committed, but the opening has no contribution of it`);
          continue;
        }
        const commitment = contributionCommitment(entry!.roundId, id, entry!.server, c.envelope);
        if (!bytesEqual(commitment, fromBase64url(commit.commitment, "commitment", 32))) {
          problems.push(`${id}'s envelope is not the one it committed to`);
          continue;
        }
        let opened: Uint8Array | undefined;
        try {
          opened = aesGcmOpen(
            c.contentKey,
            fromBase64url(c.envelope.iv, "iv", 12),
            fromBase64url(c.envelope.ct, "ct"),
            fromBase64url(c.envelope.tag, "tag", 16),
            contributionAad(entry!.roundId, id, entry!.server),
          );
        } catch {
          problems.push(`${id}'s envelope does not open under the opening's content key`);
          continue;
        }
        if (!bytesEqual(opened, c.phrase)) {
          problems.push(`${id}'s envelope does not hold the opening's phrase`);
        }
        opened.fill(0);
      }
      for (const id of byId.keys()) {
        if (!committed.has(id)) problems.push(`${id} is in the opening but not in the commit set`);
      }
      if (problems.length > 0) fail(problems.join("; "));
      return entry!.commits.length;
    },
    (n) =>
      `all ${n} committed envelopes are the ones committed to, and each holds the opening's phrase`,
  );

  await step(
    "completed",
    ["entry"],
    () => {
      if (entry!.outcome !== "completed" || entry!.results === undefined) {
        fail(`the round's outcome is ${entry!.outcome}, not completed`);
      }
      return entry!.commits.length;
    },
    (n) => `completed with every one of the ${n} committed contributions revealed and used`,
  );

  let derivationSecret: Uint8Array | undefined;
  await step(
    "derivation",
    ["entry", "opening"],
    async () => {
      const o = opening!;
      const roundSecret = combineRoundSecret({
        roundId: entry!.roundId,
        purpose: entry!.purpose,
        seedPhrase: fromBase64url(entry!.seed, "seed"),
        serverSecret: o.serverSecret,
        contributions: o.contributions.map((c) => ({
          contributorId: c.contributorId,
          phrase: c.phrase,
        })),
      });
      derivationSecret =
        o.batch.size === 1
          ? roundSecret
          : batchOutputSecret(roundSecret, entry!.purpose, o.batch.index);
      if (derivationSecret !== roundSecret) roundSecret.fill(0);
      const params =
        input.passphrase === undefined ? o.params : { ...o.params, passphrase: input.passphrase };
      const derived = await derivePurpose(entry!.purpose, derivationSecret, params);
      if (derived.algorithm !== record.algorithm) {
        fail(
          `the derivation gives algorithm ${derived.algorithm}, not the record's ${record.algorithm}`,
        );
      }
      if (canonicalJson(derived.public as Json) !== canonicalJson(record.public as Json)) {
        fail(
          `the round secret does not derive the record's public part${record.public.passphrase === true && input.passphrase === undefined ? " (a wallet made with a passphrase: give it with --passphrase-file)" : ""}`,
        );
      }
    },
    () =>
      "the seed, the server secret and the phrases give a round secret that derives exactly the record's public part",
  );

  await step(
    "results",
    ["entry", derivationSecret !== undefined && "entry"],
    () => {
      const o = opening!;
      if (entry!.results === undefined) fail("the entry has no results");
      const mine = resultCommitment(
        record.id,
        record.algorithm,
        record.public,
        resultSalt(derivationSecret!),
      );
      const listed = o.results[o.batch.index];
      if (listed?.recordId !== record.id || !bytesEqual(listed.commitment, mine)) {
        fail(`the record's result commitment is not result ${o.batch.index} of the opening`);
      }
      if (o.results.length !== entry!.results!.count) {
        fail(`the opening lists ${o.results.length} results, the entry ${entry!.results!.count}`);
      }
      const hash = resultsHash(entry!.roundId, o.results);
      if (!bytesEqual(hash, fromBase64url(entry!.results!.hash, "results.hash", 32))) {
        fail("the opening's results do not hash to the entry's results.hash");
      }
      return entry!.results!.count;
    },
    (n) => `the record's commitment is among the ${n} results the log entry hashes`,
  );

  derivationSecret?.fill(0);
  if (opening) {
    opening.serverSecret.fill(0);
    for (const c of opening.contributions) {
      c.contentKey.fill(0);
      c.phrase.fill(0);
    }
  }
  report.ok = steps.every((s) => s.status === "passed");
  return report;
}
