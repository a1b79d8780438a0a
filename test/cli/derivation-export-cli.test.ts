/**
 * Exporting a record's derivation secret for audit, through the real CLI: the admin's
 * `key export-secret` over the admin channel and the owner's `key fetch --derivation-secret` over
 * HTTP write it to a new 0600 file (printed only with --reveal-secret), and the `dkeygen derive`
 * command they print re-derives exactly the record's public part from that file. A nonce record's
 * derivation secret is refused to everyone; nobody but the owner gets one over HTTP.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { ErrorCodes } from "../../src/errors.js";
import { decodeStoredSecret } from "../../src/server/stored-secret.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { runCli } from "../helpers/cli.js";
import { http, registerTestRequester, type TestRequester } from "../helpers/distribution.js";
import { CLI } from "../helpers/paths.js";

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
  return JSON.parse(result.stdout) as { id: string; public: Record<string, unknown> };
}

const storedSecret = async (id: string) =>
  decodeStoredSecret(await server.store.readSecret(id)).derivationSecret;

test("the admin's export-secret writes the derivation secret to a new 0600 file, prints it nowhere, and derive re-derives the record", async () => {
  const record = await generate(["ecc", "--curve", "p256"]);
  const out = join(server.root, "ecc.hex");
  const exported = await runCli(["key", "export-secret", record.id, "--out", out, ...admin()]);
  assert.equal(exported.status, 0, exported.stderr);
  const secret = (await readFile(out, "utf8")).trim();
  assert.equal(secret, await storedSecret(record.id));
  assert.equal((await stat(out)).mode & 0o777, 0o600);
  assert.ok(!exported.stdout.includes(secret) && !exported.stderr.includes(secret));
  assert.match(exported.stdout, /derivation secret written to .*ecc\.hex \(0600\)/);
  const line = /re-derive\s+dkeygen (derive ecc --secret-file \S+ --param curve=p256 --json)/.exec(
    exported.stdout,
  );
  assert.ok(line, exported.stdout);
  const derived = await runCli(line[1]!.split(" "));
  assert.equal(derived.status, 0, derived.stderr);
  assert.deepEqual(JSON.parse(derived.stdout).public, record.public);

  // Never over an existing file: refused before the server is asked (a usage error), in a line
  // that names the flag and the file and says what to do.
  for (const args of [
    ["key", "export-secret", record.id, "--out", out, ...admin()],
    ["key", "fetch", record.id, "--derivation-secret", "--out", out, "--data-dir", owner.dataDir],
  ]) {
    const again = await runCli(args);
    assert.equal(again.status, 2, args.join(" "));
    assert.equal(
      again.stderr,
      `dkeygen: --out ${out}: that file exists and is never replaced; remove it or give another path.\n`,
    );
  }
  assert.equal((await readFile(out, "utf8")).trim(), secret);
  // Printed only when asked for, by name.
  const shown = await runCli(["key", "export-secret", record.id, "--reveal-secret", ...admin()]);
  assert.equal(shown.status, 0, shown.stderr);
  assert.match(shown.stdout, /shown because --reveal-secret was given/);
  assert.ok(shown.stdout.includes(secret));
  const nowhere = await runCli(["key", "export-secret", record.id, ...admin()]);
  assert.equal(nowhere.status, 2);
  assert.match(nowhere.stderr, /--out FILE/);
});

test("the owner's key fetch --derivation-secret re-derives its TOTP record with the derive command it prints, run by a shell", async () => {
  const record = await generate([
    "totp",
    "--issuer",
    "ACME Corp's",
    "--account",
    "bob",
    "--for",
    owner.name,
  ]);
  const out = join(server.root, "totp.hex");
  const fetched = await runCli([
    "key",
    "fetch",
    record.id,
    "--derivation-secret",
    "--out",
    out,
    "--data-dir",
    owner.dataDir,
  ]);
  assert.equal(fetched.status, 0, fetched.stderr);
  assert.equal((await readFile(out, "utf8")).trim(), await storedSecret(record.id));
  assert.equal((await stat(out)).mode & 0o777, 0o600);
  const command = /re-derive\s+dkeygen (.*)$/m.exec(fetched.stdout)![1]!;
  // The printed line is quoted for a POSIX shell: the issuer's space and apostrophe survive.
  const { stdout } = await promisify(execFile)("/bin/sh", [
    "-c",
    `"${process.execPath}" "${CLI}" ${command}`,
  ]);
  assert.deepEqual(JSON.parse(stdout).public, record.public);

  const json = await runCli([
    "key",
    "fetch",
    record.id,
    "--derivation-secret",
    "--reveal-secret",
    "--json",
    "--data-dir",
    owner.dataDir,
  ]);
  assert.equal(json.status, 0, json.stderr);
  const body = JSON.parse(json.stdout);
  assert.equal(body.derivationSecret, await storedSecret(record.id));
  assert.deepEqual(body.batch, { index: 0, size: 1 });
  assert.equal(body.params.issuer, "ACME Corp's");
  assert.deepEqual(body.derive.slice(0, 4), ["derive", "totp", "--secret-file", "FILE"]);
});

test("over HTTP only the owner gets a derivation secret: others and unknown ids get 404, a nonce record 403 for everyone", async () => {
  const ecc = await generate(["ecc", "--for", owner.name]);
  const nonce = await generate(["nonce", "--for", owner.name]);
  const post = (credential: string, id: string) =>
    http(server, "POST", `/v1/keys/${id}/derivation-secret`, { credential, body: {} });
  const mine = await post(owner.credential, ecc.id);
  assert.equal(mine.status, 200, mine.text);
  assert.equal(mine.body.recordId, ecc.id);
  assert.ok(!mine.text.includes(await storedSecret(ecc.id)), "sealed, not in clear");
  for (const [credential, id] of [
    [other.credential, ecc.id],
    [other.credential, nonce.id],
    [owner.credential, "01M86MVCHH2S3Y5K1BD73BT3PB"],
  ] as const) {
    const refused = await post(credential, id);
    assert.equal(refused.status, 404, refused.text);
    assert.equal((refused.body.error as { code: string }).code, ErrorCodes.NOT_FOUND);
  }
  const forbidden = await post(owner.credential, nonce.id);
  assert.equal(forbidden.status, 403, forbidden.text);
  assert.equal((forbidden.body.error as { code: string }).code, ErrorCodes.FORBIDDEN);
  assert.match((forbidden.body.error as { message: string }).message, /never leaves the server/);

  const out = join(server.root, "nonce.hex");
  for (const args of [
    ["key", "export-secret", nonce.id, "--out", out, ...admin()],
    ["key", "fetch", nonce.id, "--derivation-secret", "--out", out, "--data-dir", owner.dataDir],
  ]) {
    const refused = await runCli(args);
    assert.equal(refused.status, 1, args.join(" "));
    assert.match(refused.stderr, /never leaves the server/);
    await assert.rejects(stat(out), { code: "ENOENT" });
  }
});
