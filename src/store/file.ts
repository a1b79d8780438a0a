/**
 * `FileKeyStore`: the embedded default KeyStore, the `key_store` file. The line format, the MAC
 * chain and the secret encryption are specified in log-format.ts; this module is the store around
 * them:
 *
 * - Open: takes `<path>.lock` (single writer, lock-file.ts; or adopts it, taken earlier by the
 *   caller so that nothing beside the store is made before it), creates the file 0600 if absent,
 *   replays every line (replay.ts: the chain, the schema, the record rules) into the record core
 *   (record-rules.ts).
 *   A last line without its newline is a torn write from a crash: it was never acknowledged, so it
 *   is copied to `<path>.torn-<time>` for forensics, logged, and cut off; it is never merged. A
 *   complete line that fails anywhere means corruption or tampering and the store refuses to open
 *   (E_STORE_CORRUPT naming the line) without changing the file.
 * - Writes: `put`, `claimNext`, `consume` and `useStep` decide synchronously in the core (so
 *   concurrent claims can never pick the same record, nor two uses of a step both win), then append
 *   a line through group commit (group-commit.ts) and resolve only after it is fsynced. A failed
 *   write rolls the in-memory change back and fails the store for good; it must be reopened.
 * - Leases (leases.ts): a claim acknowledged "reserved" (ClaimOptions; OTP delivery) takes a record
 *   this store leased beforehand — a lease line reserving the next `leaseSize` records, durable before any of
 *   them is handed out, written ahead when half is used — and appends its claim line without
 *   waiting for it. A crash voids the leased records whose claims were not yet durable (replay
 *   leaves them out of every pool), so nothing is handed out twice; a clean close releases the
 *   unclaimed rest.
 * - Rollbacks: the head file (head-file.ts, `<path>.head` unless told otherwise) names the durable
 *   end of the chain, updated after group commit without any write waiting for it. At open, a
 *   file shorter than its head, or whose chain MAC at the head's line differs, or a non-empty file
 *   without a head file, is refused (E_STORE_CORRUPT naming both ends), unless the caller accepts
 *   the rollback: then a rollback line records it and the head follows the file from there.
 * - Secrets: encrypted before anything is written, kept encrypted in memory, decrypted only in
 *   `readSecret`. The caller's buffer is never kept.
 */
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { LockFile, storeLockOptions } from "../datadir/lock-file.js";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import { type CommitStats, GroupCommitLog, type LogFile } from "./group-commit.js";
import {
  type ChainState,
  deriveHeadKey,
  HeadFile,
  type HeadFileOptions,
  type HeadReading,
  type HeadVerdict,
  judgeHead,
  readHeadFile,
} from "./head-file.js";
import {
  checkClaim,
  checkConsumeAt,
  checkId,
  checkListQuery,
  checkLogRange,
  checkPurpose,
  checkRecordInput,
  checkRoundId,
  checkRoundOpening,
  checkStep,
  copyLogLeaf,
  copyRecord,
  newRecord,
  notFound,
  openingExists,
} from "./inputs.js";
import {
  checkStoreFolder,
  fileExists,
  logFileOf,
  openStoreFile,
  setTornTailAside,
} from "./key-store-file.js";
import { LeasedClaims, type LineHooks } from "./leases.js";
import {
  CHAIN_START,
  claimBody,
  consumeBody,
  deriveStoreKeys,
  encodeLine,
  type LogBody,
  MAX_LEASE_IDS,
  MAX_LINE_BYTES,
  openingBody,
  openOpening,
  openSecret,
  readSegments,
  recordBody,
  retireBody,
  rollbackBody,
  type SealedSecret,
  type Segment,
  type StoreKeys,
  sealOpening,
  sealSecret,
  stepBody,
  tlogBody,
  unholdBody,
} from "./log-format.js";
import { UlidGenerator } from "./record-id.js";
import type { RecordIndex, RetirePolicy } from "./record-index.js";
import {
  consumeRule,
  liveAnswer,
  mustApply,
  RETIRE_GRACE_MS,
  RecordCore,
  retirePolicy,
  stepMark,
  stepRule,
} from "./record-rules.js";
import { Replayer, type ReplayFailure } from "./replay.js";
import type {
  ClaimInput,
  ClaimOptions,
  KeyRecord,
  KeyStore,
  ListQuery,
  RecordInput,
} from "./types.js";

