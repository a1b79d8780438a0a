/**
 * What people read, through the real CLI: PEM blocks stay in the value column, no field is shown
 * twice, a wallet's accounts and a multisig's keys are tables (not JSON arrays), attempts left are
 * counted in words ("1 attempt left"), a lockout names the command that lifts it, and an empty
 * requester list says it is empty.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { runCli } from "../helpers/cli.js";
import { registerTestRequester, type TestRequester } from "../helpers/distribution.js";

let server: TestServer;
let webapp: TestRequester;
const secret = randomBytes(64).toString("hex");

before(async () => {
  server = await startTestServer({ quorum: 2 }, { otpPool: 2, lockout: { maxFailures: 2 } });
  await startContributors(server, 2);
  webapp = await registerTestRequester(server, "webapp");
});
after(() => server.cleanup());

async function cli(args: string[], status = 0) {
  const result = await runCli(args);
  assert.equal(result.status, status, `${args.join(" ")}: ${result.stderr}`);
  return result;
}

/** The labels of the `  label  value` rows printed at `indent` spaces. */
const labels = (stdout: string, indent = 2) =>
  stdout
    .split("\n")
    .filter((line) => new RegExp(`^ {${indent}}\\S`).test(line))
    .map((line) => line.trim().split(/\s+/)[0]!);

test("PEM blocks are indented to their value column, every line of them", async () => {
  const { stdout } = await cli([
    "derive",
    "rsa",
    "--bits",
    "2048",
    "--secret",
    secret,
    "--reveal-secret",
  ]);
  for (const [label, kind] of [
    ["spki", "PUBLIC KEY"],
    ["pkcs8", "PRIVATE KEY"],
  ] as const) {
    const lines = stdout.split("\n");
    const first = lines.findIndex((l) => l.includes(`-----BEGIN ${kind}-----`));
    const last = lines.findIndex((l) => l.includes(`-----END ${kind}-----`));
    assert.ok(first >= 0 && last > first, stdout);
    const column = lines[first]!.indexOf("-----BEGIN");
    assert.match(lines[first]!, new RegExp(`^  ${label}\\s+-----BEGIN`));
    for (const line of lines.slice(first + 1, last + 1)) {
      assert.equal(line.slice(0, column).trim(), "", `indented: ${line}`);
      assert.notEqual(line[column], " ", `in the value column: ${line}`);
    }
  }
  // Nothing but the section heading starts in column 0.
  const flush = stdout.split("\n").filter((l) => l !== "" && !l.startsWith(" "));
  assert.deepEqual(flush, ["secret part (shown because --reveal-secret was given):"]);
});

test("no field is shown twice: a TOTP record's header, public part and fetched secret part", async () => {
  const derived = await cli([
    "derive",
    "totp",
    "--issuer",
    "ACME",
    "--account",
    "bob",
    "--secret",
    secret,
  ]);
  assert.deepEqual(labels(derived.stdout), [...new Set(labels(derived.stdout))]);
  assert.match(derived.stdout, /^ {2}derivation\s+totp\/v1$/m);
  assert.match(derived.stdout, /^ {2}algorithm\s+SHA1$/m);

  const generated = await cli([
    "generate",
    "totp",
    "--issuer",
    "ACME",
    "--account",
    "bob",
    "--for",
    "webapp",
    "--data-dir",
    server.dataDir,
    "--json",
  ]);
  const id = JSON.parse(generated.stdout).id as string;
  const fetched = await cli(["key", "fetch", id, "--reveal-secret", "--data-dir", webapp.dataDir]);
  const shown = labels(fetched.stdout);
  assert.deepEqual(shown, [...new Set(shown)], fetched.stdout);
  for (const label of ["record", "issuer", "account", "algorithm", "secret", "uri"]) {
    assert.ok(shown.includes(label), `${label} is shown: ${fetched.stdout}`);
  }
});

test("a wallet's accounts and a multisig's keys are tables, not JSON arrays", async () => {
  const wallet = await cli([
    "derive",
    "wallet",
    "--accounts",
    "2",
    "--indexes",
    "2",
    "--secret",
    secret,
  ]);
  assert.doesNotMatch(wallet.stdout, /\[\{/);
  assert.match(wallet.stdout, /^ {2}ethereum\n {4}account\s+0\n {4}path\s+m\/44'\/60'\/0'\n/m);
  assert.match(
    wallet.stdout,
    /^ {4}addresses\n {6}path\s+address\n {6}m\/44'\/60'\/0'\/0\/0\s+0x[0-9A-Fa-f]{40}\n {6}m\/44'\/60'\/0'\/0\/1\s+0x/m,
  );
  assert.match(wallet.stdout, /^ {2}bitcoin\n/m);
  assert.equal(wallet.stdout.match(/^ {4}account\s+1$/gm)?.length, 2, "account 1 of both chains");

  const multisig = await cli([
    "derive",
    "multisig",
    "--m",
    "2",
    "--n",
    "3",
    "--secret",
    secret,
    "--reveal-secret",
  ]);
  assert.doesNotMatch(multisig.stdout, /\[\{/);
  assert.match(
    multisig.stdout,
    /^ {2}keys\n {4}index\s+publicKey\n {4}0\s+0[23][0-9a-f]{64}\n {4}1\s+0[23][0-9a-f]{64}\n {4}2\s+0[23][0-9a-f]{64}\n/m,
  );
  assert.match(
    multisig.stdout,
    /^ {4}index\s+privateKey\s+wif\n {4}0\s+[0-9a-f]{64}\s+[KL]\w{51}\n/m,
  );
});

test("wrong codes count attempts in words, and a lockout names the command that lifts it", async () => {
  await cli(["otp", "request", "--subject", "zed", "--data-dir", webapp.dataDir]);
  const verify = (code: string) =>
    cli(["otp", "verify", "--subject", "zed", "--code", code, "--data-dir", webapp.dataDir], 1);
  assert.match((await verify("000000")).stderr, /wrong code; 1 attempt left\.\n/);
  const locking = (await verify("000000")).stderr;
  assert.match(
    locking,
    /wrong code; 0 attempts left: locked until \S+\. To lift it now, run: dkeygen otp unlock --subject zed\n/,
  );
  const locked = (await verify("000000")).stderr;
  assert.match(locked, /locked until .*To lift it now, run: dkeygen otp unlock --subject zed\n/);
  await cli(["otp", "unlock", "--subject", "zed", "--data-dir", webapp.dataDir]);
  assert.match((await verify("000000")).stderr, /1 attempt left/);

  await cli([
    "totp",
    "enroll",
    "--issuer",
    "ACME",
    "--account",
    "amy",
    "--no-qr",
    "--data-dir",
    webapp.dataDir,
  ]);
  const totp = (code: string) =>
    cli(["totp", "verify", "--account", "amy", "--code", code, "--data-dir", webapp.dataDir], 1);
  assert.match((await totp("0000000")).stderr, /Invalid|invalid|wrong code/);
  const totpLocked = [(await totp("000000")).stderr, (await totp("000000")).stderr].join("");
  assert.match(totpLocked, /To lift it now, run: dkeygen totp unlock --account amy\n/);
});

test("requester list says when no requesting client is registered", async () => {
  const empty = await cli(["requester", "list", "--data-dir", join(server.root, "no-server")]);
  assert.equal(
    empty.stdout,
    "no requesting clients registered (dkeygen requester add NAME --public-key FILE)\n",
  );
  const listed = await cli(["requester", "list", "--data-dir", server.dataDir]);
  assert.match(listed.stdout, /^webapp\trq:/m);
  assert.doesNotMatch(listed.stdout, /no requesting clients/);
});
