/**
 * Several `dkeygen distributor` processes on one throwaway PostgreSQL database, beside the
 * `dkeygen server` that refills the OTP pool with two contributor processes, under load from
 * this process (the requester library, over loopback HTTP):
 *
 * - 10,000 OTP requests spread over 2 distributors: 10,000 distinct OTPs, none handed out twice;
 * - a 1,000-way race of one TOTP code over 3 distributors: exactly one accepted; wrong codes
 *   spread over the 3 lock the account at the configured total, not per process;
 * - a distributor SIGKILLed during 1,000 claims: no OTP handed out twice, every OTP it
 *   acknowledged verifies (once) on another;
 * - PostgreSQL restarted under load: requests meanwhile get 503 with Retry-After and an answer
 *   that names no database, and service resumes without restarting dkeygen.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { RequesterClient } from "../../src/client/requester.js";
import { loadOrCreateRequesterKeys } from "../../src/client/requester-state.js";
import { Secret } from "../../src/crypto/secret.js";
import { fromBase32 } from "../../src/derive/otpauth.js";
import { totpCode } from "../../src/derive/totp.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { CliProcess, runCli, serverArgs } from "../helpers/cli.js";
import { startPostgres } from "../helpers/postgres.js";

const cluster = await startPostgres();
const MAX_FAILURES = 5;

let dir: string;
let url: string;
let serverDir: string;
let requesterDir: string;
let credential: string;
let server: CliProcess;
let serverHttp: string;
const contributors: CliProcess[] = [];
const distributors: { process: CliProcess; http: string; client: RequesterClient }[] = [];
/** Every OTP id any test was handed, from any process: none may come twice. */
const handedOut = new Set<string>();

function remember(otpId: string): void {
  assert.ok(!handedOut.has(otpId), `OTP ${otpId} was handed out twice`);
  handedOut.add(otpId);
}

async function startDistributor(): Promise<void> {
  const process = new CliProcess([
    "distributor",
    "--store",
    url,
    "--data-dir",
    serverDir,
    "--http-listen",
    "127.0.0.1:0",
    "--max-failures",
    String(MAX_FAILURES),
    "--otp-per-minute",
    "0",
    "--rate-limit-address",
    "0",
    "--rate-limit-credential",
    "0",
    "--otp-wait",
    "20s",
    "--log-format",
    "json",
    "--log-level",
    "warn",
  ]);
  const [, http] = (await process.waitFor(/distribution\s+(http:\/\/\S+)/, 30_000)) as unknown as [
    string,
    string,
  ];
  distributors.push({ process, http, client: await clientFor(http) });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dkeygen-distributor-load-"));
  url = await cluster.createDatabase();
  serverDir = join(dir, "server");
  server = new CliProcess(
    serverArgs(serverDir, [
      "--store",
      url,
      "--otp-pool",
      "4000",
      "--min-cosignatures",
      "0",
      "--max-failures",
      String(MAX_FAILURES),
      "--log-level",
      "warn",
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
  requesterDir = join(dir, "webapp");
  const init = await runCli(["requester", "init", "--data-dir", requesterDir]);
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
  await writeFile(join(dir, "webapp.credential"), `${credential}\n`, { mode: 0o600 });
  for (let i = 0; i < 3; i++) await startDistributor();
});

after(async () => {
  for (const d of distributors) await d.process.stop();
  for (const c of contributors) await c.stop();
  await server?.stop();
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * Runs `total` calls of `call(i)`, at most `concurrency` at once; resolves to what each returned
 * or threw, by index.
 */
async function load<T>(
  total: number,
  concurrency: number,
  call: (i: number) => Promise<T>,
): Promise<({ ok: true; value: T } | { ok: false; error: unknown })[]> {
  const results: ({ ok: true; value: T } | { ok: false; error: unknown })[] = new Array(total);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        try {
          results[i] = { ok: true, value: await call(i) };
        } catch (error) {
          results[i] = { ok: false, error };
        }
      }
    }),
  );
  return results;
}