/**
 * The store's contents with every secret still sealed (`FileKeyStore.sealedContents`): what a copy
 * into another store needs to keep records, their state and their ciphertexts exactly.
 */
export interface SealedContents {
  /** Every record in id order (copies), with its sealed secret part. */
  records: { record: KeyRecord; sealed: SealedSecret; void: boolean }[];
  /** The claimed records' ids per (requester, subject), each group in claim order. */
  claimGroups: string[][];
  /** Every round opening, sealed. */
  openings: { roundId: string; sealed: SealedSecret }[];
  /** The transparency log's leaves, in index order. */
  leaves: Uint8Array[];
}

export interface FileKeyStoreLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  error?(fields: Record<string, unknown>, message: string): void;
}

export interface FileKeyStoreOptions {
  /** The `key_store` file. Its folder must exist; the file is created (0600) if absent. */
  path: string;
  /** 32 bytes, kept apart from the file. The store derives its keys and keeps no copy of this. */
  storeKey: Uint8Array;
  /** Randomness for ids and IVs; the OS CSPRNG by default. */
  random?: RandomSource;
  /** The time for ids, `createdAt`, claims, consumptions, steps and torn-file names; now. */
  clock?: () => Date;
  /** Told about torn tails, stale locks and write failures (never secret content). */
  logger?: FileKeyStoreLogger;
  /** For fault-injection tests only: wraps the file operations the group commit uses. */
  wrapLogFile?: (file: LogFile) => LogFile;
  /**
   * Records one lease reserves for claims acknowledged "reserved" (ClaimOptions); 1 to 4096,
   * default 256. A crash voids at most the unclaimed part of the leases in flight.
   */
  leaseSize?: number;
  /**
   * The store's lock (`<path>.lock`), already taken by the caller (a server takes it before it
   * makes any key file). The store owns it from then on and releases it when it closes or fails
   * to open. Taken by `open()` when absent.
   */
  lock?: LockFile;
  /** The head file (head-file.ts); `<path>.head` by default. Keep it elsewhere to survive a
   * restore of the whole folder. */
  headPath?: string;
  /**
   * Open even if the file does not match its head file (shorter, diverged, or no or an unreadable
   * head file), appending a rollback line that records it. For an operator who chose to go on
   * from a restored or truncated file; default false.
   */
  acceptRollback?: boolean;
  /** For fault-injection tests only: wraps the head file's durable write. */
  wrapHeadWrite?: HeadFileOptions["wrapWrite"];
  /**
   * How long a pooled OTP stays in memory after its claim expired (record-rules.ts
   * `retirePolicy`), so a late verification hears "expired" or "used"; default 60 s. Then it
   * retires: a retire line records it and it leaves memory for good.
   */
  retireGraceMs?: number;
  /** How often retirements are looked for, in ms; default 1,000. 0: only when `retireDue` is
   * called (tests). */
  retireEveryMs?: number;
}

const DEFAULT_LEASE_SIZE = 256;
const DEFAULT_RETIRE_EVERY_MS = 1000;

type State = "new" | "opening" | "open" | "closing" | "closed";

const STORE_KEY_BYTES = 32;

