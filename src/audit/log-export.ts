/**
 * The export file of `dkeygen audit log --export` / `--file` (docs/PROTOCOL.md §15.4): what a log
 * server published, kept so the audit can be run again offline, by anyone, on exactly those bytes.
 *
 *   {"v":1,"identity":{…},"checkpoint":"<signed note>","entries":["<leaf, base64>",…]}
 *
 * `identity` is the GET /v1/log/identity document, `checkpoint` the note of GET /v1/log/checkpoint,
 * `entries` the leaves 0 .. size−1 of that checkpoint, each standard base64 with padding
 * (canonical). Written and read as a stream (a million entries do not fit one JavaScript string):
 * the reader takes any JSON whitespace and member order, except that `v`, `identity` and
 * `checkpoint` must come before `entries`, as the writer puts them.
 */
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { DkeygenError, ErrorCodes } from "../errors.js";

export const EXPORT_VERSION = 1;

/** A leaf as the export (and GET /v1/log/entries) spells it: canonical padded base64. */
export function decodeLeaf(text: unknown, what: string): Uint8Array {
  if (typeof text !== "string") throw malformedLeaf(what);
  const bytes = Buffer.from(text, "base64");
  // Node's decoder skips what is not base64; encoding back must give the very same text.
  if (bytes.toString("base64") !== text) throw malformedLeaf(what);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

function malformedLeaf(what: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.INVALID_INPUT,
    `${what} is not a leaf in canonical base64 (standard alphabet, with padding).`,
  );
}

function malformed(path: string, why: string): DkeygenError {
  return new DkeygenError(ErrorCodes.INVALID_INPUT, `${path} is not a log export: ${why}.`);
}

/** Writes an export as its entries come, under a temporary name renamed into place at the end. */
export class ExportWriter {
  readonly #path: string;
  readonly #temp: string;
  #file: FileHandle | undefined;
  #count = 0;

  private constructor(path: string, file: FileHandle, temp: string) {
    this.#path = path;
    this.#file = file;
    this.#temp = temp;
  }

  static async create(path: string, identity: unknown, checkpoint: string): Promise<ExportWriter> {
    const temp = `${path}.tmp-${process.pid}`;
    const file = await open(temp, "w", 0o644);
    const writer = new ExportWriter(path, file, temp);
    const head = `{"v":${EXPORT_VERSION},"identity":${JSON.stringify(identity)},"checkpoint":${JSON.stringify(checkpoint)},"entries":[`;
    await file.write(head);
    return writer;
  }

  async add(leaves: readonly Uint8Array[]): Promise<void> {
    if (leaves.length === 0) return;
    let text = "";
    for (const leaf of leaves) {
      text += `${this.#count++ === 0 ? "" : ","}\n"${Buffer.from(leaf.buffer, leaf.byteOffset, leaf.length).toString("base64")}"`;
    }
    await this.#file!.write(text);
  }

  /** Finishes the file and puts it in place (replacing an older one). */
  async close(): Promise<void> {
    const file = this.#file!;
    this.#file = undefined;
    await file.write(`${this.#count === 0 ? "" : "\n"}]}\n`);
    await file.sync();
    await file.close();
    await rename(this.#temp, this.#path);
  }

  /** Drops the unfinished file. */
  async abort(): Promise<void> {
    const file = this.#file;
    this.#file = undefined;
    await file?.close().catch(() => {});
    await rm(this.#temp, { force: true });
  }
}

/** An export opened for reading: its documents, then its leaves as a stream (read once). */
export interface OpenedExport {
  identity: unknown;
  checkpoint: string;
  /** The leaves in batches; the rest of the file is checked once they are all read. */
  entries(): AsyncIterable<Uint8Array[]>;
  close(): Promise<void>;
}

const READ_BYTES = 1024 * 1024;
const BATCH = 1024;
const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** A forward-only reader of a JSON file's bytes, with enough look-ahead for one token. */
class Bytes {
  readonly #file: FileHandle;
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  #eof = false;

  constructor(file: FileHandle) {
    this.#file = file;
  }

  /** Reads more; false at the end of the file. */
  async more(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = Buffer.allocUnsafe(READ_BYTES);
    const { bytesRead } = await this.#file.read(chunk, 0, READ_BYTES, null);
    if (bytesRead === 0) {
      this.#eof = true;
      return false;
    }
    this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk.subarray(0, bytesRead)]);
    this.pos = 0;
    return true;
  }

  /** The next byte that is not whitespace (not consumed), or -1 at the end. */
  async peek(): Promise<number> {
    for (;;) {
      while (this.pos < this.buf.length && WS.has(this.buf[this.pos]!)) this.pos++;
      if (this.pos < this.buf.length) return this.buf[this.pos]!;
      if (!(await this.more())) return -1;
    }
  }

