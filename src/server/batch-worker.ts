/**
 * The derivation thread of the key generation server (a worker_threads worker). A batch round
 * (a pool refill: thousands of OTPs from one round secret) spends most of its CPU time on
 * per-output work that needs nothing but the round secret: the output's HKDF-SHA-512, the
 * derivation (HMAC_DRBG and sampling) and, for a round whose records keep secret parts of their
 * own, the stored-secret encoding. That work runs here, on another core, so the main thread keeps
 * only the store writes and stays free to serve requests while a refill runs.
 *
 * Message in (BatchJob): the round secret (its buffer transferred, wiped here when the job
 * ends), purpose, parsed params, count, chunk size and whether the records keep round parts.
 * Messages out (BatchReply): the outputs in index order, `chunk` at a time, each with its index;
 * for own secret parts each stored-secret payload's buffer transferred (the main thread wipes it
 * once stored), for round parts no payload (the round secret, stored once by the main thread,
 * stands for them: stored-secret.ts); then `done`, or one error reply that ends the job. Errors
 * carry a code and a message, never secret bytes.
 *
 * Flow control: at most WINDOW chunks of a job are unacknowledged at once; the main thread
 * acknowledges a chunk (BatchAck) once it has queued its writes and given the event loop a turn.
 * Without it the thread outruns the store, and the main thread, which takes every queued message
 * in one go, would stall its requests behind thousands of writes.
 */
import { parentPort } from "node:worker_threads";
import { batchOutputSecret } from "../crypto/kdf.js";
import { ErrorCodes, isDkeygenError } from "../errors.js";
import type { JsonObject } from "../json.js";
import { type DerivedOutput, deriveOutput, deriveResult } from "./stored-secret.js";

export interface BatchJob {
  id: number;
  secret: Uint8Array;
  purpose: string;
  params: JsonObject;
  count: number;
  chunk: number;
  /** The records keep their part of the round secret (RecordInput roundPart): no payloads. */
  roundParts: boolean;
}

/**
 * One output of a batch round, ready to store: with its own stored secret part (`payload`), or
 * without one when the job's records keep round parts.
 */
export type BatchItem = DerivedOutput & { index: number; payload?: Uint8Array };

/** Acknowledges one chunk of job `ack`; with `stop`, ends the job (its receiver gave up). */
export interface BatchAck {
  ack: number;
  stop?: boolean;
}

/** Chunks of one job the thread may have sent and not yet had acknowledged. */
export const WINDOW = 2;

export type BatchReply =
  | { id: number; items: BatchItem[]; done: boolean }
  | { id: number; error: { code: string; message: string } };

/** Per running job: chunks not yet acknowledged, and the wait for one. */
interface Flow {
  unacked: number;
  stopped: boolean;
  wake: (() => void) | undefined;
}
const flows = new Map<number, Flow>();

async function run(job: BatchJob): Promise<void> {
  const flow: Flow = { unacked: 0, stopped: false, wake: undefined };
  flows.set(job.id, flow);
  let items: BatchItem[] = [];
  let transfer: ArrayBuffer[] = [];
  try {
    for (let index = 0; index < job.count && !flow.stopped; index++) {
      const input = batchOutputSecret(job.secret, job.purpose, index);
      try {
        if (job.roundParts) {
          items.push({ ...(await deriveOutput(job.purpose, input, job.params)), index });
        } else {
          const item = await deriveResult(
            job.purpose,
            input,
            { index, size: job.count },
            job.params,
          );
          items.push({ ...item, index });
          transfer.push(item.payload.buffer as ArrayBuffer);
        }
      } finally {
        input.fill(0);
      }
      const done = index === job.count - 1;
      if (items.length === job.chunk || done) {
        const reply: BatchReply = { id: job.id, items, done };
        parentPort!.postMessage(reply, transfer);
        items = [];
        transfer = [];
        flow.unacked++;
        while (flow.unacked >= WINDOW && !done && !flow.stopped) {
          await new Promise<void>((resolve) => {
            flow.wake = resolve;
          });
        }
      }
    }
  } catch (error) {
    const reply: BatchReply = {
      id: job.id,
      error: isDkeygenError(error)
        ? { code: error.code, message: error.message }
        : { code: ErrorCodes.OPERATIONAL, message: "A batch output could not be derived." },
    };
    parentPort!.postMessage(reply);
  } finally {
    // Outputs derived and not sent (an error, or the receiver stopped the job).
    for (const item of items) item.payload?.fill(0);
    flows.delete(job.id);
    job.secret.fill(0);
  }
}

parentPort?.on("message", (message: BatchJob | BatchAck) => {
  if ("ack" in message) {
    const flow = flows.get(message.ack);
    if (!flow) return;
    flow.unacked--;
    if (message.stop) flow.stopped = true;
    const wake = flow.wake;
    flow.wake = undefined;
    wake?.();
    return;
  }
  // run() reports its own failures to the parent; anything past that is a bug, said loudly.
  run(message).catch((error: unknown) => {
    parentPort!.postMessage({
      id: message.id,
      error: {
        code: ErrorCodes.OPERATIONAL,
        message: `The derivation thread failed: ${String(error)}`,
      },
    });
  });
});