test("10,000 OTP requests over 2 distributors get 10,000 distinct OTPs, none handed out twice", async () => {
  const [a, b] = distributors;
  const results = await load(10_000, 32, (i) =>
    (i % 2 === 0 ? a! : b!).client.requestOtp({ subject: `bulk${i}` }),
  );
  const failed = results.filter((r) => !r.ok);
  assert.equal(failed.length, 0, `failed: ${failed.slice(0, 3).map((r) => String(r.error))}`);
  const otps = results.map((r) => (r.ok ? r.value : undefined)!);
  for (const otp of otps) remember(otp.otpId);
  assert.equal(handedOut.size, 10_000);
  // The database agrees: 10,000 claims with 10,000 distinct request ids, one per record.
  const [row] = await cluster.admin<{ claims: string; requests: string }>(
    "SELECT count(*) AS claims, count(DISTINCT claim_request_id) AS requests FROM key_records " +
      "WHERE claim_seq IS NOT NULL",
    [],
    new URL(url).pathname.slice(1),
  );
  assert.equal(Number(row!.claims), 10_000);
  assert.equal(Number(row!.requests), 10_000);
  // A sample verifies once, on the other distributor than the one that handed it out.
  for (const i of [0, 1, 4_999, 5_000, 9_998, 9_999]) {
    const other = (i % 2 === 0 ? b! : a!).client;
    assert.equal((await other.verifyOtp(`bulk${i}`, otps[i]!.code)).valid, true);
    assert.equal((await other.verifyOtp(`bulk${i}`, otps[i]!.code)).valid, false);
  }
});

test("a 1,000-way race of one TOTP code over 3 distributors: exactly one accepted; wrong codes over the 3 lock the account at the total", async () => {
  const serverClient = await clientFor(serverHttp);
  const enrolled = await serverClient.enrollTotp({ issuer: "ACME", account: "racer" });
  const secret = fromBase32(enrolled.secret);
  // Far enough from a step boundary that all 1,000 are checked within the same step.
  const inStep = Date.now() / 1000 - Math.floor(Date.now() / 30_000) * 30;
  if (inStep > 20) await sleep((31 - inStep) * 1000);
  const code = totpCode(secret, Date.now() / 1000);
  const results = await load(1_000, 100, (i) =>
    distributors[i % 3]!.client.verifyTotp("racer", code),
  );
  const accepted = results.filter((r) => r.ok && r.value.valid);
  assert.equal(accepted.length, 1);
  for (const r of results) {
    if (r.ok) assert.ok(r.value.valid || r.value.reason === "replayed", JSON.stringify(r.value));
    // Refused only as locked (the replays count as failures) or as too many at once (every
    // attempt left is in progress elsewhere): never a server error.
    else {
      assert.ok(
        isDkeygenError(r.error, ErrorCodes.LOCKED) ||
          isDkeygenError(r.error, ErrorCodes.RATE_LIMITED),
        String(r.error),
      );
    }
  }

  const second = await serverClient.enrollTotp({ issuer: "ACME", account: "guesser" });
  const right = totpCode(fromBase32(second.secret), Date.now() / 1000);
  const wrong = right === "000000" ? "111111" : "000000";
  // MAX_FAILURES − 1 wrong codes, spread over the three: one attempt left, wherever it goes.
  for (let i = 0; i < MAX_FAILURES - 1; i++) {
    const outcome = await distributors[i % 3]!.client.verifyTotp("guesser", wrong);
    assert.equal(outcome.valid, false);
    assert.equal(outcome.attemptsLeft, MAX_FAILURES - 1 - i);
  }
  const last = await distributors[2]!.client.verifyTotp("guesser", wrong);
  assert.equal(last.valid, false);
  assert.ok(last.lockedUntil !== undefined, "locked at the total");
  await assert.rejects(distributors[0]!.client.verifyTotp("guesser", right), /locked/i);
});

