/**
 * The ceremony through the real `dkeygen` executable: a server process, contributor processes,
 * enroll and generate commands, on loopback.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli } from "../helpers/cli.js";

async function startServerProcess(
  dataDir: string,
  extra: string[] = [],
  env: NodeJS.ProcessEnv = {},
) {
  const server = new CliProcess(
    [
      "server",
      "--data-dir",
      dataDir,
      "--listen",
      "127.0.0.1:0",
      "--http-listen",
      "127.0.0.1:0",
      "--otp-pool",
      "0",
      "--log-format",
      "json",
      ...extra,
    ],
    env,
  );
  const [, fingerprint] = await server.waitFor(/fingerprint\s+(SHA256:\S+)/);
  const [, url] = await server.waitFor(/listening\s+(ws:\/\/\S+)/);
  return { server, url: url!, fingerprint: fingerprint! };
}

async function enroll(dataDir: string, name: string): Promise<string> {
  const result = await runCli(["enroll", "--data-dir", dataDir, "--name", name, "--json"]);
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout).token as string;
}

/** A contributor process; its enrollment token, if any, goes in a file beside its data folder. */
function startContributorProcess(
  url: string,
  dataDir: string,
  token?: string,
  extra: string[] = [],
) {
  const tokenFile = `${dataDir}.token`;
  if (token) writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  return new CliProcess([
    "contributor",
    "--server",
    url,
    "--data-dir",
    dataDir,
    "--log-format",
    "json",
    ...(token ? ["--token-file", tokenFile] : []),
    ...extra,
  ]);
}

