/**
 * A log-checking thread (a worker_threads worker, one per core, started by log-audit.ts's pool):
 * for each chunk of leaves it computes the RFC 6962 leaf hashes and folds them into the perfect
 * subtrees of the chunk's range, and with checks "all" parses and verifies every entry against the
 * server key (log-audit.ts `checkChunk`).
 *
 * Message in (ChunkTask): the chunk's leaves back to back and where each ends, both transferred,
 * not copied. Message out (ChunkReply): the subtree roots and heights (transferred back) and, per
 * chunk, the entries' round ids, failures and counts; the main thread appends the subtrees in
 * order to its frontier.
 */
import { createPublicKey } from "node:crypto";
import { parentPort, workerData } from "node:worker_threads";
import { ErrorCodes } from "../errors.js";
import {
  type AuditWorkerData,
  type ChunkContext,
  type ChunkReply,
  type ChunkTask,
  checkChunk,
} from "./log-audit.js";

const data = workerData as AuditWorkerData;
const context: ChunkContext = {
  checks: data.checks,
  serverKey: createPublicKey({
    key: Buffer.from(data.serverSpki),
    format: "der",
    type: "spki",
  }),
  serverFingerprint: data.serverFingerprint,
};
const port = parentPort!;

port.on("message", (task: ChunkTask) => {
  let reply: ChunkReply;
  try {
    reply = { seq: task.seq, ...checkChunk(context, task.start, task.data, task.ends, task.cut) };
  } catch (error) {
    reply = {
      seq: task.seq,
      error: {
        code: ErrorCodes.OPERATIONAL,
        message: error instanceof Error ? error.message : String(error),
      },
    };
    port.postMessage(reply);
    return;
  }
  port.postMessage(reply, [reply.nodes.buffer as ArrayBuffer, reply.heights.buffer as ArrayBuffer]);
});
