/**
 * An exclusive lock file: `<file>.lock`, holding the owner's pid, host, start time and a random
 * nonce as one JSON line. It guards the key store (one writer: a second process, or a second store
 * object in the same process, that finds a live owner is refused at once) and read-modify-writes
 * of data-folder files such as requesters.json (a second writer waits for the first, up to a
 * bound). A lock left by a process that died is taken over, with a warning.
 *
 * The content appears atomically: it is written under a temporary name and link(2)ed into place
 * (datadir's createFileExclusive), so nobody can see a lock file without its owner. A file that
 * holds no owner was therefore not written by this code (or was damaged) and is refused, naming it.
 *
 * Taking over a stale lock. POSIX has no "unlink if it is still this file", so two processes that
 * both find the same stale lock could each remove it — the second one removing the first one's new
 * lock — and both win. Instead, removing a stale lock needs a *takeover token* for that very lock:
 * `<path>.takeover-<g>-<k>`, where g names the stale lock's content (SHA-256 of it; the nonce makes
 * every lock's content unique) and k = 1, 2, …; a token is created exclusively, like the lock. The
 * process that creates token k is the only live process allowed to remove the lock with content g:
 * it re-reads the lock, removes it only if it still holds g, removes the tokens, and then competes
 * for the lock like anyone else (exclusive creation: one winner). Nobody else can replace the stale
 * file meanwhile (creation fails while it exists and its owner is dead), so "still holds g" stays
 * true until the token holder removes it. A token whose creator is alive means a takeover is under
 * way: wait and look again. A token whose creator died (it crashed mid-takeover) is passed over by
 * creating token k + 1.
 *
 * Why a lock file and not flock(2): Node has no portable flock, and a lock file also tells the
 * operator who holds the store. Its limits: the owner's liveness can only be checked on the same
 * host (a lock from another host is always honoured), and a recycled pid makes a stale lock look
 * alive (the error says which file to remove).
 */
