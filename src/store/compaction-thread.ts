/**
 * The main thread's side of a compaction thread (compaction-worker.ts): starts one per
 * compaction, turns its messages into awaited steps, and stops it. A thread that dies or
 * answers out of turn fails the compaction like a failed read would (nothing was changed).
 */
import { Worker } from "node:worker_threads";
import { DkeygenError, type ErrorCode, ErrorCodes } from "../errors.js";
import { CompactionStopped } from "./compaction.js";
import type {
  CompactionDone,
  CompactionIn,
  CompactionJob,
  CompactionOut,
} from "./compaction-worker.js";

export type { CompactionDone } from "./compaction-worker.js";

/** The compaction thread's young generation, in MB (V8's default for a small heap). */
const COMPACTION_YOUNG_GENERATION_MB = 16;

function threadFailed(detail: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.OPERATIONAL,
    `The compaction thread stopped (${detail}); the compaction stopped and the key store was ` +
      "not changed.",
  );
}

export class CompactionThread {
  readonly #worker: Worker;
  readonly #queue: CompactionOut[] = [];
  #waiting: ((message: CompactionOut) => void) | undefined;
  #exited = false;

  /** Starts the thread on `job` (its MAC key is copied; the caller keeps its own). */
  constructor(job: CompactionJob) {
    const macKey = Uint8Array.from(job.macKey);
    this.#worker = new Worker(new URL("./compaction-worker.js", import.meta.url), {
      workerData: { ...job, macKey },
      // Not the parent's flags: a store opened from `node --input-type=module --eval` (the
      // crash tests' children) would pass them to a thread started from a file.
      execArgv: [],
      // Its own young generation, small: V8's flags are the process's, so a server run with a
      // large one (--max-semi-space-size, README) would give this short-lived copier as much,
      // and the process's memory would jump by that much at each compaction.
      resourceLimits: { maxYoungGenerationSizeMb: COMPACTION_YOUNG_GENERATION_MB },
      transferList: [macKey.buffer],
    });
    this.#worker.on("message", (message: CompactionOut) => this.#push(message));
    this.#worker.on("error", (error: Error) =>
      this.#push({
        error: { code: ErrorCodes.OPERATIONAL, message: threadFailed(error.message).message },
      }),
    );
    this.#worker.on("exit", () => {
      this.#exited = true;
      this.#push({
        error: { code: ErrorCodes.OPERATIONAL, message: threadFailed("exited").message },
      });
    });
  }

  #push(message: CompactionOut): void {
    const wake = this.#waiting;
    this.#waiting = undefined;
    if (wake) wake(message);
    else this.#queue.push(message);
  }

  #next(): Promise<CompactionOut> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  /** Waits for the thread's next message, which must be `step` (or `done`). */
  async #expect(kind: "scanned" | "copied" | "done"): Promise<CompactionOut> {
    const message = await this.#next();
    if ("error" in message) {
      throw new DkeygenError(message.error.code as ErrorCode, message.error.message);
    }
    if ("stopped" in message) throw new CompactionStopped("the key store is closing");
    if (kind === "done" ? "done" in message : "step" in message && message.step === kind) {
      return message;
    }
    throw threadFailed(`it answered out of turn, expecting ${kind}`);
  }

  #send(message: CompactionIn): void {
    if (!this.#exited) this.#worker.postMessage(message);
  }

  /** Resolves once the old file was scanned; the thread then waits for `go`. */
  async scanned(): Promise<void> {
    await this.#expect("scanned");
  }

  go(): void {
    this.#send({ go: true });
  }

  /** Resolves once everything written so far was copied and synced; the thread then waits. */
  async copied(): Promise<void> {
    await this.#expect("copied");
  }

  /** With writes held: the last lines copied, the switched line added, the new file closed. */
  async finish(): Promise<CompactionDone> {
    this.#send({ finish: true });
    const message = await this.#expect("done");
    return (message as { done: CompactionDone }).done;
  }

  /** Asks the thread to stop (it removes its new file) and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#worker.once("exit", () => resolve()));
    this.#send({ stop: true });
    const timer = setTimeout(() => {
      this.#worker.terminate().catch(() => {});
    }, 5000);
    await exited;
    clearTimeout(timer);
  }

  /** Waits for a thread that said `done` to exit. */
  async ended(): Promise<void> {
    if (this.#exited) return;
    await new Promise<void>((resolve) => this.#worker.once("exit", () => resolve()));
  }
}
