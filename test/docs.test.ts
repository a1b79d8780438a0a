/**
 * The documents stay true to the code where the code can be checked mechanically: every error
 * code and its HTTP status in docs/PROTOCOL.md §11, every message type in §4, the worked example
 * of §5 (against the golden frames), every route of the distribution API in §12.3, the README's
 * two commands.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { DkeygenError, ErrorCodes, httpStatusFor } from "../src/errors.js";
import { REPO_ROOT } from "./helpers/paths.js";

const protocol = readFileSync(`${REPO_ROOT}docs/PROTOCOL.md`, "utf8");

function section(title: string): string {
  const start = protocol.indexOf(`\n## ${title}`);
  assert.ok(start >= 0, `PROTOCOL.md has a section "${title}"`);
  const end = protocol.indexOf("\n## ", start + 1);
  return protocol.slice(start, end < 0 ? undefined : end);
}

test("PROTOCOL.md §11 lists every error code with the HTTP status the code uses, and no other", () => {
  const rows = [...section("11. Error codes").matchAll(/^\| `(E_[A-Z_]+)` \|.*\| (\d{3}) \|$/gm)];
  const documented = new Map(rows.map((m) => [m[1]!, Number(m[2])]));
  const codes = Object.values(ErrorCodes);
  assert.deepEqual([...documented.keys()].sort(), [...codes].sort());
  for (const code of codes) {
    assert.equal(
      documented.get(code),
      httpStatusFor(new DkeygenError(code, "x")),
      `HTTP status of ${code}`,
    );
  }
});

test("PROTOCOL.md §4 lists every wire message type, and no other", async () => {
  const { SCHEMAS } = await import("../src/protocol/messages.js");
  const documented = new Set(
    [
      ...section("4. Messages")
        .split("### 4.1")[0]!
        .matchAll(/^\| `([a-z0-9.]+)` \|/gm),
    ].map((m) => m[1]!),
  );
  assert.deepEqual([...documented].sort(), Object.keys(SCHEMAS).sort());
});

test("PROTOCOL.md §4.1 shows the session state machine's table", async () => {
  const { SESSION_ACCEPTS } = await import("../src/protocol/session.js");
  const text = section("4. Messages");
  for (const [state, types] of Object.entries(SESSION_ACCEPTS)) {
    assert.match(text, new RegExp(`^\\| \`${state}\` \\|`, "m"), `state ${state}`);
    for (const type of types) assert.match(text, new RegExp(`\`${type}\``), type);
  }
});

test("PROTOCOL.md §5's worked example is how the golden join LP begins, in this protocol version", async () => {
  const { readGolden } = await import("./helpers/wire-golden.js");
  const { PROTOCOL_VERSION } = await import("../src/protocol/version.js");
  const text = section("5. What is signed");
  const example = text.slice(
    text.indexOf("**Worked example.**"),
    text.indexOf("**A second implementation.**"),
  );
  assert.match(example, new RegExp(`\\(\`len\` 1,\\s+\`V\` = \`"${PROTOCOL_VERSION}"\`\\)`));
  // The hex fields, in order, up to the first that is cut short (…).
  let hex = "";
  for (const [, digits, cut] of example.matchAll(/`([0-9a-f]{8}(?: [0-9a-f]+)?)(…?)`/g)) {
    hex += digits!.replace(" ", "");
    if (cut) break;
  }
  const golden = readGolden();
  assert.equal(golden.version, PROTOCOL_VERSION);
  assert.ok(hex.length >= 2 * (4 + 15 + 4 + 1), `the example shows at least V: ${hex}`);
  assert.ok(golden.lp.join!.startsWith(hex), `${hex} begins ${golden.lp.join!.slice(0, 80)}…`);
});

test("PROTOCOL.md §12.3 lists every route the distribution server serves", async () => {
  const { buildDistributionApp } = await import("../src/server/distribution/app.js");
  const documented = new Set(
    [
      ...section("12. Key distribution HTTP API").matchAll(/^\| `(GET|POST) (\/v1\/[^`]+)` \|/gm),
    ].map((m) => `${m[1]} ${m[2]}`),
  );
  assert.ok(documented.size >= 10);
  // The OpenAPI document does not describe the route that serves it.
  const served = new Set<string>(["GET /v1/openapi.json"]);
  const app = await buildDistributionApp(
    // Routes are registered without touching these; the app is never started.
    {
      store: {} as never,
      requesters: {} as never,
      pool: {} as never,
      rounds: {} as never,
      limiter: {} as never,
      log: {} as never,
      logger: {
        info() {},
        warn() {},
        error() {},
        debug() {},
        isLevelEnabled: () => false,
      } as never,
    },
    {},
  );
  await app.ready();
  const spec = app.swagger() as { paths: Record<string, Record<string, unknown>> };
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const method of Object.keys(methods)) {
      if (method === "get" || method === "post") served.add(`${method.toUpperCase()} ${path}`);
    }
  }
  await app.close();
  assert.deepEqual([...documented].sort(), [...served].sort());
});

test("the README shows the two commands", () => {
  const readme = readFileSync(`${REPO_ROOT}README.md`, "utf8");
  assert.match(readme, /npm install && npm run demo/);
  assert.match(readme, /npm install && npm test/);
});
