/**
 * Fixtures for the key_store file's tests: stores over fresh temp folders, and files written by
 * hand the way PROTOCOL.md §10 describes them (a MAC chain and a head file), as someone holding
 * the store key could.
 */
import { createHmac, hkdfSync, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lengthPrefixed } from "../../src/crypto/canonical.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { FileKeyStore, type FileKeyStoreOptions } from "../../src/store/file.js";
import type { RecordInput } from "../../src/store/types.js";

export interface Warning {
  fields: Record<string, unknown>;
  message: string;
}

export function recordingLogger() {
  const warnings: Warning[] = [];
  const errors: Warning[] = [];
  return {
    warnings,
    errors,
    warn: (fields: Record<string, unknown>, message: string) => {
      warnings.push({ fields, message });
    },
    error: (fields: Record<string, unknown>, message: string) => {
      errors.push({ fields, message });
    },
  };
}

export async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "dkeygen-store-"));
}

export function input(overrides: Partial<RecordInput> = {}): RecordInput {
  return {
    purpose: "otp",
    roundId: "round-1",
    participants: ["alice", "bob"],
    algorithm: "otp/v1",
    public: { digits: 6 },
    secret: randomBytes(32),
    ...overrides,
  };
}

export const claimInput = (n: number) => ({
  requester: "requester-1",
  subject: `subject-${n}`,
  requestId: `request-${n}`,
  expiresAt: new Date(Date.now() + 60_000),
});

/** A store over a fresh temp folder; `remove` deletes the folder. */
export async function fresh(options: Partial<FileKeyStoreOptions> = {}) {
  const dir = await tempDir();
  const path = join(dir, "key_store");
  const storeKey = randomBytes(32);
  const make = (extra: Partial<FileKeyStoreOptions> = {}) =>
    new FileKeyStore({ path, storeKey, ...options, ...extra });
  return {
    dir,
    path,
    headPath: `${path}.head`,
    storeKey,
    make,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export function isCorrupt(pattern: RegExp) {
  return (error: unknown) =>
    error instanceof DkeygenError &&
    error.code === ErrorCodes.STORE_CORRUPT &&
    pattern.test(error.message);
}

/** The file's lines, each with its newline. */
export async function lines(path: string): Promise<string[]> {
  const text = await readFile(path, "utf8");
  return text.split(/(?<=\n)/).filter((line) => line.length > 0);
}

/** The file's line bodies, parsed. */
export async function bodies(path: string): Promise<Record<string, unknown>[]> {
  return (await lines(path)).map((line) => JSON.parse(/"body":(.*)\}\n$/.exec(line)![1]!));
}

/**
 * Writes a head file (`<store>.head`) naming `lines` lines ending in `head`, as PROTOCOL.md §10
 * describes it: two 256-byte slots, counters 0 and 1.
 */
export async function writeHead(
  storePath: string,
  storeKey: Uint8Array,
  lines: number,
  head: Buffer,
) {
  const kHead = Buffer.from(
    hkdfSync("sha256", storeKey, Buffer.alloc(0), "dkeygen/v1/store/head-mac", 32),
  );
  const u64 = (n: number) => {
    const out = Buffer.alloc(8);
    out.writeBigUInt64BE(BigInt(n));
    return out;
  };
  const slot = (counter: number) => {
    const mac = createHmac("sha256", kHead)
      .update(lengthPrefixed("dkeygen/v1/store/head", u64(counter), u64(lines), head))
      .digest("hex");
    const text = `dkeygen-store-head 1 ${counter} ${lines} ${head.toString("hex")} ${mac}`;
    return `${text.padEnd(255, " ")}\n`;
  };
  await writeFile(`${storePath}.head`, slot(0) + slot(1));
}

/**
 * Writes `list` as a key_store file with a valid MAC chain under `storeKey`, and a head file
 * naming its end, so only the checks after the MAC (schema, event rules) stand between it and
 * being opened.
 */
export async function writeChained(
  path: string,
  storeKey: Uint8Array,
  list: unknown[],
  options: { head?: boolean } = {},
): Promise<void> {
  const kMac = Buffer.from(
    hkdfSync("sha256", storeKey, Buffer.alloc(0), "dkeygen/v1/store/line-mac", 32),
  );
  let previous = Buffer.alloc(32);
  let text = "";
  for (const body of list) {
    const json = JSON.stringify(body);
    const mac = createHmac("sha256", kMac).update(previous).update(json).digest();
    text += `{"mac":"${mac.toString("hex")}","body":${json}}\n`;
    previous = mac;
  }
  await writeFile(path, text);
  if (options.head !== false) await writeHead(path, storeKey, list.length, previous);
}

/** Fills a store with `n` records and closes it; returns their ids. */
export async function seed(make: () => FileKeyStore, n: number): Promise<string[]> {
  const store = make();
  await store.open();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await store.put(input({ roundId: `round-${i}` }))).id);
  await store.close();
  return ids;
}
