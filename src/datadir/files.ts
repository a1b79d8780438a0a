/**
 * The data folder on disk: created 0700, secret files written 0600 atomically (temporary file,
 * fsync, rename, fsync of the folder), and refused when readable by others — the way OpenSSH
 * refuses an unprotected private key. Everything dkeygen keeps on disk goes through here.
 */
import { constants } from "node:fs";
import { chmod, mkdir, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
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

/** Writes a file atomically with the given mode (0600 unless told otherwise). */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
): Promise<void> {
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.tmp`);
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
  await rename(tmp, path);
  await fsyncDir(dirname(path));
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

export async function writeJsonFile(path: string, value: unknown, mode = 0o600): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}

/** Reads a secret file if it exists, else creates it with `make()`; 0600 either way. */
export async function loadOrCreateSecret(
  path: string,
  make: () => Uint8Array | string,
): Promise<{ data: Buffer; created: boolean }> {
  if (await fileExists(path)) return { data: await readSecretFile(path), created: false };
  const data = make();
  await writeFileAtomic(path, data);
  return { data: Buffer.from(typeof data === "string" ? Buffer.from(data) : data), created: true };
}