export class FileKeyStore implements KeyStore {
  readonly kind = "file";
  readonly path: string;
  readonly headPath: string;
  readonly #keys: StoreKeys;
  readonly #headKey: Buffer;
  readonly #acceptRollback: boolean;
  readonly #wrapHeadWrite: HeadFileOptions["wrapWrite"];
  readonly #random: RandomSource;
  readonly #clock: () => Date;
  readonly #logger: FileKeyStoreLogger | undefined;
  readonly #wrapLogFile: ((file: LogFile) => LogFile) | undefined;
  readonly #ids: UlidGenerator;
  /** The records, under the rules (record-rules.ts); built by the replay at open. */
  #core = new RecordCore();
  #sealed = new Map<string, SealedSecret>();
  /** Round openings by round id, sealed; a round being written is here already (one per round). */
  #openings = new Map<string, SealedSecret | "writing">();
  /** Consumptions written but not yet durable, so a second `consume` can wait for the first. */
  readonly #consuming = new Map<string, Promise<void>>();
  /** Per record, the write of its latest step until it is durable, for replays to wait on. */
  readonly #stepping = new Map<string, Promise<void>>();
  /** Per round, its unhold line until it is durable, for a second `releaseHeld` to wait on. */
  readonly #unholding = new Map<string, Promise<void>>();
  /** Claims acknowledged "reserved": leases and the claims line of each turn (leases.ts). */
  readonly #leased: LeasedClaims;
  readonly #givenLock: LockFile | undefined;
  #state: State = "new";
  #lock: LockFile | undefined;
  #handle: FileHandle | undefined;
  /** The same file opened O_DSYNC, for group commit's durable writes. */
  #dsync: FileHandle | undefined;
  #log: GroupCommitLog | undefined;
  #headFile: HeadFile | undefined;
  /** The MAC of the last line encoded (durable or queued): the next line chains from it. */
  #head: Uint8Array = CHAIN_START;
  #durableHead: Uint8Array = CHAIN_START;
  #durableLines = 0;
  /** The transparency log's leaves, queued ones included; `#durableLeaves` of them are durable. */
  #leaves: Uint8Array[] = [];
  #durableLeaves = 0;
  readonly #retirePolicy: RetirePolicy;
  readonly #retireEveryMs: number;
  #retireTimer: NodeJS.Timeout | undefined;
  /** Records retired, per minute of retirement (ms of the minute's start): what a compaction
   * past the retention would leave out. */
  #retiredByMinute = new Map<number, number>();

  constructor(options: FileKeyStoreOptions) {
    if (typeof options?.path !== "string" || options.path.length === 0) {
      throw new TypeError("FileKeyStore: options.path must be a non-empty string");
    }
    if (!(options.storeKey instanceof Uint8Array) || options.storeKey.length !== STORE_KEY_BYTES) {
      throw new TypeError(`FileKeyStore: options.storeKey must be ${STORE_KEY_BYTES} bytes`);
    }
    const leaseSize = options.leaseSize ?? DEFAULT_LEASE_SIZE;
    if (!Number.isSafeInteger(leaseSize) || leaseSize < 1 || leaseSize > MAX_LEASE_IDS) {
      throw new TypeError(`FileKeyStore: options.leaseSize must be 1 to ${MAX_LEASE_IDS}`);
    }
    this.#leased = new LeasedClaims(
      {
        core: () => this.#core,
        appendLine: (body, hooks) => this.#appendLine(body, hooks),
        assertWritable: () => this.#assertWritable(),
        failed: () => this.#log?.failure !== undefined,
      },
      leaseSize,
    );
    if (options.lock !== undefined && options.lock.path !== `${options.path}.lock`) {
      throw new TypeError(`FileKeyStore: options.lock must be the lock ${options.path}.lock`);
    }
    this.#givenLock = options.lock;
    this.path = options.path;
    this.headPath = options.headPath ?? `${options.path}.head`;
    this.#keys = deriveStoreKeys(options.storeKey);
    this.#headKey = deriveHeadKey(options.storeKey);
    this.#acceptRollback = options.acceptRollback === true;
    this.#wrapHeadWrite = options.wrapHeadWrite;
    this.#random = options.random ?? osRandom;
    this.#clock = options.clock ?? (() => new Date());
    this.#logger = options.logger;
    this.#wrapLogFile = options.wrapLogFile;
    this.#ids = new UlidGenerator({ random: this.#random, now: () => this.#clock().getTime() });
    const grace = options.retireGraceMs ?? RETIRE_GRACE_MS;
    if (!Number.isSafeInteger(grace) || grace < 0) {
      throw new TypeError("FileKeyStore: options.retireGraceMs must be a non-negative integer");
    }
    this.#retirePolicy = retirePolicy(grace);
    this.#retireEveryMs = options.retireEveryMs ?? DEFAULT_RETIRE_EVERY_MS;
    if (!Number.isSafeInteger(this.#retireEveryMs) || this.#retireEveryMs < 0) {
      throw new TypeError("FileKeyStore: options.retireEveryMs must be a non-negative integer");
    }
  }

