/**
 * Enrollment tokens never on a command line: `dkeygen contributor` takes `--token-file FILE` or
 * DKEYGEN_ENROLL_TOKEN, refuses `--token`, and `dkeygen enroll` says so.
 */
import assert from "node:assert/strict";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import {
  ENROLLMENT_TOKEN_PATTERN,
  readEnrollmentToken,
} from "../../src/client/enrollment-token.js";
import { toBase64url } from "../../src/crypto/base64url.js";
import { isDkeygenError } from "../../src/errors.js";
import { decodeMessage } from "../../src/protocol/messages.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { startTestServer, tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli } from "../helpers/cli.js";

const TOKEN = `dkt_${"A".repeat(16)}.${"b".repeat(43)}`;

test("a token file is read with surrounding whitespace ignored; the variable is the fallback", async () => {
  const dir = await tempDir();
  try {
    const file = join(dir.path, "token");
    await writeFile(file, `\n  ${TOKEN} \r\n\n`);
    assert.equal(await readEnrollmentToken({ file }), TOKEN);
    // The file wins over the variable.
    assert.equal(await readEnrollmentToken({ file, env: "dkt_other.x" }), TOKEN);
    assert.equal(await readEnrollmentToken({ env: ` ${TOKEN}\n` }), TOKEN);
    // An empty variable is no token (the first join needs one; later joins do not).
    assert.equal(await readEnrollmentToken({ env: "" }), undefined);
    assert.equal(await readEnrollmentToken({ env: " \n" }), undefined);
    assert.equal(await readEnrollmentToken({}), undefined);
  } finally {
    await dir.remove();
  }
});

test("an empty, malformed, oversized or missing token file is refused, saying which and never echoing it", async () => {
  const dir = await tempDir();
  try {
    const refused = async (
      source: { file?: string; env?: string },
      code: string,
      pattern: RegExp,
    ) => {
      const error = await readEnrollmentToken(source).then(
        () => assert.fail("accepted"),
        (e: unknown) => e,
      );
      assert.ok(isDkeygenError(error, code as "E_INVALID_INPUT"), String(error));
      assert.match((error as Error).message, pattern);
      assert.equal((error as Error).message.includes("secretsecret"), false);
    };
    const file = join(dir.path, "token");
    await writeFile(file, " \n\t\n");
    await refused({ file }, "E_INVALID_INPUT", /token file .*token is empty/);
    await writeFile(file, `dkt_secretsecret.${"x".repeat(42)}\n`);
    await refused({ file }, "E_INVALID_INPUT", /does not hold an enrollment token/);
    // Two tokens, or a token and anything else, are not one token.
    await writeFile(file, `${TOKEN}\n${TOKEN}\n`);
    await refused({ file }, "E_INVALID_INPUT", /does not hold an enrollment token/);
    await refused({ env: "secretsecret" }, "E_INVALID_INPUT", /DKEYGEN_ENROLL_TOKEN does not hold/);
    // 1,024 bytes is the limit: a token padded to exactly that is read, one byte more is refused.
    await writeFile(file, TOKEN.padEnd(1024, " "));
    assert.equal(await readEnrollmentToken({ file }), TOKEN);
    await writeFile(file, TOKEN.padEnd(1025, " "));
    await refused({ file }, "E_INVALID_INPUT", /larger than 1024 bytes/);
    await refused({ file: join(dir.path, "nowhere") }, "E_OPERATIONAL", /Cannot read .*nowhere/);
  } finally {
    await dir.remove();
  }
});

test("a token file is accepted exactly when the server's join message would accept its token", () => {
  const join = (token: string) =>
    JSON.stringify({
      type: "join",
      v: PROTOCOL_VERSION,
      identity: toBase64url(new Uint8Array(32)),
      clientChallenge: toBase64url(new Uint8Array(32)),
      signature: toBase64url(new Uint8Array(64)),
      token,
    });
  const candidates = [
    TOKEN,
    `dkt_${"A".repeat(8)}.${"b".repeat(43)}`,
    `dkt_${"A".repeat(7)}.${"b".repeat(43)}`,
    `dkt_${"A".repeat(32)}.${"b".repeat(43)}`,
    `dkt_${"A".repeat(33)}.${"b".repeat(43)}`,
    `dkt_${"A".repeat(16)}.${"b".repeat(42)}`,
    `dkt_${"A".repeat(16)}.${"b".repeat(44)}`,
    `dkt_${"A".repeat(16)}.${"b".repeat(42)}=`,
    `dkr_${"A".repeat(16)}.${"b".repeat(43)}`,
  ];
  for (const token of candidates) {
    let wire = true;
    try {
      decodeMessage(join(token));
    } catch {
      wire = false;
    }
    assert.equal(ENROLLMENT_TOKEN_PATTERN.test(token), wire, token);
  }
});

