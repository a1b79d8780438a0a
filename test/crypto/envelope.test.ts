import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import {
  aesGcmOpen,
  aesGcmSeal,
  openEnvelope,
  rsaOaepDecrypt,
  sealEnvelope,
} from "../../src/crypto/envelope.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { readVector } from "../helpers/paths.js";

interface OaepFile {
  testGroups: {
    privateKeyPem: string;
    tests: {
      tcId: number;
      msg: string;
      ct: string;
      label: string;
      result: string;
      flags: string[];
    }[];
  }[];
}

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));

for (const bits of [2048, 3072]) {
  test(`RSA-OAEP-SHA-256 unwrap agrees with every Wycheproof ${bits}-bit vector`, () => {
    const file = readVector<OaepFile>(`wycheproof/rsa_oaep_${bits}_sha256_mgf1sha256_test.json`);
    let checked = 0;
    for (const group of file.testGroups) {
      const key = createPrivateKey(group.privateKeyPem);
      for (const t of group.tests) {
        let plaintext: Uint8Array | undefined;
        try {
          plaintext = rsaOaepDecrypt(key, hex(t.ct), hex(t.label));
        } catch {
          plaintext = undefined;
        }
        if (t.result === "valid") {
          assert.ok(plaintext, `tcId ${t.tcId} must decrypt`);
          assert.equal(Buffer.from(plaintext).toString("hex"), t.msg, `tcId ${t.tcId}`);
        } else if (t.result === "invalid") {
          assert.equal(plaintext, undefined, `tcId ${t.tcId} must be rejected`);
        }
        checked++;
      }
    }
    assert.ok(checked >= 30);
  });
}

interface GcmFile {
  testGroups: {
    keySize: number;
    ivSize: number;
    tagSize: number;
    tests: {
      tcId: number;
      key: string;
      iv: string;
      aad: string;
      msg: string;
      ct: string;
      tag: string;
      result: string;
    }[];
  }[];
}

test("AES-256-GCM agrees with the Wycheproof vectors for 96-bit IVs and 128-bit tags", () => {
  const file = readVector<GcmFile>("wycheproof/aes_gcm_test.json");
  let checked = 0;
  for (const group of file.testGroups) {
    if (group.keySize !== 256 || group.ivSize !== 96 || group.tagSize !== 128) continue;
    for (const t of group.tests) {
      const { key, iv, aad, msg, ct, tag } = {
        key: hex(t.key),
        iv: hex(t.iv),
        aad: hex(t.aad),
        msg: hex(t.msg),
        ct: hex(t.ct),
        tag: hex(t.tag),
      };
      if (t.result === "valid") {
        const sealed = aesGcmSeal(key, iv, msg, aad);
        assert.deepEqual(Buffer.from(sealed.ciphertext), Buffer.from(ct), `tcId ${t.tcId}`);
        assert.deepEqual(Buffer.from(sealed.tag), Buffer.from(tag), `tcId ${t.tcId}`);
        assert.deepEqual(Buffer.from(aesGcmOpen(key, iv, ct, tag, aad)), Buffer.from(msg));
      } else if (t.result === "invalid") {
        assert.throws(() => aesGcmOpen(key, iv, ct, tag, aad), `tcId ${t.tcId}`);
      }
      checked++;
    }
  }
  assert.ok(checked > 50);
});

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 3072 });
const aad = new TextEncoder().encode("context");

test("an envelope opens with the right key and associated data and yields the plaintext", () => {
  const plaintext = new Uint8Array(64).fill(7);
  const sealed = sealEnvelope(publicKey, plaintext, aad);
  assert.equal(sealed.wrappedKey.length, 384);
  assert.deepEqual(openEnvelope(privateKey, sealed, aad), plaintext);
});

test("every way an envelope can be wrong fails with the same error", () => {
  const sealed = sealEnvelope(publicKey, new Uint8Array(64).fill(1), aad);
  const flip = (bytes: Uint8Array, i = 0) => {
    const copy = new Uint8Array(bytes);
    copy[i] = copy[i]! ^ 1;
    return copy;
  };
  const other = generateKeyPairSync("rsa", { modulusLength: 3072 }).privateKey;
  const cases: [string, () => Uint8Array][] = [
    [
      "other associated data",
      () => openEnvelope(privateKey, sealed, new TextEncoder().encode("other")),
    ],
    [
      "a flipped wrapped-key bit",
      () => openEnvelope(privateKey, { ...sealed, wrappedKey: flip(sealed.wrappedKey) }, aad),
    ],
    [
      "a truncated wrapped key",
      () => openEnvelope(privateKey, { ...sealed, wrappedKey: sealed.wrappedKey.slice(1) }, aad),
    ],
    [
      "a flipped ciphertext bit",
      () => openEnvelope(privateKey, { ...sealed, ciphertext: flip(sealed.ciphertext) }, aad),
    ],
    [
      "a flipped tag bit",
      () => openEnvelope(privateKey, { ...sealed, tag: flip(sealed.tag) }, aad),
    ],
    ["a short IV", () => openEnvelope(privateKey, { ...sealed, iv: sealed.iv.slice(1) }, aad)],
    ["the wrong private key", () => openEnvelope(other, sealed, aad)],
  ];
  const messages = new Set<string>();
  for (const [name, attempt] of cases) {
    assert.throws(attempt, (error: unknown) => {
      assert.ok(error instanceof DkeygenError, name);
      assert.equal(error.code, ErrorCodes.DECRYPTION_FAILED, name);
      messages.add(error.message);
      return true;
    });
  }
  assert.equal(messages.size, 1, "all failures must look the same");
});
