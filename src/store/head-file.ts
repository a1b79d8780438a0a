/**
 * The key store's head file (`key_store.head` by default): the line count and chain MAC of the
 * `key_store` file's durable end, kept where cutting lines off the file, or putting an older copy
 * in its place, does not roll it back too. The MAC chain (log-format.ts) catches lines edited,
 * removed, inserted or reordered inside the file; this catches the file made shorter or replaced
 * by another history. docs/PROTOCOL.md §10 "Head file" copies this comment.
 *
 * Key. K_head = HKDF-SHA-256(storeKey, salt = "", info = "dkeygen/v1/store/head-mac", L = 32)
 * (RFC 5869), so the file is bound to its store key.
 *
 * Layout. Exactly 512 bytes: two slots of 256 bytes, at offsets 0 and 256. A slot is ASCII:
 *   dkeygen-store-head 1 <counter> <lines> <head> <mac>
 * single spaces between fields, padded with spaces to 255 bytes, then "\n". <counter> and <lines>
 * are decimal safe integers without leading zeros; <head> (mac_lines of the chain: 32 zero bytes
 * for 0 lines) and <mac> are 64 lowercase hex digits, with
 *   mac = HMAC-SHA-256(K_head, LP("dkeygen/v1/store/head", u64(counter), u64(lines), head))
 * (LP as in src/crypto/canonical.ts, u64 big-endian). The slot with counter c is at offset
 * (c mod 2) · 256.
 *
 * Reading. A slot is valid if it has exactly that shape and its MAC verifies. The head is the valid
 * slot with the greatest counter; a file with no valid slot (or not 512 bytes) is unreadable.
 *
 * Writing. A new file holds counter 0 in slot 0 and counter 1 in slot 1, both naming the same
 * state. Each update takes counter + 1, so it goes to the slot *not* holding the current head, in
 * one positional write on an O_DSYNC descriptor (durable when it returns); one write at a time. A
 * write torn by a crash spoils only its own slot; the other still holds the previous head.
 *
 * Order. A head only ever names lines already durable in the key_store (the store calls `follow`
 * after group commit's fdatasync), so at open the file may be longer than its head (a crash
 * between the two writes), never shorter, and its chain MAC at the head's line must be the head's.
 * Updates are coalesced and never awaited by a write of the store: while one is being written, the
 * newest state waits and is written next. The window this leaves: lines acknowledged after the
 * durable head's line can be cut off without being noticed — none after a clean close (which writes
 * the final head), after a crash those acknowledged while the last head write was under way.
 */
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, open, readFile } from "node:fs/promises";
import { lengthPrefixed } from "../crypto/canonical.js";
import { createFileExclusive, writeFileAtomic } from "../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../errors.js";

export const HEAD_MAC_INFO = "dkeygen/v1/store/head-mac";
export const HEAD_LABEL = "dkeygen/v1/store/head";
export const HEAD_SLOT_BYTES = 256;
export const HEAD_FILE_BYTES = 2 * HEAD_SLOT_BYTES;
const MAGIC = "dkeygen-store-head 1";
const SLOT =
  /^dkeygen-store-head 1 (0|[1-9][0-9]{0,15}) (0|[1-9][0-9]{0,15}) ([0-9a-f]{64}) ([0-9a-f]{64}) *\n$/;

/** Where a chain stands: its line count and the MAC of its last line (mac_0 for none). */
export interface ChainState {
  lines: number;
  head: Uint8Array;
}

export type HeadReading =
  | { kind: "missing" }
  | { kind: "unreadable" }
  | { kind: "found"; counter: number; state: ChainState };

/** Why a key_store does not match its head file. */
export type RollbackReason = "shorter" | "diverged" | "missing" | "unreadable";

export type HeadVerdict =
  | { ok: true }
  | { ok: false; reason: RollbackReason; expected: ChainState | undefined; message: string };

export function deriveHeadKey(storeKey: Uint8Array): Buffer {
  return Buffer.from(hkdfSync("sha256", storeKey, new Uint8Array(0), HEAD_MAC_INFO, 32));
}

function u64(value: number): Uint8Array {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}

function slotMac(key: Uint8Array, counter: number, state: ChainState): Buffer {
  return createHmac("sha256", key)
    .update(lengthPrefixed(HEAD_LABEL, u64(counter), u64(state.lines), state.head))
    .digest();
}

export function encodeSlot(key: Uint8Array, counter: number, state: ChainState): Buffer {
  const mac = slotMac(key, counter, state);
  const text = `${MAGIC} ${counter} ${state.lines} ${Buffer.from(state.head).toString("hex")} ${mac.toString("hex")}`;
  return Buffer.from(`${text.padEnd(HEAD_SLOT_BYTES - 1, " ")}\n`, "latin1");
}

