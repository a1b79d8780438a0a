/**
 * The data folder on disk: created 0700, secret files written 0600 atomically (temporary file,
 * fsync, rename, fsync of the folder), and refused when readable by others — the way OpenSSH
 * refuses an unprotected private key. Files made once (keys, tokens, lock files) are created
 * exclusively: written under a temporary name, then link(2)ed into place, which fails when the
 * name exists, so a reader sees no file or the whole file and two creators never both win.
 * Everything dkeygen keeps on disk goes through here.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { chmod, link, mkdir, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { DkeygenError, ErrorCodes } from "../errors.js";

/** Creates the data folder (and parents) if needed and makes sure it is 0700. */
export async function ensureDataDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  const info = await stat(path);
  if (!info.isDirectory()) {
    throw new DkeygenError(ErrorCodes.OPERATIONAL, `${path} is not a folder.`);
  }
  if ((info.mode & 0o777) !== 0o700) await chmod(path, 0o700);
}

async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` to a new temporary file beside `path` (same folder, so it can be renamed or linked
 * there), fsynced; returns its name. A random part in the name, so concurrent writers in one
 * process never collide.
 */
async function writeTemporary(path: string, data: string | Uint8Array, mode: number) {
  const tmp = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`,
  );
  const handle = await open(tmp, "wx", mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await unlink(tmp).catch(() => {});
    throw error;
  }
  await handle.close();
  return tmp;
}

/** Writes a file atomically with the given mode (0600 unless told otherwise), replacing it. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
): Promise<void> {
  const tmp = await writeTemporary(path, data, mode);
  try {
    await rename(tmp, path);
  } catch (error) {
    await unlink(tmp).catch(() => {});
    throw error;
  }
  await fsyncDir(dirname(path));
}

/**
 * Creates `path` holding `data` unless a file of that name exists: true if this call made it,
 * false if it existed (then nothing is written). The content is complete and on disk before the
 * name appears (written and fsynced under a temporary name, then link(2)ed, which never replaces),
 * so a concurrent reader never sees a partial file and two concurrent creators never both win.
 */
export async function createFileExclusive(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
): Promise<boolean> {
  const tmp = await writeTemporary(path, data, mode);
  try {
    await link(tmp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    await unlink(tmp).catch(() => {});
  }
  await fsyncDir(dirname(path));
  return true;
}

/** Reads a secret file, refusing it if group or others may read or write it. */
export async function readSecretFile(path: string): Promise<Buffer> {
  const info = await stat(path);
  if ((info.mode & 0o077) !== 0) {
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `${path} is accessible by others (mode ${(info.mode & 0o777).toString(8)}); ` +
        `it holds a secret. Run: chmod 600 ${path}`,
    );
  }
  return readFile(path);
}

export async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

export async function readJsonFile<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as T;
  } catch (cause) {
    throw new DkeygenError(ErrorCodes.OPERATIONAL, `${path} is not valid JSON.`, { cause });
  }
}

/**
 * Appends `values` to the JSON-lines file `path` (created 0600), one JSON text a line, in one
 * O_APPEND write, made durable (fsync) when `durable`. When the file does not end with a newline
 * (a write cut short by a crash), the write starts with one, so the torn line stays a line of its
 * own and never runs into the next (readJsonLines skips it). Nothing is ever cut: another writer's
 * append may be under way, and at worst this adds an empty line.
 */
export async function appendJsonLines(
  path: string,
  values: readonly unknown[],
  durable = false,
): Promise<void> {
  if (values.length === 0) return;
  const text = values.map((v) => `${JSON.stringify(v)}\n`).join("");
  const handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND, 0o600);
  try {
    const { size } = await handle.stat();
    let torn = false;
    if (size > 0) {
      const last = Buffer.alloc(1);
      const { bytesRead } = await handle.read(last, 0, 1, size - 1);
      torn = bytesRead === 1 && last[0] !== 0x0a;
    }
    await handle.write(torn ? `\n${text}` : text);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The JSON values of the JSON-lines file `path`, with their line numbers (from 1); none when it
 * does not exist. A line cut short by a crash is skipped: the last line when it has no newline,
 * and any line that is not JSON and does not end with "}" (appendJsonLines ends it with a newline
 * before writing on). Any other line that is not JSON is an error naming the file and line.
 */
export async function readJsonLines(path: string): Promise<{ line: number; value: unknown }[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const lines = text.split("\n");
  const values: { line: number; value: unknown }[] = [];
  lines.forEach((line, i) => {
    if (line === "" || (i === lines.length - 1 && !text.endsWith("\n"))) return;
    try {
      values.push({ line: i + 1, value: JSON.parse(line) });
    } catch (cause) {
      if (!line.endsWith("}")) return;
      throw new DkeygenError(ErrorCodes.OPERATIONAL, `${path}: line ${i + 1} is not JSON.`, {
        cause,
      });
    }
  });
  return values;
}

export async function writeJsonFile(path: string, value: unknown, mode = 0o600): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}

/**
 * Reads a secret file if it exists, else creates it with `make()` (exclusively: when another
 * process creates it first, its file is read and ours is dropped); 0600 either way.
 */
export async function loadOrCreateSecret(
  path: string,
  make: () => Uint8Array | string,
): Promise<{ data: Buffer; created: boolean }> {
  if (await fileExists(path)) return { data: await readSecretFile(path), created: false };
  const data = make();
  if (await createFileExclusive(path, data)) {
    return {
      data: Buffer.from(typeof data === "string" ? Buffer.from(data) : data),
      created: true,
    };
  }
  return { data: await readSecretFile(path), created: false };
}
