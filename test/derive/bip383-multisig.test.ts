import assert from "node:assert/strict";
import { createHash, createPublicKey, verify } from "node:crypto";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  compareBytes,
  derivePurpose,
  descriptorChecksum,
  eccPrivateKeyObject,
  fromWif,
  hash160,
  isDescriptorChecksumValid,
  multisigScript,
  segwitV0Address,
  toWif,
  withDescriptorChecksum,
} from "../../src/derive/index.js";
import { readVector } from "../helpers/paths.js";

const bip380 = readVector<{
  valid: { descriptor: string }[];
  invalid: { descriptor: string; note: string }[];
  withoutChecksum: { descriptor: string; note: string }[];
}>("bip380/bip380_checksum.json");
const bip383 = readVector<{
  valid: {
    descriptor: string;
    function: "multi" | "sortedmulti";
    k: number;
    keys?: string[];
    wifs?: string[];
    wrapper: "none" | "wsh" | "sh-wsh";
    script: string;
  }[];
}>("bip383/bip383_vectors.json");

const unhex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("BIP380: the descriptor checksum accepts the valid vector and refuses every invalid one", () => {
  for (const { descriptor } of bip380.valid) {
    assert.ok(isDescriptorChecksumValid(descriptor));
    const [body, checksum] = descriptor.split("#");
    assert.equal(descriptorChecksum(body!), checksum);
    assert.equal(withDescriptorChecksum(body!), descriptor);
  }
  for (const { descriptor, note } of [...bip380.invalid, ...bip380.withoutChecksum]) {
    assert.ok(!isDescriptorChecksumValid(descriptor), note);
  }
  assert.throws(() => descriptorChecksum("raw(Ü)"), TypeError);
});

test("BIP383: multi() and sortedmulti() scripts match the specification's vectors", () => {
  for (const v of bip383.valid) {
    const keys = v.keys
      ? v.keys.map(unhex)
      : v.wifs!.map((w) => {
          const { privateKey, compressed } = fromWif(w);
          return secp256k1.getPublicKey(privateKey, compressed);
        });
    const script = multisigScript(v.k, keys, { sorted: v.function === "sortedmulti" });
    let produced: string;
    if (v.wrapper === "none") produced = hex(script);
    else {
      const p2wsh = Uint8Array.from([0x00, 0x20, ...sha256(script)]);
      produced =
        v.wrapper === "wsh"
          ? hex(p2wsh)
          : hex(Uint8Array.from([0xa9, 0x14, ...hash160(p2wsh), 0x87]));
    }
    assert.equal(produced, v.script, v.descriptor.slice(0, 40));
  }
});

test("a derived 2-of-3 set: descriptor with a valid checksum, sorted witness script, P2WSH address", async () => {
  const secret = new Uint8Array(createHash("sha512").update("multisig").digest());
  const r = await derivePurpose("multisig", secret, {});
  assert.equal(r.algorithm, "multisig-p2wsh/v1");
  assert.equal(r.public.m, 2);
  assert.equal(r.public.n, 3);
  const keys = (r.public.keys as { index: number; publicKey: string }[]).map((k) =>
    unhex(k.publicKey),
  );
  assert.equal(keys.length, 3);
  assert.equal(new Set(keys.map(hex)).size, 3);
  const descriptor = r.public.descriptor as string;
  assert.ok(isDescriptorChecksumValid(descriptor));
  assert.equal(descriptor.split("#")[0], `wsh(sortedmulti(2,${keys.map(hex).join(",")}))`);
  const sorted = [...keys].sort(compareBytes);
  const script = Uint8Array.from([0x52, ...sorted.flatMap((k) => [0x21, ...k]), 0x53, 0xae]);
  assert.equal(r.public.witnessScript, hex(script));
  assert.equal(r.public.address, segwitV0Address(sha256(script)));
  assert.match(r.public.address as string, /^bc1q[02-9ac-hj-np-z]{58}$/);
  assert.ok(
    !JSON.stringify(r.public).includes((r.secret.keys as { privateKey: string }[])[0]!.privateKey),
  );
});

test("each holder's key signs, and the signature verifies with node:crypto and noble", async () => {
  const secret = new Uint8Array(64).fill(0x61);
  const r = await derivePurpose("multisig", secret, { m: 3, n: 5 });
  const message = new TextEncoder().encode("spend from the multisig");
  const publics = r.public.keys as { index: number; publicKey: string }[];
  const secrets = r.secret.keys as { index: number; privateKey: string; wif: string }[];
  assert.equal(secrets.length, 5);
  for (const s of secrets) {
    const privateKey = unhex(s.privateKey);
    assert.deepEqual(fromWif(s.wif), { privateKey, compressed: true });
    assert.equal(toWif(privateKey), s.wif);
    const pub = unhex(publics[s.index]!.publicKey);
    const signature = secp256k1.sign(message, privateKey);
    assert.ok(secp256k1.verify(signature, message, pub));
    const keyObject = eccPrivateKeyObject("secp256k1", privateKey);
    const publicKey = createPublicKey(keyObject);
    assert.ok(verify("sha256", message, { key: publicKey, dsaEncoding: "ieee-p1363" }, signature));
  }
});

test("the same M and N give the same keys; another N gives unrelated keys", async () => {
  const secret = new Uint8Array(64).fill(0x62);
  const a = await derivePurpose("multisig", secret, { m: 2, n: 3 });
  const b = await derivePurpose("multisig", secret, { m: 2, n: 3 });
  const c = await derivePurpose("multisig", secret, { m: 2, n: 4 });
  assert.deepEqual(a, b);
  assert.notDeepEqual((a.public.keys as unknown[])[0], (c.public.keys as unknown[])[0]);
});

test("multisig refuses M > N, N > 15 and M < 1", async () => {
  for (const params of [{ m: 4, n: 3 }, { n: 16 }, { m: 0 }, { m: 16, n: 15 }]) {
    await assert.rejects(derivePurpose("multisig", new Uint8Array(64), params), /multisig: option/);
  }
});
