/**
 * The documents stay true to the code where the code can be checked mechanically: every error
 * code and its HTTP status in docs/PROTOCOL.md §11, every message type in §4, the worked example
 * of §5 (against the golden frames), every route of the distribution API in §12.3, the README's
 * two commands, and the checkout's .gitignore keeping out what the README's examples make.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
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

/**
 * The README's shell examples, one command a line: ```sh blocks and 4-space indented blocks,
 * continued lines joined, comments dropped.
 */
function readmeShellLines(readme: string): string[] {
  const lines: string[] = [];
  let fence: "sh" | "other" | undefined;
  let previousBlank = true;
  let indented = false;
  for (const line of readme.split("\n")) {
    if (/^```/.test(line)) {
      fence = fence !== undefined ? undefined : /^```(sh|bash)?\s*$/.test(line) ? "sh" : "other";
    } else if (fence === "sh") {
      lines.push(line);
    } else if (fence === undefined) {
      // An indented block starts after a blank line; a paragraph's indented line is not one.
      indented = /^ {4}\S/.test(line) && (indented || previousBlank);
      if (indented) lines.push(line.slice(4));
    }
    previousBlank = line.trim() === "";
  }
  return lines
    .join("\n")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.replace(/(^|\s)#.*$/, "").trim())
    .filter(Boolean);
}

/** Options whose value is a folder the command makes or keeps data in. */
const FOLDER_OPTIONS = new Set(["--data-dir", "--from"]);
/** Options whose value is a file the command writes, or a secret file kept beside the others. */
const FILE_OPTIONS = new Set([
  "--out",
  "--qr-png",
  "--qr-svg",
  "--save",
  "--export",
  "--tls-cert",
  "--tls-key",
  "--ca",
  "--token-file",
  "--credential-file",
  "--secret-file",
  "--passphrase-file",
  "--key",
  "--store-key-file",
  "--store-head",
]);

/**
 * The paths, relative to the folder they run in, that the README's examples write data to (data
 * folders, --out files, redirections, the local PostgreSQL cluster's folder) or keep secret files
 * in; a folder as "name/". Absolute and home paths, variables and placeholders (FILE, …) are left
 * out: they are not in a checkout the examples might be run in by mistake.
 */
function readmeDataPaths(readme: string): string[] {
  const found = new Set<string>();
  const add = (value: string | undefined, folder: boolean) => {
    if (value === undefined) return;
    const path = value.replace(/^["']|["']$/g, "");
    if (!/^(\.\/)?[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*\/?$/.test(path)) return; // ~, /, $, …, <…>
    if (/^[A-Z_]+$/.test(path) || path === "." || path === "-") return; // FILE, PASSPHRASE_FILE
    const relative = path.replace(/^\.\//, "").replace(/\/$/, "");
    found.add(folder ? `${relative}/` : relative);
  };
  for (const line of readmeShellLines(readme)) {
    const words = line.split(/\s+/);
    words.forEach((word, i) => {
      const [flag, inline] = word.split("=", 2) as [string, string | undefined];
      const value = inline ?? words[i + 1];
      if (FOLDER_OPTIONS.has(flag)) add(value, true);
      else if (FILE_OPTIONS.has(flag)) add(value, false);
      else if (word === ">" || word === ">>") add(words[i + 1], false);
      else if (/(^|\/)scripts\/local-postgres\.sh$/.test(word) && words[i + 1] !== "stop") {
        add(words[i + 1], true);
      }
    });
  }
  return [...found].sort();
}

test("the README's data folders and files would be ignored by git, should its examples be run in the checkout", (t) => {
  const readme = readFileSync(`${REPO_ROOT}README.md`, "utf8");
  const paths = readmeDataPaths(readme);
  // The extraction finds what the examples make: a data folder, an --out file, a redirection.
  for (const expected of ["srv/", "webapp/", "alice.token", "rec.hex", "derived.json"]) {
    assert.ok(paths.includes(expected), `${expected} in ${paths.join(" ")}`);
  }
  const inside = spawnSync("git", ["rev-parse", "--is-inside-work-tree"], {
    cwd: REPO_ROOT,
    encoding: "utf8",
  });
  if (inside.status !== 0 || inside.stdout.trim() !== "true") {
    t.skip("not in a git checkout");
    return;
  }
  // A folder is ignored when a file made in it is.
  const probes = paths.map((path) => (path.endsWith("/") ? `${path}key_store` : path));
  const checked = spawnSync("git", ["check-ignore", "--stdin"], {
    cwd: REPO_ROOT,
    input: probes.join("\n"),
    encoding: "utf8",
  });
  assert.ok(checked.status === 0 || checked.status === 1, checked.stderr);
  const ignored = new Set(checked.stdout.split("\n").filter(Boolean));
  assert.deepEqual(
    probes.filter((probe) => !ignored.has(probe)),
    [],
    "add these to .gitignore (anchored, /name/, for a folder)",
  );
});
