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
import { hotpCode } from "../../src/derive/hotp.js";
import { fromBase32, parseOtpauthUri } from "../../src/derive/otpauth.js";
import { totpCode } from "../../src/derive/totp.js";
import { runCli, runCliBatch } from "../helpers/cli.js";
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
  const expiredPlain = await verify("bob", stale, false);
  assert.equal(expiredPlain.status, 1, "an expired code without --json exits 1");
  assert.equal(expiredPlain.stdout, "");
  assert.equal(expiredPlain.stderr, "dkeygen: Code rejected: the code has expired.\n");

  const unknown = await verify("nobody", "123456");
  assert.equal(unknown.status, 1, "a subject with no OTP exits 1");
  assert.equal(JSON.parse(unknown.stdout).reason, "invalid");
  const unknownPlain = await verify("nobody", "123456", false);
  assert.equal(unknownPlain.status, 1, "a subject with no OTP exits 1 without --json");
  assert.equal(unknownPlain.stdout, "");
  assert.equal(unknownPlain.stderr, "dkeygen: Code rejected: wrong code; 2 attempts left.\n");

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

/** Enrolls `account` (TOTP, or HOTP with `--hotp`) and returns the enrollment's JSON document. */
async function enroll(account: string, ...extra: string[]) {
  const result = await runCli([
    "totp",
    "enroll",
    ...requester(),
    "--issuer",
    "Acme",
    "--account",
    account,
    "--reveal-secret",
    "--json",
    ...extra,
  ]);
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as { secret: string; recoveryCodes: string[] };
}

/**
 * `totp` command lines, run one after another through the CLI's main() in one process (what the
 * executable's exit status comes from; a Node start each would cost a second apiece).
 */
const totpBatch = (...lines: string[][]) =>
  runCliBatch(lines.map((args) => ["totp", ...args, ...requester()]));

test("wrong recovery codes lock the account; locked, recovery-verify and totp verify --json exit 1 naming totp unlock, which lets the codes in again", async () => {
  const enrolled = await enroll("dave", "--recovery-codes", "2");
  const [recovery] = enrolled.recoveryCodes;
  const notOne = enrolled.recoveryCodes.includes("aaaaa-aaaaa") ? "bbbbb-bbbbb" : "aaaaa-aaaaa";
  const code = totpCode(fromBase32(enrolled.secret), Math.floor(Date.now() / 1000));
  const wrongOne = ["recovery-verify", "--account", "dave", "--code", notOne];
  const [w3, w2, w1, fourth, right, locked, lifted, again] = await totpBatch(
    wrongOne,
    wrongOne,
    wrongOne,
    wrongOne,
    ["recovery-verify", "--account", "dave", "--code", recovery!],
    ["verify", "--account", "dave", "--code", code, "--json"],
    ["unlock", "--account", "dave"],
    ["recovery-verify", "--account", "dave", "--code", recovery!],
  );
  const unlock = "To lift it now, run: dkeygen totp unlock --account dave";
  for (const [result, left] of [
    [w3!, "3 attempts"],
    [w2!, "2 attempts"],
    [w1!, "1 attempt"],
  ] as const) {
    assert.equal(result.status, 1);
    assert.equal(result.stderr, `dkeygen: Code rejected: wrong code; ${left} left.\n`);
  }
  assert.equal(fourth!.status, 1);
  assert.match(fourth!.stderr, new RegExp(`0 attempts left: locked until \\S+\\. ${unlock}\n$`));

  // Locked: the right recovery code and the right TOTP code are refused, and not used up.
  assert.equal(right!.status, 1, "a locked account's right recovery code exits 1");
  assert.match(right!.stderr, new RegExp(`locked.*${unlock}\n$`, "i"));
  assert.equal(locked!.status, 1, "totp verify --json of a locked account exits 1");
  const document = JSON.parse(locked!.stdout);
  assert.equal(document.ok, false);
  assert.equal(document.error.code, "E_LOCKED");
  assert.match(locked!.stderr, new RegExp(`${unlock}\n$`));

  assert.equal(lifted!.status, 0, lifted!.stderr);
  assert.equal(again!.status, 0, again!.stderr);
  assert.equal(again!.stdout, "valid; 1 recovery code left\n");
});

test("HOTP with the server's default windows: 10 counters ahead verify, and two consecutive codes further ahead resynchronise", async () => {
  const enrolled = await enroll("erin", "--hotp", "--recovery-codes", "0");
  const secret = fromBase32(enrolled.secret);
  const at = (counter: number) => [
    "verify",
    "--account",
    "erin",
    "--code",
    hotpCode(secret, counter),
  ];
  // Next is 0: 10 is in the look-ahead window. Then next is 11: 60 is beyond it (rejected
  // alone), 61 right after it resynchronises, and the window goes on from 62.
  const [ten, first, second, replayed, after61] = await totpBatch(
    at(10),
    at(60),
    at(61),
    at(61),
    at(62),
  );
  assert.equal(ten!.status, 0, ten!.stderr);
  assert.equal(first!.status, 1, "a first code beyond the window");
  assert.equal(first!.stderr, "dkeygen: Code rejected: wrong code; 3 attempts left.\n");
  assert.equal(second!.status, 0, second!.stderr);
  assert.equal(second!.stdout, "valid\n");
  assert.equal(replayed!.status, 1, "a counter once accepted never verifies again");
  assert.equal(after61!.status, 0, after61!.stderr);
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
