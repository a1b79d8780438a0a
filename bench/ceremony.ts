/**
 * Round benchmark (issue 2). Measures, in one run:
 *
 * - the baseline: one bare RSA-OAEP-3072 decryption with the server's key, and the server's pure
 *   cryptographic cost per contribution (Ed25519 verify + RSA-OAEP unwrap + AES-GCM open, i.e.
 *   exactly the crypto the server must do), measured back to back on ready-made contributions;
 * - round latency (median, p95) for 1, 8, 64 and 256 contributors over real loopback WebSockets,
 *   the contributors running in a separate process (so their CPU is not the server's);
 * - the server process's CPU time per contribution (process.cpuUsage over the rounds);
 * - the 64-contributor round again on a second server that awaits no checkpoint cosignature
 *   (K = 0): what waiting for a witness, and the witnesses' checks, add to a round.
 *
 * Every figure is reported as a ratio to the baseline. Growth is checked by a least-squares fit of
 * server CPU per round against the number of contributors.
 */
import { spawn } from "node:child_process";
import { constants, privateDecrypt } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AdminClient } from "../src/client/admin-client.js";
import { fromBase64url, toBase64url } from "../src/crypto/base64url.js";
import { openEnvelope, sealEnvelope } from "../src/crypto/envelope.js";
import { osRandom } from "../src/crypto/random.js";
import { generateIdentity, signMessage, verifySignature } from "../src/crypto/signature.js";
import { createLogger, silentLogger } from "../src/logging.js";
import { envelopeToWire } from "../src/protocol/envelope-wire.js";
import {
  contributionAad,
  contributionCommitment,
  revealSignedData,
} from "../src/protocol/signed-data.js";
import { issueEnrollmentToken } from "../src/server/enrollment.js";
import { loadOrCreateServerIdentity } from "../src/server/identity.js";
import { ADMIN_TOKEN_FILE, loadOrCreateKeyFile, startServer } from "../src/server/runtime.js";
import { fmt, linearFit, median, percentile, ratio, table, timeRuns } from "./stats.js";

export interface CeremonyBenchOptions {
  /** Progress lines (to standard error by default). */
  progress?: (line: string) => void;
  sizes?: number[];
  /** Rounds measured per size (after one warm-up round). */
  rounds?: (n: number) => number;
  /** Sizes measured again on a server that awaits no cosignature (K = 0); default [64]. */
  unwitnessedSizes?: number[];
}

type Row = CeremonyBenchResult["rows"][number];

/**
 * `rounds` rounds (after a warm-up one) of `n` contributors, a swarm process of its own, against
 * `running`; the row and the server's CPU per round.
 */
async function measureRounds(
  running: Awaited<ReturnType<typeof startServer>>,
  admin: AdminClient,
  n: number,
  rounds: number,
  root: string,
  progress: (line: string) => void,
  floor: { rsaDecryptMs: number; cryptoPerContributionMs: number; cores: number },
  label = "",
): Promise<{ row: Row; cpuMsPerRound: number }> {
  const tokens = await Promise.all(
    Array.from({ length: n }, async () => (await issueEnrollmentToken(running.dataDir)).token),
  );
  progress(`${label}${n} contributors: starting the swarm`);
  const swarm = spawn(process.execPath, [SWARM], { stdio: ["pipe", "pipe", "inherit"] });
  swarm.stdin.write(
    `${JSON.stringify({ url: running.url, tokens, root: join(root, `swarm-${label}${n}`) })}\n`,
  );
  await new Promise<void>((resolve, reject) => {
    let out = "";
    swarm.stdout.on("data", (d) => {
      out += d;
      if (out.includes("ready")) resolve();
    });
    swarm.on("exit", (code) => reject(new Error(`swarm exited ${code}`)));
  });
  while ((await admin.status()).contributors.length !== n)
    await new Promise((r) => setTimeout(r, 20));

  progress(`${label}${n} contributors: joined; measuring rounds`);
  await admin.generate("otp", {}); // warm-up
  const latencies: number[] = [];
  // Contributors that miss a phase's deadline are left out of that round, which still completes;
  // the table says so rather than dropping the whole section.
  let fewest = n;
  const cpuStart = process.cpuUsage();
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    const record = await admin.generate("otp", {});
    latencies.push(performance.now() - start);
    fewest = Math.min(fewest, record.participants.length);
  }
  const cpu = process.cpuUsage(cpuStart);
  const cpuMsPerRound = (cpu.user + cpu.system) / 1000 / rounds;
  const medianMs = median(latencies);
  swarm.stdin.end();
  await new Promise((resolve) => swarm.on("close", resolve));
  while ((await admin.status()).contributors.length !== 0)
    await new Promise((r) => setTimeout(r, 20));
  return {
    row: {
      n,
      fewest,
      medianMs,
      p95Ms: percentile(latencies, 95),
      cpuPerContributionMs: cpuMsPerRound / n,
      latencyVsLowerBound: medianMs / (n * floor.cryptoPerContributionMs),
      latencyVsFloor: medianMs / ((n * floor.rsaDecryptMs) / floor.cores),
    },
    cpuMsPerRound,
  };
}