test("dkeygen contributor refuses --token with a usage error that names --token-file and the variable", async () => {
  const dir = await tempDir();
  try {
    for (const args of [["--token", TOKEN], [`--token=${TOKEN}`], ["--token"]]) {
      const result = await runCli(
        [
          "contributor",
          "--server",
          "ws://127.0.0.1:9",
          "--data-dir",
          join(dir.path, "contributor"),
          ...args,
        ],
        { timeoutMs: 10_000 },
      );
      assert.equal(result.status, 2, args.join(" "));
      assert.match(result.stderr, /--token-file FILE/);
      assert.match(result.stderr, /DKEYGEN_ENROLL_TOKEN/);
      assert.equal(result.stderr.includes(TOKEN), false, "the refusal does not echo the token");
    }
    assert.deepEqual(await readdir(dir.path), [], "refused before making a data folder");
  } finally {
    await dir.remove();
  }
  const help = await runCli(["contributor", "--help"]);
  assert.match(help.stdout, /--token-file <file>/);
  assert.doesNotMatch(help.stdout, /--token </);
});

test("a contributor enrolls with --token-file, another with DKEYGEN_ENROLL_TOKEN; a bad token file stops it before connecting", async () => {
  const server = await startTestServer();
  const processes: CliProcess[] = [];
  try {
    const issue = async (name: string) => {
      const r = await runCli(["enroll", "--data-dir", server.dataDir, "--name", name, "--json"]);
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout).token as string;
    };
    const tokenFile = join(server.root, "alice.token");
    await writeFile(tokenFile, `${await issue("alice")}\n`, { mode: 0o600 });
    const alice = new CliProcess([
      "contributor",
      "--server",
      server.url,
      "--data-dir",
      join(server.root, "alice"),
      "--token-file",
      tokenFile,
      "--log-format",
      "json",
    ]);
    processes.push(alice);
    await alice.waitFor(/enrolled and joined/);
    const bob = new CliProcess(
      ["contributor", "--server", server.url, "--data-dir", join(server.root, "bob")],
      { DKEYGEN_ENROLL_TOKEN: await issue("bob") },
    );
    processes.push(bob);
    await bob.waitFor(/enrolled and joined/);
    assert.equal(server.server.connectedContributors.length, 2);

    const empty = join(server.root, "empty.token");
    await writeFile(empty, "\n");
    const refused = await runCli([
      "contributor",
      "--server",
      server.url,
      "--data-dir",
      join(server.root, "carol"),
      "--token-file",
      empty,
    ]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /empty\.token is empty/);
    assert.doesNotMatch(refused.stdout, /dkeygen contributor/, "stopped before starting");
  } finally {
    for (const p of processes) await p.stop();
    await server.cleanup();
  }
});

test("dkeygen enroll's hint shows a token file or the variable, never the token on a command line", async () => {
  const dir = await tempDir();
  try {
    const result = await runCli(["enroll", "--data-dir", join(dir.path, "server")]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^dkt_\S+\n$/);
    assert.match(result.stderr, /--token-file FILE/);
    assert.match(result.stderr, /DKEYGEN_ENROLL_TOKEN/);
    assert.doesNotMatch(result.stderr, /--token (TOKEN|dkt_)/);
  } finally {
    await dir.remove();
  }
});

test("dkeygen enroll --out writes the token to a new 0600 file, prints it nowhere, and never overwrites", async () => {
  const dir = await tempDir();
  try {
    const serverDir = join(dir.path, "server");
    const out = join(dir.path, "alice.token");
    const result = await runCli(["enroll", "--data-dir", serverDir, "--out", out, "--json"]);
    assert.equal(result.status, 0, result.stderr);
    const token = (await readFile(out, "utf8")).trim();
    assert.match(token, ENROLLMENT_TOKEN_PATTERN);
    assert.equal((await stat(out)).mode & 0o777, 0o600);
    assert.equal(JSON.parse(result.stdout).out, out);
    assert.equal(JSON.parse(result.stdout).token, undefined);
    assert.equal((result.stdout + result.stderr).includes(token), false);

    const again = await runCli(["enroll", "--data-dir", serverDir, "--out", out]);
    assert.equal(again.status, 2, "checked before anything runs: a usage error");
    assert.match(again.stderr, /--out .*: that file exists and is never replaced/);
    assert.equal((await readFile(out, "utf8")).trim(), token, "the first token is intact");
    const lines = (await readFile(join(serverDir, "enrollment-tokens.jsonl"), "utf8")).trim();
    assert.equal(lines.split("\n").length, 1, "no token was issued for the refused file");
  } finally {
    await dir.remove();
  }
});
