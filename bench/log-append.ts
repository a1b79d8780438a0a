/**
 * The transparency log as the server keeps it (issue 13): entries appended to the `key_store` file
 * (durable: each acknowledged only after fdatasync) with a checkpoint signed after each batch, by
 * src/server/transparency-log.ts, one at a time (as one round closes after another) and with many
 * in flight (as rounds close together; group commit shares an fsync between them). Baseline in
 * the same run: appending the same entries as plain lines to a file with one fdatasync each — the
 * least a durable log must do.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toBase64url } from "../src/crypto/base64url.js";
import { identityFromPrivateKey } from "../src/server/identity.js";
import { TransparencyLog } from "../src/server/transparency-log.js";
import { FileKeyStore } from "../src/store/file.js";
import { ratio, table } from "./stats.js";

export interface LogAppendBenchOptions {
  /** Entries appended one at a time (default 300). */
  sequential?: number;
  /** Entries appended with `inFlight` of them outstanding (default 5,000). */
  concurrent?: number;
  inFlight?: number;
  /** Bytes per entry (default 1,500: a round of three contributors is about that). */
  entryBytes?: number;
  progress?: (line: string) => void;
}

/** A leaf shaped like a round entry (the log finds each entry's round id in it). */
function leaf(bytes: number): { leaf: Uint8Array; roundId: string } {
  const roundId = toBase64url(randomBytes(16));
  const head = `{"accepted":3,"roundId":"${roundId}","x":"`;
  const text = `${head}${"a".repeat(Math.max(0, bytes - head.length - 2))}"}`;
  return { leaf: new TextEncoder().encode(text), roundId };
}

export async function benchLogAppend(
  options: LogAppendBenchOptions = {},
): Promise<{ report: string }> {
  const sequential = options.sequential ?? 300;
  const concurrent = options.concurrent ?? 5000;
  const inFlight = options.inFlight ?? 64;
  const entryBytes = options.entryBytes ?? 1500;
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-bench-log-"));
  try {
    options.progress?.(`baseline: ${sequential} lines of ${entryBytes} bytes, fdatasync each`);
    const plain = await open(join(dir, "plain"), "a");
    const line = Buffer.alloc(entryBytes, 0x61);
    line[entryBytes - 1] = 0x0a;
    let start = performance.now();
    for (let i = 0; i < sequential; i++) {
      await plain.write(line);
      await plain.datasync();
    }
    const baselineMs = (performance.now() - start) / sequential;
    await plain.close();

    const identity = identityFromPrivateKey(
      generateKeyPairSync("rsa", { modulusLength: 3072 }).privateKey,
    );
    const store = new FileKeyStore({ path: join(dir, "key_store"), storeKey: randomBytes(32) });
    await store.open();
    const log = new TransparencyLog(store, identity);
    await log.ready();

    options.progress?.(`${sequential} log appends one at a time`);
    start = performance.now();
    for (let i = 0; i < sequential; i++) {
      const e = leaf(entryBytes);
      await log.append(e.leaf, e.roundId);
    }
    const oneMs = (performance.now() - start) / sequential;

    options.progress?.(`${concurrent} log appends, ${inFlight} in flight`);
    const leaves = Array.from({ length: concurrent }, () => leaf(entryBytes));
    start = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < leaves.length) {
        const e = leaves[next++]!;
        await log.append(e.leaf, e.roundId);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    const manyMs = (performance.now() - start) / concurrent;
    if (log.size !== sequential + concurrent) throw new Error("the log lost entries");
    const stats = store.commitStats;
    await store.close();

    const perSecond = (ms: number) => `${Math.round(1000 / ms).toLocaleString("en-US")}/s`;
    const report = [
      `Durable log appends to the key_store file, a checkpoint signed after each batch made durable together; entries of ${entryBytes} bytes.`,
      `Baseline: one ${entryBytes}-byte line written and fdatasynced, ${baselineMs.toFixed(2)} ms (${perSecond(baselineMs)}).`,
      "",
      table(
        ["appends", "per append", "rate", "÷ baseline", "target"],
        [
          [
            "one at a time",
            `${oneMs.toFixed(2)} ms`,
            perSecond(oneMs),
            ratio(oneMs / baselineMs),
            "",
          ],
          [
            `${inFlight} in flight`,
            `${(manyMs * 1000).toFixed(0)} µs`,
            perSecond(manyMs),
            ratio(manyMs / baselineMs),
            `≥ 1,000/s (${ratio(1000 / manyMs / 1000)})`,
          ],
        ],
      ),
      "",
      `Group commit: ${stats.lines} lines in ${stats.batches} fsyncs (largest batch ${stats.largestBatch}).`,
    ].join("\n");
    return { report };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
