/**
 * The package as `npm pack` makes it (what `npm install -g ./dkeygen-<version>.tgz` installs, the
 * README's install step) runs on its own: its `dkeygen` bin starts from the unpacked tarball, with
 * nothing from the checkout but the dependencies, and the tarball carries no tests, sources or
 * data folders. (The install itself needs the registry for the dependencies; here they come from
 * the checkout's node_modules so the test needs no network.)
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { REPO_ROOT } from "../helpers/paths.js";

const run = promisify(execFile);

let root: string;
let unpacked: string;
let packed: string[];
let bin: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "dkeygen-pack-"));
  // --ignore-scripts: `prepare` would rebuild dist/ under the running tests; dist/ is already built.
  const { stdout } = await run(
    "npm",
    ["pack", "--ignore-scripts", "--json", "--pack-destination", root],
    { cwd: REPO_ROOT, maxBuffer: 16 << 20 },
  );
  const [info] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
  packed = info.files.map((f) => f.path);
  await run("tar", ["xzf", join(root, info.filename), "-C", root]);
  unpacked = join(root, "package");
  await symlink(join(REPO_ROOT, "node_modules"), join(unpacked, "node_modules"), "dir");
  const manifest = JSON.parse(await readFile(join(unpacked, "package.json"), "utf8"));
  bin = join(unpacked, manifest.bin.dkeygen);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test("the tarball holds the compiled program, docs and README, and nothing else", () => {
  const outside = packed.filter(
    (p) =>
      !p.startsWith("dist/src/") &&
      !p.startsWith("docs/") &&
      !["package.json", "README.md", "LICENSE"].includes(p),
  );
  assert.deepEqual(outside, []);
  assert.ok(packed.includes("dist/src/cli/main.js"));
  assert.ok(!packed.some((p) => /(^|\/)(test|\.data|node_modules)\//.test(p)));
  assert.ok(
    !packed.some((p) => p.endsWith(".ts") && !p.endsWith(".d.ts")),
    "no TypeScript sources",
  );
});

test("the bin is an executable node script that runs from the unpacked package", async () => {
  const text = await readFile(bin, "utf8");
  // npm makes a bin executable when it installs it; what it needs from us is the shebang.
  assert.ok(text.startsWith("#!/usr/bin/env node\n"), "shebang");
  const version = await run(process.execPath, [bin, "--version"], { cwd: root });
  const manifest = JSON.parse(await readFile(join(unpacked, "package.json"), "utf8"));
  assert.equal(version.stdout.trim(), manifest.version);
  // Every module the CLI imports is in the tarball: --help of every command loads them all.
  const help = await run(process.execPath, [bin, "--help"], { cwd: root });
  const commands = [...help.stdout.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1] ?? "");
  assert.ok(commands.includes("server") && commands.includes("contributor"), help.stdout);
  for (const command of commands.filter((c) => c !== "help")) {
    const sub = await run(process.execPath, [bin, command, "--help"], { cwd: root });
    assert.match(sub.stdout, /^Usage: dkeygen /, command);
  }
});

test("the unpacked package derives a result offline, the same as the checkout", async () => {
  const secret = join(root, "secret.hex");
  await run("sh", ["-c", `printf '%064x' 7 > '${secret}' && chmod 600 '${secret}'`]);
  const args = ["derive", "otp", "--secret-file", secret, "--reveal-secret", "--json"];
  const fromPackage = await run(process.execPath, [bin, ...args], { cwd: root });
  const fromCheckout = await run(
    process.execPath,
    [join(REPO_ROOT, "dist/src/cli/main.js"), ...args],
    { cwd: root },
  );
  assert.deepEqual(JSON.parse(fromPackage.stdout), JSON.parse(fromCheckout.stdout));
  assert.match(JSON.parse(fromPackage.stdout).secret.code, /^\d{6}$/);
  assert.deepEqual(
    (await readdir(unpacked)).sort(),
    ["README.md", "dist", "docs", "node_modules", "package.json"].sort(),
  );
});
