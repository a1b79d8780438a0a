/**
 * The distribution side through the real CLI: a server process with contributors, a requesting
 * client made with `requester init`, registered with `requester add`, logged in, requesting and
 * verifying OTPs, enrolling TOTP and fetching a key made for it. And the demo, end to end.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fromBase32, parseOtpauthUri } from "../../src/derive/otpauth.js";
import { totpCode } from "../../src/derive/totp.js";
import { tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli } from "../helpers/cli.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
let server: CliProcess;
const contributors: CliProcess[] = [];
let serverDir: string;
let requesterDir: string;
let httpUrl: string;

before(async () => {
  dir = await tempDir();
  serverDir = join(dir.path, "server");
  requesterDir = join(dir.path, "webapp");
  server = new CliProcess([
    "server",
    "--data-dir",
    serverDir,
    "--listen",
    "127.0.0.1:0",
    "--http-listen",
    "127.0.0.1:0",
    "--otp-pool",
    "10",
    "--log-format",
    "json",
  ]);
  const [, wsUrl] = await server.waitFor(/listening\s+(ws:\/\/\S+)/);
  [, httpUrl] = (await server.waitFor(/distribution\s+(http:\/\/\S+)/)) as unknown as [
    string,
    string,
  ];
  for (const name of ["c1", "c2"]) {
    const token = JSON.parse((await runCli(["enroll", "--data-dir", serverDir, "--json"])).stdout)
      .token as string;
    const c = new CliProcess(
      [
        "contributor",
        "--server",
        wsUrl!,
        "--data-dir",
        join(dir.path, name),
        "--log-format",
        "json",
      ],
      { DKEYGEN_ENROLL_TOKEN: token },
    );
    contributors.push(c);
    await c.waitFor(/enrolled and joined/);
  }
});

after(async () => {
  for (const c of contributors) await c.stop();
  await server.stop();
  await dir.remove();
});

test("a requesting client registers, requests an OTP, decrypts it and verifies it once, all through the CLI", async () => {
  const init = await runCli([
    "requester",
    "init",
    "--data-dir",
    requesterDir,
    "--server",
    httpUrl,
    "--json",
  ]);
  assert.equal(init.status, 0, init.stderr);
  const { fingerprint, publicKeyFile } = JSON.parse(init.stdout);
  assert.match(fingerprint, /^SHA256:/);
  assert.equal((await stat(join(requesterDir, "requester.pem"))).mode & 0o777, 0o600);

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
  const { credential } = JSON.parse(add.stdout);
  assert.equal(JSON.parse(add.stdout).fingerprint, fingerprint);
  const credentialFile = join(dir.path, "credential.txt");
  await writeFile(credentialFile, `${credential}\n`, { mode: 0o600 });
  const login = await runCli([
    "requester",
    "login",
    "--data-dir",
    requesterDir,
    "--credential-file",
    credentialFile,
  ]);
  assert.equal(login.status, 0, login.stderr);
  assert.equal((await stat(join(requesterDir, "credential"))).mode & 0o777, 0o600);

  const request = await runCli([
    "otp",
    "request",
    "--data-dir",
    requesterDir,
    "--subject",
    "alice",
    "--json",
  ]);
  assert.equal(request.status, 0, request.stderr);
  const otp = JSON.parse(request.stdout);
  assert.match(otp.code, /^\d{6}$/);
  assert.equal(otp.subject, "alice");

  const plain = await runCli(["otp", "request", "--data-dir", requesterDir, "--subject", "bob"]);
  assert.match(plain.stdout, /^\d{6}\n$/, "human output is the code alone on standard output");

  const first = await runCli([
    "otp",
    "verify",
    "--data-dir",
    requesterDir,
    "--subject",
    "alice",
    "--code",
    otp.code,
  ]);
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stdout, "valid\n");
  const second = await runCli([
    "otp",
    "verify",
    "--data-dir",
    requesterDir,
    "--subject",
    "alice",
    "--code",
    otp.code,
  ]);
  assert.equal(second.status, 1);
  assert.match(second.stderr, /already used/);
  const wrong = await runCli([
    "otp",
    "verify",
    "--data-dir",
    requesterDir,
    "--subject",
    "bob",
    "--code",
    "00000a",
  ]);
  // A code that is not digits is a bad option value: refused before anything is sent.
  assert.equal(wrong.status, 2);
  assert.match(wrong.stderr, /--code wants 6 to 10 digits/);
});

test("totp enroll draws the QR code, writes it as PNG and the enrolled secret verifies", async () => {
  const png = join(dir.path, "totp.png");
  const human = await runCli([
    "totp",
    "enroll",
    "--data-dir",
    requesterDir,
    "--issuer",
    "ACME",
    "--account",
    "carol",
    "--qr-png",
    png,
  ]);
  assert.equal(human.status, 0, human.stderr);
  assert.match(human.stdout, /Scan with an authenticator app \(ACME: carol\)/);
  assert.match(human.stdout, /[▀▄█]/, "a QR code is drawn");
  assert.doesNotMatch(
    human.stdout,
    /otpauth:\/\//,
    "the URI is not printed without --reveal-secret",
  );
  assert.deepEqual([...(await readFile(png)).subarray(1, 4)], [0x50, 0x4e, 0x47]);
  assert.equal((await stat(png)).mode & 0o777, 0o600);

  const json = await runCli([
    "totp",
    "enroll",
    "--data-dir",
    requesterDir,
    "--issuer",
    "ACME",
    "--account",
    "dave",
    "--json",
    "--reveal-secret",
  ]);
  assert.equal(json.status, 0, json.stderr);
  const enrollment = JSON.parse(json.stdout);
  const secret = parseOtpauthUri(enrollment.uri).secret;
  assert.deepEqual(secret, fromBase32(enrollment.secret));
  const code = totpCode(secret, Math.floor(Date.now() / 1000));
  const ok = await runCli([
    "totp",
    "verify",
    "--data-dir",
    requesterDir,
    "--account",
    "dave",
    "--code",
    code,
  ]);
  assert.equal(ok.status, 0, ok.stderr);
  const replay = await runCli([
    "totp",
    "verify",
    "--data-dir",
    requesterDir,
    "--account",
    "dave",
    "--code",
    code,
  ]);
  assert.equal(replay.status, 1);
  assert.match(replay.stderr, /replay/);
});

test("a key generated for a requester is fetched with key fetch and refused without a destination", async () => {
  const generated = await runCli([
    "generate",
    "ecc",
    "--curve",
    "p256",
    "--for",
    "webapp",
    "--data-dir",
    serverDir,
    "--json",
  ]);
  assert.equal(generated.status, 0, generated.stderr);
  const record = JSON.parse(generated.stdout);
  // The record belongs to webapp's registration, by its id (the key generation server resolves
  // the name; PROTOCOL §12.1).
  assert.match(record.owner, /^rq:[A-Za-z0-9_-]{22}$/);
  const refused = await runCli(["key", "fetch", record.id, "--data-dir", requesterDir]);
  assert.equal(refused.status, 2);
  const out = join(dir.path, "key.json");
  const fetched = await runCli([
    "key",
    "fetch",
    record.id,
    "--data-dir",
    requesterDir,
    "--out",
    out,
  ]);
  assert.equal(fetched.status, 0, fetched.stderr);
  assert.doesNotMatch(fetched.stdout, /PRIVATE KEY/);
  const secret = JSON.parse(await readFile(out, "utf8"));
  assert.match(secret.pkcs8, /BEGIN PRIVATE KEY/);
  assert.equal((await stat(out)).mode & 0o777, 0o600);
  const shown = await runCli(["key", "show", record.id, "--data-dir", requesterDir, "--json"]);
  assert.equal(JSON.parse(shown.stdout).public.curve, "p256");
});

test("the demo follows one OTP from its round to its delivery and verification, exits 0, and with --keep keeps its folder and says where", async () => {
  // One run (a demo costs seconds): with --keep, which changes nothing but the folder's removal.
  const demo = await runCli(["demo", "--keep"], { timeoutMs: 60_000 });
  assert.equal(demo.status, 0, demo.stderr);
  for (const step of [
    /\[1\] key generation server started/,
    /fingerprint\s+SHA256:\S+\s+\(new RSA-3072 key\)/,
    /\[2\] contributors enrolled and joined/,
    /seed phrase \(256 bits, OS CSPRNG\) sent to 3 contributors/,
    /commitment from carol: a signed hash of its sealed contribution/,
    /commit set of 3 signed and sent/,
    /reveal from carol: matches its commitment, signature verified, decrypted; receipt signed/,
    /all 3 committed secret phrases/,
    /the same code again: rejected \(used\)/,
    /audit passed/,
    /logged as entry 1: its session id and all 3 holders' signatures of the result check/,
    /BIP 340 signature valid under the output key/,
  ]) {
    assert.match(demo.stdout, step);
  }
  const root = /^data folder (\S+) \(kept: --keep\)$/m.exec(demo.stdout)?.[1];
  assert.ok(root, demo.stdout);
  try {
    assert.ok(
      demo.stdout.endsWith(
        `kept ${root} (the server's data folder, the contributors' and webapp's)\n`,
      ),
      demo.stdout,
    );
    for (const kept of ["server/key_store", "alice/identity.pem", "webapp"]) {
      assert.ok(existsSync(join(root, kept)), `${kept} kept`);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  // One round, one record, one code: the record the round stored is the one delivered, and the
  // code delivered is the one verified.
  assert.equal(demo.stdout.match(/opened for otp/g)?.length, 1, demo.stdout);
  const opened = /round (\S+) opened for otp/.exec(demo.stdout)![1];
  const stored = /\[5\] .*\n.*key_store.*\n\s+record\s+(\S+)\s+\(round (\S+)\)/.exec(demo.stdout);
  assert.ok(stored, demo.stdout);
  assert.equal(stored[2], opened);
  const delivered =
    /\[6\] OTP (\S+) delivered to webapp, sealed to its key in transit: (\d{6})/.exec(demo.stdout);
  assert.ok(delivered, demo.stdout);
  assert.equal(delivered[1], stored[1]);
  assert.match(
    demo.stdout,
    new RegExp(`\\[7\\] alice@example.com types ${delivered[2]}; webapp verifies it: valid`),
  );
  assert.ok(demo.stdout.indexOf("[4]") < demo.stdout.indexOf("opened for otp"));
});
