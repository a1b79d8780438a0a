/**
 * TLS through the real CLI: a `dkeygen server --tls-cert … --tls-key …` process, contributor and
 * admin commands with `--ca`, a requesting client that keeps its CA from `requester init`, and the
 * errors for TLS flags that cannot work. Certificates from a throwaway CA made with `openssl`.
 */
import assert from "node:assert/strict";
import { chmod, copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli } from "../helpers/cli.js";
import { makeTestPki, skipWithoutOpenssl as skip, type TestPki } from "../helpers/tls.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
let pki: TestPki;
let server: CliProcess;
let serverDir: string;
let wsUrl: string;
let httpUrl: string;
const contributors: CliProcess[] = [];

before(async () => {
  if (skip) return;
  dir = await tempDir();
  await mkdir(join(dir.path, "pki"));
  pki = makeTestPki(join(dir.path, "pki"));
  serverDir = join(dir.path, "server");
  server = new CliProcess([
    "server",
    "--data-dir",
    serverDir,
    "--listen",
    "127.0.0.1:0",
    "--http-listen",
    "127.0.0.1:0",
    "--otp-pool",
    "0",
    "--log-format",
    "json",
    "--tls-cert",
    pki.certFile,
    "--tls-key",
    pki.keyFile,
  ]);
  [, wsUrl] = (await server.waitFor(/listening\s+(wss:\/\/\S+)/)) as unknown as [string, string];
  [, httpUrl] = (await server.waitFor(/distribution\s+(https:\/\/\S+)/)) as unknown as [
    string,
    string,
  ];
});

after(async () => {
  if (skip) return;
  for (const c of contributors) await c.stop();
  await server.stop();
  await dir.remove();
});

async function enroll(name: string): Promise<string> {
  const out = join(dir.path, `${name}.token`);
  const r = await runCli(["enroll", "--data-dir", serverDir, "--name", name, "--out", out]);
  assert.equal(r.status, 0, r.stderr);
  return out;
}

