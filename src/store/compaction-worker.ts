/**
 * The compaction thread (a worker_threads worker) of the `key_store` file. A compaction reads
 * and verifies every line of the old file and writes the live ones under a fresh MAC chain:
 * seconds of CPU per hundred megabytes. Run on the store's own thread it took the core that
 * serves requests (p99 2.4× during a compaction); here it takes another, and the main thread
 * keeps only the switch, with writes held.
 *
 * The conversation (CompactionIn / CompactionOut), one job per thread:
 * 1. The thread scans the old file for the ids retired before the cutoff, says `scanned`, and
 *    waits for `go`.
 * 2. It writes the compacted line, copies the old file and catches up with what was written
 *    meanwhile, fsyncs, says `copied` and waits for `finish`: the main thread holds writes and
 *    lets the last lines reach the file first.
 * 3. It copies the old file's last lines, adds the switched line, fsyncs, closes and says
 *    `done` with where the copy ended in both files and where each opening and log entry landed.
 * `stop` at any point removes the new file and ends with `stopped`; any failure removes it and
 * ends with `error` (a code and a message, never key bytes).
 */

import { readlinkSync } from "node:fs";
import { open } from "node:fs/promises";
import { getPriority, setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { DkeygenError, ErrorCodes, isDkeygenError } from "../errors.js";
import type { LineRef } from "./compact-memory.js";
import {
  type ChainCut,
  CompactedFile,
  CompactionStopped,
  type CopiedLines,
  copyLines,
  FILE_START,
  LineFilter,
  pointOf,
  type StopSignal,
  scanRetirements,
} from "./compaction.js";
import { compactedBody, switchedBody } from "./log-format.js";

export interface CompactionJob {
  /** The key_store file, read only here. */
  path: string;
  /** The new file, created here. */
  outPath: string;
  /** The store's MAC key (a copy; wiped here when the job ends). */
  macKey: Uint8Array;
  cutoffMs: number;
  /** The compacted line's `at` and `cutoff`. */
  at: string;
  cutoff: string;
}

export type CompactionIn = { go: true } | { finish: true } | { stop: true };

export interface CompactionDone {
  /** Where the scan stopped in the old file (the compacted line names it). */
  scanned: ChainCut;
  /** The old file's position after its last line copied (the switched line names it). */
  copiedTo: ChainCut;
  /** The new file's position after its switched line. */
  written: ChainCut;
  generation: number;
  dropped: number;
  droppedBytes: number;
  leaves: LineRef[];
  openings: [string, LineRef][];
}

export type CompactionOut =
  | { step: "scanned" }
  | { step: "copied" }
  | { done: CompactionDone }
  | { stopped: true }
  | { error: { code: string; message: string } };

const port = parentPort;
if (!port) throw new Error("compaction-worker.ts runs as a worker thread");

/**
 * The thread's CPU priority, below the serving thread's (nice +10): a compaction is background
 * work, and on a machine whose cores are busy serving it should take what the requests leave
 * rather than a core's share of its own. The held
 * switch waits for it while the serving thread has little to do, so it still gets the CPU
 * then. Linux only: a thread's id is its /proc/thread-self entry, and setpriority on it sets
 * that thread's alone; elsewhere (or if refused) the thread keeps its parent's priority.
 */
const NICE = 10;
function lowerPriority(): void {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (Number.isSafeInteger(tid) && tid > 0 && tid !== process.pid) {
      setPriority(tid, Math.min(19, getPriority(tid) + NICE));
    }
  } catch {
    // Not Linux, or not permitted: the same priority as the serving thread.
  }
}
lowerPriority();

const job = workerData as CompactionJob;
const signal: StopSignal = { stopped: false };
let waiting: ((message: CompactionIn) => void) | undefined;

port.on("message", (message: CompactionIn) => {
  if ("stop" in message) signal.stopped = true;
  const wake = waiting;
  waiting = undefined;
  wake?.(message);
});

/** The next message from the main thread; a stop (now or earlier) ends the job. */
function next(expected: "go" | "finish"): Promise<void> {
  return new Promise((resolve, reject) => {
    const take = (message: CompactionIn) => {
      if ("stop" in message || signal.stopped) reject(new CompactionStopped("stopped"));
      else if (expected in message) resolve();
      else reject(new Error(`the compaction thread expected ${expected}`));
    };
    if (signal.stopped) take({ stop: true });
    else waiting = take;
  });
}

function send(message: CompactionOut): void {
  port!.postMessage(message);
}

async function run(): Promise<CompactionDone> {
  const reader = await open(job.path, "r");
  let out: CompactedFile | undefined;
  try {
    const scan = await scanRetirements(reader, job.path, job.cutoffMs, signal);
    send({ step: "scanned" });
    await next("go");
    out = await CompactedFile.create(job.outPath, job.macKey);
    const generation = scan.generation + 1;
    await out.add(compactedBody(job.at, pointOf(scan.cut), scan.drop.size, job.cutoff, generation));
    const filter = new LineFilter(scan.drop, scan.dropRounds);
    const copied: CopiedLines = { openings: new Map(), leaves: [] };
    const copy = (from: ChainCut) =>
      copyLines(reader, job.path, job.macKey, from, filter, out!, copied, signal);
    let cut = await copy(FILE_START);
    // Catch up with what was written meanwhile, until little is left for the held switch.
    for (let round = 0; round < 8; round++) {
      const before = cut.bytes;
      cut = await copy(cut);
      if (cut.bytes - before < 256 * 1024) break;
    }
    // The bulk made durable while the store serves (seconds for a large file), then what came
    // in meanwhile, each turn synced too: the held switch is left with a few lines to copy and
    // a small sync, not the writes of the whole bulk sync.
    await out.sync();
    for (let round = 0; round < 4; round++) {
      const before = cut.bytes;
      cut = await copy(cut);
      await out.sync();
      if (cut.bytes - before < 64 * 1024) break;
    }
    send({ step: "copied" });
    await next("finish");
    cut = await copy(cut);
    await out.add(switchedBody(pointOf(cut)));
    await out.sync();
    await out.close();
    return {
      scanned: scan.cut,
      copiedTo: cut,
      written: out.cut,
      generation,
      dropped: scan.drop.size,
      droppedBytes: filter.droppedBytes,
      leaves: copied.leaves,
      openings: [...copied.openings],
    };
  } catch (error) {
    await out?.discard();
    throw error;
  } finally {
    await reader.close().catch(() => {});
  }
}

/** Runs the job and says how it ended; never rejects. */
async function main(): Promise<void> {
  try {
    send({ done: await run() });
  } catch (error) {
    if (error instanceof CompactionStopped) send({ stopped: true });
    else {
      const known = isDkeygenError(error)
        ? error
        : new DkeygenError(
            ErrorCodes.OPERATIONAL,
            `Compacting ${job.path} failed: ${(error as Error)?.message ?? String(error)}`,
          );
      send({ error: { code: known.code, message: known.message } });
    }
  } finally {
    job.macKey.fill(0);
    port?.close();
  }
}

await main();
