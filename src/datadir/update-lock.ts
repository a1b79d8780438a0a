/**
 * An exclusive lock around a read-modify-write of one data-folder file (requesters.json): without
 * it two concurrent `requester add`/`remove` read the same old file and the second rename drops
 * the first one's change.
 *
 * The lock is `<file>.lock`, created with O_EXCL (so exactly one process creates it) and holding
 * the holder's pid, host, start time and a random nonce as one JSON line. A process that finds it
 * waits (polling with jitter) up to a bound, then gives up with an error naming the holder. A lock
 * whose holder is a dead process on this host is stale and taken over; takers-over first create
 * `<file>.lock.takeover` with O_EXCL and re-read the lock under it, so two of them cannot both
 * remove a lock that one of them has meanwhile taken afresh. (The guard itself is left behind
 * only if a process dies in the microseconds it holds it; it is then removed the same way, which
 * is the one remaining window.) Writes stay atomic by rename (files.ts), so readers that take no
 * lock — the server — always see a whole file.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, readFile, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { DkeygenError, ErrorCodes } from "../errors.js";

interface Holder {
  pid: number;
  host: string;
  since: string;
  nonce: string;
}

export interface UpdateLockOptions {
  /** How long to wait for another holder before giving up (default 10 s). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** An unreadable lock file younger than this may be one whose holder is writing it. */
const UNREADABLE_GRACE_MS = 1_000;

function parseHolder(text: string): Holder | undefined {
  try {
    const value = JSON.parse(text) as Partial<Holder>;
    if (
      Number.isSafeInteger(value.pid) &&
      typeof value.host === "string" &&
      typeof value.since === "string" &&
      typeof value.nonce === "string"
    ) {
      return value as Holder;
    }
  } catch {
    // Half-written, or not ours: judged by its age below.
  }
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The lock file's text, or undefined if there is none. */
async function readLock(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function tryCreate(path: string, text: string): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  try {
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
  return true;
}

async function removeIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/** Whether the lock text `text` (read at `readAt`) belongs to a holder that is gone. */
function isStale(text: string, readAt: number, firstSeen: Map<string, number>): boolean {
  const holder = parseHolder(text);
  if (holder) return holder.host === hostname() && !isAlive(holder.pid);
  // Unreadable: stale once it has stayed the same for the grace period.
  const seen = firstSeen.get(text) ?? readAt;
  firstSeen.set(text, seen);
  return readAt - seen >= UNREADABLE_GRACE_MS;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Removes the lock at `path` if it still holds `staleText`, serialized with other takers-over.
 * False when another taker-over is at it (the caller waits a little before looking again).
 */
async function takeOver(path: string, staleText: string, me: string): Promise<boolean> {
  const guard = `${path}.takeover`;
  if (!(await tryCreate(guard, me))) {
    const text = await readLock(guard);
    const holder = text === undefined ? undefined : parseHolder(text);
    // A guard left by a taker-over that died (see the header); otherwise someone is at it now.
    if (holder && holder.host === hostname() && !isAlive(holder.pid)) await removeIfExists(guard);
    return false;
  }
  try {
    if ((await readLock(path)) === staleText) await removeIfExists(path);
  } finally {
    await removeIfExists(guard);
  }
  return true;
}

/**
 * Runs `update` holding the exclusive lock of `file` (`<file>.lock`), and releases it after,
 * whatever `update` did. Throws E_OPERATIONAL naming the holder if the lock stays taken for
 * `timeoutMs`.
 */
export async function withUpdateLock<T>(
  file: string,
  update: () => Promise<T>,
  options: UpdateLockOptions = {},
): Promise<T> {
  const path = `${file}.lock`;
  const me: Holder = {
    pid: process.pid,
    host: hostname(),
    since: new Date().toISOString(),
    nonce: randomBytes(12).toString("base64url"),
  };
  const text = `${JSON.stringify(me)}\n`;
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const firstSeen = new Map<string, number>();
  let wait = 2;
  for (;;) {
    if (await tryCreate(path, text)) break;
    const found = await readLock(path);
    if (found === undefined) continue; // Released in between.
    const now = Date.now();
    if (isStale(found, now, firstSeen) && (await takeOver(path, found, text))) continue;
    if (now >= deadline) {
      const holder = parseHolder(found);
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        `${file} is being changed by ${holder ? `process ${holder.pid} on ${holder.host} since ${holder.since}` : "another process"}; ` +
          `try again. If no such process is running, remove ${path}.`,
      );
    }
    // Jitter, so waiters that lost together do not retry together.
    await sleep(wait + Math.random() * wait);
    wait = Math.min(wait * 2, 50);
  }
  try {
    return await update();
  } finally {
    // Ours unless someone judged it stale, which they cannot while this process lives.
    if ((await readLock(path)) === text) await removeIfExists(path);
  }
}
