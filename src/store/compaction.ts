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
import { setImmediate as nextTurn } from "node:timers/promises";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { type LineRef, lineRef } from "./compact-memory.js";
import { IdSet } from "./id-set.js";
import {
  type Carrier,
  CHAIN_START,
  type ChainPoint,
  type ClaimsLineEntry,
  carriedBy,
  claimsBody,
  encodeBodyBytes,
  expandClaims,
  type LogBody,
  lineParts,
  readSegments,
  retireBody,
  verifyLineBytes,
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

/** Lines handled between two turns of the event loop, so serving goes on during a compaction. */
const LINES_PER_TURN = 256;

/** Set by the store when it closes: a compaction still copying stops at its next turn. */
export interface StopSignal {
  stopped: boolean;
}

/** Thrown when a compaction stopped because its store is closing (nothing was changed). */
export class CompactionStopped extends Error {}

async function turn(signal: StopSignal | undefined): Promise<void> {
  await nextTurn();
  if (signal?.stopped) throw new CompactionStopped("the key store is closing");
}

/**
 * Reads `handle`'s complete lines from `from` onward, verifying the chain (the lines are the
 * store's own, replayed at its open or written since: their schema is not checked again, their
 * MACs are, so nothing altered meanwhile is carried into the new chain); calls `take` with each
 * line's body bytes and its size on disk. Returns the position after the last complete line.
 */
async function eachLine(
  handle: FileHandle,
  path: string,
  macKey: Uint8Array,
  from: ChainCut,
  take: (body: Buffer, bytes: number) => void | Promise<void>,
  signal?: StopSignal,
): Promise<ChainCut> {
  let cut = from;
  for await (const segment of readSegments(handle, from.bytes)) {
    // A line still being written (no newline yet) is read next time.
    if (!segment.complete) break;
    const line = cut.lines + 1;
    if (!segment.bytes) throw corrupt(path, line, "too long");
    const check = verifyLineBytes(macKey, cut.head, segment.bytes);
    if (!check.ok) throw corrupt(path, line, check.reason);
    await take(check.body, segment.end - segment.start);
    cut = { bytes: segment.end, lines: line, head: check.mac };
    if (line % LINES_PER_TURN === 0) await turn(signal);
  }
  return cut;
}

/** A body's kind from its first bytes (`{"t":"<kind>"`, as a writer puts it), or undefined. */
function kindOf(body: Buffer): string | undefined {
  if (body.length > 7 && body.toString("latin1", 0, 6) === '{"t":"') {
    const end = body.indexOf(0x22, 6);
    if (end > 6 && end < 32) return body.toString("latin1", 6, end);
  }
  return undefined;
}

/** The id of a record, claim, consume or step body written in the documented field order. */
function leadingId(body: Buffer, kind: string): string | undefined {
  const prefix = `{"t":"${kind}","v":1,"id":"`;
  const end = prefix.length + 26;
  if (
    body.length > end &&
    body[end] === 0x22 &&
    body.toString("latin1", 0, prefix.length) === prefix
  ) {
    return body.toString("latin1", prefix.length, end);
  }
  return undefined;
}

/** A string field's text when it has no escapes (else undefined: parse the body). */
function fieldText(body: Buffer, field: string): string | undefined {
  const key = Buffer.from(`"${field}":"`, "latin1");
  const start = body.indexOf(key);
  if (start < 0) return undefined;
  const from = start + key.length;
  const end = body.indexOf(0x22, from);
  if (end < 0) return undefined;
  const text = body.toString("utf8", from, end);
  return text.includes("\\") ? undefined : text;
}

function parsed(body: Buffer): Record<string, unknown> {
  return JSON.parse(body.toString("utf8")) as Record<string, unknown>;
}

export interface Retirements {
  /** Ids retired before the cutoff: the copy leaves every line about them out. Packed (id-set.ts):
   * under load they are every OTP of the last minutes. */
  drop: IdSet;
  /** Rounds whose secret retired before the cutoff (with its last record), each with the line
   * number of the last retire line before the cutoff naming it: the copy leaves out their
   * roundsecret lines before that line (a round's secret put again after it let go stays). */
  dropRounds: Map<string, number>;
  /** Where the scan stopped (the file's end then). */
  cut: ChainCut;
  /** The old file's compaction generation (0 if it was never compacted). */
  generation: number;
}

/**
 * Reads the old file once, collecting the ids retired before `cutoffMs`. It does not verify the
 * MACs: the copy that follows verifies every line this read (and more) before anything is
 * written from it, and fails the compaction on the first that does not verify, so a retire line
 * altered here can drop nothing. The chain position it returns is each line's own MAC, which
 * the copy verifies in turn.
 */
export async function scanRetirements(
  handle: FileHandle,
  path: string,
  cutoffMs: number,
  signal?: StopSignal,
): Promise<Retirements> {
  const drop = new IdSet();
  const dropRounds = new Map<string, number>();
  let generation = 0;
  let cut = FILE_START;
  for await (const segment of readSegments(handle)) {
    if (!segment.complete) break;
    const line = cut.lines + 1;
    const framed = segment.bytes ? lineParts(segment.bytes) : undefined;
    if (!framed) throw corrupt(path, line, "it is not a key_store line");
    const kind = kindOf(framed.body);
    if (kind === undefined || kind === "retire" || kind === "compacted") {
      const value = parsed(framed.body);
      if (value.t === "retire" && Date.parse(value.at as string) < cutoffMs) {
        for (const id of value.ids as string[]) drop.add(id);
        for (const roundId of (value.rounds as string[] | undefined) ?? [])
          dropRounds.set(roundId, line);
      } else if (value.t === "compacted") {
        generation = value.generation as number;
      }
    }
    cut = { bytes: segment.end, lines: line, head: framed.mac };
    if (line % (4 * LINES_PER_TURN) === 0) await turn(signal);
  }
  return { drop, dropRounds, cut, generation };
}

/**
 * What the copy keeps of each old line: everything except lines (or the entries of claims,
 * consumes, lease, release and retire lines) about dropped records, the roundsecret lines of
 * rounds whose secret retired before the cutoff, an unhold line whose round kept no record, the old file's own compacted and switched lines, and rollback lines (they name the old
 * chain's positions; the compacted line commits to that chain instead). A kept record line that
 * leaves its participants out (log-format.ts Carrier) gets them back when the record line that
 * had them for it was left out, or another record line with participants was kept since.
 */
export class LineFilter {
  readonly #drop: IdSet;
  readonly #dropRounds: Map<string, number>;
  /** The old line being decided (1-based: keep sees every old line once, in order). */
  #line = 0;
  /** The last record line with participants in the old file, and in the new one. */
  #oldCarrier: Carrier | undefined;
  #newCarrier: Carrier | undefined;
  /** Rounds with a held record copied and not yet released. */
  readonly #heldRounds = new Set<string>();
  /** Bytes of old lines left out whole. */
  droppedBytes = 0;

  constructor(drop: IdSet, dropRounds: Map<string, number> = new Map()) {
    this.#drop = drop;
    this.#dropRounds = dropRounds;
  }

  /** The body bytes to write for an old line's body, or undefined to leave the line out. */
  keep(body: Buffer, bytes: number): Buffer | undefined {
    this.#line++;
    const kept = this.#fast(body) ?? this.#slow(body);
    if (kept === DROP) {
      this.droppedBytes += bytes;
      return undefined;
    }
    return kept;
  }

  /** Decided from the first bytes (most lines: records, claims, consumptions, the evidence). */
  #fast(body: Buffer): Buffer | typeof DROP | undefined {
    const kind = kindOf(body);
    switch (kind) {
      case "tlog":
      case "opening":
        return body;
      case "compacted":
      case "switched":
      case "rollback":
        return DROP;
      case "record":
        return this.#fastRecord(body);
      case "roundsecret": {
        const roundId = fieldText(body, "roundId");
        return roundId === undefined ? undefined : this.#roundDropped(roundId) ? DROP : body;
      }
      case "claim":
      case "consume":
      case "step": {
        const id = leadingId(body, kind);
        return id === undefined ? undefined : this.#drop.has(id) ? DROP : body;
      }
      default:
        return undefined;
    }
  }

  /**
   * Most record lines leave their participants out, of the round the new file's last record with
   * participants is of: decided from the bytes. Those with participants (about one a round) and
   * any other case are parsed.
   */
  #fastRecord(body: Buffer): Buffer | typeof DROP | undefined {
    const id = leadingId(body, "record");
    const roundId = id === undefined ? undefined : fieldText(body, "roundId");
    if (id === undefined || roundId === undefined) return undefined;
    const after = body.indexOf(`"roundId":"${roundId}",`, 0, "utf8");
    if (after < 0) return undefined;
    const next = after + Buffer.byteLength(`"roundId":"${roundId}",`, "utf8");
    if (body.toString("latin1", next, next + 15) === '"participants":') return undefined;
    const carrier = this.#oldCarrier;
    if (carrier?.roundId !== roundId) return undefined;
    if (this.#drop.has(id)) return DROP;
    if (!carriedBy(this.#newCarrier, roundId, carrier.participants)) return undefined;
    // Its round's unhold line is kept only if one of the round's records is.
    if (body.includes('"held":true')) this.#heldRounds.add(roundId);
    return body;
  }

  /** Decided from the parsed body; unchanged bodies are written as they were. */
  #slow(body: Buffer): Buffer | typeof DROP {
    const value = parsed(body);
    const kept = this.#keep(value);
    if (kept === undefined) return DROP;
    return kept === (value as unknown) ? body : Buffer.from(JSON.stringify(kept), "utf8");
  }

  /** A record line: dropped, kept as it is, or kept with its participants put back. */
  #record(value: Record<string, unknown>): LogBody | undefined {
    const participants = value.participants as string[] | undefined;
    if (participants !== undefined) {
      this.#oldCarrier = { roundId: value.roundId as string, participants };
    }
    if (this.#drop.has(value.id as string)) return undefined;
    return this.#carried(value, String(value.id));
  }

  /**
   * A records line: the entries of dropped records left out (the line too if none is left), the
   * rest kept as a record line's would be.
   */
  #records(value: Record<string, unknown>): LogBody | undefined {
    const participants = value.participants as string[] | undefined;
    if (participants !== undefined) {
      this.#oldCarrier = { roundId: value.roundId as string, participants };
    }
    const records = value.records as { id: string }[];
    const kept = records.filter((entry) => !this.#drop.has(entry.id));
    if (kept.length === 0) return undefined;
    const body = kept.length === records.length ? value : { ...value, records: kept };
    return this.#carried(body, kept[0]!.id);
  }

  /**
   * A kept record or records line (its `held` round noted), as it is or with its participants put
   * back, after its round's, when the new file's last record line with them is not of its round.
   */
  #carried(value: Record<string, unknown>, id: string): LogBody {
    const roundId = value.roundId as string;
    if (value.held === true) this.#heldRounds.add(roundId);
    if (value.participants !== undefined) {
      this.#newCarrier = this.#oldCarrier;
      return value as unknown as LogBody;
    }
    // Its participants are the old file's carrier's (replay checked this when it opened).
    const carrier = this.#oldCarrier;
    if (carrier?.roundId !== roundId) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `Record ${id} leaves its participants out, but the last record line with participants before it is not of its round.`,
      );
    }
    if (carriedBy(this.#newCarrier, roundId, carrier.participants)) {
      return value as unknown as LogBody;
    }
    this.#newCarrier = carrier;
    // Put back in their documented place, right after roundId.
    const body: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) {
      body[key] = field;
      if (key === "roundId") body.participants = carrier.participants;
    }
    return body as unknown as LogBody;
  }

  /** Whether this line, about the round's secret, comes before the retire line that dropped it. */
  #roundDropped(roundId: string): boolean {
    const at = this.#dropRounds.get(roundId);
    return at !== undefined && this.#line <= at;
  }

  #keep(value: Record<string, unknown>): LogBody | undefined {
    const drop = this.#drop;
    switch (value.t) {
      case "record":
        return this.#record(value);
      case "records":
        return this.#records(value);
      case "claim":
      case "consume":
      case "step":
        return drop.has(value.id as string) ? undefined : (value as unknown as LogBody);
      case "claims": {
        // Entries leave out fields equal to the one before's: filtered whole, then written again.
        const entries = value.claims as ClaimsLineEntry[];
        const claims = expandClaims(entries).filter((entry) => !drop.has(entry.id));
        if (claims.length === entries.length) return value as unknown as LogBody;
        return claims.length === 0 ? undefined : claimsBody(claims);
      }
      case "consumes":
      case "lease":
      case "release": {
        const ids = (value.ids as string[]).filter((id) => !drop.has(id));
        return ids.length === 0 ? undefined : ({ ...value, ids } as unknown as LogBody);
      }
      case "retire": {
        // A retire line's rounds retired with its ids: both dropped, or both kept.
        const ids = (value.ids as string[]).filter((id) => !drop.has(id));
        if (ids.length === 0) return undefined;
        if (ids.length === (value.ids as string[]).length) return value as unknown as LogBody;
        const rounds = ((value.rounds as string[] | undefined) ?? []).filter(
          (roundId) => !this.#roundDropped(roundId),
        );
        return retireBody(value.at as string, ids, rounds);
      }
      case "roundsecret":
        return this.#roundDropped(value.roundId as string)
          ? undefined
          : (value as unknown as LogBody);
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

/** `LineFilter`'s answer for a line left out. */
const DROP = Symbol("drop");

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

  /** Appends a line; returns where it starts in the new file and its bytes (no newline). */
  async add(body: LogBody | Buffer): Promise<{ offset: number; line: Buffer }> {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body), "utf8");
    const { line, mac } = encodeBodyBytes(this.#macKey, this.#cut.head, bytes);
    const offset = this.#cut.bytes;
    this.#buffered.push(line);
    this.#bufferedBytes += line.length;
    this.#cut = { bytes: this.#cut.bytes + line.length, lines: this.#cut.lines + 1, head: mac };
    if (this.#bufferedBytes >= FLUSH_BYTES) await this.flush();
    return { offset, line: line.subarray(0, line.length - 1) };
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

/** Where the new file keeps the lines a store reads back from disk (openings, log entries). */
export interface CopiedLines {
  openings: Map<string, LineRef>;
  leaves: LineRef[];
}

/**
 * Copies the old file's complete lines from `from` onward through `filter` into `out`, noting in
 * `copied` where each opening and log entry landed; returns the old file's position after the
 * last line copied.
 */
export function copyLines(
  handle: FileHandle,
  path: string,
  macKey: Uint8Array,
  from: ChainCut,
  filter: LineFilter,
  out: CompactedFile,
  copied: CopiedLines,
  signal?: StopSignal,
): Promise<ChainCut> {
  return eachLine(
    handle,
    path,
    macKey,
    from,
    async (body, bytes) => {
      const kept = filter.keep(body, bytes);
      if (kept === undefined) return;
      const at = await out.add(kept);
      const kind = kindOf(kept) ?? (parsed(kept).t as string);
      if (kind === "tlog") copied.leaves.push(lineRef(at.offset, at.line));
      else if (kind === "opening") {
        copied.openings.set(parsed(kept).roundId as string, lineRef(at.offset, at.line));
      }
    },
    signal,
  );
}
