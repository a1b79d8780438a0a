/**
 * `dkeygen contributor audit`: re-checks, against the log's current checkpoint, everything this
 * contributor witnessed (docs/PROTOCOL.md §15.5): the checkpoint opens with the log key the
 * contributor remembered when it first cosigned; the log is consistent with the last checkpoint it
 * cosigned (GET /v1/log/proof/consistency); and the entry of each round it holds a receipt for is
 * still in the tree with the same leaf hash (GET /v1/log/proof/inclusion). Trusts nothing the
 * server says until it is checked.
 */
import { base64 } from "@scure/base";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import { printable } from "../printable.js";
import { openCheckpoint } from "../tlog/checkpoint.js";
import { hashesEqual, verifyConsistency, verifyInclusion } from "../tlog/merkle.js";
import { ed25519NoteVerifier } from "../tlog/note-keys.js";
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
  failures: { roundId?: string; index?: number; message: string }[];
}

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
): Promise<ContributorAuditReport> {
  const state = await readWitnessState(dataDir);
  if (state === undefined) {
    throw new DkeygenError(
      ErrorCodes.NOT_FOUND,
      "This contributor has not cosigned any checkpoint yet: nothing to audit.",
    );
  }
  const receipts = await readReceipts(dataDir);
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
  return report();
}
