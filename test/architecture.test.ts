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
