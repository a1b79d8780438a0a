/**
 * Group commit for an append-only log: many concurrent appends share one write and one fsync.
 *
 * Appends queue up; a single writer loop takes everything queued, writes it at the end of the file
 * with one positional write, calls fdatasync once, and only then resolves every append in the
 * batch, in order. Appends that arrive while a write or fsync is in flight form the next batch. So
 * 200 concurrent claims cost a handful of fsyncs instead of 200, and no append is acknowledged
 * before its bytes are on stable storage.
 *
 * Failure is final. If a write or fsync fails, nobody can know what reached the disk (after a
 * failed fsync Linux may drop the dirty pages and report the next fsync as clean), so the log:
 *   1. refuses every later append at once (its `failure`),
 *   2. runs the failed batch's and the queued appends' `onFailed` hooks, newest first, so the
 *      store rolls its in-memory state back,
 *   3. tries to cut the file back to its last durable size, so no half line is left behind,
 *   4. rejects those appends with an OPERATIONAL error.
 * Going on after a failure could leave a gap in the hash chain or acknowledge data that is not on
 * disk; a restart re-reads the file and starts from what is really there.
 */
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";

/** The file operations the log needs; a FileHandle adapter in production, a fake in tests. */
export interface LogFile {
  /** Writes all of `bytes` at byte offset `position`. */
  write(bytes: Uint8Array, position: number): Promise<void>;
  /** fdatasync: the written bytes and the file size are on stable storage. */
  sync(): Promise<void>;
  /**
   * Optional: `write` and `sync` as one operation (a write on an O_DSYNC descriptor). One trip to
   * the thread pool instead of two matters on a busy event loop, where each trip waits for the
   * loop to come round.
   */
  writeDurable?(bytes: Uint8Array, position: number): Promise<void>;
  truncate(size: number): Promise<void>;
}

export interface AppendHooks {
  /** Runs when the line is durable, before the append resolves; appends run these in order.
   * `offset`: where the line starts in the file. */
  onDurable?(offset: number): void;
  /** Runs when the line will never be durable, before the append rejects; newest first. */
  onFailed?(): void;
}

export interface CommitStats {
  /** Lines made durable. */
  lines: number;
  /** Writes (= fsyncs) that made them durable. */
  batches: number;
  /** The most lines one batch carried. */
  largestBatch: number;
}

export interface GroupCommitOptions {
  /** Names the file in error messages. */
  name: string;
  /** Told once when the log fails, with a safe description of the cause. */
  onFailure?(error: DkeygenError, cause: unknown): void;
}

interface Pending {
  bytes: Uint8Array;
  hooks: AppendHooks;
  resolve(): void;
  reject(error: unknown): void;
}

/** A batch never grows past this many bytes, so one write stays bounded. */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;

export class GroupCommitLog {
  readonly #file: LogFile;
  readonly #options: GroupCommitOptions;
  #size: number;
  #queue: Pending[] = [];
  #running: Promise<void> | undefined;
  #failure: DkeygenError | undefined;
  readonly #stats: CommitStats = { lines: 0, batches: 0, largestBatch: 0 };

  constructor(file: LogFile, size: number, options: GroupCommitOptions) {
    this.#file = file;
    this.#size = size;
    this.#options = options;
  }

  /** Bytes known to be durable. */
  get size(): number {
    return this.#size;
  }

  /** Set once a write failed; every later append rejects with it. */
  get failure(): DkeygenError | undefined {
    return this.#failure;
  }

  get stats(): CommitStats {
    return { ...this.#stats };
  }

  /** Appends one line (bytes including its newline); resolves once it is durable. */
  append(bytes: Uint8Array, hooks: AppendHooks = {}): Promise<void> {
    if (this.#failure) {
      // The caller applied its change before appending; it must be undone here too.
      hooks.onFailed?.();
      return Promise.reject(this.#failure);
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ bytes, hooks, resolve, reject });
      // Start on a microtask, not now: appends made in the same turn join the first batch.
      this.#running ??= Promise.resolve().then(() => this.#run());
    });
  }

  /** Resolves when every append made so far has settled. */
  async drain(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #run(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#failure) {
        const batch = this.#takeBatch();
        const bytes = Buffer.concat(batch.map((p) => p.bytes));
        try {
          if (this.#file.writeDurable) {
            await this.#file.writeDurable(bytes, this.#size);
          } else {
            await this.#file.write(bytes, this.#size);
            await this.#file.sync();
          }
        } catch (cause) {
          await this.#fail(batch, cause);
          return;
        }
        let offset = this.#size;
        this.#size += bytes.length;
        this.#stats.lines += batch.length;
        this.#stats.batches += 1;
        this.#stats.largestBatch = Math.max(this.#stats.largestBatch, batch.length);
        for (const pending of batch) {
          try {
            pending.hooks.onDurable?.(offset);
            pending.resolve();
          } catch (error) {
            pending.reject(error);
          }
          offset += pending.bytes.length;
        }
      }
    } finally {
      this.#running = undefined;
    }
  }

  #takeBatch(): Pending[] {
    let bytes = 0;
    let count = 0;
    for (const pending of this.#queue) {
      if (count > 0 && bytes + pending.bytes.length > MAX_BATCH_BYTES) break;
      bytes += pending.bytes.length;
      count++;
    }
    return this.#queue.splice(0, count);
  }

  async #fail(batch: Pending[], cause: unknown): Promise<void> {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    this.#failure = new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `The key store could not write to ${this.#options.name}${code ? ` (${code})` : ""}. ` +
        "The change was not stored, and the store refuses further writes until it is reopened.",
      { cause },
    );
    const victims = [...batch, ...this.#queue];
    this.#queue = [];
    // Newest first: a later change may depend on an earlier one (a claim on a new record).
    for (const pending of [...victims].reverse()) {
      try {
        pending.hooks.onFailed?.();
      } catch {
        // A rollback hook must not stop the others; the store is failed either way.
      }
    }
    try {
      await this.#file.truncate(this.#size);
      await this.#file.sync();
    } catch {
      // Best effort. A half line left behind is a torn tail the next open detects and preserves.
    }
    this.#options.onFailure?.(this.#failure, describeError(cause));
    for (const pending of victims) pending.reject(this.#failure);
  }
}
