/**
 * The soak's server (issue 17): `dkeygen server` itself, run in this process through the CLI's
 * own entry (src/cli/program.ts `main`, the same option parsing and runtime), plus one JSON line
 * on standard output every SOAK_STATS_MS (default 10,000) ms:
 *
 *   {"type":"soak.stats","ms":…,"rss":…,"heapUsed":…,"heapTotal":…,"external":…,
 *    "cpuUs":…,"storeBytes":…,"liveRecords":…}
 *
 * ms since the server started; memory in bytes (process.memoryUsage()); cpuUs the process's CPU
 * time so far, every thread (user + system, µs); storeBytes the key_store file's size (null on
 * another store); liveRecords the store's `liveRecords` count when it has one (null otherwise).
 *
 *   node dist/bench/soak-server.js [dkeygen server flags…]
 *
 * Every argument goes to `dkeygen server` as given (flags it does not know are its usage error).
 * soak-hooks.ts points the CLI's import of the runtime at soak-runtime.ts, which hands over the
 * RunningServer; so the hooks are registered before anything of the CLI is imported.
 */
import { stat } from "node:fs/promises";
import { register } from "node:module";
import { join } from "node:path";

register("./soak-hooks.js", import.meta.url, {
  data: {
    runtime: new URL("../src/server/runtime.js", import.meta.url).href,
    wrapper: new URL("./soak-runtime.js", import.meta.url).href,
  },
});

const { started, KEY_STORE_FILE } = await import("./soak-runtime.js");
const { installSignalHandlers } = await import("../src/cli/signals.js");
const { main } = await import("../src/cli/program.js");

export interface SoakStats {
  type: "soak.stats";
  ms: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  cpuUs: number;
  storeBytes: number | null;
  liveRecords: number | null;
}

const everyMs = Number(process.env.SOAK_STATS_MS ?? 10_000);
if (!Number.isFinite(everyMs) || everyMs < 100) {
  process.stderr.write(`soak-server: SOAK_STATS_MS must be a number of ms ≥ 100, not ${everyMs}\n`);
  process.exit(2);
}

async function fileSize(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

let timer: NodeJS.Timeout | undefined;
function startReporting(running: Awaited<typeof started>): void {
  const since = performance.now();
  const storePath = join(running.dataDir, KEY_STORE_FILE);
  let busy = false;
  const sample = async () => {
    // One sample at a time: a slow stat (a busy disk) skips a tick instead of piling up.
    if (busy) return;
    busy = true;
    try {
      const memory = process.memoryUsage();
      const cpu = process.cpuUsage();
      const live = (running.store as unknown as { liveRecords?: unknown }).liveRecords;
      const line: SoakStats = {
        type: "soak.stats",
        ms: Math.round(performance.now() - since),
        rss: memory.rss,
        heapUsed: memory.heapUsed,
        heapTotal: memory.heapTotal,
        external: memory.external,
        cpuUs: cpu.user + cpu.system,
        storeBytes: await fileSize(storePath),
        liveRecords: typeof live === "number" ? live : null,
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    } catch (error) {
      process.stderr.write(`soak-server: a stats sample failed: ${(error as Error).message}\n`);
    } finally {
      busy = false;
    }
  };
  // sample() catches its own failures: it never rejects.
  timer = setInterval(sample, everyMs);
  // The server's own handles keep the process alive; the timer must not once they are closed.
  timer.unref();
}
// Resolved once the CLI's start succeeded; never, when it failed (main then returns its status).
started.then(startReporting, () => {});

installSignalHandlers();
const status = await main(["server", ...process.argv.slice(2)]);
clearInterval(timer);
process.exitCode = status;
