/**
 * Compaction of the `key_store` file (docs/PROTOCOL.md §10.4): the old file's lines copied into a
 * new file under a fresh MAC chain, leaving out every line about a record retired before the
 * retention cutoff. FileKeyStore (file.ts) runs it while serving and makes the switch; this module
 * reads and writes lines and knows nothing of the store's memory.
 *
 * - `scanRetirements` reads the old file once and collects the ids retired before the cutoff:
 *   they are what the copy leaves out. Nothing can name them after their retire line.
 * - `copyLines` copies the old file's complete lines from a chain position onward, verifying the
 *   old chain as it goes, through a `LineFilter`, into a `CompactedFile`. It is called again for
 *   the lines written meanwhile, and a last time with writes held, up to the old file's end.
 * - The new file starts with a compacted line (the old chain where the retirements were read up
 *   to, what was dropped, the cutoff, the generation) and its copy ends with a switched line
 *   naming the old file's final position. Neither is ever mistaken for a rollback: the head
 *   file names the old final position until it follows the new file, and the switched line is
 *   what the open checks it against.
 */
import { constants } from "node:fs";
import { type FileHandle, open, rm } from "node:fs/promises";
import { DkeygenError, ErrorCodes } from "../errors.js";
import {
  BodyError,
  CHAIN_START,
  type ChainPoint,
  checkLine,
  encodeLine,
  type LogBody,
  parseBody,
  readSegments,
} from "./log-format.js";

/** A position in a file's chain: bytes and lines up to it, and the MAC of its last line. */
export interface ChainCut {
  bytes: number;
  lines: number;
  head: Uint8Array;
}

export const FILE_START: ChainCut = { bytes: 0, lines: 0, head: CHAIN_START };

export function pointOf(cut: ChainCut): ChainPoint {
  return { lines: cut.lines, head: Buffer.from(cut.head).toString("hex") };
}

function corrupt(path: string, line: number, reason: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.STORE_CORRUPT,
    `Compacting ${path}: line ${line} does not verify (${reason}); the compaction stopped and ` +
      "the key store was not changed.",
  );
}

/**
 * Reads `handle`'s complete lines from `from` onward, verifying the chain; calls `take` with
 * each line's JSON body (as parsed from the file, fields in the file's order), its size and the
 * parsed form. Returns the position after the last complete line.
 */
async function eachLine(
  handle: FileHandle,
  path: string,
  macKey: Uint8Array,
  from: ChainCut,
  take: (value: Record<string, unknown>, bytes: number) => void | Promise<void>,
): Promise<ChainCut> {
  let cut = from;
  for await (const segment of readSegments(handle, from.bytes)) {
    // A line still being written (no newline yet) is read next time.
    if (!segment.complete) break;
    const line = cut.lines + 1;
    if (!segment.bytes) throw corrupt(path, line, "too long");
    const check = checkLine(macKey, cut.head, segment.bytes);
    if (!check.ok) throw corrupt(path, line, check.reason);
    try {
      parseBody(check.value);
    } catch (error) {
      if (error instanceof BodyError) throw corrupt(path, line, error.message);
      throw error;
    }
    await take(check.value as Record<string, unknown>, segment.end - segment.start);
    cut = { bytes: segment.end, lines: line, head: check.mac };
  }
  return cut;
}

export interface Retirements {
  /** Ids retired before the cutoff: the copy leaves every line about them out. */
  drop: Set<string>;
  /** Where the scan stopped (the file's end then). */
  cut: ChainCut;
  /** The old file's compaction generation (0 if it was never compacted). */
  generation: number;
}

/** Reads the old file once, collecting the ids retired before `cutoffMs`. */
export async function scanRetirements(
  handle: FileHandle,
  path: string,
  macKey: Uint8Array,
  cutoffMs: number,
): Promise<Retirements> {
  const drop = new Set<string>();
  let generation = 0;
  const cut = await eachLine(handle, path, macKey, FILE_START, (value) => {
    if (value.t === "retire" && Date.parse(value.at as string) < cutoffMs) {
      for (const id of value.ids as string[]) drop.add(id);
    } else if (value.t === "compacted") {
      generation = value.generation as number;
    }
  });
  return { drop, cut, generation };
}

/**
 * What the copy keeps of each old line: everything except lines (or the entries of claims,
 * lease, release and retire lines) about dropped records, an unhold line whose round kept no
 * record, the old file's own compacted and switched lines, and rollback lines (they name the old
 * chain's positions; the compacted line commits to that chain instead).
 */