  /** Records held in memory: the live ones (retired OTPs have left). */
  get liveRecords(): number {
    return this.#state === "open" ? this.#index.size : 0;
  }

  /**
   * Retires every record due by now (record-rules.ts `retirePolicy`): each leaves memory for
   * good, and retire lines record it. Runs every `retireEveryMs` by itself. Resolves with how
   * many retired once their lines are durable.
   */
  async retireDue(): Promise<number> {
    this.#assertWritable();
    const now = this.#clock().getTime();
    const ids: string[] = [];
    for (const id of this.#index.dueForRetirement(now)) {
      if (this.#consuming.has(id) || this.#stepping.has(id)) {
        // A write about it is in flight: next time.
        this.#index.scheduleRetirement(id, now + 1);
        continue;
      }
      mustApply(this.#core.retire(id, now));
      this.#sealed.delete(id);
      ids.push(id);
    }
    if (ids.length === 0) return 0;
    const minute = now - (now % 60_000);
    this.#retiredByMinute.set(minute, (this.#retiredByMinute.get(minute) ?? 0) + ids.length);
    const at = new Date(now).toISOString();
    const writes: Promise<void>[] = [];
    for (let i = 0; i < ids.length; i += MAX_LEASE_IDS) {
      writes.push(this.#append(retireBody(at, ids.slice(i, i + MAX_LEASE_IDS)), {}));
    }
    await Promise.all(writes);
    return ids.length;
  }

  #retireInBackground(): void {
    if (this.#state !== "open" || this.#log?.failure !== undefined) return;
    this.retireDue().catch((error: unknown) => {
      // A failed write fails the store for good and is logged there; anything else is a bug.
      if (this.#log?.failure === undefined) {
        this.#logger?.warn(
          { path: this.path, err: describeError(error) },
          "retiring records failed",
        );
      }
    });
  }

  /** The index, to read; changes go through `#core`. */
  get #index(): RecordIndex {
    return this.#core.index;
  }

