/**
 * `dkeygen contributor audit`: re-checks, against the log's current checkpoint, everything this
 * contributor witnessed (docs/PROTOCOL.md §15.5): the checkpoint opens with the log key the
 * contributor remembered when it first cosigned; the log is consistent with the last checkpoint it
 * cosigned (GET /v1/log/proof/consistency); and the entry of each round it holds a receipt for is
 * still in the tree with the same leaf hash (GET /v1/log/proof/inclusion); and every round it
 * committed to (answered-rounds.jsonl) whose reveal deadline is more than `LOGGED_WITHIN_MS` past
 * is in the log, with its commitment as sent: a round the server aborted and never logged sends
 * no entry to witness, so only this finds it. Trusts nothing the server says until it is checked.
 */
import { base64 } from "@scure/base";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import { printable } from "../printable.js";
import { parseRoundEntry } from "../protocol/log-entry.js";
import { openCheckpoint } from "../tlog/checkpoint.js";
import { hashesEqual, hashLeaf, verifyConsistency, verifyInclusion } from "../tlog/merkle.js";
import { ed25519NoteVerifier } from "../tlog/note-keys.js";
import { readAnsweredRounds } from "./answered-rounds.js";
import type { HttpCall } from "./http-call.js";
import { readReceipts, readWitnessState } from "./witness.js";

export interface ContributorAuditReport {
  ok: boolean;
  origin: string;
  /** The checkpoint the server serves now. */
  checkpoint: { size: number; rootHash: string };
  /** The last checkpoint this contributor cosigned. */
  witnessed: { size: number; rootHash: string };
  receipts: number;
  /** Rounds this contributor committed to, and how many of those the log was asked for. */
  answered: { rounds: number; found: number; pending: number; excluded: number };
  failures: { roundId?: string; index?: number; message: string }[];
}

/**
 * A round is in the log (completed or aborted) this long after its reveal deadline at the
 * latest: the server closes it at the deadline, appends its entry, and waits for witnesses at most
 * the reveal timeout again before telling anyone. Younger rounds are counted as pending.
 */
export const LOGGED_WITHIN_MS = 10 * 60 * 1000;

function base(url: string): string {
  return url.replace(/\/+$/, "");
}

async function getText(call: HttpCall, url: string): Promise<string> {
  const answer = await call(url, { method: "GET" });
  const text = answer.body.toString("utf8");
  if (answer.status !== 200) {
    let message = `${url} answered HTTP ${answer.status}`;
    try {
      const body = JSON.parse(text) as { error?: { message?: unknown } };
      if (typeof body.error?.message === "string") message += `: ${body.error.message}`;
    } catch {
      // not JSON: the status says enough
    }
    throw new DkeygenError(ErrorCodes.UNAVAILABLE, printable(message));
  }
  return text;
}

async function getJson<T>(call: HttpCall, url: string): Promise<T> {
  const text = await getText(call, url);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `${url} did not answer JSON.`);
  }
}

/** A list of base64 hashes from the server, each exactly 32 bytes. */
function hashes(value: unknown, what: string): Uint8Array[] {
  if (!Array.isArray(value) || value.length > 128) {
    throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `The ${what} is not a list of hashes.`);
  }
  return value.map((h) => {
    let bytes: Uint8Array;
    try {
      bytes = base64.decode(String(h));
    } catch {
      bytes = new Uint8Array(0);
    }
    if (bytes.length !== 32) {
      throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `The ${what} holds a bad hash.`);
    }
    return bytes;
  });
}

