/**
 * The `key_store` file on disk, as file.ts uses it: its folder checked, the file created 0600
 * exclusively (its folder fsynced, so the name survives a crash) or opened and kept 0600, the
 * writes group commit makes (group-commit.ts), and a torn last line set aside. No format here:
 * that is log-format.ts.
 */
import { constants } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { digestOf, type LineRef } from "./compact-memory.js";
import type { LogFile } from "./group-commit.js";
import type { Segment } from "./log-format.js";

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(
      bytes,
      offset,
      bytes.length - offset,
      position + offset,
    );
    offset += bytesWritten;
  }
}

/**
 * The log file for group commit: `handle` for plain writes, syncs and truncation; `dsync`, the
 * same file opened O_DSYNC, for writes that are durable when they return (one thread-pool trip).
 */
export function logFileOf(handle: FileHandle, dsync: FileHandle): LogFile {
  return {
    write: (bytes, position) => writeAll(handle, bytes, position),
    sync: () => handle.datasync(),
    writeDurable: (bytes, position) => writeAll(dsync, bytes, position),
    truncate: (size) => handle.truncate(size),
  };
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

export async function fsyncFolder(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Throws E_OPERATIONAL unless the folder of `path` exists. */
export async function checkStoreFolder(path: string): Promise<void> {
  const folder = dirname(path);
  try {
    if (!(await stat(folder)).isDirectory()) throw new Error("not a folder");
  } catch (cause) {
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `The folder ${folder} for the key store does not exist (or is not a folder).`,
      { cause },
    );
  }
}

/**
 * Creates the file 0600 if absent, or opens it, a regular file, read-write; an existing file
 * others could read is set to 0600 (`onLoose` is told first).
 */
export async function openStoreFile(
  path: string,
  onLoose: (mode: string) => void,
): Promise<FileHandle> {
  try {
    const handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    // The new file's name must survive a crash too, not only its contents.
    await fsyncFolder(dirname(path));
    return handle;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        `Cannot create the key store ${path}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  const handle = await open(path, constants.O_RDWR);
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      throw new DkeygenError(ErrorCodes.OPERATIONAL, `${path} is not a regular file.`);
    }
    if ((info.mode & 0o077) !== 0) {
      onLoose((info.mode & 0o777).toString(8));
      await handle.chmod(0o600);
    }
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * A last line without its newline was being written when the process or machine stopped. It was
 * never acknowledged (a line is acknowledged only after its newline is fsynced), so it is not
 * data: keep its bytes in `<path>.torn-<now>` for forensics (ciphertext only, never plaintext
 * secrets); the store then cuts it off so the next append starts on a clean line. Returns where
 * it was kept.
 */
export async function setTornTailAside(
  handle: FileHandle,
  path: string,
  torn: Segment,
  now: Date,
): Promise<string> {
  const stamp = now.toISOString().replace(/[:.]/g, "-");
  let target = "";
  let out: FileHandle | undefined;
  for (let n = 0; !out; n++) {
    target = `${path}.torn-${stamp}${n === 0 ? "" : `-${n}`}`;
    try {
      out = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || n >= 100) throw error;
    }
  }
  try {
    const buffer = Buffer.allocUnsafe(1 << 20);
    for (let position = torn.start; position < torn.end; ) {
      const want = Math.min(buffer.length, torn.end - position);
      const { bytesRead } = await handle.read(buffer, 0, want, position);
      if (bytesRead === 0) break;
      await out.write(buffer, 0, bytesRead);
      position += bytesRead;
    }
    await out.sync();
  } finally {
    await out.close();
  }
  await fsyncFolder(dirname(path));
  return target;
}

/** Reads the line `ref` names; E_STORE_CORRUPT if it is no longer that line. */
export async function readLineRef(handle: FileHandle, path: string, ref: LineRef): Promise<Buffer> {
  const line = Buffer.allocUnsafe(ref.length);
  const { bytesRead } = await handle.read(line, 0, ref.length, ref.offset);
  if (bytesRead !== ref.length || digestOf(line) !== ref.digest) {
    throw new DkeygenError(
      ErrorCodes.STORE_CORRUPT,
      `The key store ${path} changed under the running store at byte ${ref.offset}: the line ` +
        "kept there is not the one written. Stop the server and check the file.",
    );
  }
  return line;
}
