import assert from "node:assert/strict";
import { createPublicKey, verify } from "node:crypto";
import { test } from "node:test";
import { p256 } from "@noble/curves/nist.js";
import { schnorr, secp256k1 } from "@noble/curves/secp256k1.js";
import {
  curveOrder,
  DeterministicGenerator,
  derivePurpose,
  eccPrivateKeyObject,
  NONCE_LABEL,
  signingKeyFromPem,
  signWithRoundNonce,
  verifyRoundSignature,
} from "../../src/derive/index.js";
import { isDkeygenError } from "../../src/errors.js";

const unhex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));
const ECDSA = { secp256k1, p256 } as const;
const message = new TextEncoder().encode("pay 1 BTC to the auditor");
/** For the secret 00 01 … 3f, default parameters (secp256k1). */
const KNOWN_VALUE = "a5b42268316a7361616dd41d039fa173323a9176e5db7fa68ba16e69f6aa07d8";
/** What version 1 output as `scalar` for that secret: drawn still, never output. */
const V1_SCALAR = "0e762283f965a41a019eca08ef4df1280fc363a80e897d64b272ccab6d727306";

async function roundValue(byte: number, curve: "secp256k1" | "p256") {
  const r = await derivePurpose("nonce", new Uint8Array(64).fill(byte), { curve });
  return { r, value: unhex(r.secret.value as string) };
}

test("a nonce is one secret 256-bit value and nothing else: no scalar to use as a signing k", async () => {
  for (const curve of ["secp256k1", "p256"] as const) {
    const { r, value } = await roundValue(1, curve);
    assert.equal(value.length, 32);
    assert.deepEqual(Object.keys(r.secret), ["value"]);
    assert.match(r.secret.value as string, /^[0-9a-f]{64}$/);
    assert.deepEqual(r.public, { curve, bits: 256 });
    assert.equal(r.algorithm, `nonce-${curve}/v1`);
  }
});

test("the nonce value keeps its known answer (PROTOCOL §13.11): drawn after the discarded v1 scalar", async () => {
  const secret = Uint8Array.from({ length: 64 }, (_, i) => i);
  const r = await derivePurpose("nonce", secret, {});
  assert.equal(r.secret.value, KNOWN_VALUE);
  // The generator's second draw, after a scalar in [1, n − 1]: what v1 called `value`.
  const generator = new DeterministicGenerator(secret, NONCE_LABEL, { curve: "secp256k1" });
  const scalar = generator.scalar(curveOrder("secp256k1"));
  assert.equal(Buffer.from(generator.bytes(32)).toString("hex"), KNOWN_VALUE);
  assert.equal(scalar.toString(16).padStart(64, "0"), V1_SCALAR);
  assert.equal(JSON.stringify(r).includes(V1_SCALAR), false);
});

test("hedged ECDSA: signatures verify, the same round value reproduces them, another changes them", async () => {
  for (const curve of ["secp256k1", "p256"] as const) {
    const ecdsa = ECDSA[curve];
    const privateKey = ecdsa.utils.randomSecretKey();
    const publicKey = ecdsa.getPublicKey(privateKey);
    const a = await roundValue(2, curve);
    const b = await roundValue(3, curve);
    const sigA = signWithRoundNonce(message, privateKey, a.value, curve);
    const sigA2 = signWithRoundNonce(message, privateKey, a.value, curve);
    const sigB = signWithRoundNonce(message, privateKey, b.value, curve);
    assert.ok(verifyRoundSignature(sigA, message, publicKey, curve));
    assert.ok(ecdsa.verify(sigB, message, publicKey));
    assert.deepEqual(sigA, sigA2);
    assert.notDeepEqual(sigA, sigB);
    // Not the plain RFC 6979 signature: the round's value went into k.
    assert.notDeepEqual(sigA, ecdsa.sign(message, privateKey));
    // node:crypto agrees (r ‖ s is IEEE P1363 encoding), and DER output verifies too.
    const spki = createPublicKey(eccPrivateKeyObject(curve, privateKey));
    assert.ok(verify("sha256", message, { key: spki, dsaEncoding: "ieee-p1363" }, sigA));
    const der = signWithRoundNonce(message, privateKey, a.value, curve, { format: "der" });
    assert.ok(verify("sha256", message, spki, der));
    assert.ok(!verifyRoundSignature(sigA, new TextEncoder().encode("other"), publicKey, curve));
  }
});

test("BIP340 Schnorr: the round value is the auxiliary randomness", async () => {
  const privateKey = secp256k1.utils.randomSecretKey();
  const a = await roundValue(4, "secp256k1");
  const b = await roundValue(5, "secp256k1");
  const sigA = signWithRoundNonce(message, privateKey, a.value, "secp256k1", { scheme: "schnorr" });
  const sigB = signWithRoundNonce(message, privateKey, b.value, "secp256k1", { scheme: "schnorr" });
  assert.deepEqual(sigA, schnorr.sign(message, privateKey, a.value));
  assert.ok(schnorr.verify(sigA, message, schnorr.getPublicKey(privateKey)));
  assert.ok(
    verifyRoundSignature(sigB, message, secp256k1.getPublicKey(privateKey), "secp256k1", {
      scheme: "schnorr",
    }),
  );
  assert.notDeepEqual(sigA, sigB);
  assert.throws(
    () => signWithRoundNonce(message, privateKey, a.value, "p256", { scheme: "schnorr" }),
    TypeError,
  );
});

test("signing keys are read from PKCS#8 PEM, and other key types are refused", async () => {
  const ecc = await derivePurpose("ecc", new Uint8Array(64).fill(6), { curve: "p256" });
  const key = signingKeyFromPem(ecc.secret.pkcs8 as string);
  assert.equal(key.curve, "p256");
  assert.equal(Buffer.from(key.privateKey).toString("hex"), ecc.secret.privateKey);
  const ed = await derivePurpose("ecc", new Uint8Array(64).fill(6), { curve: "ed25519" });
  assert.throws(
    () => signingKeyFromPem(ed.secret.pkcs8 as string),
    (e) => isDkeygenError(e, "E_INVALID_INPUT"),
  );
  assert.throws(
    () => signingKeyFromPem("not a pem"),
    (e) => isDkeygenError(e, "E_INVALID_INPUT"),
  );
});

test("signWithRoundNonce refuses malformed inputs", () => {
  const k = secp256k1.utils.randomSecretKey();
  const v = new Uint8Array(32);
  assert.throws(() => signWithRoundNonce(message, k, new Uint8Array(31), "secp256k1"), TypeError);
  assert.throws(() => signWithRoundNonce(message, k.subarray(1), v, "secp256k1"), TypeError);
  assert.throws(() => signWithRoundNonce(message, k, v, "ed25519" as "p256"), TypeError);
  assert.throws(
    () => signWithRoundNonce(message, k, v, "secp256k1", { scheme: "rsa" as "ecdsa" }),
    TypeError,
  );
});