  /** The durable end of the hash chain: anchor it elsewhere to detect lines cut off the end. */
  get chain(): { lines: number; head: string } {
    return { lines: this.#durableLines, head: Buffer.from(this.#durableHead).toString("hex") };
  }

  /** Group commit counters: lines made durable, and the writes (one fsync each) it took. */
  get commitStats(): CommitStats {
    return this.#log?.stats ?? { lines: 0, batches: 0, largestBatch: 0 };
  }

  async open(): Promise<void> {
    if (this.#state !== "new") {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        "This FileKeyStore was already opened; make a new one to open the file again.",
      );
    }
    this.#state = "opening";
    this.#lock = this.#givenLock;
    try {
      await checkStoreFolder(this.path);
      this.#lock ??= await LockFile.acquire(`${this.path}.lock`, {
        ...storeLockOptions(this.path),
        ...(this.#logger ? { log: this.#logger } : {}),
      });
      const reading = await readHeadFile(this.headPath, this.#headKey);
      this.#handle = await this.#openFile(reading);
      const { size, torn, atHeadLine } = await this.#replay(
        this.#handle,
        reading.kind === "found" ? reading.state.lines : undefined,
      );
      // Judged before anything in the file is changed (a torn tail is cut below).
      const verdict = this.#judge(reading, atHeadLine);
      if (torn) await this.#setTornTailAside(torn);
      this.#dsync = await open(this.path, constants.O_WRONLY | constants.O_DSYNC);
      const file = logFileOf(this.#handle, this.#dsync);
      this.#log = new GroupCommitLog(this.#wrapLogFile ? this.#wrapLogFile(file) : file, size, {
        name: this.path,
        onFailure: (error, cause) => {
          const log = this.#logger?.error ?? this.#logger?.warn;
          log?.call(this.#logger, { path: this.path, err: cause }, error.message);
        },
      });
      this.#headFile = await HeadFile.open(
        this.headPath,
        this.#headKey,
        reading,
        this.#chainState(),
        {
          onFailure: (error, cause) => {
            const log = this.#logger?.error ?? this.#logger?.warn;
            log?.call(this.#logger, { path: this.headPath, err: cause }, error.message);
          },
          ...(this.#wrapHeadWrite ? { wrapWrite: this.#wrapHeadWrite } : {}),
        },
      );
      if (!verdict.ok) await this.#recordRollback(verdict);
      // The head names the file as it is now (it may have lagged after a crash).
      this.#headFile.follow(this.#chainState());
      await this.#headFile.settle();
      this.#state = "open";
      if (this.#retireEveryMs > 0) {
        this.#retireTimer = setInterval(() => this.#retireInBackground(), this.#retireEveryMs);
        this.#retireTimer.unref();
      }
    } catch (error) {
      await this.#headFile?.close().catch(() => {});
      await this.#handle?.close().catch(() => {});
      await this.#dsync?.close().catch(() => {});
      await this.#lock?.release().catch(() => {});
      this.#wipe();
      this.#state = "closed";
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.#state === "closed" || this.#state === "closing") return;
    if (this.#state !== "open") {
      await this.#givenLock?.release();
      this.#wipe();
      this.#state = "closed";
      return;
    }
    this.#state = "closing";
    clearInterval(this.#retireTimer);
    try {
      this.#leased.flush();
      await this.#log!.drain();
      await this.#leased.releaseAll();
      await this.#headFile!.close();
      await this.#handle!.close();
      await this.#dsync?.close();
    } finally {
      await this.#lock!.release();
      this.#wipe();
      this.#state = "closed";
    }
  }

  async put(input: RecordInput): Promise<KeyRecord> {
    this.#assertWritable();
    checkRecordInput(input);
    const record = newRecord(this.#ids.next(), input, this.#clock());
    const sealed = sealSecret(this.#keys.secret, this.#random, record, input.secret);
    // Visible only once durable: nobody can list or claim a record that may still be lost.
    await this.#append(recordBody(record, sealed), {
      onDurable: () => {
        mustApply(this.#core.add(record));
        this.#sealed.set(record.id, sealed);
      },
    });
    return copyRecord(record);
  }

  /**
   * Everything the store holds, secrets sealed as on disk (never decrypted), for copying it into
   * another store (`dkeygen store copy`). A record is `void` when a store that leased it stopped
   * before claiming it: it must never be handed out again. Call it with no write in flight (the
   * copy holds the store's lock and writes nothing).
   */
  sealedContents(): SealedContents {
    this.#assertReadable();
    const records = this.#index.list().map((record) => ({
      record: copyRecord(record),
      sealed: this.#sealed.get(record.id)!,
      void: this.#index.isVoid(record.id),
    }));
    const openings: SealedContents["openings"] = [];
    for (const [roundId, sealed] of this.#openings) {
      if (sealed !== "writing") openings.push({ roundId, sealed });
    }
    return {
      records,
      claimGroups: [...this.#index.claimGroups()].map((ids) => [...ids]),
      openings,
      leaves: this.#leaves.slice(0, this.#durableLeaves),
    };
  }

  async get(id: string): Promise<KeyRecord | undefined> {
    this.#assertReadable();
    checkId(id);
    const record = this.#index.get(id);
    return record && copyRecord(record);
  }

  async list(query: ListQuery = {}): Promise<KeyRecord[]> {
    this.#assertReadable();
    checkListQuery(query);
    return this.#index.list(query).map(copyRecord);
  }

  async readSecret(id: string): Promise<Uint8Array> {
    this.#assertReadable();
    checkId(id);
    const record = this.#index.get(id);
    const sealed = this.#sealed.get(id);
    if (!record || !sealed) throw notFound(id);
    try {
      return openSecret(this.#keys.secret, record, sealed);
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `The secret part of record ${id} in ${this.path} does not decrypt.`,
        { cause },
      );
    }
  }

  async claimNext(
    purpose: string,
    claim: ClaimInput,
    options: ClaimOptions = {},
  ): Promise<KeyRecord | undefined> {
    this.#assertWritable();
    const built = checkClaim(purpose, claim, this.#clock());
    if (options.ack === "reserved") {
      const leased = await this.#leased.claim(purpose, built);
      return leased && copyRecord(leased);
    }
    // Records leased for reserved claims are the oldest: a durable claim takes those first.
    const leased = this.#leased.claimDurable(purpose, built);
    if (leased) {
      await leased.durable;
      return copyRecord(leased.record);
    }
    // Decided here, synchronously: no other claimNext can run between this and the mark.
    const record = this.#core.claimOldest(purpose, built);
    if (!record) return undefined;
    await this.#append(claimBody(record.id, built), {
      onFailed: () => this.#core.undoClaim(record.id),
    });
    return copyRecord(record);
  }

