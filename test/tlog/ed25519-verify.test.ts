/**
 * ed25519Verify (tlog/note-keys.ts) answers through OpenSSL when that is sure and through noble
 * otherwise: its verdict must be noble's strict one (zip215: false) on every input, including the
 * ones where OpenSSL's cofactorless check and noble's cofactored check part ways.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { ED25519_TORSION_SUBGROUP, ed25519 } from "@noble/curves/ed25519.js";
import { ed25519Verify } from "../../src/tlog/note-keys.js";
import { readVector } from "../helpers/paths.js";

const noble = (key: Uint8Array, msg: Uint8Array, sig: Uint8Array) => {
  try {
    return ed25519.verify(sig, msg, key, { zip215: false });
  } catch {
    return false;
  }
};

const same = (key: Uint8Array, msg: Uint8Array, sig: Uint8Array, what: string) => {
  const expected = noble(key, msg, sig);
  // Twice: the second answer comes from the remembered key.
  assert.equal(ed25519Verify(key, msg, sig), expected, what);
  assert.equal(ed25519Verify(key, msg, sig), expected, `${what} (again)`);
  return expected;
};

interface Ed25519File {
  testGroups: { publicKey: { pk: string }; tests: { tcId: number; msg: string; sig: string }[] }[];
}

test("ed25519Verify gives noble's strict verdict on every Wycheproof Ed25519 vector", () => {
  const file = readVector<Ed25519File>("wycheproof/ed25519_test.json");
  let checked = 0;
  for (const group of file.testGroups) {
    const key = new Uint8Array(Buffer.from(group.publicKey.pk, "hex"));
    for (const t of group.tests) {
      same(key, Buffer.from(t.msg, "hex"), Buffer.from(t.sig, "hex"), `tcId ${t.tcId}`);
      checked++;
    }
  }
  assert.ok(checked > 100);
});

test("a signature whose R is moved by a torsion point is refused, as noble refuses it", () => {
  const secret = ed25519.utils.randomSecretKey();
  const key = ed25519.getPublicKey(secret);
  const msg = new TextEncoder().encode("checkpoint\n");
  const sig = ed25519.sign(msg, secret);
  assert.equal(same(key, msg, sig, "honest"), true);
  const R = ed25519.Point.fromBytes(sig.subarray(0, 32));
  let nobleOnly = 0;
  for (const t of ED25519_TORSION_SUBGROUP.slice(1)) {
    const twisted = new Uint8Array(sig);
    twisted.set(R.add(ed25519.Point.fromHex(t)).toBytes(), 0);
    // The challenge hashes R's bytes, so a changed R changes k: noble's cofactored check accepts
    // only when [k]A still matches, which happens for none of these; both say no, and agree.
    if (same(key, msg, twisted, `R + T${t.slice(0, 8)}`)) nobleOnly++;
  }
  assert.equal(nobleOnly, 0);
});

test("under a mixed-order key, signatures OpenSSL refuses get noble's verdict", () => {
  // A' = A + T (T of order 8): not of small order, so noble decodes it; the cofactored equation
  // ignores T while OpenSSL's cofactorless one does not, so some of these signatures verify for
  // noble only (k·T vanishes when 8 | k), and ed25519Verify must say what noble says.
  const T = ed25519.Point.fromHex(ED25519_TORSION_SUBGROUP[1]!);
  const a = ed25519.utils.randomSecretKey();
  const { scalar } = ed25519.utils.getExtendedPublicKey(a);
  const key = ed25519.Point.BASE.multiply(scalar).add(T).toBytes();
  let accepted = 0;
  for (let i = 0; i < 64; i++) {
    const msg = new TextEncoder().encode(`message ${i}`);
    // A signature made with the secret scalar, over the mixed-order key's bytes.
    const r = ed25519.utils.randomSecretKey();
    const rScalar = ed25519.utils.getExtendedPublicKey(r).scalar;
    const R = ed25519.Point.BASE.multiply(rScalar).toBytes();
    const k = ed25519.Point.Fn.create(
      BigInt(
        `0x${Buffer.from(sha512(R, key, msg))
          .reverse()
          .toString("hex")}`,
      ),
    );
    const S = ed25519.Point.Fn.add(rScalar, ed25519.Point.Fn.mul(k, scalar));
    const sig = new Uint8Array(64);
    sig.set(R, 0);
    sig.set(ed25519.Point.Fn.toBytes(S), 32);
    if (same(key, msg, sig, `mixed-order key, message ${i}`)) accepted++;
  }
  assert.ok(accepted > 0, "some signatures verify under the cofactored equation");
});

test("small-order and non-canonical keys verify nothing, as with noble", () => {
  const msg = new TextEncoder().encode("anything\n");
  for (const t of ED25519_TORSION_SUBGROUP) {
    const key = new Uint8Array(Buffer.from(t, "hex"));
    const sig = new Uint8Array(64);
    sig.set(key, 0); // R = A, S = 0: [0]B = A + [k]A holds whenever (k + 1)·A = 0
    assert.equal(same(key, msg, sig, `small-order key ${t.slice(0, 8)}`), false);
  }
  const nonCanonical = new Uint8Array(32).fill(0xff);
  nonCanonical[0] = 0xee;
  nonCanonical[31] = 0x7f; // y = p + 1
  assert.equal(same(nonCanonical, msg, new Uint8Array(64), "y = p + 1"), false);
});

function sha512(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha512");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
