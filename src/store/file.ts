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
 * - Consumptions (turn-consumes.ts): those one turn of the event loop makes at the same time go
 *   into one `consumes` line, written after the turn (after its claims line) or before any other
 *   line; each `consume` still resolves once that line is durable.
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
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { LockFile, storeLockOptions } from "../datadir/lock-file.js";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import {
  type LineRef,
  lineRef,
  packSealed,
  RecordInterner,
  unpackSealed,
} from "./compact-memory.js";
import {
  type ChainCut,
  CompactionStopped,
  type CopiedLines,
  pointOf,
  type StopSignal,
} from "./compaction.js";
import { CompactionThread } from "./compaction-thread.js";
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
  checkRoundSecret,
  checkStep,
  copyLogLeaf,
  copyRecord,
  newRecord,
  noRoundSecret,
  notFound,
  notOwnSecret,
  openingExists,
  roundSecretExists,
} from "./inputs.js";
import {
  checkStoreFolder,
  fileExists,
  fsyncFolder,
  logFileOf,
  openStoreFile,
  readLineRef,
  setTornTailAside,
} from "./key-store-file.js";
import { LeasedClaims, type LineHooks } from "./leases.js";
import {
  batchable,
  type Carrier,
  CHAIN_START,
  carriedBy,
  claimBody,
  deriveStoreKeys,
  encodeLine,
  type LogBody,
  lineParts,
  MAX_LEASE_IDS,
  MAX_LINE_BYTES,
  MAX_RECORDS_ENTRY_BYTES,
  MAX_RECORDS_PER_LINE,
  openingBody,
  openOpening,
  openRoundSecret,
  openSecret,
  type ParsedBody,
  parseBody,
  type RecordPart,
  readSegments,
  recordBody,
  recordsBody,
  recordsEntryBytes,
  recordsHeaderKey,
  retireBody,
  rollbackBody,
  roundSecretBody,
  type SealedSecret,
  type Segment,
  type StoreKeys,
  sealOpening,
  sealRoundSecret,
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
import { type Compaction, countRetired, Replayer, type ReplayFailure } from "./replay.js";
import { RoundSecrets } from "./round-secrets.js";
import { TurnConsumes } from "./turn-consumes.js";
import { TurnLines } from "./turn-lines.js";
import type {
  ClaimInput,
  ClaimOptions,
  KeyRecord,
  KeyStore,
  ListQuery,
  RecordInput,
  SecretPart,
} from "./types.js";

/**
 * The store's contents with every secret still sealed (`FileKeyStore.sealedContents`): what a copy
 * into another store needs to keep records, their state and their ciphertexts exactly.
 */
export interface SealedContents {
  /**
   * Every record in id order (copies), with its sealed secret part, or for a record put with a
   * `roundPart` (RecordInput) that number instead (exactly one of `sealed` and `roundPart`).
   */
  records: { record: KeyRecord; sealed?: SealedSecret; roundPart?: number; void: boolean }[];
  /** Every round secret (KeyStore putRoundSecret) a record still refers to, sealed. */
  roundSecrets: { roundId: string; sealed: SealedSecret }[];
  /** The claimed records' ids per (requester, subject), each group in claim order. */
  claimGroups: string[][];
  /** Every round opening, sealed. */
  openings: { roundId: string; sealed: SealedSecret }[];
  /** The transparency log's leaves, in index order. */
  leaves: Uint8Array[];
}

export interface FileKeyStoreLogger {
  /** A compaction run by itself: its report (sizes, lines, records dropped, writes held). */
  info?(fields: Record<string, unknown>, message: string): void;
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
  /**
   * How long retired OTP records stay on disk for audit, in ms (`--retain-used`); default one
   * day, `Infinity` for ever. A compaction leaves out those retired longer ago. TOTP and HOTP
   * enrollments, keys, round openings and the transparency log never retire.
   */
  retainUsedMs?: number;
  /**
   * Compact by itself once the retired records past retention are estimated at this many bytes
   * and at least half the file; default 64 MiB. `Infinity`: only on demand (`compact`).
   */
  compactAtBytes?: number;
  /** For crash tests only: awaited at each step of a compaction. */
  onCompactionStep?: (step: CompactionStep) => void | Promise<void>;
}

/** The steps of a compaction, in order (for crash tests). */
export type CompactionStep = "scanned" | "copied" | "held" | "synced" | "renamed" | "switched";

/** What a compaction did. */
export interface CompactionReport {
  bytesBefore: number;
  bytesAfter: number;
  linesBefore: number;
  linesAfter: number;
  /** Records left out: retired before `cutoff`. */
  dropped: number;
  cutoff: string;
  generation: number;
  /** How long writes were held for the switch, in ms. */
  heldMs: number;
}

const DEFAULT_LEASE_SIZE = 256;
const DEFAULT_RETIRE_EVERY_MS = 1000;
export const DEFAULT_RETAIN_USED_MS = 24 * 60 * 60 * 1000;
const DEFAULT_COMPACT_AT_BYTES = 64 * 1024 * 1024;
/** The bytes a retired OTP is assumed to take on disk until a compaction measures it. */
const FIRST_BYTES_PER_RETIRED = 1200;
/** After a failed automatic compaction, the next try waits this long. */
const COMPACT_RETRY_MS = 60_000;

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
  readonly #interner = new RecordInterner();
  /** Where each round's opening line is (kept on disk only); a round being written is here
   * already (one per round). */
  #openings = new Map<string, LineRef | "writing">();
  /** The round secrets live records refer to, sealed (round-secrets.ts), once durable. */
  #roundSecrets = new RoundSecrets();
  /** Round secrets being written (not yet in #roundSecrets): a second put for one is refused. */
  readonly #roundSecretsWriting = new Set<string>();
  /** Consumptions written but not yet durable, so a second `consume` can wait for the first. */
  readonly #consuming = new Map<string, Promise<void>>();
  /** Per record, the write of its latest step until it is durable, for replays to wait on. */
  readonly #stepping = new Map<string, Promise<void>>();
  /** Per round, its unhold line until it is durable, for a second `releaseHeld` to wait on. */
  readonly #unholding = new Map<string, Promise<void>>();
  /** Claims acknowledged "reserved": leases and the claims line of each turn (leases.ts). */
  readonly #leased: LeasedClaims;
  /** Consumptions of this turn, written as one line after it (turn-consumes.ts). */
  readonly #consumes: TurnConsumes;
  /** This turn's batchable records by round header, written as records lines (log-format.ts). */
  readonly #records: TurnLines<{ record: KeyRecord; part: RecordPart }>;
  /** The last record line with participants in the current file (log-format.ts Carrier). */
  #carrier: Carrier | undefined;
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
  /** Where the transparency log's durable entries are (kept on disk only), in index order. */
  #leaves: LineRef[] = [];
  /** Entries written, queued ones included: the next entry's index. */
  #leafCount = 0;
  readonly #retirePolicy: RetirePolicy;
  readonly #retireEveryMs: number;
  #retireTimer: NodeJS.Timeout | undefined;
  /** Records retired, per second of retirement ([ms, count], oldest first), not yet counted as
   * droppable: what a compaction past the retention would leave out. */
  #retired: Array<[number, number]> = [];
  /** Retired records now past the retention (counted off `#retired`), not yet compacted away. */
  #droppable = 0;
  readonly #retainUsedMs: number;
  readonly #compactAtBytes: number;
  readonly #onCompactionStep: FileKeyStoreOptions["onCompactionStep"];
  #compacting: Promise<CompactionReport> | undefined;
  /** Stops a compaction still copying when the store closes (it would only make it wait). */
  readonly #stopCompaction: StopSignal = { stopped: false };
  /** Tells the running compaction's thread to stop. */
  #onStopCompaction: (() => void) | undefined;
  #compactFailedAt = Number.NEGATIVE_INFINITY;
  #bytesPerRetired = FIRST_BYTES_PER_RETIRED;
  /** While a compaction switches files: the lines to append once it is done. */
  #held:
    | { body: LogBody; hooks: LineHooks; resolve(): void; reject(error: unknown): void }[]
    | undefined;
  /** The store cannot go on (a compaction failed after the switch); every write refuses. */
  #failure: DkeygenError | undefined;
  /** Handles on a file a compaction replaced, kept open briefly for reads begun on it. */
  readonly #retiredHandles = new Set<FileHandle>();
  /** The replayed file's compaction (line 1 compacted), if it is one. */
  #compaction: Compaction | undefined;

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
    // A turn's consumptions go after its claims: a record claimed and consumed in one turn.
    this.#consumes = new TurnConsumes(
      (body, hooks) => {
        this.#leased.flush();
        return this.#appendLine(body, hooks);
      },
      (id) => this.#core.undoConsume(id),
    );
    this.#records = new TurnLines((items) => {
      const body =
        items.length === 1
          ? recordBody(items[0]!.record, items[0]!.part)
          : recordsBody(
              items.map((item) => item.record),
              items.map((item) => item.part),
            );
      return this.#appendLine(body, {
        onDurable: () => {
          for (const { record, part } of items) mustApply(this.#core.add(record, payloadOf(part)));
        },
        onFailed: () => {
          for (const { record, part } of items) this.#unrefPart(record, part);
        },
      });
    }, MAX_RECORDS_PER_LINE);
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
    this.#retainUsedMs = options.retainUsedMs ?? DEFAULT_RETAIN_USED_MS;
    if (
      this.#retainUsedMs !== Number.POSITIVE_INFINITY &&
      (!Number.isSafeInteger(this.#retainUsedMs) || this.#retainUsedMs < 0)
    ) {
      throw new TypeError(
        "FileKeyStore: options.retainUsedMs must be a non-negative integer or Infinity",
      );
    }
    this.#compactAtBytes = options.compactAtBytes ?? DEFAULT_COMPACT_AT_BYTES;
    if (
      this.#compactAtBytes !== Number.POSITIVE_INFINITY &&
      (!Number.isSafeInteger(this.#compactAtBytes) || this.#compactAtBytes < 1)
    ) {
      throw new TypeError(
        "FileKeyStore: options.compactAtBytes must be a positive integer or Infinity",
      );
    }
    this.#onCompactionStep = options.onCompactionStep;
    this.#retireEveryMs = options.retireEveryMs ?? DEFAULT_RETIRE_EVERY_MS;
    if (!Number.isSafeInteger(this.#retireEveryMs) || this.#retireEveryMs < 0) {
      throw new TypeError("FileKeyStore: options.retireEveryMs must be a non-negative integer");
    }
  }

  /** Counts the retired records now past `cutoffMs` as droppable. */
  #countDroppable(cutoffMs: number): void {
    let taken = 0;
    while (taken < this.#retired.length && this.#retired[taken]![0] + 1000 <= cutoffMs) {
      this.#droppable += this.#retired[taken]![1];
      taken++;
    }
    if (taken > 0) this.#retired.splice(0, taken);
  }

  #compactionDue(): boolean {
    if (this.#compacting || this.#compactAtBytes === Number.POSITIVE_INFINITY) return false;
    const now = this.#clock().getTime();
    if (now < this.#compactFailedAt + COMPACT_RETRY_MS) return false;
    if (this.#retainUsedMs === Number.POSITIVE_INFINITY) return false;
    this.#countDroppable(now - this.#retainUsedMs);
    const dead = this.#droppable * this.#bytesPerRetired;
    return dead >= this.#compactAtBytes && dead * 2 >= (this.#log?.size ?? 0);
  }

  /**
   * Compacts the key_store file while the store serves (compaction.ts, PROTOCOL §10.4): the
   * lines about records retired longer than `retainUsedMs` ago are left out of a new file under a
   * fresh chain, which replaces the old one atomically. Writes are held only for the switch. A
   * crash at any point leaves the old file or the new one, whole. Runs by itself once enough is
   * droppable (`compactAtBytes`); a second call while one runs waits for it.
   */
  compact(): Promise<CompactionReport> {
    this.#assertWritable();
    this.#compacting ??= this.#compact().finally(() => {
      this.#compacting = undefined;
    });
    return this.#compacting;
  }

  async #step(step: CompactionStep): Promise<void> {
    await this.#onCompactionStep?.(step);
  }

  async #compact(): Promise<CompactionReport> {
    const started = this.#clock().getTime();
    const cutoffMs =
      this.#retainUsedMs === Number.POSITIVE_INFINITY
        ? Number.NEGATIVE_INFINITY
        : started - this.#retainUsedMs;
    const cutoff = new Date(Number.isFinite(cutoffMs) ? cutoffMs : 0).toISOString();
    const outPath = `${this.path}.compact`;
    // The reading, verifying and copying run on a thread of their own (compaction-worker.ts);
    // this thread keeps serving, and makes the switch.
    const thread = new CompactionThread({
      path: this.path,
      outPath,
      macKey: this.#keys.mac,
      cutoffMs,
      at: new Date(started).toISOString(),
      cutoff,
    });
    const stopping = () => {
      if (this.#stopCompaction.stopped) thread.stop().catch(() => {});
    };
    this.#onStopCompaction = stopping;
    let renamed = false;
    try {
      await thread.scanned();
      await this.#step("scanned");
      thread.go();
      await thread.copied();
      await this.#step("copied");

      // The switch: writes held, the old file's last lines copied, the new file put in place.
      this.#flushTurn();
      this.#held = [];
      const heldAt = performance.now();
      await this.#log!.drain();
      this.#assertWritable();
      await this.#step("held");
      const done = await thread.finish();
      const cut = done.copiedTo;
      if (
        cut.lines !== this.#durableLines ||
        !Buffer.from(cut.head).equals(Buffer.from(this.#durableHead)) ||
        done.leaves.length !== this.#leaves.length
      ) {
        throw new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `Compacting ${this.path}: the copy ended at line ${cut.lines}, not at the store's ` +
            `durable line ${this.#durableLines}; nothing was changed.`,
        );
      }
      // The head file names the old file's end exactly: the switched line is checked against it.
      await this.#headFile!.settle();
      await this.#step("synced");
      await rename(outPath, this.path);
      renamed = true;
      await fsyncFolder(dirname(this.path));
      await this.#step("renamed");
      await this.#adopt(done.written, { leaves: done.leaves, openings: new Map(done.openings) });
      await this.#headFile!.settle();
      const heldMs = performance.now() - heldAt;
      await this.#step("switched");
      // What this compaction left out no longer counts towards the next.
      this.#countDroppable(cutoffMs);
      this.#droppable = 0;
      if (done.dropped > 0) {
        this.#bytesPerRetired = Math.max(100, Math.round(done.droppedBytes / done.dropped));
      }
      this.#compaction = {
        generation: done.generation,
        from: pointOf(done.scanned),
        switched: pointOf(cut),
      };
      return {
        bytesBefore: cut.bytes,
        bytesAfter: done.written.bytes,
        linesBefore: cut.lines,
        linesAfter: done.written.lines,
        dropped: done.dropped,
        cutoff,
        generation: done.generation,
        heldMs,
      };
    } catch (error) {
      if (!renamed) {
        await thread.stop();
        await rm(outPath, { force: true });
      } else {
        // The new file is in place but this store could not take it up: it must be reopened.
        this.#failure ??= new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `The key store ${this.path} was compacted but could not go on with the new file; ` +
            "restart to reopen it.",
          { cause: error },
        );
      }
      throw error;
    } finally {
      this.#onStopCompaction = undefined;
      this.#release();
      await thread.ended();
    }
  }

  /** Takes up the compacted file just renamed into place: new handles, group commit, chain. */
  async #adopt(cut: ChainCut, copied: CopiedLines): Promise<void> {
    const handle = await open(this.path, "r+");
    const dsync = await open(this.path, constants.O_WRONLY | constants.O_DSYNC);
    const previous = [this.#handle, this.#dsync];
    this.#handle = handle;
    this.#dsync = dsync;
    this.#log = this.#groupCommit(handle, dsync, cut.bytes);
    this.#head = cut.head;
    // The new file's last record with participants is not known here: the next record has them.
    this.#carrier = undefined;
    this.#durableHead = cut.head;
    this.#durableLines = cut.lines;
    // What is read back from disk is read from the new file from now on.
    this.#leaves = copied.leaves;
    for (const [roundId, ref] of copied.openings) this.#openings.set(roundId, ref);
    this.#headFile!.follow(this.#chainState());
    // Reads begun on the old file (log entries, openings) finish on it: closed a little later.
    const old = previous.filter((h): h is FileHandle => h !== undefined);
    for (const handle of old) this.#retiredHandles.add(handle);
    setTimeout(() => {
      for (const handle of old) {
        this.#retiredHandles.delete(handle);
        handle.close().catch(() => {});
      }
    }, 5000).unref();
  }

  /** Appends the lines held during a switch, in order, on whichever file is current now. */
  #release(): void {
    const held = this.#held;
    this.#held = undefined;
    for (const line of held ?? []) {
      this.#appendLine(line.body, line.hooks).then(line.resolve, line.reject);
    }
  }

  /** Round secrets held in memory: those a live record has a part of (or none has had yet). */
  get roundSecretsHeld(): number {
    return this.#state === "open" ? this.#roundSecrets.size : 0;
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
    /** Round secrets let go, each after the id (its index in `ids`) that let it go. */
    const rounds: Array<[number, string]> = [];
    for (const id of this.#index.dueForRetirement(now)) {
      if (this.#consuming.has(id) || this.#stepping.has(id)) {
        // A write about it is in flight: next time.
        this.#index.scheduleRetirement(id, now + 1);
        continue;
      }
      const roundId = this.#index.get(id)!.roundId;
      const part = this.#index.payload(id);
      mustApply(this.#core.retire(id, now));
      ids.push(id);
      // The round's secret goes with the last live record that refers to it.
      if (typeof part === "number" && this.#roundSecrets.unref(roundId)) {
        this.#roundSecrets.delete(roundId);
        rounds.push([ids.length - 1, roundId]);
      }
    }
    if (ids.length === 0) return 0;
    if (this.#retainUsedMs !== Number.POSITIVE_INFINITY)
      countRetired(this.#retired, now, ids.length);
    const at = new Date(now).toISOString();
    const writes: Promise<void>[] = [];
    for (let i = 0; i < ids.length; i += MAX_LEASE_IDS) {
      // Each round secret on the line of the record that let it go: at most one per id.
      const letGo = rounds.filter(([after]) => after >= i && after < i + MAX_LEASE_IDS);
      const body = retireBody(
        at,
        ids.slice(i, i + MAX_LEASE_IDS),
        letGo.map(([, roundId]) => roundId),
      );
      writes.push(this.#append(body, {}));
    }
    await Promise.all(writes);
    return ids.length;
  }

  #retireInBackground(): void {
    if (this.#state !== "open" || this.#log?.failure !== undefined || this.#failure) return;
    if (this.#compactionDue()) {
      this.compact().then(
        (report) => this.#logger?.info?.({ path: this.path, ...report }, "key store compacted"),
        (error: unknown) => {
          if (error instanceof CompactionStopped) return;
          this.#compactFailedAt = this.#clock().getTime();
          this.#logger?.warn(
            { path: this.path, err: describeError(error) },
            "compacting the key store failed; it stays as it was and is tried again later",
          );
        },
      );
    }
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
      await this.#removeUnfinishedCompaction();
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
      this.#log = this.#groupCommit(this.#handle, this.#dsync, size);
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
    clearInterval(this.#retireTimer);
    // A compaction still copying stops (its new file is removed); one switching finishes first.
    this.#stopCompaction.stopped = true;
    this.#onStopCompaction?.();
    await this.#compacting?.catch(() => {});
    if (this.#state !== "open") {
      await this.#givenLock?.release();
      this.#wipe();
      this.#state = "closed";
      return;
    }
    this.#state = "closing";
    clearInterval(this.#retireTimer);
    try {
      this.#flushTurn();
      await this.#log!.drain();
      await this.#leased.releaseAll();
      await this.#headFile!.close();
      await this.#handle!.close();
      await this.#dsync?.close();
      for (const handle of this.#retiredHandles) await handle.close().catch(() => {});
      this.#retiredHandles.clear();
    } finally {
      await this.#lock!.release();
      this.#wipe();
      this.#state = "closed";
    }
  }

  async put(input: RecordInput): Promise<KeyRecord> {
    this.#assertWritable();
    checkRecordInput(input);
    // A part of a round secret counts as a live reference from here (so the round's secret
    // cannot retire while this record is being written), and is let go if the write fails.
    if (input.roundPart !== undefined && !this.#roundSecrets.ref(input.roundId)) {
      throw noRoundSecret(input.roundId);
    }
    const record = newRecord(this.#ids.next(), input, this.#clock());
    const part: RecordPart =
      input.roundPart ?? sealSecret(this.#keys.secret, this.#random, record, input.secret!);
    this.#interner.intern(record);
    // Visible only once durable: nobody can list or claim a record that may still be lost. The
    // records of one round put in one turn share a records line (a lone one: a record line).
    if (batchable(record) && recordsEntryBytes(record, part) <= MAX_RECORDS_ENTRY_BYTES) {
      await this.#records.add(recordsHeaderKey(record), { record, part });
    } else {
      await this.#append(recordBody(record, part), {
        onDurable: () => {
          mustApply(this.#core.add(record, payloadOf(part)));
        },
        onFailed: () => this.#unrefPart(record, part),
      });
    }
    return copyRecord(record);
  }

  /** A record's reference to its round's secret, let go (its line failed). */
  #unrefPart(record: KeyRecord, part: RecordPart): void {
    if (typeof part === "number" && this.#roundSecrets.has(record.roundId)) {
      this.#roundSecrets.unref(record.roundId);
    }
  }

  /**
   * Everything the store holds, secrets sealed as on disk (never decrypted), for copying it into
   * another store (`dkeygen store copy`). A record is `void` when a store that leased it stopped
   * before claiming it: it must never be handed out again. Call it with no write in flight (the
   * copy holds the store's lock and writes nothing).
   */
  async sealedContents(): Promise<SealedContents> {
    this.#assertReadable();
    const records = this.#index.list().map((record) => {
      const payload = this.#index.payload(record.id)!;
      return {
        record: copyRecord(record),
        ...(typeof payload === "number"
          ? { roundPart: payload }
          : { sealed: unpackSealed(payload) }),
        void: this.#index.isVoid(record.id),
      };
    });
    const roundSecrets: SealedContents["roundSecrets"] = [];
    for (const [roundId, { packed, live }] of this.#roundSecrets.entries()) {
      if (live > 0) roundSecrets.push({ roundId, sealed: unpackSealed(packed) });
    }
    const openings: SealedContents["openings"] = [];
    for (const [roundId, ref] of this.#openings) {
      if (ref !== "writing")
        openings.push({ roundId, sealed: await this.#openingAt(roundId, ref) });
    }
    return {
      records,
      roundSecrets,
      claimGroups: [...this.#index.claimGroups()].map((ids) => [...ids]),
      openings,
      leaves: await this.logEntries(0, this.#leaves.length),
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
    const part = await this.readSecretPart(id);
    if (part.kind === "own") return part.secret;
    part.roundSecret.fill(0);
    throw notOwnSecret(id);
  }

  async readSecretPart(id: string): Promise<SecretPart> {
    this.#assertReadable();
    checkId(id);
    const record = this.#index.get(id);
    const payload = this.#index.payload(id);
    if (!record || payload === undefined) throw notFound(id);
    if (typeof payload === "number") {
      // A live record keeps its round's secret in memory (round-secrets.ts).
      const packed = this.#roundSecrets.packed(record.roundId)!;
      try {
        const roundSecret = openRoundSecret(
          this.#keys.secret,
          record.roundId,
          unpackSealed(packed),
        );
        return { kind: "round", roundSecret, roundPart: payload };
      } catch (cause) {
        throw new DkeygenError(
          ErrorCodes.STORE_CORRUPT,
          `The secret of round ${record.roundId} in ${this.path} does not decrypt.`,
          { cause },
        );
      }
    }
    try {
      return { kind: "own", secret: openSecret(this.#keys.secret, record, unpackSealed(payload)) };
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `The secret part of record ${id} in ${this.path} does not decrypt.`,
        { cause },
      );
    }
  }

  async putRoundSecret(roundId: string, secret: Uint8Array): Promise<void> {
    this.#assertWritable();
    const copy = checkRoundSecret(roundId, secret);
    // Decided here, synchronously: of two racing calls for a round, the second is refused.
    if (this.#roundSecrets.has(roundId) || this.#roundSecretsWriting.has(roundId)) {
      copy.fill(0);
      throw roundSecretExists(roundId);
    }
    let sealed: SealedSecret;
    try {
      sealed = sealRoundSecret(this.#keys.secret, this.#random, roundId, copy);
    } finally {
      copy.fill(0);
    }
    this.#roundSecretsWriting.add(roundId);
    try {
      await this.#append(roundSecretBody(roundId, sealed), {
        onDurable: () => {
          this.#roundSecrets.add(roundId, packSealed(sealed));
        },
      });
    } finally {
      this.#roundSecretsWriting.delete(roundId);
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
    const done = this.#consumes.add(id, when);
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
    const index = this.#leafCount++;
    await this.#append(tlogBody(index, copy), {
      // Lines become durable in the order they were written, so entries do too.
      onDurable: (line) => {
        this.#leaves.push(line);
      },
      // The store refuses every write from now on; forget what never reached the disk.
      onFailed: () => {
        this.#leafCount = Math.min(this.#leafCount, index);
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
      onDurable: (line) => {
        this.#openings.set(roundId, line);
      },
      onFailed: () => {
        this.#openings.delete(roundId);
      },
    });
  }

  async readRoundOpening(roundId: string): Promise<Uint8Array | undefined> {
    this.#assertReadable();
    checkRoundId(roundId);
    const ref = this.#openings.get(roundId);
    if (ref === undefined || ref === "writing") return undefined;
    const sealed = await this.#openingAt(roundId, ref);
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
    return this.#leaves.length;
  }

  async logEntries(start: number, end: number): Promise<Uint8Array[]> {
    this.#assertReadable();
    checkLogRange(start, end, this.#leaves.length);
    const out: Uint8Array[] = [];
    // The refs and the file they point into, taken together (a compaction may switch files).
    const handle = this.#handle!;
    for (const ref of this.#leaves.slice(start, end)) {
      const body = await this.#bodyAt(handle, ref);
      if (body.t !== "tlog" || body.index !== start + out.length) throw this.#movedLine(ref);
      out.push(body.leaf);
    }
    return out;
  }

  /** The parsed body of a line kept on disk only (an opening, a log entry), read back. */
  async #bodyAt(handle: FileHandle, ref: LineRef): Promise<ParsedBody> {
    const line = await readLineRef(handle, this.path, ref);
    const parts = lineParts(line);
    if (!parts) throw this.#movedLine(ref);
    return parseBody(JSON.parse(parts.body.toString("utf8")));
  }

  async #openingAt(roundId: string, ref: LineRef): Promise<SealedSecret> {
    const body = await this.#bodyAt(this.#handle!, ref);
    if (body.t !== "opening" || body.roundId !== roundId) throw this.#movedLine(ref);
    return body.sealed;
  }

  #movedLine(ref: LineRef): DkeygenError {
    return new DkeygenError(
      ErrorCodes.STORE_CORRUPT,
      `The key store ${this.path} does not hold the line expected at byte ${ref.offset}.`,
    );
  }

  async countUnclaimed(purpose: string): Promise<number> {
    this.#assertReadable();
    checkPurpose(purpose);
    return this.#core.countClaimable(purpose);
  }

  /** Writes a line after any "reserved" claims and consumptions still queued this turn. */
  #append(body: LogBody, hooks: LineHooks): Promise<void> {
    this.#flushTurn();
    return this.#appendLine(body, hooks);
  }

  /** Writes this turn's queued claims line (leases.ts), then its consumptions (turn-consumes.ts). */
  #flushTurn(): void {
    this.#leased.flush();
    this.#consumes.flush();
    this.#records.flush();
  }

  /** Encodes a line onto the chain and hands it to group commit. */
  #appendLine(body: LogBody, hooks: LineHooks): Promise<void> {
    if (this.#held) {
      const held = this.#held;
      return new Promise<void>((resolve, reject) => held.push({ body, hooks, resolve, reject }));
    }
    let encoded: { line: Buffer; mac: Buffer };
    // A record of the same round and participants as the last record line that has them leaves
    // them out (log-format.ts Carrier), decided here, where the line's place in the file is.
    let carrier = this.#carrier;
    if ((body.t === "record" || body.t === "records") && body.participants !== undefined) {
      if (carriedBy(carrier, body.roundId, body.participants)) {
        const { participants: _, ...rest } = body;
        body = rest as LogBody;
      } else {
        carrier = { roundId: body.roundId, participants: body.participants };
      }
    }
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
    this.#carrier = carrier;
    return this.#log!.append(encoded.line, {
      onDurable: (offset) => {
        this.#durableHead = encoded.mac;
        this.#durableLines++;
        this.#headFile?.follow(this.#chainState());
        hooks.onDurable?.(lineRef(offset, encoded.line.subarray(0, encoded.line.length - 1)));
      },
      ...(hooks.onFailed ? { onFailed: hooks.onFailed } : {}),
    });
  }

  #groupCommit(handle: FileHandle, dsync: FileHandle, size: number): GroupCommitLog {
    const file = logFileOf(handle, dsync);
    return new GroupCommitLog(this.#wrapLogFile ? this.#wrapLogFile(file) : file, size, {
      name: this.path,
      onFailure: (error, cause) => {
        const log = this.#logger?.error ?? this.#logger?.warn;
        log?.call(this.#logger, { path: this.path, err: cause }, error.message);
      },
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
    const switched = this.#compaction?.switched;
    if (
      !verdict.ok &&
      switched &&
      reading.kind === "found" &&
      reading.state.lines === switched.lines &&
      Buffer.from(reading.state.head).toString("hex") === switched.head
    ) {
      // A crash between a compaction's switch and its head file update: the head names the old
      // file's end, which the compacted file's switched line names too.
      return { ok: true };
    }
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
    this.#openings = state.openings;
    this.#roundSecrets = state.roundSecrets;
    this.#leaves = state.leaves;
    this.#leafCount = state.leaves.length;
    this.#head = state.head;
    this.#carrier = state.carrier;
    this.#durableHead = state.head;
    this.#durableLines = state.lines;
    this.#retired = this.#retainUsedMs === Number.POSITIVE_INFINITY ? [] : state.retired;
    this.#compaction = state.compaction;
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

  /** A compaction's new file left by a crash before its switch: the key_store is whole. */
  async #removeUnfinishedCompaction(): Promise<void> {
    const unfinished = `${this.path}.compact`;
    if (!(await fileExists(unfinished))) return;
    await rm(unfinished, { force: true });
    this.#logger?.warn(
      { path: unfinished },
      "removed the new file of a compaction that stopped before its switch (the key store is " +
        "as it was before it)",
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
    const failure = this.#failure ?? this.#log!.failure ?? this.#headFile!.failure;
    if (failure) throw failure;
  }

  #wipe(): void {
    this.#keys.mac.fill(0);
    this.#keys.secret.fill(0);
    this.#headKey.fill(0);
    // The records and their sealed secrets go with the core.
    this.#core = new RecordCore();
    this.#openings.clear();
    this.#roundSecrets = new RoundSecrets();
  }
}

/** What the record index keeps beside a record: its sealed secret packed, or its round part. */
function payloadOf(part: RecordPart): string | number {
  return typeof part === "number" ? part : packSealed(part);
}