test("a full round with three contributors through the CLI stores one record", async () => {
  const dir = await tempDir();
  const serverDir = join(dir.path, "server");
  const { server, url, fingerprint } = await startServerProcess(serverDir);
  const contributors: CliProcess[] = [];
  try {
    for (const name of ["alice", "bob", "carol"]) {
      const token = await enroll(serverDir, name);
      const c = startContributorProcess(url, join(dir.path, name), token);
      contributors.push(c);
      await c.waitFor(/enrolled and joined/);
    }
    const result = await runCli(["generate", "otp", "--data-dir", serverDir, "--json"]);
    assert.equal(result.status, 0, result.stderr);
    const record = JSON.parse(result.stdout);
    assert.equal(record.purpose, "otp");
    assert.equal(record.participants.length, 3);
    assert.match(record.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.equal(
      JSON.stringify(record).includes('"code"'),
      false,
      "the OTP itself is never printed",
    );
    for (const c of contributors) await c.waitFor(/round completed/);

    const lines = (await readFile(join(serverDir, "key_store"), "utf8")).trim().split("\n");
    // The record, the round's sealed opening (for its owner's audit), then its entry in the
    // transparency log.
    assert.equal(lines.length, 3);
    assert.ok(lines[0]!.includes(record.id));
    assert.match(lines[1]!, /"body":\{"t":"opening","v":1,"roundId":/);
    assert.match(lines[2]!, /"body":\{"t":"tlog","v":1,"index":0,/);
    assert.equal((await stat(join(serverDir, "key_store"))).mode & 0o777, 0o600);
    assert.equal((await stat(serverDir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(serverDir, "server-key.pem"))).mode & 0o777, 0o600);

    // Human output, too.
    const human = await runCli(["generate", "otp", "--data-dir", serverDir]);
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /^ {2}record\s+[0-9A-Z]{26}\n/);
    assert.match(human.stdout, /contributors\s+3/);
    assert.ok(fingerprint.startsWith("SHA256:"));
  } finally {
    for (const c of contributors) await c.stop();
    assert.equal(await server.stop(), 0, "the server stops cleanly on SIGTERM");
    await dir.remove();
  }
});

test("the server's fingerprint is the same across restarts and matches OpenSSL's", async () => {
  const dir = await tempDir();
  const serverDir = join(dir.path, "server");
  try {
    const first = await startServerProcess(serverDir);
    assert.match(first.server.stdout, /new RSA-3072 key/);
    await first.server.stop();
    const second = await startServerProcess(serverDir);
    assert.doesNotMatch(second.server.stdout, /new RSA-3072 key/);
    await second.server.stop();
    assert.equal(second.fingerprint, first.fingerprint);

    const der = execFileSync("openssl", [
      "pkey",
      "-pubin",
      "-in",
      join(serverDir, "server-key.pub.pem"),
      "-outform",
      "DER",
    ]);
    const expected = `SHA256:${createHash("sha256").update(der).digest("base64").replace(/=+$/, "")}`;
    assert.equal(first.fingerprint, expected);
    const text = execFileSync("openssl", [
      "pkey",
      "-in",
      join(serverDir, "server-key.pem"),
      "-noout",
      "-text",
    ]).toString();
    assert.match(text, /Private-Key: \(3072 bit/);
  } finally {
    await dir.remove();
  }
});

test("a passphrase-protected server key is encrypted at rest and needs its passphrase", async () => {
  const dir = await tempDir();
  const serverDir = join(dir.path, "server");
  try {
    const env = { DKEYGEN_SERVER_PASSPHRASE: "correct horse battery staple" };
    const first = await startServerProcess(serverDir, [], env);
    await first.server.stop();
    const pem = await readFile(join(serverDir, "server-key.pem"), "utf8");
    assert.match(pem, /BEGIN ENCRYPTED PRIVATE KEY/);

    const locked = await runCli(
      [
        "server",
        "--data-dir",
        serverDir,
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
      ],
      {
        env: { DKEYGEN_SERVER_PASSPHRASE: "" },
      },
    );
    assert.equal(locked.status, 1);
    assert.match(locked.stderr, /encrypted; set DKEYGEN_SERVER_PASSPHRASE/);
    const wrong = await runCli(
      [
        "server",
        "--data-dir",
        serverDir,
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
      ],
      {
        env: { DKEYGEN_SERVER_PASSPHRASE: "wrong" },
      },
    );
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /passphrase is wrong/);

    const again = await startServerProcess(serverDir, [], env);
    await again.server.stop();
    assert.equal(again.fingerprint, first.fingerprint);
  } finally {
    await dir.remove();
  }
});

test("a contributor refuses a server whose key differs from its pin, naming both", async () => {
  const dir = await tempDir();
  const contributorDir = join(dir.path, "contributor");
  try {
    const a = await startServerProcess(join(dir.path, "a"));
    const port = new URL(a.url).port;
    const token = await enroll(join(dir.path, "a"), "pinned");
    const c = startContributorProcess(a.url, contributorDir, token);
    await c.waitFor(/enrolled and joined/);
    await c.stop();
    await a.server.stop();
    const pins = JSON.parse(await readFile(join(contributorDir, "known_servers.json"), "utf8"));
    assert.equal(pins[a.url].fingerprint, a.fingerprint);

    // Another server (another key) at the same address.
    const b = await startServerProcess(join(dir.path, "b"), ["--listen", `127.0.0.1:${port}`]);
    assert.notEqual(b.fingerprint, a.fingerprint);
    const again = startContributorProcess(b.url, contributorDir);
    assert.equal(await again.exited, 1);
    const output = again.stdout + again.stderr;
    assert.ok(output.includes(a.fingerprint) && output.includes(b.fingerprint), output);
    assert.match(output, /E_PIN_MISMATCH|pinned/);

    // Pinned in advance: refused as well.
    const ahead = startContributorProcess(b.url, join(dir.path, "other"), undefined, [
      "--server-fingerprint",
      a.fingerprint,
    ]);
    assert.equal(await ahead.exited, 1);
    await b.server.stop();
  } finally {
    await dir.remove();
  }
});

test("an unknown contributor and a round without quorum fail with clear errors", async () => {
  const dir = await tempDir();
  const serverDir = join(dir.path, "server");
  const { server, url } = await startServerProcess(serverDir, ["--round-timeout", "1s"]);
  try {
    const stranger = startContributorProcess(url, join(dir.path, "stranger"));
    assert.equal(await stranger.exited, 1);
    assert.match(stranger.stderr, /not enrolled/);

    const lone = startContributorProcess(
      url,
      join(dir.path, "lone"),
      await enroll(serverDir, "lone"),
    );
    await lone.waitFor(/enrolled and joined/);
    const result = await runCli(["generate", "otp", "--data-dir", serverDir, "--json"]);
    assert.equal(result.status, 1);
    assert.equal(JSON.parse(result.stdout).error.code, "E_QUORUM_NOT_MET");
    assert.match(result.stderr, /Only 1 contributor is connected; a round needs at least 2/);
    await lone.stop();
  } finally {
    await server.stop();
    await dir.remove();
  }
});

test("usage errors exit 2 and every command has --help", async () => {
  assert.equal((await runCli(["generate"])).status, 2);
  assert.equal((await runCli(["server", "--listen", "nowhere"])).status, 2);
  assert.equal((await runCli(["server", "--quorum", "1", "--listen", "127.0.0.1:0"])).status, 2);
  assert.equal((await runCli(["frobnicate"])).status, 2);
  for (const command of ["server", "enroll", "contributor", "generate", "demo"]) {
    const help = await runCli([command, "--help"]);
    assert.equal(help.status, 0, command);
    assert.match(help.stdout, /Usage: dkeygen/);
  }
});
