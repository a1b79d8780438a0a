/**
 * The main thread's end of the reveal-checking threads (reveal-worker.ts): one per core, started
 * at the first reveal, each holding the server's private key. A reveal goes to the thread with the
 * fewest in hand, so a round's RSA decryptions run on every core at once
 * and its wall time is bounded by them spread over the cores, not by one core. If a thread dies,
 * the reveals it held fail with E_OPERATIONAL (their senders may send them again) and the next
 * reveal starts a new thread.
 */

import type { KeyObject } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { DkeygenError, type ErrorCode, ErrorCodes } from "../errors.js";
import type { RevealReply, RevealTask, RevealWorkerData } from "./reveal-worker.js";

/** What checking one reveal gives: the phrase and the envelope's content key (the caller wipes both). */
export interface OpenedReveal {
  phrase: Uint8Array;
  contentKey: Uint8Array;
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve(value: OpenedReveal): void; reject(error: Error): void }>;
}

const threadFailed = () =>
  new DkeygenError(
    ErrorCodes.OPERATIONAL,
    "A reveal-checking thread stopped; send the reveal again.",
  );

/** At most this many threads: past a few, the rounds' other work is the bottleneck. */
const MAX_THREADS = 8;

export class RevealPool {
  readonly #privateKey: KeyObject;
  readonly #size: number;
  readonly #slots: (Slot | undefined)[];
  #nextId = 0;
  #closed = false;

  constructor(privateKey: KeyObject, threads = Math.min(availableParallelism(), MAX_THREADS)) {
    this.#privateKey = privateKey;
    this.#size = Math.max(1, threads);
    this.#slots = new Array(this.#size).fill(undefined);
  }

  /** Checks a reveal on the least busy thread (RevealTask without its id). */
  open(task: Omit<RevealTask, "id">): Promise<OpenedReveal> {
    if (this.#closed) return Promise.reject(threadFailed());
    const slot = this.#leastBusy();
    const id = this.#nextId++;
    return new Promise<OpenedReveal>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      try {
        slot.worker.postMessage({ ...task, id } satisfies RevealTask);
      } catch (error) {
        slot.pending.delete(id);
        reject(error);
      }
    });
  }

  /** Stops the threads; reveals still being checked fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const slots = this.#slots.splice(0);
    await Promise.all(
      slots.map(async (slot) => {
        if (!slot) return;
        await slot.worker.terminate();
        for (const p of slot.pending.values()) p.reject(threadFailed());
        slot.pending.clear();
      }),
    );
  }

  #leastBusy(): Slot {
    let best = 0;
    for (let i = 0; i < this.#size; i++) {
      const slot = this.#slots[i];
      if (!slot) return this.#start(i);
      if (slot.pending.size < this.#slots[best]!.pending.size) best = i;
    }
    return this.#slots[best]!;
  }

  #start(index: number): Slot {
    const workerData: RevealWorkerData = { privateKey: this.#privateKey };
    const worker = new Worker(new URL("./reveal-worker.js", import.meta.url), { workerData });
    worker.unref();
    const slot: Slot = { worker, pending: new Map() };
    worker.on("message", (reply: RevealReply) => {
      const waiting = slot.pending.get(reply.id);
      slot.pending.delete(reply.id);
      if ("error" in reply) {
        waiting?.reject(new DkeygenError(reply.error.code as ErrorCode, reply.error.message));
      } else if (waiting) {
        waiting.resolve({ phrase: reply.phrase, contentKey: reply.contentKey });
      } else {
        reply.phrase.fill(0);
        reply.contentKey.fill(0);
      }
    });
    worker.on("error", () => {}); // "exit" follows and fails what it held
    worker.on("exit", () => {
      if (this.#slots[index] === slot) this.#slots[index] = undefined;
      for (const p of slot.pending.values()) p.reject(threadFailed());
      slot.pending.clear();
    });
    this.#slots[index] = slot;
    return slot;
  }
}
