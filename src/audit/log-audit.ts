/**
 * `dkeygen audit log`'s verifier (docs/PROTOCOL.md §15.4): checks a whole transparency log of
 * rounds from what its server published — the log identity, one checkpoint, every leaf up to the
 * checkpoint's size — trusting none of it until checked. No network and no files here: the caller
 * gives the documents and a source of leaves (src/cli/commands/audit.ts fetches them, or reads an
 * export).
 *
 * In order:
 *   1. identity: the RSA server key (RSA ≥ 3072, e = 65537), its fingerprint, the server key's
 *      RSASSA-PSS signature certifying the log key, the origin derived from the fingerprint, and
 *      the fingerprint the caller pinned (if any);
 *   2. checkpoint: opened with the log key and origin; the cosignatures of the witness keys given
 *      are verified and counted against the minimum asked;
 *   3. entries (on worker threads, audit-worker.ts, one per core): each leaf's RFC 6962 hash,
 *      folded in order into the root (which must be the checkpoint's); each leaf parsed
 *      (canonical JSON only) and verified against the server key (every signature and rule of
 *      §15.1), from this log's server; round ids unique across the log;
 *   4. an earlier checkpoint (`since`): opens under the same log key, is not larger than this one
 *      (a rollback), and its root is the root the leaves give at its size (else a fork), with the
 *      server's consistency proof when a caller can fetch one.
 *
 * Every failure found is reported with the entry index it concerns; the audit goes on past
 * entry failures (a failed identity or checkpoint stops it: nothing after can be trusted).
 */
import type { KeyObject } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { base64 } from "@scure/base";
import { fromBase64url } from "../crypto/base64url.js";
import { fingerprintOfSpki } from "../crypto/fingerprint.js";
import { rsaServerKey, serverVerify } from "../crypto/server-signature.js";
import {
  DkeygenError,
  describeError,
  type ErrorCode,
  ErrorCodes,
  isDkeygenError,
} from "../errors.js";
import { isDkgEntryLeaf, parseDkgEntry } from "../protocol/dkg-log-entry.js";
import { parseRoundEntry, verifyRoundEntry } from "../protocol/log-entry.js";
import {
  logIdentitySignedData,
  logOriginOf,
  STORE_HEAD_EXTENSION,
} from "../server/transparency-log.js";
import { verifyDkgEntry } from "../threshold/session-entry.js";
import { type Checkpoint, openCheckpoint } from "../tlog/checkpoint.js";
import { cosignaturesOf, cosignatureVerifier } from "../tlog/cosignature.js";
import {
  EMPTY_ROOT,
  HASH_SIZE,
  hashChildren,
  hashesEqual,
  hashLeaf,
  verifyConsistency,
} from "../tlog/merkle.js";
import type { NoteVerifier } from "../tlog/note.js";
import { keyLabel } from "../tlog/note.js";
import { ed25519NoteVerifier } from "../tlog/note-keys.js";

/** GET /v1/log/identity, as the server sends it (checked by `verifyLogIdentity`). */
export interface LogIdentityDocument {
  origin: string;
  verifierKey: string;
  /** base64url of the server's RSA key, DER SubjectPublicKeyInfo. */
  serverKey: string;
  serverFingerprint: string;
  /** base64url RSASSA-PSS by the server key over logIdentitySignedData(fingerprint, origin, vkey). */
  signature: string;
}

/** A log identity whose every part has been checked. */
export interface VerifiedIdentity {
  document: LogIdentityDocument;
  serverKey: KeyObject;
  serverSpki: Uint8Array;
  fingerprint: string;
  origin: string;
  logVerifier: NoteVerifier;
}

/** Which check a failure comes from (stable names: `--json` prints them). */
export type AuditCheck =
  | "identity"
  | "checkpoint"
  | "cosignatures"
  | "entries"
  | "entry"
  | "round-id"
  | "tree"
  | "since"
  | "consistency";

export interface AuditFailure {
  check: AuditCheck;
  /** The entry the failure concerns, for failures of one entry. */
  index?: number;
  message: string;
}

export interface ContributorStats {
  id: string;
  /** Rounds whose commit set holds it, and threshold-key sessions it was a holder in. */
  rounds: number;
  /** Aborted rounds that name it as missing its reveal, and aborted sessions that blame it. */
  aborts: number;
  /** aborts / rounds. */
  abortRate: number;
}

