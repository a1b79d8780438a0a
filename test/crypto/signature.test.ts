import assert from "node:assert/strict";
import { test } from "node:test";
import { fingerprintOf } from "../../src/crypto/fingerprint.js";
import {
  generateIdentity,
  publicKeyFromRaw,
  rawPublicKey,
  signMessage,
  verifySignature,
} from "../../src/crypto/signature.js";
import { contributorIdOf } from "../../src/protocol/identity.js";
import { readVector } from "../helpers/paths.js";

interface Ed25519File {
  testGroups: {
    publicKey: { pk: string };
    tests: { tcId: number; msg: string; sig: string; result: string }[];
  }[];
}

test("Ed25519 identity signatures agree with every Wycheproof vector", () => {
  const file = readVector<Ed25519File>("wycheproof/ed25519_test.json");
  let checked = 0;
  for (const group of file.testGroups) {
    const key = publicKeyFromRaw(new Uint8Array(Buffer.from(group.publicKey.pk, "hex")));
    for (const t of group.tests) {
      const ok = verifySignature(key, Buffer.from(t.msg, "hex"), Buffer.from(t.sig, "hex"));
      if (t.result === "valid") assert.equal(ok, true, `tcId ${t.tcId}`);
      if (t.result === "invalid") assert.equal(ok, false, `tcId ${t.tcId}`);
      checked++;
    }
  }
  assert.ok(checked > 100);
});

test("a signature verifies under its own key only and never throws on garbage", () => {
  const a = generateIdentity();
  const b = generateIdentity();
  const message = new TextEncoder().encode("round 1");
  const signature = signMessage(a.privateKey, message);
  assert.equal(verifySignature(a.publicKey, message, signature), true);
  assert.equal(verifySignature(b.publicKey, message, signature), false);
  assert.equal(verifySignature(a.publicKey, new TextEncoder().encode("round 2"), signature), false);
  assert.equal(verifySignature(a.publicKey, message, signature.slice(1)), false);
  assert.equal(verifySignature(a.publicKey, message, new Uint8Array(64)), false);
  assert.equal(rawPublicKey(a.privateKey).length, 32);
  assert.throws(() => publicKeyFromRaw(new Uint8Array(31)), /32 bytes/);
});

test("remembered keys are the very keys: raw bytes come as copies, ids and imports match a fresh computation", () => {
  const a = generateIdentity();
  const first = rawPublicKey(a.publicKey);
  // A caller scribbling on its copy (fresh or remembered) changes nothing remembered.
  rawPublicKey(a.publicKey).fill(0);
  const again = rawPublicKey(a.publicKey);
  assert.deepEqual(again, first);
  assert.notDeepEqual(again, new Uint8Array(32));
  assert.deepEqual(rawPublicKey(a.privateKey), again);
  const imported = publicKeyFromRaw(again);
  assert.ok(imported.equals(a.publicKey));
  assert.equal(publicKeyFromRaw(again), imported); // the remembered one
  assert.equal(contributorIdOf(again), fingerprintOf(a.publicKey));
  assert.equal(contributorIdOf(again), fingerprintOf(a.publicKey)); // from memory
  // Another key's bytes get another key and id, however many came before.
  const b = generateIdentity();
  assert.equal(contributorIdOf(rawPublicKey(b.publicKey)), fingerprintOf(b.publicKey));
  assert.ok(publicKeyFromRaw(rawPublicKey(b.publicKey)).equals(b.publicKey));
  for (let i = 0; i < 2; i++) {
    assert.throws(() => publicKeyFromRaw(new Uint8Array(31)), /32 bytes/);
    assert.throws(() => contributorIdOf(new Uint8Array(33)), /32 bytes/);
  }
});