test("a distributor SIGKILLed during 1,000 claims: no OTP handed out twice, and every OTP it acknowledged verifies once on another", async () => {
  const [a, b, c] = distributors;
  let answeredByA = 0;
  const killing = (async () => {
    while (answeredByA < 150) await sleep(5);
    await a!.process.stop("SIGKILL");
  })();
  const results = await load(1_000, 24, async (i) => {
    const viaA = i % 2 === 0;
    const otp = await (viaA ? a! : b!).client.requestOtp({ subject: `kill${i}` });
    if (viaA) answeredByA++;
    return { otp, viaA, subject: `kill${i}` };
  });
  await killing;
  const delivered = results.flatMap((r) => (r.ok ? [r.value] : []));
  for (const { otp } of delivered) remember(otp.otpId);
  const fromA = delivered.filter((d) => d.viaA);
  assert.ok(fromA.length >= 150 && fromA.length < 500, `A answered ${fromA.length}`);
  assert.equal(delivered.filter((d) => !d.viaA).length, 500, "B answered every request");
  // Acknowledged is durable: each OTP the killed process handed out verifies, once.
  const verified = await load(fromA.length, 8, (i) =>
    c!.client.verifyOtp(fromA[i]!.subject, fromA[i]!.otp.code),
  );
  assert.deepEqual(
    verified.map((v) => (v.ok ? v.value.valid : String(v.error))),
    fromA.map(() => true),
  );
  const again = await c!.client.verifyOtp(fromA[0]!.subject, fromA[0]!.otp.code);
  assert.equal(again.valid, false);
});

test("PostgreSQL restarted under load: 503 with Retry-After naming no database meanwhile, then service resumes without restarting dkeygen", async () => {
  const b = distributors[1]!;
  const statuses: number[] = [];
  const outage: { status: number; retryAfter: string | null; body: string }[] = [];
  let running = true;
  const hammer = (async () => {
    let i = 0;
    while (running) {
      const response = await fetch(`${b.http}/v1/otp/request`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${credential}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ subject: `restart${i++}` }),
      }).catch(() => undefined);
      if (!response) continue;
      const body = await response.text();
      statuses.push(response.status);
      if (response.status === 200) remember(JSON.parse(body).otpId as string);
      else
        outage.push({
          status: response.status,
          retryAfter: response.headers.get("retry-after"),
          body,
        });
    }
  })();
  await sleep(500);
  await cluster.pause();
  await sleep(1500);
  await cluster.resume();
  // Service resumes: a while of 200s after the database is back, nothing restarted.
  const resumedAt = statuses.length;
  const end = Date.now() + 20_000;
  while (Date.now() < end && statuses.slice(resumedAt).filter((s) => s === 200).length < 50) {
    await sleep(50);
  }
  running = false;
  await hammer;
  assert.ok(statuses.slice(resumedAt).filter((s) => s === 200).length >= 50, "service resumed");
  assert.ok(outage.length > 0, "some requests met the outage");
  for (const o of outage) {
    assert.equal(o.status, 503, o.body);
    assert.ok(Number(o.retryAfter) >= 1, `Retry-After ${o.retryAfter}`);
    assert.match(JSON.parse(o.body).error.code, /^E_UNAVAILABLE$/);
    assert.doesNotMatch(o.body, /postgres|127\.0\.0\.1|dkeygen@/i);
    assert.ok(!o.body.includes(cluster.password));
  }
  const ready = await fetch(`${b.http}/v1/ready`);
  assert.equal(ready.status, 200);
  // An OTP handed out after the restart verifies through the server.
  const after = await b.client.requestOtp({ subject: "after-restart" });
  remember(after.otpId);
  const serverClient = await clientFor(serverHttp);
  assert.equal((await serverClient.verifyOtp("after-restart", after.code)).valid, true);
  assert.equal(server.child.exitCode, null, "the server still runs");
});

async function clientFor(http: string): Promise<RequesterClient> {
  const keys = await loadOrCreateRequesterKeys(requesterDir);
  return new RequesterClient({
    server: http,
    credential: new Secret(new Uint8Array(Buffer.from(credential))),
    privateKey: keys.privateKey,
    fingerprint: keys.fingerprint,
  });
}
