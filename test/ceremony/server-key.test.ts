/**
 * The server key at rest (src/server/identity.ts, PROTOCOL.md §2): with a passphrase it is
 * PBES2/scrypt/AES-256-CBC that OpenSSL opens; a key written by an older dkeygen (PBKDF2, 2,048
 * iterations) still opens and is re-encrypted with scrypt, keeping its fingerprint.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fingerprintOf } from "../../src/crypto/fingerprint.js";
import { protectionOf, SCRYPT_PARAMS } from "../../src/crypto/pkcs8-scrypt.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { startServer } from "../../src/server/runtime.js";
import { captureLogger, tempDir } from "../helpers/ceremony.js";

const PASSPHRASE = "correct horse battery staple";

async function start(dataDir: string, passphrase?: string) {
  const log = captureLogger();
  const running = await startServer({
    dataDir,
    port: 0,
    logger: log.logger,
    http: false,
    otpPool: { size: 0 },
    ...(passphrase === undefined ? {} : { passphrase }),
  });
  return { running, log };
}

/** The fingerprint OpenSSL computes for the key file, opened with the passphrase. */
function opensslFingerprint(keyFile: string): string {
  const der = execFileSync(
    "openssl",
    ["pkey", "-in", keyFile, "-passin", "env:DKEYGEN_TEST_PASS", "-pubout", "-outform", "DER"],
    { env: { ...process.env, DKEYGEN_TEST_PASS: PASSPHRASE } },
  );
  return `SHA256:${createHash("sha256").update(der).digest("base64").replace(/=+$/, "")}`;
}

test("with a passphrase the server key is written as PBES2 with scrypt (N=2^14, r=8, p=5) and AES-256-CBC, and OpenSSL opens it", async () => {
  const dir = await tempDir();
  try {
    const dataDir = join(dir.path, "server");
    const { running } = await start(dataDir, PASSPHRASE);
    await running.stop();
    const keyFile = join(dataDir, "server-key.pem");
    const pem = await readFile(keyFile, "utf8");
    assert.match(pem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
    assert.deepEqual(protectionOf(pem), {
      kdf: "scrypt",
      params: SCRYPT_PARAMS,
      cipher: "2.16.840.1.101.3.4.1.42",
    });
    assert.equal(opensslFingerprint(keyFile), running.fingerprint);
    await assert.rejects(
      start(dataDir, "wrong"),
      (error: unknown) =>
        error instanceof DkeygenError &&
        error.code === ErrorCodes.KEY_LOCKED &&
        /passphrase is wrong/.test(error.message),
    );
    const { running: again } = await start(dataDir, PASSPHRASE);
    await again.stop();
    assert.equal(again.fingerprint, running.fingerprint);
    assert.equal(await readFile(keyFile, "utf8"), pem, "a key already on scrypt is left as it is");
  } finally {
    await dir.remove();
  }
});

test("a server key from an older dkeygen (PBKDF2, 2,048 iterations) opens, keeps its fingerprint, and is re-encrypted with scrypt", async () => {
  const dir = await tempDir();
  try {
    const dataDir = join(dir.path, "server");
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 3072 });
    const keyFile = join(dataDir, "server-key.pem");
    await writeFile(
      keyFile,
      privateKey.export({
        type: "pkcs8",
        format: "pem",
        cipher: "aes-256-cbc",
        passphrase: PASSPHRASE,
      }),
      { mode: 0o600 },
    );
    assert.equal(protectionOf(await readFile(keyFile, "utf8")).kdf, "pbkdf2");
    const { running, log } = await start(dataDir, PASSPHRASE);
    await running.stop();
    assert.equal(running.fingerprint, fingerprintOf(publicKey));
    const pem = await readFile(keyFile, "utf8");
    assert.equal(protectionOf(pem).kdf, "scrypt");
    assert.match(log.text(), /re-encrypted with scrypt under the same passphrase/);
    assert.ok(!log.text().includes(PASSPHRASE), "the passphrase is never logged");
    assert.equal(opensslFingerprint(keyFile), running.fingerprint);
  } finally {
    await dir.remove();
  }
});
