/**
 * The transparency log's Merkle tree (src/tlog/, issue 13): appends with the root computed after
 * each one, inclusion proofs served at 1,000,000 entries, and an audit that recomputes the root of
 * 1,000,000 entries from their bytes. Baseline: plain SHA-256 of the same entry bytes, in the same
 * run (the least any log must do: hash every entry once).
 *
 * In memory only: what durability adds is measured where the log is stored, not here.
 */
import * as nodeCrypto from "node:crypto";
import { Frontier } from "../src/tlog/frontier.js";
import { MemoryHashStore } from "../src/tlog/hash-store.js";
import { hashesEqual, hashLeaf, verifyInclusion } from "../src/tlog/merkle.js";
import { percentile, ratio, table } from "./stats.js";

export interface TlogBenchOptions {
  /** Log size for proofs and the audit (default 1,000,000). */
  entries?: number;
  /** Bytes per entry (default 1,024: a round entry with its commitment set is about that). */
  entryBytes?: number;
  /** Inclusion proofs timed (default 10,000). */
  proofs?: number;
  progress?: (line: string) => void;
}

const oneShot = (nodeCrypto as { hash?: typeof nodeCrypto.hash }).hash;
const sha256 = (data: Uint8Array) =>
  typeof oneShot === "function"
    ? oneShot("sha256", data, "buffer")
    : nodeCrypto.createHash("sha256").update(data).digest();

/** Entry i: `entryBytes` bytes, its index in the first eight (one buffer, rewritten). */
function entries(entryBytes: number) {
  const buffer = new Uint8Array(entryBytes).fill(0x5a);
  const view = new DataView(buffer.buffer);
  return (i: number) => {
    view.setFloat64(0, i);
    return buffer;
  };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const micro = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;

export async function benchTlog(options: TlogBenchOptions = {}): Promise<{ report: string }> {
  const n = options.entries ?? 1_000_000;
  const entryBytes = options.entryBytes ?? 1024;
  const proofCount = options.proofs ?? 10_000;
  const entry = entries(entryBytes);

  options.progress?.(`baseline: SHA-256 of ${n} entries of ${entryBytes} bytes`);
  for (let i = 0; i < 10_000; i++) sha256(entry(i));
  let start = performance.now();
  for (let i = 0; i < n; i++) sha256(entry(i));
  const baselineMs = performance.now() - start;
  const baselinePerEntry = baselineMs / n;

  options.progress?.(`appending ${n} entries to the hash store, root after each`);
  const store = new MemoryHashStore();
  start = performance.now();
  let root: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < n; i++) {
    store.append(hashLeaf(entry(i)));
    root = store.root();
  }
  const appendMs = performance.now() - start;
  const appendPerEntry = appendMs / n;

  options.progress?.(`${proofCount} inclusion proofs at ${n} entries`);
  const proofTimes: number[] = [];
  const verifyTimes: number[] = [];
  for (let k = 0; k < proofCount; k++) {
    const index = (k * 7_919_993) % n;
    const t0 = performance.now();
    const proof = store.inclusionProof(index, n);
    const t1 = performance.now();
    verifyInclusion(index, n, store.node(0, index), proof, root);
    verifyTimes.push(performance.now() - t1);
    proofTimes.push(t1 - t0);
  }

  options.progress?.(`audit: recomputing the root of ${n} entries from their bytes`);
  start = performance.now();
  const frontier = new Frontier();
  for (let i = 0; i < n; i++) frontier.append(hashLeaf(entry(i)));
  const audited = frontier.root();
  const auditMs = performance.now() - start;
  if (!hashesEqual(audited, root)) throw new Error("the audit's root differs from the log's");

  const p50 = percentile(proofTimes, 50);
  const p99 = percentile(proofTimes, 99);
  const report = [
    `Merkle log of ${n} entries of ${entryBytes} bytes, in memory; baseline: SHA-256 of the same`,
    `entry bytes in the same run, ${micro(baselinePerEntry)} per entry (${seconds(baselineMs)} for all)`,
    "",
    table(
      ["measure", "value", "÷ baseline", "target"],
      [
        [
          "append + root after it, per entry",
          `${micro(appendPerEntry)} (${Math.round(1000 / appendPerEntry)}/s)`,
          ratio(appendPerEntry / baselinePerEntry),
          "≥ 1,000/s",
        ],
        [`inclusion proof at ${n}, p50`, micro(p50), ratio(p50 / baselinePerEntry), "p99 ≤ 2 ms"],
        [
          `inclusion proof at ${n}, p99`,
          micro(p99),
          ratio(p99 / baselinePerEntry),
          `${ratio(p99 / 2)} of 2 ms`,
        ],
        [
          "verifying one proof, p50",
          micro(percentile(verifyTimes, 50)),
          ratio(percentile(verifyTimes, 50) / baselinePerEntry),
          "",
        ],
        [
          `audit: root of all ${n} entries`,
          seconds(auditMs),
          ratio(auditMs / baselineMs),
          `≤ 10 s (${ratio(auditMs / 10_000)})`,
        ],
      ],
    ),
    "",
    "÷ baseline of a proof: its time over one entry's SHA-256; of the audit: over hashing every entry once.",
  ].join("\n");
  return { report };
}