export async function auditContributor(
  dataDir: string,
  serverUrl: string,
  call: HttpCall,
  now: () => number = Date.now,
): Promise<ContributorAuditReport> {
  const state = await readWitnessState(dataDir);
  if (state === undefined) {
    throw new DkeygenError(
      ErrorCodes.NOT_FOUND,
      "This contributor has not cosigned any checkpoint yet: nothing to audit.",
    );
  }
  const receipts = await readReceipts(dataDir);
  const answeredRounds = await readAnsweredRounds(dataDir);
  const answered = { rounds: answeredRounds.length, found: 0, pending: 0, excluded: 0 };
  const url = base(serverUrl);
  const note = await getText(call, `${url}/v1/log/checkpoint`);
  const { checkpoint } = openCheckpoint(note, state.origin, ed25519NoteVerifier(state.verifierKey));
  const failures: ContributorAuditReport["failures"] = [];
  const report = (): ContributorAuditReport => ({
    ok: failures.length === 0,
    origin: state.origin,
    checkpoint: { size: checkpoint.size, rootHash: base64.encode(checkpoint.rootHash) },
    witnessed: { size: state.size, rootHash: state.rootHash },
    receipts: receipts.length,
    answered,
    failures,
  });
  const fail = (message: string, at: { roundId?: string; index?: number } = {}) =>
    failures.push({ ...at, message: printable(message) });

  // The log still extends what this contributor cosigned.
  const witnessedRoot = base64.decode(state.rootHash);
  if (checkpoint.size < state.size) {
    fail(
      `The server serves a tree of size ${checkpoint.size}, smaller than the one this contributor cosigned (${state.size}).`,
    );
    return report();
  }
  try {
    if (state.size === checkpoint.size) {
      if (!hashesEqual(witnessedRoot, checkpoint.rootHash)) {
        throw new DkeygenError(
          ErrorCodes.BAD_SIGNATURE,
          `Two different roots for tree size ${state.size}: a fork.`,
        );
      }
    } else if (state.size > 0) {
      const answer = await getJson<{ proof?: unknown }>(
        call,
        `${url}/v1/log/proof/consistency?from=${state.size}&to=${checkpoint.size}`,
      );
      verifyConsistency(
        state.size,
        checkpoint.size,
        witnessedRoot,
        checkpoint.rootHash,
        hashes(answer.proof, "consistency proof"),
      );
    }
  } catch (error) {
    fail(`Not consistent with the checkpoint this contributor cosigned: ${describeError(error)}`);
  }

  // Each round's entry is still where its receipt says, unchanged.
  for (const receipt of receipts) {
    const at = { roundId: receipt.roundId, index: receipt.index };
    try {
      if (!Number.isSafeInteger(receipt.index) || receipt.index >= checkpoint.size) {
        throw new DkeygenError(
          ErrorCodes.BAD_SIGNATURE,
          `Entry ${receipt.index} is beyond the served tree (size ${checkpoint.size}).`,
        );
      }
      const answer = await getJson<{ leafHash?: unknown; proof?: unknown }>(
        call,
        `${url}/v1/log/proof/inclusion?index=${receipt.index}&size=${checkpoint.size}`,
      );
      if (answer.leafHash !== receipt.leafHash) {
        throw new DkeygenError(
          ErrorCodes.BAD_SIGNATURE,
          "The log's entry at this index is not the one this contributor checked.",
        );
      }
      verifyInclusion(
        receipt.index,
        checkpoint.size,
        base64.decode(receipt.leafHash),
        hashes(answer.proof, "inclusion proof"),
        checkpoint.rootHash,
      );
    } catch (error) {
      fail(describeError(error), at);
    }
  }

  // Every round it committed to is in the log, once its reveal deadline is well past.
  const receipted = new Set(receipts.map((r) => r.roundId));
  for (const round of answeredRounds) {
    if (receipted.has(round.roundId)) {
      answered.found++;
      continue;
    }
    const deadline = Date.parse(round.revealDeadline);
    if (!(deadline + LOGGED_WITHIN_MS <= now())) {
      answered.pending++;
      continue;
    }
    try {
      const found = await findRoundEntry(call, url, round.roundId, checkpoint);
      if (found === undefined) {
        fail(
          `This contributor committed to round ${round.roundId} at ${round.committedAt}${round.outcome ? ` (the server closed it: ${round.outcome})` : ""}, but the log holds no entry for it: every round is logged, completed or aborted.`,
          { roundId: round.roundId },
        );
        continue;
      }
      answered.found++;
      // Logged without our commitment: the server left it out of the commit set (a commitment
      // that came late), which the contributor was told and logged as it happened.
      if (!found.entry.commits.some((c) => c.commitment === round.commitment)) answered.excluded++;
    } catch (error) {
      fail(describeError(error), { roundId: round.roundId });
    }
  }
  return report();
}

/**
 * Round `roundId`'s entry in the tree of `checkpoint`, checked: its inclusion proof, its leaf
 * against the proven hash, its parse and its round id. Undefined when the log has no entry for
 * the round (404); an entry beyond the checkpoint's size counts as found later (pending is not
 * an option past the deadline: the server serves a checkpoint that leaves the round out).
 */
async function findRoundEntry(
  call: HttpCall,
  url: string,
  roundId: string,
  checkpoint: { size: number; rootHash: Uint8Array },
): Promise<{ index: number; entry: ReturnType<typeof parseRoundEntry> } | undefined> {
  const where = `${url}/v1/log/proof/inclusion?roundId=${encodeURIComponent(roundId)}&size=${checkpoint.size}`;
  const answer = await call(where, { method: "GET" });
  if (answer.status === 404) return undefined;
  if (answer.status !== 200) {
    throw new DkeygenError(
      ErrorCodes.UNAVAILABLE,
      `${where} answered HTTP ${answer.status}: the round's entry is not in the served tree.`,
    );
  }
  let proof: { index?: unknown; leafHash?: unknown; proof?: unknown };
  try {
    proof = JSON.parse(answer.body.toString("utf8")) as typeof proof;
  } catch {
    throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `${where} did not answer JSON.`);
  }
  const index = proof.index;
  if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0) {
    throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `${where} answered no index.`);
  }
  const [leafHash] = hashes([proof.leafHash], "leaf hash");
  verifyInclusion(
    index,
    checkpoint.size,
    leafHash!,
    hashes(proof.proof, "inclusion proof"),
    checkpoint.rootHash,
  );
  const entries = await getJson<{ entries?: { index?: unknown; leaf?: unknown }[] }>(
    call,
    `${url}/v1/log/entries?start=${index}&end=${index + 1}`,
  );
  const item = entries.entries?.[0];
  let leaf: Uint8Array;
  try {
    leaf = base64.decode(String(item?.leaf));
  } catch {
    throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `The log's entry ${index} is not base64.`);
  }
  if (item?.index !== index || !hashesEqual(hashLeaf(leaf), leafHash!)) {
    throw new DkeygenError(
      ErrorCodes.BAD_SIGNATURE,
      `The log's entry ${index} is not the leaf its inclusion proof proves.`,
    );
  }
  const entry = parseRoundEntry(leaf);
  if (entry.roundId !== roundId) {
    throw new DkeygenError(
      ErrorCodes.BAD_SIGNATURE,
      `The log's entry ${index} is of round ${entry.roundId}, not ${roundId}.`,
    );
  }
  return { index, entry };
}
