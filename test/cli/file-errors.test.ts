/**
 * File mistakes through the CLI: a missing file, a folder where a file belongs, a missing folder
 * for a file to write, a file where a folder belongs, a file that must not be replaced. Each prints
 * one line that names the flag and the path and says what to do — never a raw `ENOENT: no such
 * file or directory, open '…'` — and exits 1, or 2 for a file to write (--out, --qr-png, …): those
 * are checked before anything runs (no round, no request), a usage error. Plus: a store without
 * its store.key says to restore it, and `enroll` into a folder no server uses warns.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { tempDir } from "../helpers/ceremony.js";
import { type CliResult, runCli, runCliBatch } from "../helpers/cli.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
let P: (name: string) => string;
const HEX64 = "ab".repeat(32);
const ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

before(async () => {
  dir = await tempDir();
  P = (name) => join(dir.path, name);
  await writeFile(P("afile"), "x\n");
  await mkdir(P("folder"));
});
after(async () => dir?.remove());

const missing = "there is no such file; check the path.";
const isFolder = "that is a folder; give the path of a file.";
const noFolder = (folder: string) =>
  `the folder ${folder} does not exist; create it first or give another path.`;
const exists = "that file exists and is never replaced; remove it or give another path.";
const notFolder = "that (or a folder above it) is a file, not a folder.";

/** A file to write, checked before anything runs: a usage error. */
const BEFORE = 2;

function cases(): [string[], string, string, string, number?][] {
  // [argv, flag, path, what the line says, exit status (1 unless given)]
  const totp = ["derive", "totp", "--secret", HEX64, "--reveal-secret"];
  const requester = ["--data-dir", P("requester"), "--server", "http://127.0.0.1:9"];
  return [
    [["derive", "otp", "--secret-file", P("nope")], "--secret-file", P("nope"), missing],
    [["derive", "otp", "--secret-file", P("folder")], "--secret-file", P("folder"), isFolder],
    [[...totp, "--qr-png", P("no/q.png")], "--qr-png", P("no/q.png"), noFolder(P("no")), BEFORE],
    [[...totp, "--qr-svg", P("folder")], "--qr-svg", P("folder"), isFolder, BEFORE],
    [
      ["generate", "totp", "--reveal-secret", "--qr-png", P("afile/q.png"), "--data-dir", P("s")],
      "--qr-png",
      P("afile/q.png"),
      "a folder above it is a file, not a folder.",
      BEFORE,
    ],
    [
      [
        "totp",
        "enroll",
        "--issuer",
        "A",
        "--account",
        "b",
        "--qr-svg",
        P("no/q.svg"),
        ...requester,
      ],
      "--qr-svg",
      P("no/q.svg"),
      noFolder(P("no")),
      BEFORE,
    ],
    [
      ["key", "export-secret", ULID, "--out", P("folder"), "--data-dir", P("server")],
      "--out",
      P("folder"),
      isFolder,
      BEFORE,
    ],
    [
      ["key", "fetch", ULID, "--derivation-secret", "--out", P("no/rec.hex"), ...requester],
      "--out",
      P("no/rec.hex"),
      noFolder(P("no")),
      BEFORE,
    ],
    [
      ["key", "fetch", ULID, "--out", P("afile"), ...requester],
      "--out",
      P("afile"),
      exists,
      BEFORE,
    ],
    [
      ["audit", "log", "--server", "http://127.0.0.1:9", "--save", P("folder")],
      "--save",
      P("folder"),
      isFolder,
      BEFORE,
    ],
    [
      ["derive", "wallet", "--secret", HEX64, "--passphrase-file", P("nope")],
      "--passphrase-file",
      P("nope"),
      missing,
    ],
    [
      ["sign", "--key", P("nope"), "--message", "hi", "--nonce", HEX64],
      "--key",
      P("nope"),
      missing,
    ],
    [
      ["sign", "--key", P("afile"), "--message-file", P("folder"), "--nonce", HEX64],
      "--message-file",
      P("folder"),
      isFolder,
    ],
    [
      ["requester", "add", "web", "--public-key", P("nope"), "--data-dir", P("server")],
      "--public-key",
      P("nope"),
      missing,
    ],
    [
      ["requester", "login", "--credential-file", P("folder"), "--server", "http://127.0.0.1:9"],
      "--credential-file",
      P("folder"),
      isFolder,
    ],
    [
      ["requester", "init", "--data-dir", P("afile"), "--server", "http://127.0.0.1:9"],
      "--data-dir",
      P("afile"),
      notFolder,
    ],
    [
      ["contributor", "--server", "ws://127.0.0.1:9", "--token-file", P("nope")],
      "--token-file",
      P("nope"),
      missing,
    ],
    [
      ["contributor", "--server", "wss://127.0.0.1:9", "--ca", P("folder")],
      "--ca",
      P("folder"),
      isFolder,
    ],
    [
      ["server", "--data-dir", P("s1"), "--tls-cert", P("folder"), "--tls-key", P("afile")],
      "--tls-cert",
      P("folder"),
      isFolder,
    ],
    [
      ["server", "--data-dir", P("s2"), "--tls-cert", P("afile"), "--tls-key", P("nope")],
      "--tls-key",
      P("nope"),
      missing,
    ],
    [["enroll", "--data-dir", P("afile")], "--data-dir", P("afile"), notFolder],
    [
      ["enroll", "--data-dir", P("server"), "--out", P("no/token")],
      "--out",
      P("no/token"),
      noFolder(P("no")),
      BEFORE,
    ],
    [
      ["enroll", "--data-dir", P("server"), "--out", P("afile")],
      "--out",
      P("afile"),
      exists,
      BEFORE,
    ],
    [
      ["status", "--server", "ws://127.0.0.1:9", "--admin-token-file", P("nope")],
      "--admin-token-file",
      P("nope"),
      missing,
    ],
  ];
}

