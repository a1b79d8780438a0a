/**
 * Single-writer lock for a store file: `<path>.lock`, created with O_EXCL and holding the owner's
 * pid, host and start time as one JSON line. A second process (or a second store object in the same
 * process) that finds a live owner is refused; a lock left by a process that died is taken over
 * with a warning.
 *
 * Why a lock file and not flock(2): Node has no portable flock, and a lock file also tells the
 * operator who holds the store. Its limits: the owner's liveness can only be checked on the same
 * host (a lock from another host is always honoured), a recycled pid makes a stale lock look alive
 * (the error says which file to remove), and two processes taking over the same stale lock in the
 * same instant could both succeed — a window of microseconds at start-up only.
 */
import { constants } from "node:fs";
import { open, readFile, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { DkeygenError, ErrorCodes } from "../errors.js";

interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

export interface LockWarnings {
  warn(fields: Record<string, unknown>, message: string): void;
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (
      Number.isSafeInteger(value.pid) &&
      typeof value.host === "string" &&
      typeof value.since === "string"
    ) {
      return value as LockOwner;
    }
  } catch {
    // Not ours, or written halfway by a process that died: treated below.
  }
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readOwner(path: string): Promise<{ text: string } | undefined> {
  try {
    return { text: await readFile(path, "utf8") };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function tryCreate(path: string, owner: LockOwner): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  try {
    await handle.writeFile(`${JSON.stringify(owner)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class LockFile {
  readonly path: string;
  readonly #owner: LockOwner;
  #held = false;

  private constructor(path: string, owner: LockOwner) {
    this.path = path;
    this.#owner = owner;
  }

  /** Takes the lock at `path` or throws an OPERATIONAL error naming the holder. */
  static async acquire(path: string, store: string, log?: LockWarnings): Promise<LockFile> {
    const owner: LockOwner = {
      pid: process.pid,
      host: hostname(),
      since: new Date().toISOString(),
    };
    const lock = new LockFile(path, owner);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await tryCreate(path, owner)) {
        lock.#held = true;
        return lock;
      }
      let found = await readOwner(path);
      if (!found) continue; // Released in between: try again.
      let holder = parseOwner(found.text);
      if (!holder) {
        // Maybe caught between the holder's create and write: look again before calling it stale.
        await sleep(100);
        found = await readOwner(path);
        if (!found) continue;
        holder = parseOwner(found.text);
      }
      if (holder && (holder.host !== owner.host || isAlive(holder.pid))) {
        const who =
          holder.host === owner.host
            ? `process ${holder.pid}${holder.pid === process.pid ? " (this process)" : ""}`
            : `process ${holder.pid} on host ${holder.host}`;
        throw new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `The key store ${store} is already open in ${who} since ${holder.since}; only one ` +
            `process may write it. If that process is gone, remove ${path}.`,
        );
      }
      log?.warn(
        { lock: path, ...(holder ? { stalePid: holder.pid } : {}) },
        "taking over a stale key store lock left by a process that is gone",
      );
      try {
        await unlink(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `Could not take the lock ${path} for the key store ${store}; another process keeps taking it.`,
    );
  }

  /** Removes the lock if it is still ours. */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    const found = await readOwner(this.path);
    const holder = found && parseOwner(found.text);
    if (
      holder &&
      holder.pid === this.#owner.pid &&
      holder.host === this.#owner.host &&
      holder.since === this.#owner.since
    ) {
      await unlink(this.path).catch(() => {});
    }
  }
}