  async consume(id: string, at?: Date): Promise<boolean> {
    this.#assertWritable();
    checkId(id);
    checkConsumeAt(at);
    if (!liveAnswer(consumeRule(id, this.#index.get(id)))) {
      // Consumed before, or being consumed: "false" only once that consumption is durable; if
      // it fails this rejects with the store's failure.
      await this.#consuming.get(id);
      return false;
    }
    const when = (at ?? this.#clock()).toISOString();
    mustApply(this.#core.consume(id, when));
    const done = this.#append(consumeBody(id, when), {
      onFailed: () => this.#core.undoConsume(id),
    });
    this.#consuming.set(id, done);
    try {
      await done;
    } finally {
      this.#consuming.delete(id);
    }
    return true;
  }

  /**
   * Released in memory only once the unhold line is durable (like a put), so no claim takes a
   * record whose release a crash could still lose. One line per round: a call while one is being
   * written waits for it and releases nothing more.
   */
  async releaseHeld(roundId: string): Promise<number> {
    this.#assertWritable();
    checkRoundId(roundId);
    const pending = this.#unholding.get(roundId);
    if (pending) {
      await pending;
      return 0;
    }
    if (!this.#core.hasHeld(roundId)) return 0;
    let released = 0;
    const done = this.#append(unholdBody(roundId, this.#clock().toISOString()), {
      onDurable: () => {
        const release = this.#core.releaseRound(roundId);
        released = "released" in release ? release.released : 0;
      },
    });
    this.#unholding.set(roundId, done);
    try {
      await done;
    } finally {
      this.#unholding.delete(roundId);
    }
    return released;
  }

  async useStep(id: string, step: number, at?: Date): Promise<boolean> {
    this.#assertWritable();
    checkId(id);
    const value = checkStep(step);
    checkConsumeAt(at);
    const record = this.#index.get(id);
    if (!liveAnswer(stepRule(id, record, value))) {
      // A replay. Answer "false" only once the step that makes it one is durable (writes only
      // raise the step, so that is the latest one written); if it fails, this rejects with the
      // store's failure.
      await this.#stepping.get(id);
      return false;
    }
    // Decided here, synchronously: no other useStep can run between the check and the mark.
    const when = (at ?? this.#clock()).toISOString();
    const previous = stepMark(record!);
    mustApply(this.#core.useStep(id, value, when));
    const done = this.#append(stepBody(id, value, when), {
      // Group commit undoes newest first, so each undo restores what the one before it set.
      onFailed: () => this.#core.undoStep(id, previous),
    });
    this.#stepping.set(id, done);
    try {
      await done;
    } finally {
      if (this.#stepping.get(id) === done) this.#stepping.delete(id);
    }
    return true;
  }

  async appendLogEntry(leaf: Uint8Array): Promise<number> {
    this.#assertWritable();
    const copy = copyLogLeaf(leaf);
    const index = this.#leaves.length;
    this.#leaves.push(copy);
    await this.#append(tlogBody(index, copy), {
      // Lines become durable in the order they were written, so entries do too.
      onDurable: () => {
        this.#durableLeaves = index + 1;
      },
      // The store refuses every write from now on; forget what never reached the disk.
      onFailed: () => {
        this.#leaves.length = Math.min(this.#leaves.length, index);
      },
    });
    return index;
  }