export interface ServerStats {
  fingerprint: string;
  rounds: number;
  aborted: number;
  /** aborted / rounds. */
  abortRate: number;
}

export interface AuditReport {
  /** True when every check passed. */
  ok: boolean;
  identity?: {
    serverFingerprint: string;
    origin: string;
    verifierKey: string;
    /** Whether the fingerprint was pinned by the caller (and matched). */
    pinned: boolean;
  };
  checkpoint?: {
    size: number;
    /** base64, as in the checkpoint. */
    rootHash: string;
    extensions: string[];
    /** The store head the checkpoint carries (§15.2), if it has one. */
    storeHead?: { lines: number; head: string };
    /** Cosignatures verified with the witness keys given, one per key. */
    cosignatures: { name: string; keyId: string; timestamp: number }[];
    minCosignatures: number;
  };
  /** The note of the checkpoint audited, as received (what `--save` writes). */
  checkpointNote?: string;
  /** What was checked: "all", or "tree" (hashes and roots only). */
  checks: AuditChecks;
  /** Leaves read (at most the checkpoint's size). */
  entries: number;
  /** Entries that passed every check of their own (parse, signatures, rules, server). */
  verified: number;
  /** Outcomes of the verified round entries. */
  outcomes: { completed: number; aborted: number; failed: number };
  /** Outcomes of the verified threshold-key session entries (DKG and refresh, §16). */
  sessions: { completed: number; aborted: number };
  servers: ServerStats[];
  contributors: ContributorStats[];
  since?: {
    size: number;
    rootHash: string;
    /** The root the leaves give at that size (absent when they could not be read that far). */
    computedRoot?: string;
    /** Whether a consistency proof from the server was checked (and verified). */
    consistencyProof: "verified" | "failed" | "not-needed" | "not-available";
  };
  failures: AuditFailure[];
}

export type AuditChecks = "all" | "tree";

export interface AuditOptions {
  /** The identity document as received (checked here). */
  identity: unknown;
  /** The checkpoint's signed note as received. */
  checkpoint: string;
  /** The leaves 0 .. size−1 in order, in batches of any length; called once with the size. */
  leaves: (size: number) => AsyncIterable<readonly Uint8Array[]> | Iterable<readonly Uint8Array[]>;
  /** The server fingerprint the caller pins. */
  serverFingerprint?: string;
  /** Witness verifier keys (type 0x04). */
  witnesses?: readonly string[];
  /** Cosignatures needed from those witnesses (default 0). */
  minCosignatures?: number;
  /** A checkpoint note seen earlier. */
  since?: string;
  /** Fetches a consistency proof (a server can; an export cannot). */
  consistencyProof?: (from: number, to: number) => Promise<Uint8Array[]>;
  /** Worker threads (default: one per core); 0 checks on the calling thread. */
  threads?: number;
  /** "all" (default) or "tree": leaf hashes and roots only, for measuring the tree's part. */
  checks?: AuditChecks;
  /** Leaves per chunk sent to a thread (default 256, 8192 with checks "tree"); for tests. */
  chunkLeaves?: number;
  /** Called after each chunk of leaves is folded in, with the count so far. */
  onProgress?: (done: number, size: number) => void;
}

const failure = (code: ErrorCode, message: string) => new DkeygenError(code, message);

/** Reason of a thrown check, as one sentence. */
function reason(error: unknown): string {
  return isDkeygenError(error) ? error.message : describeError(error);
}

const b64 = (hash: Uint8Array) => base64.encode(hash);

/**
 * Step 1: checks a log identity document. Throws E_INVALID_INPUT for a document that is not one,
 * E_BAD_SIGNATURE for a part that does not check, E_PIN_MISMATCH for another server than pinned.
 */
