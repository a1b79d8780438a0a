/**
 * `dkeygen audit record ID --admin` through the real CLI: a record the admin owns (made by
 * `dkeygen generate` without --for) is audited over the admin session (`admin.opening`, §15.6),
 * every step passing (text and --json, exit 0, no secret of the opening printed), as a requester's
 * own audit does; a requester's record asked for over the admin session is refused E_NOT_FOUND
 * (exit 1), and an admin nonce record E_FORBIDDEN, as POST /v1/keys/{id}/opening refuses them.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { RECORD_AUDIT_STEPS } from "../../src/audit/record-audit.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { runCli } from "../helpers/cli.js";
import { registerTestRequester, type TestRequester } from "../helpers/distribution.js";

let server: TestServer;
let requester: TestRequester;
const admin = () => ["--data-dir", server.dataDir];

before(async () => {
  server = await startTestServer({ quorum: 2 });
  await startContributors(server, 2);
  requester = await registerTestRequester(server, "auditor");
});
after(() => server.cleanup());

async function generate(args: string[]) {
  const result = await runCli(["generate", ...args, ...admin(), "--json"]);
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as { id: string; roundId: string; owner?: string };
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

test("the admin audits a TOTP and an ECC record it owns with --admin: every step passes, exit 0, no secret printed", async () => {
  for (const args of [
    ["totp", "--issuer", "ACME", "--account", "bob"],
    ["ecc", "--curve", "p256"],
  ]) {
    const record = await generate(args);
    const pin = ["--server-fingerprint", server.fingerprint];
    // The server found through its data folder (server.json names both URLs).
    const text = await runCli(["audit", "record", record.id, "--admin", ...admin(), ...pin]);
    assert.equal(text.status, 0, text.stderr + text.stdout);
    for (const step of RECORD_AUDIT_STEPS) {
      assert.match(text.stdout, new RegExp(`${step}\\s+ok: `), `${step} in\n${text.stdout}`);
    }
    assert.match(
      text.stdout,
      /every check passed: this key came from a committed round of these contributors, and nobody could choose it/,
    );
    assert.match(text.stdout, /\(as pinned\)/);

    // Named by URL: the WebSocket server for the opening, the distribution server for the log.
    const json = await runCli([
      "audit",
      "record",
      record.id,
      "--admin",
      ...admin(),
      "--server",
      server.url,
      "--log-server",
      server.httpUrl!,
      ...pin,
      "--json",
    ]);
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.recordId, record.id);
    assert.equal(report.roundId, record.roundId);
    assert.deepEqual(
      report.steps.map((s: { step: string; status: string }) => `${s.step}:${s.status}`),
      RECORD_AUDIT_STEPS.map((s) => `${s}:passed`),
    );
    assert.equal(report.contributors.length, 2);
    assert.equal(report.server.pinned, true);
    for (const secret of await secretsOf(record.roundId)) {
      for (const output of [text.stdout, text.stderr, json.stdout, json.stderr]) {
        assert.ok(!output.includes(secret), "a secret of the opening was printed");
      }
    }
  }
});

test("over the admin session, a requester's record is refused E_NOT_FOUND and an admin nonce record E_FORBIDDEN: exit 1", async () => {
  const theirs = await generate(["ecc", "--for", requester.name]);
  const nonce = await generate(["nonce"]);

  const refused = await runCli(["audit", "record", theirs.id, "--admin", ...admin(), "--json"]);
  assert.equal(refused.status, 1, refused.stderr);
  assert.equal(JSON.parse(refused.stdout).error.code, ErrorCodes.NOT_FOUND);

  const forbidden = await runCli(["audit", "record", nonce.id, "--admin", ...admin(), "--json"]);
  assert.equal(forbidden.status, 1, forbidden.stderr);
  assert.equal(JSON.parse(forbidden.stdout).error.code, ErrorCodes.FORBIDDEN);

  // The same refusals through the admin client, and a record that does not exist like another's.
  const client = await server.admin();
  try {
    await assert.rejects(client.fetchOpening(theirs.id), (e) =>
      isDkeygenError(e, ErrorCodes.NOT_FOUND),
    );
    await assert.rejects(client.fetchOpening("01JDKGEN00000000000000000X"), (e) =>
      isDkeygenError(e, ErrorCodes.NOT_FOUND),
    );
    await assert.rejects(client.fetchOpening(nonce.id), (e) =>
      isDkeygenError(e, ErrorCodes.FORBIDDEN),
    );
    // The requester's own audit of its record still passes: the refusal is the admin's alone.
    const own = await runCli(["audit", "record", theirs.id, "--data-dir", requester.dataDir]);
    assert.equal(own.status, 0, own.stderr + own.stdout);
  } finally {
    client.close();
  }
});