  /** The raw bytes of the JSON string token at the position (quotes included), consumed. */
  async stringToken(): Promise<Buffer> {
    let from = this.pos + 1;
    for (;;) {
      const end = this.buf.indexOf(QUOTE, from);
      if (end < 0) {
        from = this.buf.length - this.pos;
        if (!(await this.more())) throw new Error("a string is not closed");
        from += this.pos;
        continue;
      }
      let slashes = 0;
      while (this.buf[end - 1 - slashes] === BACKSLASH) slashes++;
      if (slashes % 2 === 1) {
        from = end + 1;
        continue;
      }
      const token = this.buf.subarray(this.pos, end + 1);
      this.pos = end + 1;
      return token;
    }
  }

  /** The raw text of any JSON value at the position, consumed (for the small members). */
  async valueText(): Promise<string> {
    const first = await this.peek();
    if (first === QUOTE) return (await this.stringToken()).toString("utf8");
    const parts: Buffer[] = [];
    let depth = 0;
    for (;;) {
      if (this.pos >= this.buf.length && !(await this.more())) break;
      const c = this.buf[this.pos]!;
      if (c === QUOTE) {
        parts.push(await this.stringToken());
        continue;
      }
      if (depth === 0 && (c === 0x2c || c === 0x7d || c === 0x5d)) break; // , } ]
      if (c === 0x7b || c === 0x5b) depth++;
      if (c === 0x7d || c === 0x5d) depth--;
      parts.push(this.buf.subarray(this.pos, this.pos + 1));
      this.pos++;
      if (depth === 0 && (c === 0x7d || c === 0x5d)) break;
    }
    return Buffer.concat(parts).toString("utf8");
  }

  async expect(byte: number, what: string): Promise<void> {
    if ((await this.peek()) !== byte) throw new Error(`expected ${what}`);
    this.pos++;
  }
}

/** Opens an export: reads up to its entries, checking `v`, `identity` and `checkpoint`. */
export async function openExport(path: string): Promise<OpenedExport> {
  const file = await open(path, "r");
  const bytes = new Bytes(file);
  const parse = (text: string, member: string): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      throw malformed(path, `its "${member}" is not JSON`);
    }
  };
  const members = new Map<string, unknown>();
  try {
    try {
      await bytes.expect(0x7b, "{");
      for (;;) {
        if ((await bytes.peek()) !== QUOTE) throw new Error("expected a member name");
        const name = parse((await bytes.stringToken()).toString("utf8"), "member name") as string;
        await bytes.expect(0x3a, ":");
        if (name === "entries") break;
        if (members.has(name)) throw new Error(`"${name}" appears twice`);
        members.set(name, parse(await bytes.valueText(), name));
        const next = await bytes.peek();
        if (next === 0x2c) {
          bytes.pos++;
          continue;
        }
        throw new Error(next === 0x7d ? `it has no "entries"` : "expected , or }");
      }
      await bytes.expect(0x5b, "[ after entries");
    } catch (error) {
      if (error instanceof DkeygenError) throw error;
      throw malformed(path, (error as Error).message);
    }
    if (members.get("v") !== EXPORT_VERSION) {
      throw malformed(path, `it has no "v": ${EXPORT_VERSION} before its entries`);
    }
    const identity = members.get("identity");
    const checkpoint = members.get("checkpoint");
    if (identity === undefined || typeof checkpoint !== "string") {
      throw malformed(path, `"identity" and "checkpoint" (a string) must come before "entries"`);
    }
    for (const name of members.keys()) {
      if (!["v", "identity", "checkpoint"].includes(name)) {
        throw malformed(path, `it has an unknown member "${name}"`);
      }
    }
    return {
      identity,
      checkpoint,
      entries: () => readEntries(path, bytes),
      close: () => file.close(),
    };
  } catch (error) {
    await file.close();
    throw error;
  }
}

async function* readEntries(path: string, bytes: Bytes): AsyncGenerator<Uint8Array[]> {
  let batch: Uint8Array[] = [];
  let index = 0;
  try {
    if ((await bytes.peek()) === 0x5d) {
      bytes.pos++;
    } else {
      for (;;) {
        if ((await bytes.peek()) !== QUOTE) throw new Error(`entry ${index} is not a string`);
        const token = await bytes.stringToken();
        const text = token.includes(BACKSLASH)
          ? (JSON.parse(token.toString("utf8")) as string)
          : token.toString("latin1", 1, token.length - 1);
        batch.push(decodeLeaf(text, `Entry ${index} of ${path}`));
        index++;
        if (batch.length >= BATCH) {
          yield batch;
          batch = [];
        }
        const next = await bytes.peek();
        bytes.pos++;
        if (next === 0x5d) break;
        if (next !== 0x2c) throw new Error(`expected , or ] after entry ${index - 1}`);
      }
    }
    if (batch.length > 0) yield batch;
    if ((await bytes.peek()) !== 0x7d) throw new Error(`"entries" is not its last member`);
    bytes.pos++;
    if ((await bytes.peek()) !== -1) throw new Error("something follows its end");
  } catch (error) {
    if (error instanceof DkeygenError) throw error;
    throw malformed(path, (error as Error).message);
  }
}