export function verifyLogIdentity(document: unknown, pinned?: string): VerifiedIdentity {
  const d = document as Record<string, unknown> | null;
  const fields = ["origin", "verifierKey", "serverKey", "serverFingerprint", "signature"];
  if (typeof d !== "object" || d === null || Array.isArray(d)) {
    throw failure(ErrorCodes.INVALID_INPUT, "The log identity is not a JSON object.");
  }
  for (const field of fields) {
    if (typeof d[field] !== "string") {
      throw failure(ErrorCodes.INVALID_INPUT, `The log identity has no "${field}" string.`);
    }
  }
  const doc = d as unknown as LogIdentityDocument;
  let spki: Uint8Array;
  let signature: Uint8Array;
  try {
    spki = fromBase64url(doc.serverKey, "serverKey");
    signature = fromBase64url(doc.signature, "signature");
  } catch {
    throw failure(
      ErrorCodes.INVALID_INPUT,
      "The log identity's serverKey or signature is not canonical base64url.",
    );
  }
  const serverKey = rsaServerKey(spki);
  if (serverKey === undefined) {
    throw failure(
      ErrorCodes.BAD_SIGNATURE,
      "The log identity's serverKey is not an RSA key of at least 3072 bits with e = 65537.",
    );
  }
  const fingerprint = fingerprintOfSpki(spki);
  if (doc.serverFingerprint !== fingerprint) {
    throw failure(
      ErrorCodes.BAD_SIGNATURE,
      `The log identity names server ${doc.serverFingerprint}, but its serverKey's fingerprint is ${fingerprint}.`,
    );
  }
  if (pinned !== undefined && pinned !== fingerprint) {
    throw failure(
      ErrorCodes.PIN_MISMATCH,
      `The log is served by server ${fingerprint}, not ${pinned} as --server-fingerprint pins.`,
    );
  }
  if (
    !serverVerify(
      serverKey,
      logIdentitySignedData(fingerprint, doc.origin, doc.verifierKey),
      signature,
    )
  ) {
    throw failure(
      ErrorCodes.BAD_SIGNATURE,
      "The server key's signature of the log key (identity.signature) does not verify.",
    );
  }
  const origin = logOriginOf(fingerprint);
  if (doc.origin !== origin) {
    throw failure(
      ErrorCodes.BAD_SIGNATURE,
      `The log's origin is "${doc.origin}", not "${origin}" as the server's fingerprint gives.`,
    );
  }
  let logVerifier: NoteVerifier;
  try {
    logVerifier = ed25519NoteVerifier(doc.verifierKey);
  } catch (error) {
    throw failure(ErrorCodes.BAD_SIGNATURE, `The log key is not usable: ${reason(error)}`);
  }
  if (logVerifier.name !== origin) {
    throw failure(
      ErrorCodes.BAD_SIGNATURE,
      `The log key is named "${logVerifier.name}", not the log's origin "${origin}".`,
    );
  }
  return { document: doc, serverKey, serverSpki: spki, fingerprint, origin, logVerifier };
}

/** Parses witness verifier keys (type 0x04); throws E_INVALID_INPUT naming the bad one. */
export function witnessVerifiers(vkeys: readonly string[]): NoteVerifier[] {
  const seen = new Set<string>();
  return vkeys.map((vkey) => {
    let verifier: NoteVerifier;
    try {
      verifier = cosignatureVerifier(vkey);
    } catch (error) {
      throw failure(ErrorCodes.INVALID_INPUT, `The witness key "${vkey}": ${reason(error)}`);
    }
    const label = keyLabel(verifier.name, verifier.keyId);
    if (seen.has(label)) {
      throw failure(ErrorCodes.INVALID_INPUT, `The witness key ${label} is given twice.`);
    }
    seen.add(label);
    return verifier;
  });
}

/** A store head extension line (§15.2): `dkeygen-store-head <lines> <hex head>`. */
function storeHeadOf(extensions: readonly string[]): { lines: number; head: string } | undefined {
  for (const line of extensions) {
    const m = new RegExp(`^${STORE_HEAD_EXTENSION} (\\d+) ([0-9a-f]{64})$`).exec(line);
    if (m) return { lines: Number(m[1]), head: m[2]! };
  }
  return undefined;
}

/**
 * What one chunk of leaves gave on a thread. Always its part of the tree: the roots of the
 * perfect subtrees its range [start, start + n) is cut into (RFC 6962 subtrees at aligned
 * positions, largest first, as a frontier appends them), split at `cut` when the chunk holds it;
 * with checks "all", what its entries gave.
 */
export interface ChunkResult {
  /** The subtree roots, 32 bytes each, left to right. */
  nodes: Uint8Array;
  /** Each subtree's height (log2 of its leaves). */
  heights: Uint8Array;
  /** How many of the subtrees lie before the cut (all of them without one). */
  beforeCut: number;
  entries?: ChunkEntries;
}