export function decodeSlot(
  key: Uint8Array,
  bytes: Uint8Array,
): { counter: number; state: ChainState } | undefined {
  if (bytes.length !== HEAD_SLOT_BYTES) return undefined;
  const match = SLOT.exec(Buffer.from(bytes).toString("latin1"));
  if (!match) return undefined;
  const counter = Number(match[1]);
  const lines = Number(match[2]);
  if (!Number.isSafeInteger(counter) || !Number.isSafeInteger(lines)) return undefined;
  const state = { lines, head: Buffer.from(match[3]!, "hex") };
  const mac = Buffer.from(match[4]!, "hex");
  if (!timingSafeEqual(slotMac(key, counter, state), mac)) return undefined;
  return { counter, state };
}

export async function readHeadFile(path: string, key: Uint8Array): Promise<HeadReading> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `Cannot read the key store's head file ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (bytes.length !== HEAD_FILE_BYTES) return { kind: "unreadable" };
  let best: { counter: number; state: ChainState } | undefined;
  for (let slot = 0; slot < 2; slot++) {
    const found = decodeSlot(
      key,
      bytes.subarray(slot * HEAD_SLOT_BYTES, (slot + 1) * HEAD_SLOT_BYTES),
    );
    // A valid slot must also sit where its counter puts it.
    if (found && found.counter % 2 === slot && (!best || found.counter > best.counter)) {
      best = found;
    }
  }
  return best ? { kind: "found", ...best } : { kind: "unreadable" };
}

function sameState(a: ChainState, b: ChainState): boolean {
  return a.lines === b.lines && Buffer.from(a.head).equals(b.head);
}

const prefix = (head: Uint8Array) => `${Buffer.from(head).toString("hex").slice(0, 16)}…`;
const describe = (state: ChainState) => `${state.lines} lines, chain head ${prefix(state.head)}`;

/**
 * Does a key_store that ends at `file` (and whose chain MAC at the head's line is `atHeadLine`,
 * undefined when it is shorter) match what its head file says?
 */
export function judgeHead(
  reading: HeadReading,
  file: ChainState,
  atHeadLine: Uint8Array | undefined,
  names: { store: string; headFile: string },
): HeadVerdict {
  const what =
    `Restored or truncated, a store can hand out again OTPs that were already used. It was not ` +
    `opened and nothing was changed. Put the newest ${names.store} back; or, to accept the loss ` +
    `and go on from this file, open it once with --accept-store-rollback (recorded in the store).`;
  if (reading.kind === "missing") {
    if (file.lines === 0) return { ok: true };
    return {
      ok: false,
      reason: "missing",
      expected: undefined,
      message:
        `The key store ${names.store} (${describe(file)}) has no head file ${names.headFile}, ` +
        `which records how far the store had been written. If this store was last written by a ` +
        `dkeygen that kept no head file, open it once with --accept-store-rollback to start one; ` +
        `otherwise the head file was removed, maybe to hide a rollback. ${what}`,
    };
  }
  if (reading.kind === "unreadable") {
    return {
      ok: false,
      reason: "unreadable",
      expected: undefined,
      message:
        `The head file ${names.headFile} of the key store ${names.store} (${describe(file)}) ` +
        `does not verify under the store key (damaged, replaced, or made with another key). ${what}`,
    };
  }
  const expected = reading.state;
  if (file.lines < expected.lines) {
    return {
      ok: false,
      reason: "shorter",
      expected,
      message:
        `The key store ${names.store} has ${describe(file)}, but its head file ` +
        `${names.headFile} says it had ${describe(expected)}: lines were cut off its end or an ` +
        `older copy was put in its place. ${what}`,
    };
  }
  if (!atHeadLine || !timingSafeEqual(Buffer.from(atHeadLine), Buffer.from(expected.head))) {
    return {
      ok: false,
      reason: "diverged",
      expected,
      message:
        `Line ${expected.lines} of the key store ${names.store} (${describe(file)}) has chain ` +
        `head ${prefix(atHeadLine ?? new Uint8Array(32))} where its head file ${names.headFile} ` +
        `says ${prefix(expected.head)} (${describe(expected)}): the file is another copy or ` +
        `history of the store. ${what}`,
    };
  }
  return { ok: true };
}

export interface HeadFileOptions {
  /** Told once when a head write fails. */
  onFailure?(error: DkeygenError, cause: unknown): void;
  /** For fault-injection tests only: wraps the positional durable write. */
  wrapWrite?: (
    write: (bytes: Uint8Array, position: number) => Promise<void>,
  ) => (bytes: Uint8Array, position: number) => Promise<void>;
}

/** The open head file of a store being written; see the module header. */
/**
 * Under load the head is written at most once per this many milliseconds: each write is an
 * O_DSYNC write of its own beside the key_store's group commits, and the claim path makes one
 * group commit per event-loop turn. It widens what a crash can leave unanchored by this much.
 */
export const HEAD_WRITE_INTERVAL_MS = 20;

export class HeadFile {
  readonly path: string;
  readonly #key: Uint8Array;
  readonly #handle: FileHandle;
  readonly #write: (bytes: Uint8Array, position: number) => Promise<void>;
  readonly #options: HeadFileOptions;
  #counter: number;
  #written: ChainState;
  #wanted: ChainState | undefined;
  #running: Promise<void> | undefined;
  /** When the last head write ended (epoch ms). */
  #lastWrite = 0;
  /** Set while someone waits for the writes (settle): no pauses. */
  #hurry = false;
  /** Ends the current pause early. */
  #wake: (() => void) | undefined;
  #failure: DkeygenError | undefined;

  private constructor(
    path: string,
    key: Uint8Array,
    handle: FileHandle,
    counter: number,
    written: ChainState,
    options: HeadFileOptions,
  ) {
    this.path = path;
    this.#key = key;
    this.#handle = handle;
    this.#counter = counter;
    this.#written = written;
    this.#options = options;
    const write = async (bytes: Uint8Array, position: number) => {
      const { bytesWritten } = await handle.write(bytes, 0, bytes.length, position);
      if (bytesWritten !== bytes.length) throw new Error("short write");
    };
    this.#write = options.wrapWrite ? options.wrapWrite(write) : write;
  }

  /**
   * Opens the head file for writing: as it was read when it was found, or a new one naming `state`
   * (created when missing; put in place of an unreadable one, which the caller accepted).
   */
  static async open(
    path: string,
    key: Uint8Array,
    reading: HeadReading,
    state: ChainState,
    options: HeadFileOptions = {},
  ): Promise<HeadFile> {
    let counter = 1;
    let written = state;
    if (reading.kind === "found") {
      counter = reading.counter;
      written = reading.state;
    } else {
      const bytes = Buffer.concat([encodeSlot(key, 0, state), encodeSlot(key, 1, state)]);
      let made: boolean;
      try {
        if (reading.kind === "unreadable") await writeFileAtomic(path, bytes);
        made = reading.kind === "unreadable" || (await createFileExclusive(path, bytes));
      } catch (cause) {
        throw new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `Cannot write the key store's head file ${path}: ${(cause as Error).message}`,
          { cause },
        );
      }
      if (!made) {
        throw new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `The key store's head file ${path} appeared while the store was being opened.`,
        );
      }
    }
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_WRONLY | constants.O_DSYNC);
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        `Cannot open the key store's head file ${path}: ${(cause as Error).message}`,
        { cause },
      );
    }
    return new HeadFile(path, key, handle, counter, written, options);
  }

  /** Set once a head write failed; the store refuses writes after that. */
  get failure(): DkeygenError | undefined {
    return this.#failure;
  }

  /** The state the head file names durably. */
  get written(): ChainState {
    return this.#written;
  }

  /** Makes the head name `state` (durable in the key_store already), soon; never waits. */
  follow(state: ChainState): void {
    this.#wanted = state;
    this.#kick();
  }

  /** Starts the writer unless it runs (it takes the newest wanted state when it gets there). */
  #kick(): void {
    if (this.#running || this.#failure || !this.#wanted) return;
    // Started on a microtask, so the state that all of a batch's lines reach is one write.
    this.#running = Promise.resolve()
      .then(() => this.#run())
      .finally(() => {
        this.#running = undefined;
        this.#kick();
      });
  }

  /** Resolves once every state followed so far is written; rejects with the failure, if any. */
  async settle(): Promise<void> {
    // No pause between writes while someone waits for them (a close, a test).
    this.#hurry = true;
    this.#wake?.();
    try {
      while (this.#running) await this.#running;
    } finally {
      this.#hurry = false;
    }
    if (this.#failure) throw this.#failure;
  }

  /** Writes what is still wanted, then closes; a failure was logged already and is not thrown. */
  async close(): Promise<void> {
    await this.settle().catch(() => {});
    await this.#handle.close();
  }

  /** Never rejects: a failure is recorded (and told) instead. */
  async #run(): Promise<void> {
    while (this.#wanted && !this.#failure) {
      // Under load, at most one head write per HEAD_WRITE_INTERVAL_MS: the newest state wanted
      // when the pause ends is written. A quiet store writes at once.
      const wait = this.#lastWrite + HEAD_WRITE_INTERVAL_MS - Date.now();
      if (wait > 0 && !this.#hurry) await this.#pause(wait);
      const state = this.#wanted;
      this.#wanted = undefined;
      if (!state || sameState(state, this.#written)) continue;
      const counter = this.#counter + 1;
      const slot = encodeSlot(this.#key, counter, state);
      try {
        await this.#write(slot, (counter % 2) * HEAD_SLOT_BYTES);
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException | undefined)?.code;
        this.#failure = new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `The key store could not write its head file ${this.path}` +
            `${code ? ` (${code})` : ""}. What is stored is safe, but a rollback of what follows ` +
            "could go unnoticed, so the store refuses further writes until it is reopened.",
          { cause },
        );
        this.#options.onFailure?.(this.#failure, cause);
        return;
      }
      this.#counter = counter;
      this.#written = state;
      this.#lastWrite = Date.now();
    }
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
    });
  }
}
