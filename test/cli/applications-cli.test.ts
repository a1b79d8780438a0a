/**
 * The applications through the real CLI: `generate PURPOSE` against a running server, `derive`
 * reproducing what the server stored, `otp code`, `sign` with a round's nonce, QR files.
 */
import assert from "node:assert/strict";
import { createPublicKey, verify } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { toBase32 } from "../../src/derive/otpauth.js";
import { decodeStoredSecret } from "../../src/server/stored-secret.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { runCli } from "../helpers/cli.js";
import { readVector } from "../helpers/paths.js";

let server: TestServer;
const admin = () => ["--data-dir", server.dataDir];

before(async () => {
  server = await startTestServer({ quorum: 2 });
  await startContributors(server, 2);
});
after(() => server.cleanup());

async function generate(args: string[]) {
  const result = await runCli(["generate", ...args, ...admin(), "--json"]);
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout);
}

for (const [purpose, options] of [
  ["otp", ["--digits", "8"]],
  ["totp", ["--issuer", "ACME", "--account", "alice@example.com", "--algorithm", "SHA256"]],
  ["ecc", ["--curve", "p256"]],
  ["wallet", ["--words", "12"]],
  ["multisig", ["--m", "2", "--n", "3"]],
  ["nonce", []],
  ["rsa", ["--bits", "2048"]],
] as const) {
  test(`derive reproduces exactly what the server stored for a ${purpose} round`, async () => {
    const record = await generate([purpose, ...options]);
    assert.equal(record.purpose, purpose);
    assert.equal(record.secret, undefined, "no secret part without --reveal-secret");
    const stored = decodeStoredSecret(await server.store.readSecret(record.id));
    const secretFile = join(server.root, `${record.id}.hex`);
    await writeFile(secretFile, stored.derivationSecret, { mode: 0o600 });
    const params = Object.entries(stored.params).flatMap(([k, v]) => ["--param", `${k}=${v}`]);
    const derived = await runCli([
      "derive",
      purpose,
      "--secret-file",
      secretFile,
      ...params,
      "--reveal-secret",
      "--json",
    ]);
    assert.equal(derived.status, 0, derived.stderr);
    const result = JSON.parse(derived.stdout);
    assert.deepEqual(result.public, record.public);
    assert.deepEqual(result.secret, stored.output);
    assert.equal(result.algorithm, record.algorithm);
  });
}

test("generate --reveal-secret shows the secret part and writes the otpauth QR code 0600", async () => {
  const png = join(server.root, "totp.png");
  const result = await runCli([
    "generate",
    "totp",
    "--issuer",
    "ACME",
    "--account",
    "bob",
    ...admin(),
    "--reveal-secret",
    "--qr-png",
    png,
  ]);
  assert.equal(result.status, 0, result.stderr);
  const uri = /uri\s+(otpauth:\/\/\S+)/.exec(result.stdout)?.[1];
  assert.ok(uri?.startsWith("otpauth://totp/ACME:bob?secret="), result.stdout);
  const bytes = await readFile(png);
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal((await stat(png)).mode & 0o777, 0o600);

  const refused = await runCli(["generate", "totp", ...admin(), "--qr"]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /--reveal-secret/);
});

test("otp code agrees with RFC 4226 and RFC 6238 vectors (a sample through the CLI; test/derive checks them all)", async () => {
  const vectors = readVector<{
    hotp: { secretAscii: string; vectors: { counter: number; hotp: string }[] };
    totp: {
      seeds: Record<string, { ascii: string }>;
      vectors: { unixTime: number; mode: string; totp: string }[];
    };
  }>("rfc4226-rfc6238/rfc4226_rfc6238_vectors.json");
  const base32 = (ascii: string) => toBase32(Buffer.from(ascii, "ascii"));
  for (const v of vectors.hotp.vectors.slice(0, 3)) {
    const r = await runCli([
      "otp",
      "code",
      "--secret",
      base32(vectors.hotp.secretAscii),
      "--counter",
      String(v.counter),
    ]);
    assert.equal(r.stdout.trim(), v.hotp);
  }
  for (const v of vectors.totp.vectors.filter((_, i) => i % 3 === 0)) {
    const r = await runCli([
      "otp",
      "code",
      "--secret",
      base32(vectors.totp.seeds[v.mode]!.ascii),
      "--time",
      String(v.unixTime),
      "--algorithm",
      v.mode,
      "--digits",
      "8",
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), v.totp, `${v.mode} at ${v.unixTime}`);
  }
});

test("sign takes its extra randomness from a nonce round and the signature verifies", async () => {
  const key = await generate(["ecc", "--curve", "p256"]);
  const stored = decodeStoredSecret(await server.store.readSecret(key.id));
  const keyFile = join(server.root, "p256.pem");
  const pem = String(stored.output.pkcs8);
  assert.match(pem, /BEGIN PRIVATE KEY/);
  await writeFile(keyFile, pem, { mode: 0o600 });

  const signed = await runCli([
    "sign",
    "--key",
    keyFile,
    "--message",
    "pay 5 to carol",
    "--from-server",
    ...admin(),
    "--json",
  ]);
  assert.equal(signed.status, 0, signed.stderr);
  const out = JSON.parse(signed.stdout);
  assert.equal(out.curve, "p256");
  assert.match(out.nonceRecord, /^[0-9A-Z]{26}$/);
  const publicKey = createPublicKey(pem);
  assert.equal(
    verify("sha256", Buffer.from("pay 5 to carol"), publicKey, Buffer.from(out.signature, "hex")),
    true,
  );

  // The same nonce gives the same signature; another nonce another one.
  const nonce = "11".repeat(32);
  const a = await runCli(["sign", "--key", keyFile, "--message", "m", "--nonce", nonce]);
  const b = await runCli(["sign", "--key", keyFile, "--message", "m", "--nonce", nonce]);
  const c = await runCli(["sign", "--key", keyFile, "--message", "m", "--nonce", "22".repeat(32)]);
  assert.equal(a.stdout, b.stdout);
  assert.notEqual(a.stdout, c.stdout);
});

test("a wallet passphrase is never taken on the command line", async () => {
  const r = await runCli([
    "derive",
    "wallet",
    "--secret",
    "ab".repeat(64),
    "--param",
    "passphrase=hunter2",
  ]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /passphrase-file/);
  assert.ok(!r.stderr.includes("hunter2"));
});