function check(
  failures: string[],
  argv: string[],
  line: string,
  result: CliResult,
  status = 1,
): void {
  const where = `dkeygen ${argv.join(" ")}`;
  if (result.status !== status) failures.push(`${where}: exit ${result.status}, not ${status}`);
  // Warnings may come first (enroll's); the error is the last line, and the only dkeygen: line
  // that is not a warning.
  const lines = result.stderr.split("\n").filter(Boolean);
  const errors = lines.filter((l) => !l.startsWith("dkeygen: warning:"));
  if (errors.length !== 1 || errors[0] !== `dkeygen: ${line}`) {
    failures.push(`${where}:\n  want dkeygen: ${line}\n  got  ${result.stderr}`);
  }
  if (/\bE[A-Z]{3,}:|\bopen '/.test(result.stderr)) failures.push(`${where}: a raw Node error`);
}

test("file mistakes name the flag and the path and say what to do (exit 1, 2 for a file to write; one line, no raw Node error)", async () => {
  const all = cases();
  const results = await runCliBatch(
    all.map(([argv]) => argv),
    { env: { DKEYGEN_HOME: P("home") } },
  );
  const failures: string[] = [];
  for (const [i, [argv, flag, path, said, status]] of all.entries()) {
    check(failures, argv, `${flag} ${path}: ${said}`, results[i]!, status);
  }
  // A file to write is checked before anything is made: no data folder appeared.
  for (const folder of ["s", "server", "requester"]) {
    if (existsSync(P(folder))) failures.push(`${P(folder)} was made`);
  }
  // And the executable says the same as main().
  const [argv, flag, path, said] = all[0]!;
  check(failures, argv, `${flag} ${path}: ${said}`, await runCli(argv));
  assert.deepEqual(failures, []);
});

test("a key store whose store.key is missing is refused with 'restore store.key', and nothing new is made", async () => {
  const dataDir = P("restore");
  await mkdir(dataDir, { mode: 0o700 });
  await writeFile(join(dataDir, "key_store"), '{"a":1}\n', { mode: 0o600 });
  const result = await runCli([
    "server",
    "--data-dir",
    dataDir,
    "--listen",
    "127.0.0.1:0",
    "--http-listen",
    "off",
  ]);
  assert.equal(result.status, 1);
  assert.match(result.stderr, /restore store\.key \(the file .*store\.key\) from your backup/);
  assert.equal(
    result.stderr
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("dkeygen:")).length,
    1,
  );
  assert.equal(
    (
      await runCli([
        "server",
        "--data-dir",
        dataDir,
        "--http-listen",
        "off",
        "--listen",
        "127.0.0.1:0",
      ])
    ).status,
    1,
    "a second start does not make a new store.key either",
  );
});

test("enroll into a folder no server uses warns on stderr, and into a server's folder does not", async () => {
  const typo = await runCli(["enroll", "--data-dir", P("typo"), "--json"]);
  assert.equal(typo.status, 0, typo.stderr);
  assert.equal(
    typo.stderr,
    `dkeygen: warning: no server uses ${P("typo")} (no server-key.pem or key_store there); the token works only with a server started with --data-dir ${P("typo")}.\n`,
  );
  assert.ok(JSON.parse(typo.stdout).token, "the token is still issued");

  const used = P("used");
  await mkdir(used, { mode: 0o700 });
  await writeFile(join(used, "key_store"), "", { mode: 0o600 });
  const quiet = await runCli(["enroll", "--data-dir", used, "--json"]);
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stderr, "");
});
