/**
 * Through the real CLI, against a running server: `requester login` refuses a credential that
 * belongs to another key (and stores nothing); errors name the URL tried and the port wanted; a
 * server's first start says it waits for contributors instead of warning that its OTP pool could
 * not be filled; and until they join, `generate` and `otp request` say where they join and how.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { nameRequestFlags } from "../../src/cli/request-fields.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { runCli } from "../helpers/cli.js";
import { type CliStack, startCliStack } from "../helpers/cli-stack.js";

let stack: CliStack;

before(async () => {
  // A pool to fill: the server starts before any contributor has joined; they join in the tests.
  stack = await startCliStack(["--otp-pool", "10"], { contributors: false });
});
after(async () => stack?.stop());

test("the first start says it waits for contributors (URL, quorum) and never warns that the pool refill failed", () => {
  const log = stack.server.stderr;
  const waiting = log.indexOf(`waiting for contributors at ${stack.wsUrl}: a round needs 2`);
  assert.ok(waiting >= 0, log);
  assert.doesNotMatch(log, /OTP pool (refill|check) failed/);
  assert.doesNotMatch(log, /E_QUORUM_NOT_MET/);
});

test("with no contributor connected, generate and otp request exit 1 naming the server's WebSocket URL and the command that starts a contributor", async () => {
  const url = stack.wsUrl;
  const start = `start one with: dkeygen contributor --server ${url} --token-file FILE (FILE: a token from dkeygen enroll)`;
  const generate = await runCli(["generate", "otp", "--data-dir", stack.serverDir]);
  assert.equal(generate.status, 1, generate.stderr);
  assert.equal(
    generate.stderr,
    `dkeygen: Only 0 contributors are connected; a round needs at least 2. Nothing was stored. Contributors join at ${url}; ${start}.\n`,
  );
  const otp = await runCli(["otp", "request", "--data-dir", stack.requesterDir]);
  assert.equal(otp.status, 1, otp.stderr);
  assert.equal(
    otp.stderr,
    `dkeygen: No OTP is ready: waiting for contributors at ${url}: 0 connected, a round needs 2; ${start}, and retry once they have joined.\n`,
  );
  const json = await runCli(["otp", "request", "--data-dir", stack.requesterDir, "--json"]);
  assert.equal(json.status, 1, json.stderr);
  assert.equal(JSON.parse(json.stdout).error.code, "E_UNAVAILABLE");
  assert.ok(JSON.parse(json.stdout).error.message.includes(start), json.stdout);
});

test("once contributors have joined, the pool fills and OTPs are handed out, and no refill failure is warned", async () => {
  await stack.joinContributors();
  const otp = await runCli(["otp", "request", "--data-dir", stack.requesterDir, "--json"]);
  assert.equal(otp.status, 0, otp.stderr);
  assert.doesNotMatch(stack.server.stderr, /OTP pool (refill|check) failed/);
});

test("requester login refuses a credential registered for another key, exits 1 and stores nothing", async () => {
  const other = join(stack.dir, "other");
  const init = await runCli(["requester", "init", "--data-dir", other, "--server", stack.httpUrl]);
  assert.equal(init.status, 0, init.stderr);
  const login = await runCli([
    "requester",
    "login",
    "--data-dir",
    other,
    "--credential-file",
    join(stack.dir, "webapp.credential"),
  ]);
  assert.equal(login.status, 1);
  assert.match(
    login.stderr,
    /^dkeygen: This credential is for webapp's key SHA256:\S+, not this client's key SHA256:\S+; nothing sent to it could be decrypted here\. Ask the admin to register this client's key \(dkeygen requester add webapp --replace --public-key FILE\)/,
  );
  assert.equal(existsSync(join(other, "credential")), false, "no credential was stored");

  // An unknown credential is refused the same way: nothing stored.
  const bogus = join(stack.dir, "bogus.credential");
  const { writeFile } = await import("node:fs/promises");
  await writeFile(bogus, `dkr_webapp.${"A".repeat(43)}\n`, { mode: 0o600 });
  const unknown = await runCli([
    "requester",
    "login",
    "--data-dir",
    other,
    "--credential-file",
    bogus,
  ]);
  assert.equal(unknown.status, 1);
  assert.equal(existsSync(join(other, "credential")), false);
});

test("hints name the URL tried and the port wanted", async () => {
  const requester = ["--data-dir", stack.requesterDir];
  // An HTTP command pointed at the WebSocket port.
  const wsPort = new URL(stack.wsUrl).port;
  const atWs = await runCli([
    "otp",
    "unlock",
    ...requester,
    "--server",
    `http://127.0.0.1:${wsPort}`,
    "--subject",
    "alice",
  ]);
  assert.equal(atWs.status, 1);
  assert.match(
    atWs.stderr,
    new RegExp(
      `http://127\\.0\\.0\\.1:${wsPort} answered like a WebSocket endpoint: .*--http-listen, default 7421`,
    ),
  );

  // An admin command pointed at the distribution server's port.
  const httpPort = new URL(stack.httpUrl).port;
  const atHttp = await runCli([
    "status",
    "--data-dir",
    stack.serverDir,
    "--server",
    `ws://127.0.0.1:${httpPort}`,
  ]);
  assert.equal(atHttp.status, 1);
  assert.match(
    atHttp.stderr,
    new RegExp(
      `ws://127\\.0\\.0\\.1:${httpPort} did not accept a WebSocket connection: .*--listen, default 7420`,
    ),
  );

  // Nothing listening: the URL tried and the question to ask.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const closed = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  const refused = await runCli([
    "otp",
    "unlock",
    ...requester,
    "--server",
    `http://127.0.0.1:${closed}`,
    "--subject",
    "alice",
  ]);
  assert.equal(refused.status, 1);
  assert.match(
    refused.stderr,
    new RegExp(
      `nothing listens at http://127\\.0\\.0\\.1:${closed} \\(ECONNREFUSED\\): is \`dkeygen server\` running, and is this its distribution server`,
    ),
  );
  const adminRefused = await runCli([
    "status",
    "--data-dir",
    stack.serverDir,
    "--server",
    `ws://127.0.0.1:${closed}`,
  ]);
  assert.match(
    adminRefused.stderr,
    new RegExp(
      `nothing listens at ws://127\\.0\\.0\\.1:${closed} \\(ECONNREFUSED\\): is \`dkeygen server\` running, and is this its WebSocket port`,
    ),
  );
});

test("a distribution server's refusal of a field names the CLI flag, not the schema path, as a usage error", () => {
  const mapped = nameRequestFlags(
    new DkeygenError(ErrorCodes.INVALID_INPUT, "Invalid request: body/ttlSeconds must be >= 30."),
  ) as DkeygenError;
  assert.equal(mapped.code, ErrorCodes.USAGE);
  assert.equal(
    mapped.message,
    "--ttl wants a duration from 30s to 1h (the server said: Invalid request: --ttl must be >= 30.)",
  );
  const other = new DkeygenError(ErrorCodes.INVALID_INPUT, "Invalid request: body/unknown x.");
  assert.equal(nameRequestFlags(other), other, "an unknown field is left as it is");
});
