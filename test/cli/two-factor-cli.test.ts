/**
 * Safe two-factor enrollment through the real CLI: a server process (with --hotp-window and
 * --hotp-resync-window), two contributor processes and a requesting client made with the
 * `requester` commands. Output files are checked before the round, a secret is never dropped when
 * a file cannot be written after it, re-enrolling needs --replace, recovery codes are printed once
 * and verified once each, and --hotp enrolls an HOTP secret whose codes oathtool agrees with.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { hotpCode } from "../../src/derive/hotp.js";
import { fromBase32, parseOtpauthUri } from "../../src/derive/otpauth.js";
import { totpCode } from "../../src/derive/totp.js";
import { tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli } from "../helpers/cli.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
let server: CliProcess;
const contributors: CliProcess[] = [];
let serverDir: string;
let requesterDir: string;

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
    "0",
    "--hotp-window",
    "2",
    "--hotp-resync-window",
    "0",
    "--log-format",
    "json",
  ]);
  const [, wsUrl] = await server.waitFor(/listening\s+(ws:\/\/\S+)/);
  const [, httpUrl] = await server.waitFor(/distribution\s+(http:\/\/\S+)/);
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
  const init = await runCli([
    "requester",
    "init",
    "--data-dir",
    requesterDir,
    "--server",
    httpUrl!,
    "--json",
  ]);
  assert.equal(init.status, 0, init.stderr);
  const add = await runCli([
    "requester",
    "add",
    "webapp",
    "--public-key",
    JSON.parse(init.stdout).publicKeyFile,
    "--data-dir",
    serverDir,
    "--json",
  ]);
  assert.equal(add.status, 0, add.stderr);
  const credentialFile = join(dir.path, "credential.txt");
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
});

after(async () => {
  for (const c of contributors) await c.stop();
  await server.stop();
  await dir.remove();
});

const totp = (...args: string[]) => runCli(["totp", ...args, "--data-dir", requesterDir]);
const CODE_LINE = /^ {2}[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/gm;

test("totp enroll checks its QR files before the round: a missing directory or a directory is a usage error, and nothing is enrolled", async () => {
  const missing = await totp(
    "enroll",
    "--issuer",
    "ACME",
    "--account",
    "zoe",
    "--qr-png",
    "/no/such/dir/x.png",
  );
  assert.equal(missing.status, 2, missing.stderr);
  assert.equal(
    missing.stderr,
    "dkeygen: --qr-png /no/such/dir/x.png: the folder /no/such/dir does not exist; create it first or give another path.\n",
  );
  const folder = join(dir.path, "a-folder");
  await mkdir(folder);
  const isDir = await totp("enroll", "--issuer", "ACME", "--account", "zoe", "--qr-svg", folder);
  assert.equal(isDir.status, 2, isDir.stderr);
  assert.equal(
    isDir.stderr,
    `dkeygen: --qr-svg ${folder}: that is a folder; give the path of a file.\n`,
  );
  // No round ran: the account is not enrolled, so enrolling it without --replace works.
  const ok = await totp(
    "enroll",
    "--issuer",
    "ACME",
    "--account",
    "zoe",
    "--no-qr",
    "--recovery-codes",
    "0",
  );
  assert.equal(ok.status, 0, ok.stderr);
});

test("a QR file that cannot be written after the round: the URI, secret and recovery codes are printed anyway, exit 1", async () => {
  // Passes the check (an existing directory or file that looks writable) but cannot be written:
  // /proc takes no new files (as root), /dev/full cannot be chmod-ed by anyone else.
  const target = process.getuid?.() === 0 ? "/proc/dkeygen-qr-test.png" : "/dev/full";
  const result = await totp(
    "enroll",
    "--issuer",
    "ACME",
    "--account",
    "yan",
    "--no-qr",
    "--qr-png",
    target,
    "--recovery-codes",
    "3",
  );
  assert.equal(result.status, 1, result.stderr);
  assert.match(
    result.stderr,
    /is enrolled \(record [0-9A-Z]{26}\), but the QR code could not be written/,
  );
  const uri = /uri\s+(otpauth:\/\/\S+)/.exec(result.stdout)?.[1];
  assert.ok(uri, result.stdout);
  const secret = /secret\s+([A-Z2-7]+)/.exec(result.stdout)?.[1];
  assert.equal(parseOtpauthUri(uri).account, "yan");
  assert.equal(secret, /secret=([A-Z2-7]+)/.exec(uri)?.[1]);
  assert.equal(result.stdout.match(CODE_LINE)?.length, 3);
  // What was printed is what was enrolled.
  const code = totpCode(fromBase32(secret!), Math.floor(Date.now() / 1000));
  const verified = await totp("verify", "--account", "yan", "--code", code);
  assert.equal(verified.status, 0, verified.stderr);
});

test("re-enrolling an account needs --replace, and the CLI says so", async () => {
  const first = await totp(
    "enroll",
    "--issuer",
    "ACME",
    "--account",
    "xia",
    "--json",
    "--reveal-secret",
    "--recovery-codes",
    "1",
  );
  assert.equal(first.status, 0, first.stderr);
  const again = await totp("enroll", "--issuer", "ACME", "--account", "xia", "--no-qr");
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already has a TOTP enrollment.*--replace/);
  const replaced = await totp(
    "enroll",
    "--issuer",
    "ACME",
    "--account",
    "xia",
    "--no-qr",
    "--replace",
    "--recovery-codes",
    "1",
  );
  assert.equal(replaced.status, 0, replaced.stderr);
  assert.match(replaced.stdout, new RegExp(`replaced\\s+${JSON.parse(first.stdout).recordId}`));
  // The old recovery code no longer works.
  const old = await totp(
    "recovery-verify",
    "--account",
    "xia",
    "--code",
    JSON.parse(first.stdout).recoveryCodes[0],
  );
  assert.equal(old.status, 1);
});

test("recovery codes are printed once and totp recovery-verify accepts each once: exit 0, then 1", async () => {
  const enrolled = await totp(
    "enroll",
    "--issuer",
    "ACME",
    "--account",
    "wes",
    "--no-qr",
    "--recovery-codes",
    "2",
  );
  assert.equal(enrolled.status, 0, enrolled.stderr);
  assert.match(enrolled.stdout, /Recovery codes \(each works once; shown only now/);
  const codes = (enrolled.stdout.match(CODE_LINE) ?? []).map((line) => line.trim());
  assert.equal(codes.length, 2);
  assert.doesNotMatch(enrolled.stdout, /otpauth:\/\//, "the URI only with --reveal-secret");
  const first = await totp("recovery-verify", "--account", "wes", "--code", codes[0]!);
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stdout, "valid; 1 recovery code left\n");
  const reused = await totp("recovery-verify", "--account", "wes", "--code", codes[0]!);
  assert.equal(reused.status, 1);
  assert.match(reused.stderr, /already used/);
  const json = await totp(
    "recovery-verify",
    "--account",
    "wes",
    "--code",
    codes[1]!.toUpperCase(),
    "--json",
  );
  assert.equal(json.status, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), { valid: true, recoveryCodesLeft: 0 });
  const tooMany = await totp(
    "enroll",
    "--issuer",
    "ACME",
    "--account",
    "vic",
    "--recovery-codes",
    "21",
  );
  assert.equal(tooMany.status, 2);
  assert.match(tooMany.stderr, /--recovery-codes wants a whole number from 0 to 20/);
});

test("--hotp enrolls an HOTP secret whose codes (oathtool's too) verify within the server's --hotp-window", async () => {
  const result = await totp(
    "enroll",
    "--issuer",
    "ACME",
    "--account",
    "uma",
    "--hotp",
    "--counter",
    "2",
    "--json",
    "--reveal-secret",
    "--recovery-codes",
    "0",
  );
  assert.equal(result.status, 0, result.stderr);
  const enrollment = JSON.parse(result.stdout);
  assert.equal(enrollment.type, "hotp");
  assert.equal(enrollment.counter, 2);
  assert.match(enrollment.uri, /^otpauth:\/\/hotp\/ACME:uma\?.*&counter=2$/);
  const secret = fromBase32(enrollment.secret);
  const code = (counter: number) => hotpCode(secret, counter);
  let atFour = code(4);
  try {
    atFour = execFileSync("oathtool", ["--hotp", "-b", "-c", "4", enrollment.secret], {
      encoding: "utf8",
    }).trim();
    assert.equal(atFour, code(4));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  // --hotp-window 2: counter 2 + 2 is accepted; then 5 is expected and 5 + 3 is too far.
  const ok = await totp("verify", "--account", "uma", "--code", atFour);
  assert.equal(ok.status, 0, ok.stderr);
  const replay = await totp("verify", "--account", "uma", "--code", atFour);
  assert.equal(replay.status, 1);
  assert.match(replay.stderr, /replay/);
  for (const counter of [8, 9]) {
    // --hotp-resync-window 0: no pair of codes beyond the window resynchronises either.
    const far = await totp("verify", "--account", "uma", "--code", code(counter));
    assert.equal(far.status, 1, `counter ${counter}`);
  }
  const wrongShape = await totp(
    "enroll",
    "--issuer",
    "ACME",
    "--account",
    "tom",
    "--hotp",
    "--period",
    "30",
  );
  assert.equal(wrongShape.status, 2);
});