export interface ChunkEntries {
  /** The round id of each leaf that parsed (null for one that did not). */
  roundIds: (string | null)[];
  failures: { index: number; message: string }[];
  verified: number;
  completed: number;
  aborted: number;
  failed: number;
  /** Threshold-key sessions (DKG and refresh) that completed, and that aborted. */
  sessionsCompleted: number;
  sessionsAborted: number;
  /** [contributor id, rounds in the commit set, aborts naming it] of verified entries. */
  contributors: [string, number, number][];
  /** [server fingerprint, rounds, aborted] of verified entries. */
  servers: [string, number, number][];
}

/** What a checking thread needs to know: the checks, and the server key and fingerprint. */
export interface ChunkContext {
  checks: AuditChecks;
  serverKey: KeyObject;
  serverFingerprint: string;
}

/**
 * The roots of the perfect subtrees that [start, start + leafHashes.length) is cut into: from the
 * left, each the largest that starts at a multiple of its own width and fits (a compact range).
 * Appended in order to the frontier of [0, start), they give the frontier of [0, end).
 */
function compactRange(
  start: number,
  leafHashes: readonly Uint8Array[],
  nodes: Uint8Array[],
  heights: number[],
): void {
  const end = start + leafHashes.length;
  let at = 0;
  while (start + at < end) {
    let width = 1;
    let height = 0;
    while ((start + at) % (2 * width) === 0 && start + at + 2 * width <= end) {
      width *= 2;
      height++;
    }
    let level = leafHashes.slice(at, at + width);
    while (level.length > 1) {
      const next: Uint8Array[] = [];
      for (let i = 0; i < level.length; i += 2) next.push(hashChildren(level[i]!, level[i + 1]!));
      level = next;
    }
    nodes.push(level[0]!);
    heights.push(height);
    at += width;
  }
}

/**
 * Step 3 for one chunk: its part of the tree (leaf hashes folded into the subtrees of its range,
 * split at `cut` when 0 < cut − start < n), and with checks "all" each leaf parsed and verified.
 * `start` is the index of the first leaf; `data` holds the leaves back to back, `ends[i]` where
 * leaf i ends. Runs on a worker thread (audit-worker.ts) or, with threads 0, on the caller's.
 */
export function checkChunk(
  context: ChunkContext,
  start: number,
  data: Uint8Array,
  ends: Uint32Array,
  cut = -1,
): ChunkResult {
  const n = ends.length;
  const leafHashes: Uint8Array[] = new Array(n);
  let from = 0;
  for (let i = 0; i < n; i++) {
    leafHashes[i] = hashLeaf(data.subarray(from, ends[i]));
    from = ends[i]!;
  }
  const split = cut > start && cut < start + n ? cut - start : n;
  const nodeList: Uint8Array[] = [];
  const heightList: number[] = [];
  compactRange(start, leafHashes.slice(0, split), nodeList, heightList);
  const beforeCut = nodeList.length;
  compactRange(start + split, leafHashes.slice(split), nodeList, heightList);
  const nodes = new Uint8Array(nodeList.length * HASH_SIZE);
  for (const [i, node] of nodeList.entries()) nodes.set(node, i * HASH_SIZE);
  const tree = { nodes, heights: Uint8Array.from(heightList), beforeCut };
  if (context.checks === "tree") return tree;
  const out: ChunkEntries = {
    roundIds: new Array<string | null>(n).fill(null),
    failures: [],
    verified: 0,
    completed: 0,
    aborted: 0,
    failed: 0,
    sessionsCompleted: 0,
    sessionsAborted: 0,
    contributors: [],
    servers: [],
  };
  const contributors = new Map<string, [string, number, number]>();
  const servers = new Map<string, [string, number, number]>();
  from = 0;
  for (let i = 0; i < n; i++) {
    const leaf = data.subarray(from, ends[i]);
    from = ends[i]!;
    const index = start + i;
    try {
      if (isDkgEntryLeaf(leaf)) {
        const entry = parseDkgEntry(leaf);
        out.roundIds[i] = entry.roundId;
        verifyDkgEntry(entry, context.serverFingerprint);
        out.verified++;
        const aborted = entry.outcome === "aborted";
        if (aborted) out.sessionsAborted++;
        else out.sessionsCompleted++;
        const server = servers.get(entry.server) ?? [entry.server, 0, 0];
        servers.set(entry.server, server);
        server[1]++;
        if (aborted) server[2]++;
        for (const h of entry.holders) {
          const stats = contributors.get(h.contributorId) ?? [h.contributorId, 0, 0];
          contributors.set(h.contributorId, stats);
          stats[1]++;
          if (h.contributorId === entry.culprit) stats[2]++;
        }
        continue;
      }
      const entry = parseRoundEntry(leaf);
      out.roundIds[i] = entry.roundId;
      if (entry.server !== context.serverFingerprint) {
        throw failure(
          ErrorCodes.BAD_SIGNATURE,
          `The entry is from server ${entry.server}, not this log's server ${context.serverFingerprint}.`,
        );
      }
      verifyRoundEntry(entry, context.serverKey);
      out.verified++;
      out[entry.outcome]++;
      const server = servers.get(entry.server) ?? [entry.server, 0, 0];
      servers.set(entry.server, server);
      server[1]++;
      const missing = new Set(entry.outcome === "aborted" ? (entry.missing ?? []) : []);
      if (missing.size > 0) server[2]++;
      for (const c of entry.commits) {
        const stats = contributors.get(c.contributorId) ?? [c.contributorId, 0, 0];
        contributors.set(c.contributorId, stats);
        stats[1]++;
        if (missing.has(c.contributorId)) stats[2]++;
      }
    } catch (error) {
      out.failures.push({ index, message: reason(error) });
    }
  }
  out.contributors = [...contributors.values()];
  out.servers = [...servers.values()];
  return { ...tree, entries: out };
}