  async putRoundOpening(roundId: string, opening: Uint8Array): Promise<void> {
    this.#assertWritable();
    const copy = checkRoundOpening(roundId, opening);
    // Decided here, synchronously: of two racing calls for a round, the second is refused.
    if (this.#openings.has(roundId)) {
      copy.fill(0);
      throw openingExists(roundId);
    }
    let sealed: SealedSecret;
    try {
      sealed = sealOpening(this.#keys.secret, this.#random, roundId, copy);
    } finally {
      copy.fill(0);
    }
    this.#openings.set(roundId, "writing");
    await this.#append(openingBody(roundId, sealed), {
      onDurable: () => {
        this.#openings.set(roundId, sealed);
      },
      onFailed: () => {
        this.#openings.delete(roundId);
      },
    });
  }

  async readRoundOpening(roundId: string): Promise<Uint8Array | undefined> {
    this.#assertReadable();
    checkRoundId(roundId);
    const sealed = this.#openings.get(roundId);
    if (sealed === undefined || sealed === "writing") return undefined;
    try {
      return openOpening(this.#keys.secret, roundId, sealed);
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `The opening of round ${roundId} in ${this.path} does not decrypt.`,
        { cause },
      );
    }
  }

  logSize(): number {
    return this.#durableLeaves;
  }

  async logEntries(start: number, end: number): Promise<Uint8Array[]> {
    this.#assertReadable();
    checkLogRange(start, end, this.#durableLeaves);
    return this.#leaves.slice(start, end).map((leaf) => new Uint8Array(leaf));
  }

  async countUnclaimed(purpose: string): Promise<number> {
    this.#assertReadable();
    checkPurpose(purpose);
    return this.#core.countClaimable(purpose);
  }

  /** Writes a line after any "reserved" claims still queued (leases.ts). */
  #append(body: LogBody, hooks: LineHooks): Promise<void> {
    this.#leased.flush();
    return this.#appendLine(body, hooks);
  }

  /** Encodes a line onto the chain and hands it to group commit. */
  #appendLine(body: LogBody, hooks: LineHooks): Promise<void> {
    let encoded: { line: Buffer; mac: Buffer };
    try {
      encoded = encodeLine(this.#keys.mac, this.#head, body);
      if (encoded.line.length > MAX_LINE_BYTES) {
        throw new DkeygenError(
          ErrorCodes.INVALID_INPUT,
          `A key_store line may be at most ${MAX_LINE_BYTES} bytes; this record needs ` +
            `${encoded.line.length}. Make its public part smaller.`,
        );
      }
    } catch (error) {
      hooks.onFailed?.();
      return Promise.reject(error);
    }
    this.#head = encoded.mac;
    return this.#log!.append(encoded.line, {
      onDurable: () => {
        this.#durableHead = encoded.mac;
        this.#durableLines++;
        this.#headFile?.follow(this.#chainState());
        hooks.onDurable?.();
      },
      ...(hooks.onFailed ? { onFailed: hooks.onFailed } : {}),
    });
  }

  #chainState(): ChainState {
    return { lines: this.#durableLines, head: this.#durableHead };
  }

  /** Compares the replayed file with its head file; throws unless it matches or is accepted. */
  #judge(reading: HeadReading, atHeadLine: Uint8Array | undefined): HeadVerdict {
    const verdict = judgeHead(reading, this.#chainState(), atHeadLine, {
      store: this.path,
      headFile: this.headPath,
    });
    if (!verdict.ok && !this.#acceptRollback) {
      throw new DkeygenError(ErrorCodes.STORE_CORRUPT, verdict.message);
    }
    return verdict;
  }

  /** Appends the rollback line an accepted mismatch needs, and says so in the log. */
  async #recordRollback(verdict: Extract<HeadVerdict, { ok: false }>): Promise<void> {
    const hex = (head: Uint8Array) => Buffer.from(head).toString("hex");
    const found = { lines: this.#durableLines, head: hex(this.#durableHead) };
    const expected = verdict.expected && {
      lines: verdict.expected.lines,
      head: hex(verdict.expected.head),
    };
    this.#logger?.warn(
      { path: this.path, headFile: this.headPath, reason: verdict.reason, found, expected },
      "opening a key store that does not match its head file, as told (acceptRollback); a " +
        "rollback line records it",
    );
    await this.#append(
      rollbackBody(this.#clock().toISOString(), verdict.reason, found, expected),
      {},
    );
  }

  async #openFile(reading: HeadReading): Promise<FileHandle> {
    if (reading.kind !== "missing" && !(await fileExists(this.path))) {
      // A head file but no key_store: judged as an empty file, before one is created.
      this.#judge(
        reading,
        reading.kind === "found" && reading.state.lines === 0 ? CHAIN_START : undefined,
      );
    }
    return openStoreFile(this.path, (mode) =>
      this.#logger?.warn(
        { path: this.path, mode },
        "the key store file was accessible by others; setting it to 0600",
      ),
    );
  }

  #corrupt(line: number, reason: string): DkeygenError {
    return new DkeygenError(
      ErrorCodes.STORE_CORRUPT,
      `The key store ${this.path} is corrupt or was tampered with at line ${line}: ${reason}. ` +
        "It was not opened and nothing in it was changed; restore it from a backup or inspect " +
        "that line.",
    );
  }

  /**
   * Replays the file (replay.ts) and takes what it built: the verified part's size, the torn tail
   * if there is one (left in place), and the chain MAC at line `watch` if the file has it.
   */
  async #replay(
    handle: FileHandle,
    watch: number | undefined,
  ): Promise<{ size: number; torn: Segment | undefined; atHeadLine: Uint8Array | undefined }> {
    const replayer = new Replayer(this.#keys.mac, watch, this.#retirePolicy);
    for await (const segment of readSegments(handle)) {
      const failure = replayer.feed(segment);
      if (failure) throw this.#replayError(failure);
      if (replayer.done) break;
    }
    const state = replayer.finish();
    if ("kind" in state) throw this.#replayError(state);
    this.#core = state.core;
    this.#sealed = state.sealed;
    this.#openings = state.openings;
    this.#leaves = state.leaves;
    this.#durableLeaves = state.leaves.length;
    this.#head = state.head;
    this.#durableHead = state.head;
    this.#durableLines = state.lines;
    this.#retiredByMinute = state.retiredByMinute;
    if (state.voided > 0) {
      this.#logger?.warn(
        { path: this.path, records: state.voided },
        "records leased by a key store that stopped without claiming them are void (never " +
          "handed out again)",
      );
    }
    const newest = this.#index.newestId;
    if (newest) this.#ids.observe(newest);
    return { size: state.size, torn: state.torn, atHeadLine: state.atWatch };
  }

  #replayError(failure: ReplayFailure): DkeygenError {
    if (failure.kind === "corrupt") return this.#corrupt(failure.line, failure.reason);
    return new DkeygenError(
      ErrorCodes.STORE_CORRUPT,
      `The store key does not match this key_store file (${this.path}): its first line does not ` +
        "verify under it. Check that the store key file belongs to this data folder (or, less " +
        "likely, the file's first line was altered). Nothing in the file was changed.",
    );
  }

  /** Keeps a torn last line (key-store-file.ts) and says so; it is line `#durableLines + 1`. */
  async #setTornTailAside(torn: Segment): Promise<void> {
    const kept = await setTornTailAside(this.#handle!, this.path, torn, this.#clock());
    this.#logger?.warn(
      {
        path: this.path,
        line: this.#durableLines + 1,
        bytes: torn.end - torn.start,
        preservedAs: kept,
      },
      "the key store's last line was torn by a crash (never acknowledged); it was set aside " +
        "and cut off",
    );
    await this.#handle!.truncate(torn.start);
    await this.#handle!.sync();
  }

  #assertReadable(): void {
    if (this.#state !== "open") {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        this.#state === "new" || this.#state === "opening"
          ? "The key store is not open; call open() first."
          : "The key store is closed.",
      );
    }
  }

  #assertWritable(): void {
    this.#assertReadable();
    const failure = this.#log!.failure ?? this.#headFile!.failure;
    if (failure) throw failure;
  }

  #wipe(): void {
    this.#keys.mac.fill(0);
    this.#keys.secret.fill(0);
    this.#headKey.fill(0);
    this.#sealed.clear();
    this.#openings.clear();
  }
}
