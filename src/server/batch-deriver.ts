/**
 * The main thread's end of the derivation thread (batch-worker.ts): a batch round hands it the
 * round secret and gets its outputs back in index order, a chunk at a time, while the thread goes
 * on deriving. One thread per server, started at the first batch round; jobs (rounds running at
 * once) are told apart by id. If the thread dies, the jobs it held fail with E_OPERATIONAL
 * (nothing of theirs was acknowledged) and the next batch starts a new thread.
 */
import { Worker } from "node:worker_threads";
import { DkeygenError, type ErrorCode, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import type { BatchAck, BatchItem, BatchJob, BatchReply } from "./batch-worker.js";

/** Outputs per message from the thread: small enough that storing one chunk (a store write per
 * output) keeps the main thread busy for only a few milliseconds at a time. */
const CHUNK = 64;

interface Job {
  onItems(items: BatchItem[]): void;
  resolve(): void;
  reject(error: Error): void;
}

const threadFailed = () =>
  new DkeygenError(ErrorCodes.OPERATIONAL, "The derivation thread stopped during a batch round.");

export class BatchDeriver {
  #worker: Worker | undefined;
  readonly #jobs = new Map<number, Job>();
  #nextId = 0;
  #closed = false;

  /**
   * Derives outputs 0..count-1 of a batch round from `secret` (left untouched: the thread gets a
   * copy and wipes it). `onItems` gets them in order, a chunk at a time; it must store or wipe
   * each payload. With `roundParts`, the items come without payloads: the records keep their
   * part of the round secret, which the caller stores once. Resolves once every output was
   * handed over.
   */
  derive(
    secret: Uint8Array,
    purpose: string,
    params: JsonObject,
    count: number,
    onItems: (items: BatchItem[]) => void,
    options: { roundParts?: boolean } = {},
  ): Promise<void> {
    if (this.#closed) return Promise.reject(threadFailed());
    const id = this.#nextId++;
    const copy = new Uint8Array(secret);
    const job: BatchJob = {
      id,
      secret: copy,
      purpose,
      params,
      count,
      chunk: CHUNK,
      roundParts: options.roundParts === true,
    };
    return new Promise<void>((resolve, reject) => {
      this.#jobs.set(id, { onItems, resolve, reject });
      try {
        this.#start().postMessage(job, [copy.buffer]);
      } catch (error) {
        copy.fill(0);
        this.#jobs.delete(id);
        reject(error);
      }
    });
  }

  /** Stops the thread; jobs still running fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
    this.#failAll();
  }

  #failAll(): void {
    for (const job of this.#jobs.values()) job.reject(threadFailed());
    this.#jobs.clear();
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL("./batch-worker.js", import.meta.url));
    worker.unref();
    worker.on("message", (reply: BatchReply) => {
      const job = this.#jobs.get(reply.id);
      if ("error" in reply) {
        this.#jobs.delete(reply.id);
        job?.reject(new DkeygenError(reply.error.code as ErrorCode, reply.error.message));
        return;
      }
      if (!job) {
        for (const item of reply.items) item.payload?.fill(0);
        return;
      }
      try {
        job.onItems(reply.items);
      } catch (error) {
        this.#jobs.delete(reply.id);
        job.reject(error as Error);
        const stop: BatchAck = { ack: reply.id, stop: true };
        worker.postMessage(stop);
        return;
      }
      if (reply.done) {
        this.#jobs.delete(reply.id);
        job.resolve();
        return;
      }
      // The next chunk may come once requests waiting on this thread have had a turn.
      setImmediate(() => {
        if (this.#worker !== worker) return;
        const ack: BatchAck = { ack: reply.id };
        worker.postMessage(ack);
      });
    });
    worker.on("error", () => {}); // "exit" follows and fails the jobs
    worker.on("exit", () => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#failAll();
    });
    this.#worker = worker;
    return worker;
  }
}
