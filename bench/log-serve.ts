/**
 * Inclusion proofs served by the distribution server (issue 13: p99 ≤ 2 ms): the real Fastify app
 * (src/server/distribution/app.ts) on loopback over a log of 1,000,000 entries, asked one proof at a
 * time, each for a random entry at the full size, over one keep-alive connection. Baseline in the
 * same run, on the same connection: GET /v1/health, the app's cheapest route, so the ratio is what a
 * proof adds to any request's cost.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toBase64url } from "../src/crypto/base64url.js";
import { createLogger } from "../src/logging.js";
import { buildDistributionApp } from "../src/server/distribution/app.js";
import { MemoryAttemptLimiter } from "../src/server/distribution/attempts.js";
import { OtpPool } from "../src/server/distribution/otp-pool.js";
import { identityFromPrivateKey } from "../src/server/identity.js";
import { RequesterRegistry } from "../src/server/requesters.js";
import { TransparencyLog } from "../src/server/transparency-log.js";
import { MemoryKeyStore } from "../src/store/memory.js";
import { percentile, ratio, table } from "./stats.js";

export interface LogServeBenchOptions {
  /** Log size (default 1,000,000). */
  entries?: number;
  /** Proofs asked for (default 5,000), and as many health checks. */
  requests?: number;
  progress?: (line: string) => void;
}

function get(agent: Agent, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request({ host: "127.0.0.1", port, path, agent }, (res) => {
      res.resume();
      res.on("end", () =>
        res.statusCode === 200
          ? resolve(performance.now() - started)
          : reject(new Error(`${path}: HTTP ${res.statusCode}`)),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

export async function benchLogServe(
  options: LogServeBenchOptions = {},
): Promise<{ report: string }> {
  const n = options.entries ?? 1_000_000;
  const count = options.requests ?? 5000;
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-bench-serve-"));
  const logger = createLogger({ level: "silent" });
  try {
    options.progress?.(`a log of ${n} entries`);
    const store = new MemoryKeyStore();
    await store.open();
    // Small entries: what is measured is the proof, not the entry's size.
    for (let i = 0; i < n; i++) {
      const id = new Uint8Array(16);
      new DataView(id.buffer).setUint32(12, i);
      await store.appendLogEntry(
        new TextEncoder().encode(`{"roundId":"${toBase64url(id)}","n":${i}}`),
      );
    }
    const identity = identityFromPrivateKey(
      generateKeyPairSync("rsa", { modulusLength: 3072 }).privateKey,
    );
    const log = new TransparencyLog(store, identity);
    await log.ready();
    const rounds = {
      connectedContributors: [],
      runRound: () => Promise.reject(new Error("no rounds in this benchmark")),
      runBatchRound: () => Promise.reject(new Error("no rounds in this benchmark")),
    };
    const app = await buildDistributionApp(
      {
        store,
        requesters: await RequesterRegistry.load(dir),
        pool: new OtpPool({ store, rounds, size: 0, digits: 6, logger }),
        rounds,
        limiter: new MemoryAttemptLimiter({ maxFailures: 5, lockMs: 60_000 }),
        logger,
        log,
      },
      // The per-address rate limit is for the open internet, not for a benchmark of one client.
      { rateLimitPerAddress: 0 },
    );
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const health: number[] = [];
      const proofs: number[] = [];
      for (let i = 0; i < 200; i++) {
        await get(agent, port, "/v1/health");
        await get(agent, port, `/v1/log/proof/inclusion?index=${i}&size=${n}`);
      }
      options.progress?.(`${count} inclusion proofs and ${count} health checks, interleaved`);
      for (let i = 0; i < count; i++) {
        health.push(await get(agent, port, "/v1/health"));
        const index = randomBytes(4).readUInt32BE() % n;
        proofs.push(await get(agent, port, `/v1/log/proof/inclusion?index=${index}&size=${n}`));
      }
      const ms = (x: number) => `${x.toFixed(3)} ms`;
      const rows = [50, 90, 99].map((p) => {
        const proof = percentile(proofs, p);
        const base = percentile(health, p);
        return [
          `p${p}`,
          ms(proof),
          ms(base),
          ratio(proof / base),
          p === 99 ? `≤ 2 ms (${ratio(proof / 2)})` : "",
        ];
      });
      const report = [
        `Inclusion proofs served over HTTP (loopback, one keep-alive connection) from a log of ${n.toLocaleString("en-US")} entries;`,
        "baseline: GET /v1/health on the same connection, interleaved, in the same run.",
        "",
        table(["latency", "inclusion proof", "health", "÷ baseline", "target"], rows),
      ].join("\n");
      return { report };
    } finally {
      agent.destroy();
      await app.close();
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
