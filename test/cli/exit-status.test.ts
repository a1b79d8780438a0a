/**
 * Exit statuses a script can rely on: `dkeygen otp verify … && allow_login` lets only a valid
 * code in. Every verification outcome — valid, wrong, used, expired, locked, unknown subject —
 * through the real CLI, with and without --json; and no command sets process.exitCode behind
 * main's back (the bug that made a rejected --json verification exit 0).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { fromBase32, parseOtpauthUri } from "../../src/derive/otpauth.js";
import { totpCode } from "../../src/derive/totp.js";
import { runCli } from "../helpers/cli.js";
import { type CliStack, startCliStack } from "../helpers/cli-stack.js";
import { REPO_ROOT } from "../helpers/paths.js";

let stack: CliStack;

before(async () => {
  // OTPs live 1 s unless a request asks for longer; 4 failures lock a subject.
  stack = await startCliStack(["--otp-ttl", "1s", "--max-failures", "4"]);
});
after(async () => stack?.stop());

const requester = () => ["--data-dir", stack.requesterDir];

async function requestOtp(subject: string, ttl?: string): Promise<string> {
  const result = await runCli([
    "otp",
    "request",
    ...requester(),
    "--subject",
    subject,
    ...(ttl ? ["--ttl", ttl] : []),
    "--json",
  ]);
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout).code as string;
}

const verify = (subject: string, code: string, json = true) =>
  runCli([
    "otp",
    "verify",
    ...requester(),
    "--subject",
    subject,
    "--code",
    code,
    ...(json ? ["--json"] : []),
  ]);

/** A code of the same length that is not `code`. */
const wrong = (code: string) => code.replace(/^./, (d) => String((Number(d) + 1) % 10));

test("otp verify: valid exits 0; wrong, used, expired and unknown exit 1 with or without --json; locked exits 1 with E_LOCKED", async () => {
  const code = await requestOtp("alice", "60s");

  const wrongJson = await verify("alice", wrong(code));
  assert.equal(wrongJson.status, 1, "a wrong code with --json exits 1");
  assert.equal(JSON.parse(wrongJson.stdout).reason, "invalid");
  assert.equal(JSON.parse(wrongJson.stdout).valid, false);
  assert.match(wrongJson.stderr, /^dkeygen: Code rejected: wrong code; 3 attempts left\.\n$/);
  const wrongPlain = await verify("alice", wrong(code), false);
  assert.equal(wrongPlain.status, 1);
  assert.equal(wrongPlain.stdout, "");

  const valid = await verify("alice", code);
  assert.equal(valid.status, 0, valid.stderr);
  assert.equal(JSON.parse(valid.stdout).valid, true);
  assert.equal(valid.stderr, "");

  const used = await verify("alice", code);
  assert.equal(used.status, 1, "a used code with --json exits 1");
  assert.equal(JSON.parse(used.stdout).reason, "used");
  assert.equal((await verify("alice", code, false)).status, 1);

  const stale = await requestOtp("bob");
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const expired = await verify("bob", stale);
  assert.equal(expired.status, 1, "an expired code with --json exits 1");
  assert.equal(JSON.parse(expired.stdout).reason, "expired");

  const unknown = await verify("nobody", "123456");
  assert.equal(unknown.status, 1, "a subject with no OTP exits 1");
  assert.equal(JSON.parse(unknown.stdout).reason, "invalid");

  for (let i = 0; i < 4; i++) assert.equal((await verify("mallory", "123456")).status, 1);
  const locked = await verify("mallory", "123456");
  assert.equal(locked.status, 1, "a locked subject exits 1");
  const document = JSON.parse(locked.stdout);
  assert.equal(document.ok, false);
  assert.equal(document.error.code, "E_LOCKED");
  assert.equal((await verify("mallory", "123456", false)).status, 1);
});

test("totp verify: valid exits 0; replayed, wrong and unknown account exit 1 with --json", async () => {
  const enrolled = await runCli([
    "totp",
    "enroll",
    ...requester(),
    "--issuer",
    "Acme",
    "--account",
    "carol",
    "--reveal-secret",
    "--json",
  ]);
  assert.equal(enrolled.status, 0, enrolled.stderr);
  const key = parseOtpauthUri(JSON.parse(enrolled.stdout).uri);
  assert.deepEqual(key.secret, fromBase32(JSON.parse(enrolled.stdout).secret));
  const code = totpCode(key.secret, Math.floor(Date.now() / 1000), key);
  const run = (account: string, c: string) =>
    runCli(["totp", "verify", ...requester(), "--account", account, "--code", c, "--json"]);

  const valid = await run("carol", code);
  assert.equal(valid.status, 0, valid.stderr);
  const replayed = await run("carol", code);
  assert.equal(replayed.status, 1, "a replayed TOTP code with --json exits 1");
  assert.equal(JSON.parse(replayed.stdout).valid, false);
  const wrongCode = await run("carol", wrong(code));
  assert.equal(wrongCode.status, 1);
  assert.equal(JSON.parse(wrongCode.stdout).valid, false);
  const unknown = await run("nobody", "123456");
  assert.equal(unknown.status, 1, "an account that was never enrolled exits 1");
});

test("only the executable sets process.exitCode: commands return or throw", () => {
  const writers: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".ts") && /process\.exitCode\s*=/.test(readFileSync(path, "utf8"))) {
        writers.push(relative(REPO_ROOT, path));
      }
    }
  };
  walk(join(REPO_ROOT, "src"));
  assert.deepEqual(writers, ["src/cli/main.ts"]);
});