/** A message to a checking thread, and its answer (audit-worker.ts). */
export interface ChunkTask {
  seq: number;
  start: number;
  data: Uint8Array;
  ends: Uint32Array;
  /** The size at which the caller wants the root (an earlier checkpoint's), or −1. */
  cut: number;
}
export type ChunkReply =
  | ({ seq: number } & ChunkResult)
  | { seq: number; error: { code: string; message: string } };

export interface AuditWorkerData {
  checks: AuditChecks;
  /** The server key, DER SPKI (KeyObjects would do too; bytes keep the data plain). */
  serverSpki: Uint8Array;
  serverFingerprint: string;
}

/**
 * The frontier of [0, size) built from perfect subtrees appended at aligned positions (a subtree
 * of height h only where size is a multiple of 2^h, as `compactRange` cuts them): the same nodes
 * tlog/frontier.ts keeps, merged as a binary counter carries; the root folds them from the right.
 */
class SubtreeFrontier {
  size = 0;
  readonly #nodes: Uint8Array[] = [];
  readonly #heights: number[] = [];

  append(node: Uint8Array, height: number): void {
    const width = 2 ** height;
    if (this.size % width !== 0) throw new Error(`a subtree of height ${height} at ${this.size}`);
    let carry = node;
    let h = height;
    while (this.#heights.length > 0 && this.#heights[this.#heights.length - 1] === h) {
      this.#heights.pop();
      carry = hashChildren(this.#nodes.pop()!, carry);
      h++;
    }
    this.#nodes.push(carry);
    this.#heights.push(h);
    this.size += width;
  }

  root(): Uint8Array {
    const n = this.#nodes.length;
    if (n === 0) return EMPTY_ROOT;
    let h = this.#nodes[n - 1]!;
    for (let i = n - 2; i >= 0; i--) h = hashChildren(this.#nodes[i]!, h);
    return h;
  }
}

const threadFailed = (why: string) =>
  new DkeygenError(ErrorCodes.OPERATIONAL, `A log-checking thread failed: ${why}`);

/** The checking threads: each chunk goes to the one with the fewest in hand. */
class ChunkPool {
  readonly #workers: { worker: Worker; pending: Map<number, (reply: ChunkReply) => void> }[] = [];
  #seq = 0;
  #failed: Error | undefined;

  constructor(threads: number, data: AuditWorkerData) {
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(new URL("./audit-worker.js", import.meta.url), {
        workerData: data,
      });
      const slot = { worker, pending: new Map<number, (reply: ChunkReply) => void>() };
      worker.on("message", (reply: ChunkReply) => {
        const done = slot.pending.get(reply.seq);
        slot.pending.delete(reply.seq);
        done?.(reply);
      });
      const fail = (error: Error) => {
        this.#failed ??= error;
        for (const done of slot.pending.values()) {
          done({ seq: -1, error: { code: ErrorCodes.OPERATIONAL, message: error.message } });
        }
        slot.pending.clear();
      };
      worker.on("error", (error) => fail(threadFailed(error.message)));
      worker.on("exit", (code) => fail(threadFailed(`it exited (${code})`)));
      this.#workers.push(slot);
    }
  }

  run(start: number, data: Uint8Array, ends: Uint32Array, cut: number): Promise<ChunkResult> {
    if (this.#failed) return Promise.reject(this.#failed);
    let slot = this.#workers[0]!;
    for (const s of this.#workers) if (s.pending.size < slot.pending.size) slot = s;
    const seq = this.#seq++;
    return new Promise<ChunkResult>((resolve, reject) => {
      slot.pending.set(seq, (reply) => {
        if ("error" in reply) {
          reject(threadFailed(reply.error.message));
          return;
        }
        resolve(reply);
      });
      const task: ChunkTask = { seq, start, data, ends, cut };
      slot.worker.postMessage(task, [data.buffer as ArrayBuffer, ends.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#workers.map(async ({ worker }) => {
        worker.removeAllListeners("exit");
        worker.removeAllListeners("error");
        worker.on("error", () => {});
        await worker.terminate();
      }),
    );
  }
}

/** Leaves per chunk sent to a thread, and the most bytes in one (a chunk holds at least one leaf). */
const CHUNK_LEAVES = { all: 256, tree: 8192 } as const;
const CHUNK_BYTES = 4 * 1024 * 1024;

/** The whole audit (steps 1–4). Never throws for what it finds: failures go in the report. */
export async function auditLog(options: AuditOptions): Promise<AuditReport> {
  const checks = options.checks ?? "all";
  const report: AuditReport = {
    ok: false,
    checks,
    entries: 0,
    verified: 0,
    outcomes: { completed: 0, aborted: 0, failed: 0 },
    sessions: { completed: 0, aborted: 0 },
    servers: [],
    contributors: [],
    failures: [],
  };
  const fail = (check: AuditCheck, message: string, index?: number) =>
    report.failures.push(index === undefined ? { check, message } : { check, index, message });

  // 1. Identity.
  let identity: VerifiedIdentity;
  try {
    identity = verifyLogIdentity(options.identity, options.serverFingerprint);
  } catch (error) {
    fail("identity", reason(error));
    return report;
  }
  report.identity = {
    serverFingerprint: identity.fingerprint,
    origin: identity.origin,
    verifierKey: identity.document.verifierKey,
    pinned: options.serverFingerprint !== undefined,
  };

  // 2. Checkpoint and cosignatures.
  const witnesses = witnessVerifiers(options.witnesses ?? []);
  const minCosignatures = options.minCosignatures ?? 0;
  let checkpoint: Checkpoint;
  try {
    const opened = openCheckpoint(
      options.checkpoint,
      identity.origin,
      identity.logVerifier,
      witnesses,
    );
    checkpoint = opened.checkpoint;
    const cosignatures = cosignaturesOf(opened.note.verified, witnesses).map((c) => ({
      name: c.name,
      keyId: c.keyId.toString(16).padStart(8, "0"),
      timestamp: c.timestamp,
    }));
    const storeHead = storeHeadOf(checkpoint.extensions);
    report.checkpoint = {
      size: checkpoint.size,
      rootHash: b64(checkpoint.rootHash),
      extensions: [...checkpoint.extensions],
      ...(storeHead === undefined ? {} : { storeHead }),
      cosignatures,
      minCosignatures,
    };
    report.checkpointNote = options.checkpoint;
    if (cosignatures.length < minCosignatures) {
      fail(
        "cosignatures",
        `The checkpoint carries ${cosignatures.length} verified cosignature(s) from the witnesses given; at least ${minCosignatures} are required.`,
      );
    }
  } catch (error) {
    fail("checkpoint", `The checkpoint does not open under the log's key: ${reason(error)}`);
    return report;
  }
  const size = checkpoint.size;

  // 4 (first half). The earlier checkpoint, opened before the leaves are read.
  let since: Checkpoint | undefined;
  if (options.since !== undefined) {
    try {
      since = openCheckpoint(options.since, identity.origin, identity.logVerifier).checkpoint;
    } catch (error) {
      fail(
        "since",
        `The earlier checkpoint (--since) does not open under this log's key: ${reason(error)}`,
      );
    }
    if (since !== undefined) {
      report.since = {
        size: since.size,
        rootHash: b64(since.rootHash),
        consistencyProof: "not-needed",
      };
      if (since.size > size) {
        fail(
          "since",
          `The log is shorter than a checkpoint you saw: it now shows ${size} entries (root ${b64(checkpoint.rootHash)}), the earlier checkpoint ${since.size} (root ${b64(since.rootHash)}). The log was rolled back.`,
        );
      }
    }
  }
  const sinceSize = since !== undefined && since.size <= size ? since.size : -1;
  let sinceRoot: Uint8Array | undefined = sinceSize === 0 ? EMPTY_ROOT : undefined;

  // 3. Entries, on the threads; their results folded in order on this one.
  const threads = Math.max(0, options.threads ?? availableParallelism());
  const context: ChunkContext = {
    checks,
    serverKey: identity.serverKey,
    serverFingerprint: identity.fingerprint,
  };
  const pool =
    threads > 0 && size > 0
      ? new ChunkPool(threads, {
          checks,
          serverSpki: identity.serverSpki,
          serverFingerprint: identity.fingerprint,
        })
      : undefined;
  const frontier = new SubtreeFrontier();
  const seenRounds = new Map<string, number>();
  const contributors = new Map<string, [number, number]>();
  const servers = new Map<string, [number, number]>();
  const fold = (start: number, n: number, result: ChunkResult) => {
    result.heights.forEach((height, i) => {
      if (i === result.beforeCut && frontier.size === sinceSize) sinceRoot = frontier.root();
      frontier.append(result.nodes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE), height);
    });
    if (frontier.size === sinceSize) sinceRoot = frontier.root();
    const e = result.entries;
    if (e !== undefined) {
      for (const f of e.failures) fail("entry", f.message, f.index);
      e.roundIds.forEach((roundId, i) => {
        if (roundId === null) return;
        const earlier = seenRounds.get(roundId);
        if (earlier === undefined) {
          seenRounds.set(roundId, start + i);
        } else {
          fail(
            "round-id",
            `Round ${roundId} is logged again: entry ${earlier} has the same round id (a rerun of a round, which the protocol forbids).`,
            start + i,
          );
        }
      });
      report.verified += e.verified;
      report.outcomes.completed += e.completed;
      report.outcomes.aborted += e.aborted;
      report.outcomes.failed += e.failed;
      report.sessions.completed += e.sessionsCompleted;
      report.sessions.aborted += e.sessionsAborted;
      for (const [id, rounds, aborts] of e.contributors) {
        const s = contributors.get(id) ?? [0, 0];
        s[0] += rounds;
        s[1] += aborts;
        contributors.set(id, s);
      }
      for (const [fp, rounds, aborted] of e.servers) {
        const s = servers.get(fp) ?? [0, 0];
        s[0] += rounds;
        s[1] += aborted;
        servers.set(fp, s);
      }
    }
    report.entries = start + n;
    options.onProgress?.(report.entries, size);
  };

  // Failures found while the leaves are read are put in index order at the end; those found
  // before (identity, checkpoint, --since) stay first and those after (tree, fork) last.
  const before = report.failures.length;
  const maxLeaves = options.chunkLeaves ?? CHUNK_LEAVES[checks];
  const inFlight: { start: number; n: number; result: Promise<ChunkResult> }[] = [];
  const maxInFlight = Math.max(2, threads * 2);
  let chunk: Uint8Array[] = [];
  let chunkBytes = 0;
  let chunkStart = 0;
  let count = 0;
  let extra = 0;
  const dispatch = () => {
    if (chunk.length === 0) return;
    const data = new Uint8Array(chunkBytes);
    const ends = new Uint32Array(chunk.length);
    let at = 0;
    chunk.forEach((leaf, i) => {
      data.set(leaf, at);
      at += leaf.length;
      ends[i] = at;
    });
    const start = chunkStart;
    const n = chunk.length; // `ends` is transferred to the thread: read it before
    const result = pool
      ? pool.run(start, data, ends, sinceSize)
      : Promise.resolve().then(() => checkChunk(context, start, data, ends, sinceSize));
    result.catch(() => {}); // awaited in order below
    inFlight.push({ start, n, result });
    chunkStart += chunk.length;
    chunk = [];
    chunkBytes = 0;
  };
  const drain = async (keep: number) => {
    while (inFlight.length > keep) {
      const next = inFlight.shift()!;
      fold(next.start, next.n, await next.result);
    }
  };
  try {
    try {
      for await (const batch of options.leaves(size)) {
        for (const leaf of batch) {
          if (count >= size) {
            extra++;
            continue;
          }
          if (!(leaf instanceof Uint8Array)) throw new TypeError("a leaf is not bytes");
          if (chunk.length > 0 && chunkBytes + leaf.length > CHUNK_BYTES) dispatch();
          chunk.push(leaf);
          chunkBytes += leaf.length;
          count++;
          if (chunk.length >= maxLeaves) {
            dispatch();
            await drain(maxInFlight);
          }
        }
      }
    } catch (error) {
      fail("entries", `The entries could not all be read: ${reason(error)}`);
    }
    dispatch();
    await drain(0);
  } finally {
    await pool?.close();
  }
  const during = report.failures.splice(before);
  during.sort(
    (a, b) => (a.index ?? Number.MAX_SAFE_INTEGER) - (b.index ?? Number.MAX_SAFE_INTEGER),
  );
  report.failures.push(...during);
  if (count < size && !report.failures.some((f) => f.check === "entries")) {
    fail("entries", `The log gave ${count} entries; its checkpoint covers ${size}.`);
  }
  if (extra > 0) {
    fail(
      "entries",
      `The log gave ${extra} ${extra === 1 ? "entry" : "entries"} more than its checkpoint covers (${size}).`,
    );
  }

  // The root of everything read must be the checkpoint's.
  let treeVerified = false;
  if (count === size) {
    const root = frontier.root();
    treeVerified = hashesEqual(root, checkpoint.rootHash);
    if (!treeVerified) {
      fail(
        "tree",
        `The entries do not hash to the checkpoint's root: entries 0 to ${size - 1} give root ${b64(root)}, the checkpoint says ${b64(checkpoint.rootHash)} (an entry was changed, added, removed or reordered).`,
      );
    }
  }

  // 4 (second half). The earlier checkpoint against this one, the leaves, and the server's proof.
  // Leaves that do not hash to the checkpoint's root prove nothing about an earlier root (that
  // failure is reported already); the roots of two checkpoints of one size always compare.
  if (since !== undefined && report.since !== undefined && since.size <= size) {
    const computed = treeVerified ? (sinceRoot as Uint8Array | undefined) : undefined;
    if (computed !== undefined) report.since.computedRoot = b64(computed);
    if (since.size === size) {
      if (!hashesEqual(since.rootHash, checkpoint.rootHash)) {
        fail(
          "since",
          `The log forked: two checkpoints of size ${size} with different roots, ${b64(since.rootHash)} (the earlier one, --since) and ${b64(checkpoint.rootHash)} (now).`,
        );
      }
    } else if (computed !== undefined && !hashesEqual(computed, since.rootHash)) {
      fail(
        "since",
        `The log forked: the earlier checkpoint (--since) has root ${b64(since.rootHash)} at size ${since.size}, but the log's entries, which hash to the checkpoint's root, give root ${b64(computed)} at that size (an entry before it was changed or removed).`,
      );
    }
    if (since.size > 0 && since.size < size && options.consistencyProof) {
      try {
        const proof = await options.consistencyProof(since.size, size);
        verifyConsistency(since.size, size, since.rootHash, checkpoint.rootHash, proof);
        report.since.consistencyProof = "verified";
      } catch (error) {
        report.since.consistencyProof = "failed";
        fail(
          "consistency",
          `The server's consistency proof from size ${since.size} (root ${b64(since.rootHash)}) to size ${size} (root ${b64(checkpoint.rootHash)}) does not verify: ${reason(error)}`,
        );
      }
    } else if (since.size > 0 && since.size < size) {
      report.since.consistencyProof = "not-available";
    }
  }

  report.servers = [...servers]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([fingerprint, [rounds, aborted]]) => ({
      fingerprint,
      rounds,
      aborted,
      abortRate: rounds === 0 ? 0 : aborted / rounds,
    }));
  report.contributors = [...contributors]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, [rounds, aborts]]) => ({
      id,
      rounds,
      aborts,
      abortRate: rounds === 0 ? 0 : aborts / rounds,
    }));
  report.ok = report.failures.length === 0;
  return report;
}