export interface CeremonyBenchResult {
  rsaDecryptMs: number;
  cryptoPerContributionMs: number;
  rows: {
    n: number;
    /** The fewest contributors that took part in one of the measured rounds (n when all did). */
    fewest: number;
    medianMs: number;
    p95Ms: number;
    cpuPerContributionMs: number;
    latencyVsLowerBound: number;
    /** Median latency ÷ (n RSA-OAEP decryptions spread over the cores). */
    latencyVsFloor: number;
  }[];
  fit: { slope: number; intercept: number; r2: number };
  report: string;
}

const SWARM = fileURLToPath(new URL("./swarm.js", import.meta.url));

export async function benchCeremony(
  options: CeremonyBenchOptions = {},
): Promise<CeremonyBenchResult> {
  const sizes = options.sizes ?? [1, 8, 64, 256];
  const progress = options.progress ?? ((line: string) => process.stderr.write(`  ${line}\n`));
  const roundsFor = options.rounds ?? ((n: number) => (n >= 256 ? 10 : n >= 64 ? 15 : 25));
  const unwitnessedSizes = options.unwitnessedSizes ?? [64];
  const root = await mkdtemp(join(tmpdir(), "dkeygen-bench-"));
  const cores = availableParallelism();
  const running = await startServer({
    dataDir: join(root, "server"),
    port: 0,
    logger: process.env.DKEYGEN_BENCH_DEBUG
      ? createLogger({ format: "pretty", level: "debug" })
      : silentLogger,
    allowQuorumOfOne: true,
    http: false,
    config: { quorum: 1, roundTimeoutMs: 60_000, maxParticipants: 256 },
  });
  try {
    // ---- baseline ------------------------------------------------------------------------
    const { privateKey, publicKey } = (await loadOrCreateServerIdentity(running.dataDir)).identity;
    const fingerprint = running.fingerprint;
    const identity = generateIdentity();
    const samples = 300;
    const made = Array.from({ length: samples }, (_, i) => {
      const roundId = toBase64url(osRandom(16));
      const aad = contributionAad(roundId, `SHA256:${"A".repeat(43)}`, fingerprint);
      const sealed = sealEnvelope(publicKey, osRandom(64), aad);
      const envelope = envelopeToWire(sealed);
      const signed = revealSignedData(
        roundId,
        `SHA256:${"A".repeat(43)}`,
        fingerprint,
        osRandom(32),
        contributionCommitment(roundId, `SHA256:${"A".repeat(43)}`, fingerprint, envelope),
      );
      return {
        i,
        aad,
        envelope,
        signed,
        signature: signMessage(identity.privateKey, signed),
        wrapped: sealed.wrappedKey,
      };
    });
    let k = 0;
    const rsa = await timeRuns(
      () => {
        const m = made[k++ % samples]!;
        privateDecrypt(
          {
            key: privateKey,
            padding: constants.RSA_PKCS1_OAEP_PADDING,
            oaepHash: "sha256",
            oaepLabel: m.aad,
          },
          m.wrapped,
        );
      },
      samples,
      20,
    );
    k = 0;
    const crypto = await timeRuns(
      () => {
        const m = made[k++ % samples]!;
        if (!verifySignature(identity.publicKey, m.signed, m.signature))
          throw new Error("bench: bad signature");
        openEnvelope(
          privateKey,
          {
            wrappedKey: fromBase64url(m.envelope.ek, "ek"),
            iv: fromBase64url(m.envelope.iv, "iv"),
            ciphertext: fromBase64url(m.envelope.ct, "ct"),
            tag: fromBase64url(m.envelope.tag, "tag"),
          },
          m.aad,
        );
      },
      samples,
      20,
    );
    const rsaDecryptMs = median(rsa);
    progress(`baseline measured: RSA-OAEP-3072 decryption ${fmt(median(rsa), 3)}`);
    const cryptoPerContributionMs = median(crypto);

    // ---- rounds --------------------------------------------------------------------------
    const admin = await AdminClient.connect({
      url: running.url,
      token: await loadOrCreateKeyFile(join(running.dataDir, ADMIN_TOKEN_FILE)),
      expectedFingerprint: fingerprint,
    });
    const rows: CeremonyBenchResult["rows"] = [];
    const cpuPerRound: number[] = [];
    const floorOf = { rsaDecryptMs, cryptoPerContributionMs, cores };
    for (const n of sizes) {
      const measured = await measureRounds(
        running,
        admin,
        n,
        roundsFor(n),
        root,
        progress,
        floorOf,
      );
      rows.push(measured.row);
      cpuPerRound.push(measured.cpuMsPerRound);
    }
    admin.close();

    // The same rounds with no cosignature awaited (K = 0, PROTOCOL §15.5): what witnessing adds
    // to a round, on a second server in the same run.
    const unwitnessed: CeremonyBenchResult["rows"] = [];
    if (unwitnessedSizes.length > 0) {
      const k0 = await startServer({
        dataDir: join(root, "server-k0"),
        port: 0,
        logger: silentLogger,
        allowQuorumOfOne: true,
        http: false,
        config: { quorum: 1, roundTimeoutMs: 60_000, maxParticipants: 256, minCosignatures: 0 },
      });
      try {
        const k0Admin = await AdminClient.connect({
          url: k0.url,
          token: await loadOrCreateKeyFile(join(k0.dataDir, ADMIN_TOKEN_FILE)),
          expectedFingerprint: k0.fingerprint,
        });
        for (const n of unwitnessedSizes) {
          unwitnessed.push(
            (await measureRounds(k0, k0Admin, n, roundsFor(n), root, progress, floorOf, "k0-")).row,
          );
        }
        k0Admin.close();
      } finally {
        await k0.stop();
      }
    }

    const fit = linearFit(sizes, cpuPerRound);
    const report = [
      "Round latency and server cost, commit then reveal (contributors in a separate process, loopback WebSockets)",
      `baseline: one RSA-OAEP-3072 decryption = ${fmt(rsaDecryptMs, 3)}; ` +
        `pure crypto per contribution (Ed25519 verify + RSA-OAEP + AES-GCM) = ${fmt(cryptoPerContributionMs, 3)}; ` +
        `floor of a round = n × one decryption ÷ ${cores} cores`,
      "",
      table(
        [
          "contributors",
          "median",
          "p95",
          "median ÷ (n × crypto)",
          "median ÷ floor",
          "server CPU / contribution",
          "÷ RSA decrypt",
        ],
        rows.map((r) => [
          r.fewest === r.n ? String(r.n) : `${r.n} (only ${r.fewest} in a round)`,
          fmt(r.medianMs, 1),
          fmt(r.p95Ms, 1),
          ratio(r.latencyVsLowerBound),
          ratio(r.latencyVsFloor),
          fmt(r.cpuPerContributionMs, 3),
          ratio(r.cpuPerContributionMs / rsaDecryptMs),
        ]),
      ),
      ...(unwitnessed.length === 0
        ? []
        : [
            "",
            "The same with no cosignature awaited (K = 0), a second server in the same run:",
            table(
              ["contributors", "median", "p95", "median ÷ floor", "K = 1 median ÷ K = 0 median"],
              unwitnessed.map((r) => {
                const witnessed = rows.find((w) => w.n === r.n);
                return [
                  r.fewest === r.n ? String(r.n) : `${r.n} (only ${r.fewest} in a round)`,
                  fmt(r.medianMs, 1),
                  fmt(r.p95Ms, 1),
                  ratio(r.latencyVsFloor),
                  witnessed ? ratio(witnessed.medianMs / r.medianMs) : "—",
                ];
              }),
            ),
          ]),
      "",
      // A line through one size is no fit.
      sizes.length < 2
        ? "server CPU per round: one size measured, no fit"
        : `server CPU per round ≈ ${fit.intercept.toFixed(2)} ms + ${fit.slope.toFixed(3)} ms × n ` +
          `(R² = ${fit.r2.toFixed(4)}; slope = ${ratio(fit.slope / rsaDecryptMs)} one RSA decryption)`,
      `target: a 64-contributor round within 1.5× of its floor (64 × one decryption ÷ ${cores} cores) → ` +
        `${ratio(rows.find((r) => r.n === 64)?.latencyVsFloor ?? Number.NaN)}`,
    ].join("\n");
    return { rsaDecryptMs, cryptoPerContributionMs, rows, fit, report };
  } finally {
    await running.stop();
    await rm(root, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await benchCeremony();
  process.stdout.write(`${result.report}\n`);
}
