/**
 * `dkeygen distributor` through the real executable, beside a `dkeygen server --store` on one
 * throwaway PostgreSQL database (test/helpers/postgres.ts), with two contributor processes so the
 * server's rounds refill the OTP pool: an OTP handed out by one process verifies on the other,
 * wrong codes spread over both lock the subject after the configured total, a removed requester is
 * refused by the distributor within a second, and what needs rounds or the log is refused there.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CliProcess, runCli, serverArgs } from "../helpers/cli.js";
import { startPostgres } from "../helpers/postgres.js";

const cluster = await startPostgres();
const MAX_FAILURES = "3";

let dir: string;
let url: string;
let serverDir: string;
let requesterDir: string;
let credential: string;
let server: CliProcess;
let distributor: CliProcess;
let serverHttp: string;
let distributorHttp: string;
const contributors: CliProcess[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dkeygen-distributor-"));
  url = await cluster.createDatabase();
  serverDir = join(dir, "server");
  server = new CliProcess(
    serverArgs(serverDir, [
      "--store",
      url,
      "--otp-pool",
      "6",
      "--min-cosignatures",
      "0",
      "--max-failures",
      MAX_FAILURES,
    ]),
  );
  const [, wsUrl] = await server.waitFor(/listening\s+(ws:\/\/\S+)/, 30_000);
  [, serverHttp] = (await server.waitFor(/distribution\s+(http:\/\/\S+)/)) as unknown as [
    string,
    string,
  ];
  for (const name of ["c1", "c2"]) {
    const token = JSON.parse((await runCli(["enroll", "--data-dir", serverDir, "--json"])).stdout)
      .token as string;
    const c = new CliProcess(
      ["contributor", "--server", wsUrl!, "--data-dir", join(dir, name), "--log-format", "json"],
      { DKEYGEN_ENROLL_TOKEN: token },
    );
    contributors.push(c);
    await c.waitFor(/enrolled and joined/, 30_000);
  }
  distributor = new CliProcess([
    "distributor",
    "--store",
    url,
    "--data-dir",
    serverDir,
    "--http-listen",
    "127.0.0.1:0",
    "--max-failures",
    MAX_FAILURES,
    "--log-format",
    "json",
  ]);
  [, distributorHttp] = (await distributor.waitFor(/distribution\s+(http:\/\/\S+)/)) as unknown as [
    string,
    string,
  ];
  requesterDir = join(dir, "webapp");
  const init = await runCli([
    "requester",
    "init",
    "--data-dir",
    requesterDir,
    "--server",
    distributorHttp,
  ]);
  assert.equal(init.status, 0, init.stderr);
  const add = await runCli([
    "requester",
    "add",
    "webapp",
    "--public-key",
    join(requesterDir, "requester.pub.pem"),
    "--store",
    url,
    "--data-dir",
    serverDir,
    "--json",
  ]);
  assert.equal(add.status, 0, add.stderr);
  credential = JSON.parse(add.stdout).credential as string;
  const file = join(dir, "webapp.credential");
  await writeFile(file, `${credential}\n`, { mode: 0o600 });
  // Logged in through the distributor: it reads the registration the CLI just wrote.
  const login = await runCli([
    "requester",
    "login",
    "--data-dir",
    requesterDir,
    "--credential-file",
    file,
  ]);
  assert.equal(login.status, 0, login.stderr);
});

after(async () => {
  await distributor?.stop();
  for (const c of contributors) await c.stop();
  await server?.stop();
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
});

const otp = (verb: string, at: string, ...rest: string[]) =>
  runCli(["otp", verb, "--data-dir", requesterDir, "--server", at, ...rest]);

async function requestOtp(at: string, subject: string): Promise<string> {
  const got = await otp("request", at, "--subject", subject, "--json");
  assert.equal(got.status, 0, got.stderr);
  return JSON.parse(got.stdout).code as string;
}

test("the distributor is ready when its database answers, and runs no rounds and serves no log", async () => {
  const ready = await fetch(`${distributorHttp}/v1/ready`);
  assert.equal(ready.status, 200);
  const body = (await ready.json()) as Record<string, unknown>;
  assert.equal(body.database, "reachable");
  assert.equal(body.contributors, undefined);
  assert.equal((await fetch(`${distributorHttp}/v1/log/checkpoint`)).status, 404);
  const enroll = await runCli([
    "totp",
    "enroll",
    "--data-dir",
    requesterDir,
    "--server",
    distributorHttp,
    "--issuer",
    "ACME",
    "--account",
    "zoe",
  ]);
  assert.notEqual(enroll.status, 0);
  assert.match(enroll.stderr, /dkeygen distributor: it runs no rounds/);
});

test("an OTP requested through the distributor verifies through the server, and one from the server through the distributor", async () => {
  const fromDistributor = await requestOtp(distributorHttp, "alice");
  const onServer = await otp("verify", serverHttp, "--subject", "alice", "--code", fromDistributor);
  assert.equal(onServer.status, 0, onServer.stderr);
  assert.equal(onServer.stdout, "valid\n");
  const again = await otp(
    "verify",
    distributorHttp,
    "--subject",
    "alice",
    "--code",
    fromDistributor,
  );
  assert.equal(again.status, 1, "used once, whoever verified it");

  const fromServer = await requestOtp(serverHttp, "bob");
  const onDistributor = await otp(
    "verify",
    distributorHttp,
    "--subject",
    "bob",
    "--code",
    fromServer,
  );
  assert.equal(onDistributor.status, 0, onDistributor.stderr);
  assert.equal(onDistributor.stdout, "valid\n");
});

test("wrong codes spread over the distributor and the server lock the subject after the configured total", async () => {
  const code = await requestOtp(distributorHttp, "carol");
  const wrong = code === "000000" ? "111111" : "000000";
  // Three wrong codes, at most two on either process: locked only if they are counted together.
  for (const at of [distributorHttp, serverHttp, distributorHttp]) {
    const refused = await otp("verify", at, "--subject", "carol", "--code", wrong);
    assert.equal(refused.status, 1, refused.stderr);
  }
  const locked = await otp("verify", serverHttp, "--subject", "carol", "--code", code);
  assert.notEqual(locked.status, 0);
  assert.match(locked.stderr, /locked/i);
});

test("a requester removed with requester remove --store is refused by the distributor within a second", async () => {
  const status = async () =>
    (
      await fetch(`${distributorHttp}/v1/requester`, {
        headers: { authorization: `Bearer ${credential}` },
      })
    ).status;
  assert.equal(await status(), 200);
  const removed = await runCli([
    "requester",
    "remove",
    "webapp",
    "--store",
    url,
    "--data-dir",
    serverDir,
  ]);
  assert.equal(removed.status, 0, removed.stderr);
  const gone = performance.now();
  let code = 200;
  while (code === 200 && performance.now() - gone < 2000) {
    code = await status();
    if (code === 200) await sleep(20);
  }
  assert.equal(code, 401);
  assert.ok(performance.now() - gone < 1000, `refused after ${performance.now() - gone} ms`);
});

test("a distributor without a PostgreSQL store is a usage error, and one without its store key names the file", async () => {
  const without = await runCli(["distributor", "--data-dir", serverDir], {
    env: { DKEYGEN_STORE_URL: "" },
  });
  assert.equal(without.status, 2);
  assert.match(without.stderr, /distributor needs --store postgres:\/\/.*one writer/);
  const missing = join(dir, "nowhere", "store.key");
  const noKey = await runCli([
    "distributor",
    "--store",
    url,
    "--store-key-file",
    missing,
    "--http-listen",
    "127.0.0.1:0",
  ]);
  assert.equal(noKey.status, 1);
  assert.match(
    noKey.stderr,
    new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} does not exist.*never makes one`),
  );
});