export class LineFilter {
  readonly #drop: Set<string>;
  /** Rounds with a held record copied and not yet released. */
  readonly #heldRounds = new Set<string>();
  /** Bytes of old lines left out whole. */
  droppedBytes = 0;

  constructor(drop: Set<string>) {
    this.#drop = drop;
  }

  /** The body to write for an old line's body, or undefined to leave the line out. */
  keep(value: Record<string, unknown>, bytes: number): LogBody | undefined {
    const kept = this.#keep(value);
    if (kept === undefined) this.droppedBytes += bytes;
    return kept;
  }

  #keep(value: Record<string, unknown>): LogBody | undefined {
    const drop = this.#drop;
    switch (value.t) {
      case "record":
        if (drop.has(value.id as string)) return undefined;
        if (value.held === true) this.#heldRounds.add(value.roundId as string);
        return value as unknown as LogBody;
      case "claim":
      case "consume":
      case "step":
        return drop.has(value.id as string) ? undefined : (value as unknown as LogBody);
      case "claims": {
        const claims = (value.claims as { id: string }[]).filter((entry) => !drop.has(entry.id));
        return claims.length === 0 ? undefined : ({ ...value, claims } as unknown as LogBody);
      }
      case "lease":
      case "release":
      case "retire": {
        const ids = (value.ids as string[]).filter((id) => !drop.has(id));
        return ids.length === 0 ? undefined : ({ ...value, ids } as unknown as LogBody);
      }
      case "unhold":
        if (!this.#heldRounds.delete(value.roundId as string)) return undefined;
        return value as unknown as LogBody;
      case "compacted":
      case "switched":
      case "rollback":
        return undefined;
      default:
        // tlog and opening lines: the evidence, kept forever.
        return value as unknown as LogBody;
    }
  }
}

const FLUSH_BYTES = 1 << 20;

/** The new file being written: lines on a fresh chain, buffered and written in 1 MiB pieces. */
export class CompactedFile {
  readonly path: string;
  readonly #handle: FileHandle;
  readonly #macKey: Uint8Array;
  #buffered: Buffer[] = [];
  #bufferedBytes = 0;
  #written = 0;
  #cut: ChainCut = FILE_START;

  private constructor(path: string, handle: FileHandle, macKey: Uint8Array) {
    this.path = path;
    this.#handle = handle;
    this.#macKey = macKey;
  }

  /** Creates `path` (0600; one left by an earlier attempt is replaced). */
  static async create(path: string, macKey: Uint8Array): Promise<CompactedFile> {
    await rm(path, { force: true });
    const handle = await open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      0o600,
    );
    return new CompactedFile(path, handle, macKey);
  }

  /** The new chain's position after every line added so far. */
  get cut(): ChainCut {
    return this.#cut;
  }

  async add(body: LogBody): Promise<void> {
    const { line, mac } = encodeLine(this.#macKey, this.#cut.head, body);
    this.#buffered.push(line);
    this.#bufferedBytes += line.length;
    this.#cut = { bytes: this.#cut.bytes + line.length, lines: this.#cut.lines + 1, head: mac };
    if (this.#bufferedBytes >= FLUSH_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#bufferedBytes === 0) return;
    const bytes = Buffer.concat(this.#buffered, this.#bufferedBytes);
    this.#buffered = [];
    this.#bufferedBytes = 0;
    let offset = 0;
    while (offset < bytes.length) {
      const { bytesWritten } = await this.#handle.write(
        bytes,
        offset,
        bytes.length - offset,
        this.#written + offset,
      );
      offset += bytesWritten;
    }
    this.#written += bytes.length;
  }

  /** Writes what is buffered and fsyncs. */
  async sync(): Promise<void> {
    await this.flush();
    await this.#handle.sync();
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }

  /** Closes and removes the file (a compaction that did not finish). */
  async discard(): Promise<void> {
    await this.#handle.close().catch(() => {});
    await rm(this.path, { force: true });
  }
}

/**
 * Copies the old file's complete lines from `from` onward through `filter` into `out`; returns
 * the old file's position after the last line copied.
 */
export function copyLines(
  handle: FileHandle,
  path: string,
  macKey: Uint8Array,
  from: ChainCut,
  filter: LineFilter,
  out: CompactedFile,
): Promise<ChainCut> {
  return eachLine(handle, path, macKey, from, async (value, bytes) => {
    const kept = filter.keep(value, bytes);
    if (kept !== undefined) await out.add(kept);
  });
}
