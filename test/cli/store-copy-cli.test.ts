/**
 * `dkeygen store copy` through the real executable: a server on the key_store file with two
 * contributors and a requester (in this process) hands out OTPs and accepts a TOTP step;
 * the copy is refused while that server runs, then copies into a throwaway PostgreSQL
 * (test/helpers/postgres.ts), and `dkeygen server --data-dir DIR --store URL` serves what the file
 * server served: a claimed OTP verifies once, a used one stays used, the TOTP step does not go
 * back, the requester still logs in. A non-empty database and a tampered file are refused, and
 * the database password never shows.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { RequesterClient } from "../../src/client/requester.js";
import { loadOrCreateRequesterKeys } from "../../src/client/requester-state.js";
import { toBase64url } from "../../src/crypto/base64url.js";
import { Secret } from "../../src/crypto/secret.js";
import { fromBase32 } from "../../src/derive/otpauth.js";
import { totpCode } from "../../src/derive/totp.js";
import { FileKeyStore } from "../../src/store/file.js";
import { startContributors, startTestServer } from "../helpers/ceremony.js";
import { CliProcess, runCli, runCliBatch, serverArgs } from "../helpers/cli.js";
import { registerTestRequester } from "../helpers/distribution.js";
import { startPostgres } from "../helpers/postgres.js";

const cluster = await startPostgres();
after(() => cluster.stop());

function assertHidden(...texts: string[]) {
  for (const text of texts) {
    assert.ok(!text.includes(cluster.password), `the password shows in: ${text}`);
  }
}

const database = (url: string) => new URL(url).pathname.slice(1);

test("a file server's data folder copied to PostgreSQL serves the same: a claimed OTP verifies once, a used one stays used, the TOTP step does not go back, the requester still logs in", async () => {
  // The file server runs in this process (a CLI start costs seconds on a loaded machine); the
  // copy and the server on PostgreSQL are the real executable.
  const server = await startTestServer({ minCosignatures: 0 }, { otpPool: 3 });
  let onPostgres: CliProcess | undefined;
  try {
    await startContributors(server, 2);
    const webapp = await registerTestRequester(server, "webapp");
    const check = async (at: string, kind: "otp" | "totp", body: Record<string, string>) => {
      const answer = await fetch(`${at}/v1/${kind}/verify`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${webapp.credential}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
      });
      assert.equal(answer.status, 200, await answer.clone().text());
      return ((await answer.json()) as { valid: boolean }).valid;
    };
    const claimed = (await webapp.client.requestOtp({ subject: "alice" })).code;
    const used = (await webapp.client.requestOtp({ subject: "bob" })).code;
    assert.equal(await check(server.httpUrl!, "otp", { subject: "bob", code: used }), true);
    const enrolled = await webapp.client.enrollTotp({
      issuer: "ACME",
      account: "zoe",
      recoveryCodes: 0,
    });
    const secret = /secret=([A-Z2-7]+)/.exec(enrolled.uri)![1]!;
    const code = totpCode(fromBase32(secret), Math.floor(Date.now() / 1000));
    assert.equal(await check(server.httpUrl!, "totp", { account: "zoe", code }), true);

    const url = await cluster.createDatabase();
    const copy = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      runCli(["store", "copy", "--from", server.dataDir, ...args], { env });
    const whileRunning = await copy(["--to", url]);
    assert.equal(whileRunning.status, 1);
    assert.match(whileRunning.stderr, /is in use by process \d+ since .*stop the server/);

    for (const contributor of server.contributors) await contributor.stop();
    await server.stop();
    // The URL from DKEYGEN_STORE_URL; human output.
    const copied = await copy([], { DKEYGEN_STORE_URL: url });
    assert.equal(copied.status, 0, copied.stderr);
    assertHidden(copied.stdout, copied.stderr, whileRunning.stderr);
    assert.match(
      copied.stdout,
      /^copied .*key_store into postgres:\/\/dkeygen:\*\*\*@127\.0\.0\.1:/,
    );
    assert.match(copied.stdout, /key_store\s+\d+ lines, MAC chain verified/);
    assert.match(copied.stdout, /requesters\s+1\n/);
    // otp: records, claimable, held, claimed (alice, bob), consumed (bob's, and none void), steps.
    assert.match(copied.stdout, /\n {2}otp\s+\d+\s+\d+\s+\d+\s+2\s+1\s+0\n/);
    assert.match(copied.stdout, /\n {2}totp\s+1\s+0\s+0\s+0\s+0\s+1\n/);
    const steps = await cluster.admin<{ last_step: string }>(
      "SELECT last_step FROM key_records WHERE last_step IS NOT NULL",
      [],
      database(url),
    );
    assert.equal(steps.length, 1, "the TOTP step is in the database");

    const again = await copy(["--to", url, "--json"]);
    assert.equal(again.status, 2);
    const refusal = JSON.parse(again.stdout).error;
    assert.equal(refusal.code, "E_USAGE");
    assert.match(refusal.message, /is not empty .*--force/);
    assertHidden(again.stdout, again.stderr);

    // The same folder, now on PostgreSQL (its store.key still in the folder).
    onPostgres = new CliProcess(serverArgs(server.dataDir, ["--store", url]));
    const [, httpUrl] = (await onPostgres.waitFor(/distribution\s+(http:\/\/\S+)/)) as unknown as [
      string,
      string,
    ];
    const alice = { subject: "alice", code: claimed };
    assert.equal(await check(httpUrl, "otp", alice), true, "claimed on the file server, valid");
    assert.equal(await check(httpUrl, "otp", alice), false, "verified once");
    const bob = { subject: "bob", code: used };
    assert.equal(await check(httpUrl, "otp", bob), false, "used on the file server, still used");
    assert.equal(
      await check(httpUrl, "totp", { account: "zoe", code }),
      false,
      "the step accepted on the file server is not accepted again",
    );
    // A pooled OTP of the file server, handed out and opened through the database (this server
    // has no pool target and no contributors: no round could make a new one).
    const keys = await loadOrCreateRequesterKeys(webapp.dataDir);
    const moved = new RequesterClient({
      server: httpUrl,
      credential: new Secret(new Uint8Array(Buffer.from(webapp.credential))),
      privateKey: keys.privateKey,
      fingerprint: keys.fingerprint,
    });
    const pooled = await moved.requestOtp({ subject: "carol" });
    assert.equal(await check(httpUrl, "otp", { subject: "carol", code: pooled.code }), true);
    const me = await fetch(`${httpUrl}/v1/requester`, {
      headers: { authorization: `Bearer ${webapp.credential}` },
    });
    assert.equal(me.status, 200, "the requester still logs in");
    assert.equal(await onPostgres.stop(), 0, onPostgres.stderr);
    assertHidden(onPostgres.stdout, onPostgres.stderr);
    // requesters.json is still in the folder, but what it holds was copied: no warning about it.
    assert.doesNotMatch(onPostgres.stderr, /requesters\.json is not read/);
  } finally {
    await onPostgres?.stop();
    await server.cleanup();
  }
});

test("a wrong database password exits 1 without showing it; a tampered key_store is refused (exit 1, E_STORE_CORRUPT) and nothing reaches the database", async () => {
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-copy-cli-"));
  try {
    const storeKey = randomBytes(32);
    await writeFile(join(dir, "store.key"), `${toBase64url(storeKey)}\n`, { mode: 0o600 });
    const store = new FileKeyStore({ path: join(dir, "key_store"), storeKey });
    await store.open();
    for (let i = 0; i < 3; i++) {
      await store.put({
        purpose: "otp",
        roundId: `r${i}`,
        participants: ["a", "b"],
        algorithm: "otp/v1",
        public: {},
        secret: randomBytes(16),
      });
    }
    await store.close();
    const url = await cluster.createDatabase();
    const wrong = new URL(url);
    wrong.password = "Not-The-Password-42";
    const denied = await runCli(["store", "copy", "--from", dir, "--to", wrong.href]);
    assert.equal(denied.status, 1);
    assert.match(denied.stderr, /password authentication failed/);
    assert.ok(!(denied.stdout + denied.stderr).includes("Not-The-Password-42"));
    const path = join(dir, "key_store");
    await writeFile(
      path,
      (await readFile(path, "utf8")).replace('"roundId":"r1"', '"roundId":"r9"'),
    );
    const refused = await runCli(["store", "copy", "--from", dir, "--to", url, "--json"]);
    assert.equal(refused.status, 1);
    const error = JSON.parse(refused.stdout).error;
    assert.equal(error.code, "E_STORE_CORRUPT");
    assert.match(error.message, /tampered with at line 2/);
    assertHidden(refused.stdout, refused.stderr);
    const tables = await cluster.admin<{ n: string }>(
      "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'",
      [],
      database(url),
    );
    assert.equal(tables[0]!.n, "0");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("store copy without a database URL, or without --from, is a usage error (exit 2)", async () => {
  const [noUrl, noFrom] = await runCliBatch(
    [
      ["store", "copy", "--from", tmpdir()],
      ["store", "copy", "--to", "postgres://dkeygen@127.0.0.1:9/dkeygen"],
    ],
    { env: { DKEYGEN_STORE_URL: "" } },
  );
  assert.equal(noUrl!.status, 2);
  assert.match(noUrl!.stderr, /store copy needs --to postgres:\/\/… \(or DKEYGEN_STORE_URL\)/);
  assert.equal(noFrom!.status, 2);
  assert.match(noFrom!.stderr, /required option '--from <dir>' not specified/);
});
