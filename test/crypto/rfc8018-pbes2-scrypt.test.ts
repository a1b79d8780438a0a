/**
 * PKCS#8 EncryptedPrivateKeyInfo with PBES2/scrypt/AES-256-CBC (src/crypto/pkcs8-scrypt.ts, RFC
 * 5958 / RFC 8018 / RFC 7914) and the DER it is built from (src/crypto/der.ts, X.690): OpenSSL
 * reads what we write; an independent decryption following PROTOCOL.md §2 recovers the key.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createDecipheriv, createPrivateKey, generateKeyPairSync } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { scrypt } from "@noble/hashes/scrypt.js";
import {
  derChildren,
  derElements,
  derInteger,
  derOctetString,
  derOid,
  derReadInteger,
  derReadOid,
  derSequence,
} from "../../src/crypto/der.js";
import {
  encryptPrivateKeyScrypt,
  meetsScryptParams,
  protectionOf,
  SCRYPT_PARAMS,
} from "../../src/crypto/pkcs8-scrypt.js";
import { tempDir } from "../helpers/ceremony.js";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

test("DER: lengths, integers and object identifiers are encoded as X.690 says, and read back", () => {
  const cases: [Uint8Array, string][] = [
    [derInteger(0), "020100"],
    [derInteger(127), "02017f"],
    [derInteger(128), "02020080"],
    [derInteger(16384), "02024000"],
    [derInteger(65537), "0203010001"],
    [derOid("1.2.840.113549.1.5.13"), "06092a864886f70d01050d"],
    [derOid("1.3.6.1.4.1.11591.4.11"), "06092b06010401da47040b"],
    [derOid("2.16.840.1.101.3.4.1.42"), "060960864801650304012a"],
    [derOctetString(new Uint8Array(200)), `0481c8${"00".repeat(200)}`],
    [derOctetString(new Uint8Array(300)), `0482012c${"00".repeat(300)}`],
    [derSequence(derInteger(1), derInteger(2)), "3006020101020102"],
  ];
  for (const [encoded, expected] of cases) assert.equal(hex(encoded), expected);
  for (const value of [0, 1, 127, 128, 255, 256, 16384, 2 ** 40]) {
    assert.equal(derReadInteger(derElements(derInteger(value))[0]), value);
  }
  for (const oid of ["1.2.840.113549.1.5.13", "2.16.840.1.101.3.4.1.42", "2.999.3"]) {
    assert.equal(derReadOid(derElements(derOid(oid))[0]), oid);
  }
  assert.throws(() => derInteger(-1), RangeError);
  assert.throws(() => derElements(Uint8Array.of(0x30, 0x05, 0x02)), /truncated/);
  assert.throws(() => derChildren(derElements(derInteger(1))[0]), /SEQUENCE/);
});

test("a key encrypted with scrypt opens in OpenSSL and node:crypto with its passphrase, and with no other", async () => {
  const dir = await tempDir();
  try {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pem = await encryptPrivateKeyScrypt(privateKey, "correct horse");
    const file = join(dir.path, "key.pem");
    await writeFile(file, pem, { mode: 0o600 });
    const env = { ...process.env, KEY_PASS: "correct horse" };
    const opened = execFileSync("openssl", ["pkey", "-in", file, "-passin", "env:KEY_PASS"], {
      env,
    });
    assert.equal(
      createPrivateKey(opened).export({ format: "jwk" }).d,
      privateKey.export({ format: "jwk" }).d,
    );
    const text = execFileSync("openssl", ["asn1parse", "-in", file]).toString();
    assert.match(text, /:PBES2\n/);
    assert.match(text, /:scrypt\n/);
    assert.match(text, /INTEGER\s+:4000\n.*INTEGER\s+:08\n.*INTEGER\s+:05\n/s);
    assert.match(text, /:aes-256-cbc\n/);
    assert.throws(() =>
      execFileSync("openssl", ["pkey", "-in", file, "-passin", "pass:wrong", "-noout"], {
        stdio: "ignore",
      }),
    );
    const node = createPrivateKey({ key: pem, passphrase: "correct horse" });
    assert.deepEqual(
      node.export({ type: "pkcs8", format: "der" }),
      privateKey.export({ type: "pkcs8", format: "der" }),
    );
    assert.throws(() => createPrivateKey({ key: pem, passphrase: "wrong" }));
    // Fresh salt and IV every time.
    assert.notEqual(await encryptPrivateKeyScrypt(privateKey, "correct horse"), pem);
  } finally {
    await dir.remove();
  }
});

test("the encrypted key is the documented structure: decrypting it independently (OpenSSL's parser, @noble/hashes scrypt) gives the key", async () => {
  const dir = await tempDir();
  try {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const params = { N: 1024, r: 8, p: 2 }; // small, so the JS scrypt is quick
    const pem = await encryptPrivateKeyScrypt(privateKey, "Rabbit", { params });
    const file = join(dir.path, "key.pem");
    await writeFile(file, pem);
    const parsed = execFileSync("openssl", ["asn1parse", "-in", file]).toString();
    const octets = [...parsed.matchAll(/OCTET STRING\s+\[HEX DUMP\]:([0-9A-F]+)/g)].map((m) =>
      Buffer.from(m[1]!, "hex"),
    );
    const integers = [...parsed.matchAll(/INTEGER\s+:([0-9A-F]+)/g)].map((m) =>
      Number.parseInt(m[1]!, 16),
    );
    const [salt, iv, encrypted] = octets as [Buffer, Buffer, Buffer];
    assert.equal(salt.length, 16);
    assert.equal(iv.length, 16);
    assert.deepEqual(integers, [1024, 8, 2]);
    const key = scrypt("Rabbit", salt, { N: 1024, r: 8, p: 2, dkLen: 32 });
    const decipher = createDecipheriv("aes-256-cbc", key, iv);
    const plain = Buffer.concat([decipher.update(encrypted), decipher.final()]);
    assert.deepEqual(plain, privateKey.export({ type: "pkcs8", format: "der" }));
  } finally {
    await dir.remove();
  }
});

test("protectionOf tells scrypt keys from node's PBKDF2 ones, and meetsScryptParams accepts only the costlier", async () => {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const ours = protectionOf(await encryptPrivateKeyScrypt(privateKey, "pw"));
  assert.deepEqual(ours, {
    kdf: "scrypt",
    params: SCRYPT_PARAMS,
    cipher: "2.16.840.1.101.3.4.1.42",
  });
  assert.deepEqual(SCRYPT_PARAMS, { N: 16384, r: 8, p: 5 });
  assert.equal(meetsScryptParams(ours), true);
  const old = privateKey.export({
    type: "pkcs8",
    format: "pem",
    cipher: "aes-256-cbc",
    passphrase: "pw",
  }) as string;
  assert.deepEqual(protectionOf(old), {
    kdf: "pbkdf2",
    iterations: 2048,
    cipher: "2.16.840.1.101.3.4.1.42",
  });
  assert.equal(meetsScryptParams(protectionOf(old)), false);
  for (const params of [
    { N: 8192, r: 8, p: 5 },
    { N: 8192, r: 8, p: 10 }, // as much work, half the memory
    { N: 16384, r: 8, p: 4 },
    { N: 16384, r: 4, p: 5 },
  ]) {
    const weaker = protectionOf(await encryptPrivateKeyScrypt(privateKey, "pw", { params }));
    assert.equal(meetsScryptParams(weaker), false, JSON.stringify(params));
  }
  assert.throws(() => protectionOf("-----BEGIN PRIVATE KEY-----\n"), /ENCRYPTED PRIVATE KEY/);
});