import { createHash, randomBytes } from "node:crypto";
import { readFile, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { createFileExclusive } from "./files.js";

interface LockOwner {
  pid: number;
  host: string;
  since: string;
  nonce: string;
}

export interface LockWarnings {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface LockOptions {
  /** What the lock guards, for messages ("the key store /srv/key_store"). */
  what: string;
  /**
   * Why a live holder means "not now", in a sentence after "<what> is <busy> <holder> since <t>;"
   * — e.g. `["already open in", "only one process may write it"]`.
   */
  busy: readonly [string, string];
  /** How long to wait for a live holder to let go before giving up; 0 (default): refuse at once. */
  waitMs?: number;
  log?: LockWarnings;
}

/** Takeover tokens tried for one stale lock before giving up (each passed over one died). */
const MAX_TOKENS = 8;
/** Rounds of "create, or find out why not" before giving up. */
const MAX_ATTEMPTS = 100;

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (
      Number.isSafeInteger(value.pid) &&
      typeof value.host === "string" &&
      typeof value.since === "string"
    ) {
      // Locks written before the nonce existed have none; their content is still unique enough
      // (pid and start time) to name them.
      return { nonce: "", ...value } as LockOwner;
    }
  } catch {
    // Not a lock file of ours: treated by the caller.
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

/** The file's text, or undefined when there is no such file. */
async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The key store's lock: one writer, a second one refused at once. */
export function storeLockOptions(store: string): LockOptions {
  return {
    what: `the key store ${store}`,
    busy: ["already open in", "only one process may write it"],
  };
}

const capitalized = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

export class LockFile {
  readonly path: string;
  readonly #text: string;
  #held = false;

  private constructor(path: string, text: string) {
    this.path = path;
    this.#text = text;
  }

  /**
   * Takes the lock at `path` (waiting up to `waitMs` for a live holder), or throws an OPERATIONAL
   * error naming the holder.
   */
  static async acquire(path: string, options: LockOptions): Promise<LockFile> {
    const { what, busy, log } = options;
    const deadline = Date.now() + (options.waitMs ?? 0);
    let pause = 2;
    const owner: LockOwner = {
      pid: process.pid,
      host: hostname(),
      since: new Date().toISOString(),
      nonce: randomBytes(16).toString("hex"),
    };
    const lock = new LockFile(path, `${JSON.stringify(owner)}\n`);
    for (let attempt = 0; attempt < MAX_ATTEMPTS || Date.now() < deadline; attempt++) {
      if (await createFileExclusive(path, lock.#text)) {
        lock.#held = true;
        return lock;
      }
      const text = await readText(path);
      if (text === undefined) continue; // Released in between: try again.
      const holder = parseOwner(text);
      if (!holder) {
        throw new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `The lock ${path} of ${what} names no owner (it was not written by this dkeygen, or ` +
            `it is damaged). If no process is using it, remove ${path}.`,
        );
      }
      if (holder.host !== owner.host || isAlive(holder.pid)) {
        if (Date.now() < deadline) {
          // Jitter, so waiters that lost together do not retry together.
          await sleep(pause + Math.random() * pause);
          pause = Math.min(pause * 2, 50);
          continue;
        }
        const who =
          holder.host === owner.host
            ? `process ${holder.pid}${holder.pid === process.pid ? " (this process)" : ""}`
            : `process ${holder.pid} on host ${holder.host}`;
        const [verb, reason] = busy;
        throw new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `${capitalized(what)} is ${verb} ${who} since ${holder.since}; ${reason}. If that ` +
            `process is gone, remove ${path}.`,
        );
      }
      if (await lock.#takeOver(text)) {
        log?.warn(
          { lock: path, stalePid: holder.pid },
          `took over a stale lock of ${what} left by a process that is gone`,
        );
      } else {
        // Another process is taking it over: look again shortly (its new lock, or none).
        await sleep(5 + Math.random() * 20);
      }
    }
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `Could not take the lock ${path} of ${what}; other processes keep taking it, or a ` +
        `takeover of it is stuck (${path}.takeover-* files).`,
    );
  }

  /** Runs `work` holding the lock at `path`, and releases it after, whatever `work` did. */
  static async holding<T>(path: string, options: LockOptions, work: () => Promise<T>): Promise<T> {
    const lock = await LockFile.acquire(path, options);
    try {
      return await work();
    } finally {
      await lock.release();
    }
  }

  /**
   * Removes the stale lock whose content is `stale`, if this process wins its takeover token.
   * True when this process removed it (or found it already gone while holding the token); false
   * when another live process holds the token.
   */
  async #takeOver(stale: string): Promise<boolean> {
    const generation = createHash("sha256").update(stale).digest("hex").slice(0, 32);
    const token = (k: number) => `${this.path}.takeover-${generation}-${k}`;
    for (let k = 1; k <= MAX_TOKENS; k++) {
      if (await createFileExclusive(token(k), this.#text)) {
        try {
          // Only the holder of a token for this content removes it, so it cannot have been
          // replaced by another lock between this read and the unlink.
          if ((await readText(this.path)) === stale) await removeIfPresent(this.path);
        } finally {
          for (let j = k; j >= 1; j--) await removeIfPresent(token(j)).catch(() => {});
        }
        return true;
      }
      const text = await readText(token(k));
      if (text === undefined) return false; // Its holder finished meanwhile.
      const taker = parseOwner(text);
      // A live taker (or one we cannot judge) is at work; a dead one is passed over.
      if (!taker || taker.host !== hostname() || isAlive(taker.pid)) return false;
    }
    return false;
  }

  /** Removes the lock if it is still ours. */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    // Only its owner or a taker (when the owner is dead) removes a lock, so ours stays ours
    // between this read and the unlink.
    if ((await readText(this.path)) === this.#text) {
      await unlink(this.path).catch(() => {});
    }
  }
}
