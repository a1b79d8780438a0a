/**
 * The server's signatures (RSASSA-PSS, SHA-256, 32-byte salt) and what a client takes as a server
 * key: RSA of at least 3072 bits with e = 65537, nothing else.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { rsaServerKey, serverSign, serverVerify } from "../../src/crypto/server-signature.js";

const spki = (modulusLength: number, publicExponent = 65537) =>
  generateKeyPairSync("rsa", { modulusLength, publicExponent }).publicKey.export({
    type: "spki",
    format: "der",
  });

test("a client takes as a server key only RSA of at least 3072 bits with e = 65537", () => {
  assert.ok(rsaServerKey(spki(3072)));
  assert.equal(rsaServerKey(spki(3072, 3)), undefined);
  assert.equal(rsaServerKey(spki(2048)), undefined);
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
    type: "spki",
    format: "der",
  });
  assert.equal(rsaServerKey(ec), undefined);
  assert.equal(rsaServerKey(new Uint8Array([1, 2, 3])), undefined);
});

test("a server signature verifies with its key and OpenSSL's PSS settings, and with nothing else", () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 3072 });
  const data = new TextEncoder().encode("dkeygen/v1/welcome example");
  const signature = serverSign(privateKey, data);
  assert.equal(signature.length, 384);
  assert.ok(serverVerify(publicKey, data, signature));
  assert.equal(serverVerify(publicKey, data.subarray(1), signature), false);
  const other = generateKeyPairSync("rsa", { modulusLength: 3072 }).publicKey;
  assert.equal(serverVerify(other, data, signature), false);
  assert.equal(serverVerify(publicKey, data, signature.subarray(1)), false);
  // OpenSSL, told the same PSS parameters, agrees.
  let openssl = true;
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
  } catch {
    openssl = false;
  }
  if (!openssl) return;
  const dir = mkdtempSync(join(tmpdir(), "dkeygen-pss-"));
  try {
    writeFileSync(join(dir, "pub.pem"), publicKey.export({ type: "spki", format: "pem" }));
    writeFileSync(join(dir, "data"), data);
    writeFileSync(join(dir, "sig"), signature);
    const out = execFileSync("openssl", [
      "pkeyutl",
      "-verify",
      "-pubin",
      "-inkey",
      join(dir, "pub.pem"),
      "-rawin",
      "-in",
      join(dir, "data"),
      "-sigfile",
      join(dir, "sig"),
      "-digest",
      "sha256",
      "-pkeyopt",
      "rsa_padding_mode:pss",
      "-pkeyopt",
      "rsa_pss_saltlen:32",
    ]).toString();
    assert.match(out, /Signature Verified Successfully/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
