/**
 * `dkeygen audit record` through the real CLI, as a record's owner: every step passes for a TOTP
 * and an ECC record made for it (text and --json, exit 0), and no secret of the opening is printed;
 * another requester's record, a nonce record and another pinned server fail with exit 1.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { RECORD_AUDIT_STEPS } from "../../src/audit/record-audit.js";
import { ErrorCodes } from "../../src/errors.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { runCli } from "../helpers/cli.js";
import { registerTestRequester, type TestRequester } from "../helpers/distribution.js";

let server: TestServer;
let owner: TestRequester;
let other: TestRequester;
const admin = () => ["--data-dir", server.dataDir];

before(async () => {
  server = await startTestServer({ quorum: 2 });
  await startContributors(server, 2);
  owner = await registerTestRequester(server, "auditor");
  other = await registerTestRequester(server, "stranger");
});
after(() => server.cleanup());

async function generate(args: string[]) {
  const result = await runCli(["generate", ...args, ...admin(), "--json"]);
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as { id: string; roundId: string };
}

/** The opening's secrets, as the server keeps them: none may appear in any output. */
async function secretsOf(roundId: string): Promise<string[]> {
  const bytes = await server.store.readRoundOpening(roundId);
  const opening = JSON.parse(Buffer.from(bytes!).toString("utf8")) as {
    serverSecret: string;
    contributions: { phrase: string; contentKey: string }[];
  };
  return [opening.serverSecret, ...opening.contributions.flatMap((c) => [c.phrase, c.contentKey])];
}

test("the owner audits a TOTP and an ECC record made for it: every step passes, exit 0, no secret printed", async () => {
  for (const args of [
    ["totp", "--issuer", "ACME", "--account", "bob", "--for", owner.name],
    ["ecc", "--curve", "p256", "--for", owner.name],
  ]) {
    const record = await generate(args);
    const pin = ["--server-fingerprint", server.fingerprint];
    const text = await runCli(["audit", "record", record.id, "--data-dir", owner.dataDir, ...pin]);
    assert.equal(text.status, 0, text.stderr + text.stdout);
    for (const step of RECORD_AUDIT_STEPS) {
      assert.match(text.stdout, new RegExp(`${step}\\s+ok: `), `${step} in\n${text.stdout}`);
    }
    assert.match(
      text.stdout,
      /every check passed: this key came from a committed round of these contributors, and nobody could choose it/,
    );
    assert.match(text.stdout, /\(as pinned\)/);

    const json = await runCli([
      "audit",
      "record",
      record.id,
      "--data-dir",
      owner.dataDir,
      "--json",
    ]);
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.recordId, record.id);
    assert.deepEqual(
      report.steps.map((s: { step: string; status: string }) => `${s.step}:${s.status}`),
      RECORD_AUDIT_STEPS.map((s) => `${s}:passed`),
    );
    assert.equal(report.contributors.length, 2);
    assert.equal(report.server.pinned, false);
    for (const secret of await secretsOf(record.roundId)) {
      for (const output of [text.stdout, text.stderr, json.stdout, json.stderr]) {
        assert.ok(!output.includes(secret), "a secret of the opening was printed");
      }
    }
  }
});

test("another requester's record, a nonce record and another pinned server: exit 1", async () => {
  const ecc = await generate(["ecc", "--for", owner.name]);
  const nonce = await generate(["nonce", "--for", owner.name]);

  const theirs = await runCli(["audit", "record", ecc.id, "--data-dir", other.dataDir, "--json"]);
  assert.equal(theirs.status, 1, theirs.stderr);
  assert.equal(JSON.parse(theirs.stdout).error.code, ErrorCodes.NOT_FOUND);

  const forbidden = await runCli(["audit", "record", nonce.id, "--data-dir", owner.dataDir]);
  assert.equal(forbidden.status, 1);
  assert.match(forbidden.stderr, /never leaves the server/);

  const pinned = await runCli([
    "audit",
    "record",
    ecc.id,
    "--data-dir",
    owner.dataDir,
    "--server-fingerprint",
    other.fingerprint,
    "--json",
  ]);
  assert.equal(pinned.status, 1, pinned.stderr);
  const report = JSON.parse(pinned.stdout);
  assert.equal(report.ok, false);
  assert.equal(report.steps[0].step, "identity");
  assert.equal(report.steps[0].status, "failed");
  assert.match(pinned.stderr, /identity: the log is served by server/);
});