test("dkeygen server with --tls-cert and --tls-key serves wss:// and https://, says so, and writes those URLs to server.json", {
  skip,
}, async () => {
  assert.match(wsUrl, /^wss:\/\/127\.0\.0\.1:\d+$/);
  assert.match(httpUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.match(server.stdout, /tls\s+IP Address:127\.0\.0\.1, DNS:localhost, valid until \d{4}-/);
  const info = JSON.parse(await readFile(join(serverDir, "server.json"), "utf8"));
  assert.equal(info.url, wsUrl);
  assert.equal(info.httpUrl, httpUrl);
  assert.doesNotMatch(server.stdout + server.stderr, /WITHOUT TLS/);
});

test("contributors given --ca join over wss://, and generate --ca runs a round; without the CA generate fails naming TLS", {
  skip,
}, async () => {
  for (const name of ["c1", "c2"]) {
    const c = new CliProcess([
      "contributor",
      "--server",
      wsUrl,
      "--data-dir",
      join(dir.path, name),
      "--token-file",
      await enroll(name),
      "--ca",
      pki.caFile,
      "--log-format",
      "json",
    ]);
    contributors.push(c);
    await c.waitFor(/enrolled and joined/);
  }
  const result = await runCli([
    "generate",
    "otp",
    "--data-dir",
    serverDir,
    "--ca",
    pki.caFile,
    "--json",
  ]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(JSON.parse(result.stdout).participants.length, 2);
  for (const c of contributors) await c.waitFor(/round completed/);

  // server.json says wss://, and the system's CAs do not know this one.
  const untrusted = await runCli(["generate", "otp", "--data-dir", serverDir, "--json"]);
  assert.equal(untrusted.status, 1);
  assert.equal(JSON.parse(untrusted.stdout).error.code, "E_TLS");
  assert.match(untrusted.stderr, /does not trust .*--ca FILE/);
});

test("a contributor that does not trust the server's certificate exits at once, naming TLS", {
  skip,
}, async () => {
  for (const ca of [[], ["--ca", pki.otherCaFile]]) {
    const started = Date.now();
    const result = await runCli(
      ["contributor", "--server", wsUrl, "--data-dir", join(dir.path, "stranger"), ...ca],
      { timeoutMs: 15_000 },
    );
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /TLS: .* presented a certificate this client does not trust/);
    assert.ok(Date.now() - started < 10_000);
  }
});

test("a requesting client keeps the CA given at requester init and then talks to https:// without it", {
  skip,
}, async () => {
  const requesterDir = join(dir.path, "webapp");
  const init = await runCli([
    "requester",
    "init",
    "--data-dir",
    requesterDir,
    "--server",
    httpUrl,
    "--ca",
    pki.caFile,
    "--json",
  ]);
  assert.equal(init.status, 0, init.stderr);
  const { publicKeyFile, caFile } = JSON.parse(init.stdout);
  assert.equal(caFile, join(requesterDir, "server-ca.pem"));
  assert.equal(await readFile(caFile, "utf8"), await pki.ca());
  const add = await runCli([
    "requester",
    "add",
    "webapp",
    "--public-key",
    publicKeyFile,
    "--data-dir",
    serverDir,
    "--json",
  ]);
  assert.equal(add.status, 0, add.stderr);
  assert.equal(JSON.parse(add.stdout).server, httpUrl);
  const credentialFile = join(dir.path, "webapp.credential");
  await writeFile(credentialFile, `${JSON.parse(add.stdout).credential}\n`, { mode: 0o600 });
  const login = await runCli([
    "requester",
    "login",
    "--data-dir",
    requesterDir,
    "--credential-file",
    credentialFile,
  ]);
  assert.equal(login.status, 0, login.stderr);

  const generated = await runCli([
    "generate",
    "ecc",
    "--for",
    "webapp",
    "--data-dir",
    serverDir,
    "--ca",
    pki.caFile,
    "--json",
  ]);
  assert.equal(generated.status, 0, generated.stderr);
  const id = JSON.parse(generated.stdout).id as string;
  const fetched = await runCli([
    "key",
    "fetch",
    id,
    "--data-dir",
    requesterDir,
    "--reveal-secret",
    "--json",
  ]);
  assert.equal(fetched.status, 0, fetched.stderr);
  assert.match(JSON.parse(fetched.stdout).secret.pkcs8, /BEGIN PRIVATE KEY/);

  // --ca on one command overrides the kept one, for that command.
  const other = await runCli([
    "key",
    "show",
    id,
    "--data-dir",
    requesterDir,
    "--ca",
    pki.otherCaFile,
  ]);
  assert.equal(other.status, 1);
  assert.match(other.stderr, /TLS: .* does not trust/);
});

test("TLS options that cannot work are usage or operational errors that say which", {
  skip,
}, async () => {
  const serve = (extra: string[]) =>
    runCli([
      "server",
      "--data-dir",
      join(dir.path, "refused-server"),
      "--listen",
      "127.0.0.1:0",
      "--http-listen",
      "127.0.0.1:0",
      "--otp-pool",
      "0",
      ...extra,
    ]);
  const certOnly = await serve(["--tls-cert", pki.certFile]);
  assert.equal(certOnly.status, 2);
  assert.match(certOnly.stderr, /--tls-cert needs --tls-key/);
  const keyOnly = await serve(["--tls-key", pki.keyFile]);
  assert.equal(keyOnly.status, 2);
  assert.match(keyOnly.stderr, /--tls-key needs --tls-cert/);

  const missing = await serve([
    "--tls-cert",
    join(dir.path, "nowhere.pem"),
    "--tls-key",
    pki.keyFile,
  ]);
  assert.equal(missing.status, 1);
  assert.match(
    missing.stderr,
    /--tls-cert .*nowhere\.pem: there is no such file; check the path\./,
  );
  const mismatched = await serve(["--tls-cert", pki.certFile, "--tls-key", pki.strayKeyFile]);
  assert.equal(mismatched.status, 1);
  assert.match(mismatched.stderr, /does not match the key .*stray\.key/);
  const open = join(dir.path, "readable.key");
  await copyFile(pki.keyFile, open);
  await chmod(open, 0o640);
  const readable = await serve(["--tls-cert", pki.certFile, "--tls-key", open]);
  assert.equal(readable.status, 1);
  assert.match(readable.stderr, /readable\.key is accessible by others \(mode 640\)/);
  await assert.rejects(stat(join(dir.path, "refused-server")), { code: "ENOENT" });

  const plainCa = await runCli([
    "contributor",
    "--server",
    "ws://127.0.0.1:9",
    "--ca",
    pki.caFile,
    "--data-dir",
    join(dir.path, "plain-ca"),
  ]);
  assert.equal(plainCa.status, 2);
  assert.match(
    plainCa.stderr,
    /--ca is for a TLS server \(wss:\/\/ or https:\/\/\); ws:\/\/127\.0\.0\.1:9 is plain/,
  );
  const badCa = await runCli([
    "key",
    "show",
    "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "--server",
    httpUrl,
    "--ca",
    pki.keyFile,
    "--data-dir",
    join(dir.path, "webapp"),
  ]);
  assert.equal(badCa.status, 1);
  assert.match(badCa.stderr, /CA file .*server\.key holds no PEM certificate/);
});
