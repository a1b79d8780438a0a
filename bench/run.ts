/**
 * `npm run bench`: every benchmark the issues ask for, each reported as ratios against a baseline
 * measured in the same run (these machines are noisy and have 2 cores). Not part of the tests.
 *
 *   node dist/bench/run.js [ceremony|derive|distribution|store|retention|tlog|threshold|postgres|soak ...]
 *   (default: all; `npm run bench -- postgres` runs one section)
 *
 * The soak section runs 3 minutes (1 of warm-up) unless SOAK_MINUTES says otherwise; the long
 * soak is `npm run soak` (bench/soak.ts: 14 minutes, its flags and SOAK_* variables).
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { benchCeremony } from "./ceremony.js";
import { benchDerivations, formatDerivationBenchmark } from "./derive.js";
import { benchDistribution } from "./distribution.js";
import { benchLogAppend } from "./log-append.js";
import { benchLogServe } from "./log-serve.js";
import { benchPostgres } from "./postgres.js";
import { benchRetention } from "./retention.js";
import { benchSoak, soakOptionsFromEnv } from "./soak.js";
import { benchStore } from "./store.js";
import { benchThreshold } from "./threshold.js";
import { benchTlog } from "./tlog.js";

const wanted = new Set(process.argv.slice(2));
const all = wanted.size === 0;
const section = (title: string) => process.stdout.write(`\n=== ${title} ===\n`);

process.stdout.write(
  `dkeygen benchmarks — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${new Date().toISOString()}\n`,
);

if (all || wanted.has("ceremony")) {
  section("Key-generation rounds (issue 2)");
  const result = await benchCeremony();
  process.stdout.write(`${result.report}\n`);
}

if (all || wanted.has("derive")) {
  section("Derivations (issue 3)");
  const result = await benchDerivations({
    runs: 11,
    onProgress: (line) => process.stderr.write(`  ${line}\n`),
  });
  process.stdout.write(`${formatDerivationBenchmark(result)}\n`);
}

if (all || wanted.has("distribution")) {
  section("Key distribution server (issue 4)");
  const result = await benchDistribution();
  process.stdout.write(`${result.report}\n`);
}

if (all || wanted.has("postgres")) {
  section("PostgreSQL store and distributors side by side (issue 15)");
  const result = await benchPostgres({ progress: (line) => process.stderr.write(`  ${line}\n`) });
  process.stdout.write(`${result.report}\n`);
}

if (all || wanted.has("store")) {
  section("Key store: verification lookups as the store grows (issue 4)");
  const result = await benchStore({ progress: (line) => process.stderr.write(`  ${line}\n`) });
  process.stdout.write(`${result.report}\n`);
}

if (all || wanted.has("retention")) {
  section("Key store: memory, disk and compaction under retention (issue 17)");
  const result = await benchRetention({ progress: (line) => process.stderr.write(`  ${line}\n`) });
  process.stdout.write(`${result.report}\n`);
}

if (all || wanted.has("tlog")) {
  section("Transparency log: Merkle tree appends, proofs and audit (issue 13)");
  const result = await benchTlog({ progress: (line) => process.stderr.write(`  ${line}\n`) });
  process.stdout.write(`${result.report}\n`);
  section("Transparency log: durable appends to the key store (issue 13)");
  const appends = await benchLogAppend({
    progress: (line) => process.stderr.write(`  ${line}\n`),
  });
  process.stdout.write(`${appends.report}\n`);
  section("Transparency log: inclusion proofs served over HTTP (issue 13)");
  const served = await benchLogServe({ progress: (line) => process.stderr.write(`  ${line}\n`) });
  process.stdout.write(`${served.report}\n`);
  section("Transparency log: auditing it (dkeygen audit log's verifier, issue 13)");
  // Its own process: it spreads over worker threads, and its heap (a million entries) goes
  // with it.
  const audit = spawnSync(
    process.execPath,
    [fileURLToPath(new URL("./audit-log.js", import.meta.url))],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  if (audit.status !== 0) throw new Error(`bench/audit-log.js exited ${audit.status}`);
}

if (all || wanted.has("threshold")) {
  section("Threshold keys: DKG and FROST signing (issue 14)");
  const result = await benchThreshold({ progress: (line) => process.stderr.write(`  ${line}\n`) });
  process.stdout.write(`${result.report}\n`);
}

if (all || wanted.has("soak")) {
  section("Soak: memory, disk and rate under sustained OTP load (issue 17)");
  const result = await benchSoak(soakOptionsFromEnv({ minutes: 3 }));
  process.stdout.write(`${result.report}\n`);
}
