/**
 * The layering of docs/ARCHITECTURE.md, enforced: every relative import in src/ goes from a layer
 * to one it may depend on. Inner layers never import outer ones.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "./helpers/paths.js";

const SRC = join(REPO_ROOT, "src");
const SHARED = ["errors", "json", "printable"];

/** Which layers each layer may import (itself always). */
const ALLOWED: Record<string, string[]> = {
  errors: [],
  json: [],
  printable: [],
  logging: ["printable"],
  crypto: [...SHARED],
  datadir: [...SHARED],
  derive: [...SHARED, "crypto"],
  protocol: [...SHARED, "crypto"],
  tlog: [...SHARED],
  // Threshold keys: the DKG and FROST signing, pure, on @noble/curves (derive: its HMAC_DRBG).
  threshold: [...SHARED, "crypto", "derive"],
  store: [...SHARED, "crypto", "datadir"],
  transport: [...SHARED, "protocol"],
  server: [
    ...SHARED,
    "logging",
    "crypto",
    "datadir",
    "derive",
    "protocol",
    "store",
    "transport",
    "tlog",
    "threshold",
  ],
  client: [
    ...SHARED,
    "logging",
    "crypto",
    "datadir",
    "derive",
    "protocol",
    "transport",
    "tlog",
    "threshold",
  ],
  // The log auditor: checks what a server publishes with the server's own formats (its log's
  // origin and identity layout come from server/transparency-log.ts), never its state; a record's
  // audit re-runs the record's derivation; a threshold session's entry is checked with the
  // threshold layer's session ids and signed data.
  audit: [...SHARED, "crypto", "derive", "protocol", "tlog", "server", "threshold"],
  cli: [
    ...SHARED,
    "logging",
    "crypto",
    "datadir",
    "derive",
    "protocol",
    "store",
    "transport",
    "server",
    "client",
    "audit",
    "threshold",
  ],
  index: ["*"],
};

function layerOf(path: string): string {
  const first = relative(SRC, path).split("/")[0]!;
  return first.replace(/\.ts$/, "");
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith(".ts") ? [path] : [];
  });
}

test("no module imports a layer outside those its own layer may depend on", () => {
  const violations: string[] = [];
  let checked = 0;
  for (const file of sources(SRC)) {
    const from = layerOf(file);
    const allowed = ALLOWED[from];
    assert.ok(allowed, `${relative(REPO_ROOT, file)} is in no known layer`);
    for (const [, spec] of readFileSync(file, "utf8").matchAll(/from "(\.{1,2}\/[^"]+)"/g)) {
      const to = layerOf(join(file, "..", spec!.replace(/\.js$/, ".ts")));
      checked++;
      if (to !== from && !allowed.includes("*") && !allowed.includes(to)) {
        violations.push(`${relative(REPO_ROOT, file)} (${from}) imports ${spec} (${to})`);
      }
    }
  }
  assert.ok(checked > 100);
  assert.deepEqual(violations, []);
});

/**
 * The distribution server stands alone (issue 15 part 5): `dkeygen distributor` serves the HTTP
 * API beside a key generation server in another process, so nothing under
 * src/server/distribution/ may reach, through any chain of imports (types included), the key
 * generation server's connections, rounds, admin session or threshold coordinators.
 */
const KEYGEN_SERVER_ONLY = [
  "server/keygen-server.ts",
  "server/peer-errors.ts",
  "server/threshold-sessions.ts",
  "server/round-runner.ts",
  "server/round-phases.ts",
  "server/round-closing.ts",
  "server/running-round.ts",
  "server/admin-commands.ts",
  "server/admin-threshold-commands.ts",
  "server/admin-session.ts",
  "server/handshake.ts",
  "server/dkg-coordinator.ts",
  "server/sign-coordinator.ts",
  "server/refresh-coordinator.ts",
  "server/recovery-coordinator.ts",
];

/** The relative imports of `file` (import and export … from, `import type` included). */
function importsOf(file: string): string[] {
  return [...readFileSync(file, "utf8").matchAll(/from "(\.{1,2}\/[^"]+)"/g)].map(([, spec]) =>
    join(file, "..", spec!.replace(/\.js$/, ".ts")),
  );
}

/** Every chain of imports from `start` to a module in `forbidden` (a shortest one per module). */
function forbiddenChains(start: string, forbidden: Set<string>): string[] {
  const chains: string[] = [];
  // Breadth first, so the chain reported is a shortest one.
  const via = new Map<string, string | undefined>([[start, undefined]]);
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const next of importsOf(file)) {
      if (via.has(next)) continue;
      via.set(next, file);
      if (forbidden.has(next)) {
        const chain = [next];
        for (let at = via.get(next); at !== undefined; at = via.get(at)) chain.unshift(at);
        chains.push(chain.map((f) => relative(SRC, f)).join(" → "));
      } else queue.push(next);
    }
  }
  return chains;
}

function keygenServerOnly(): Set<string> {
  const forbidden = new Set(KEYGEN_SERVER_ONLY.map((path) => join(SRC, path)));
  for (const path of forbidden) assert.ok(statSync(path).isFile(), `${path} exists`);
  return forbidden;
}

test("nothing under src/server/distribution/ imports the key generation server, even through other modules", () => {
  const forbidden = keygenServerOnly();
  const distribution = sources(join(SRC, "server", "distribution"));
  assert.ok(distribution.length > 10);
  assert.deepEqual(
    distribution.flatMap((start) => forbiddenChains(start, forbidden)),
    [],
  );
});

test("dkeygen distributor (src/cli/commands/distributor.ts) and everything it imports reach no module of the key generation server, nor its runtime", () => {
  const forbidden = keygenServerOnly();
  forbidden.add(join(SRC, "server", "runtime.ts"));
  const start = join(SRC, "cli", "commands", "distributor.ts");
  // The chain walker itself finds the server from its command: the test can fail.
  assert.notDeepEqual(forbiddenChains(join(SRC, "cli", "commands", "server.ts"), forbidden), []);
  assert.deepEqual(forbiddenChains(start, forbidden), []);
});

test("no route file of the distribution server imports another: what two routes share is a module", () => {
  const routes = join(SRC, "server", "distribution", "routes");
  const violations = sources(routes).flatMap((file) =>
    importsOf(file)
      .filter((to) => relative(routes, to).split("/").length === 1)
      .map((to) => `${relative(SRC, file)} imports ${relative(SRC, to)}`),
  );
  assert.deepEqual(violations, []);
});
