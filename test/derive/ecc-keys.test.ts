import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { test } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import { DeterministicGenerator } from "../../src/derive/drbg.js";
import { curveOrder, derivePurpose, ECC_CURVES, WEIERSTRASS } from "../../src/derive/index.js";

const secretNumber = (i: number) =>
  new Uint8Array(createHash("sha512").update(`ecc-test/${i}`).digest());
const unhex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));

function openssl(args: string[], input: string): string {
  return execFileSync("openssl", args, {
    input,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
  });
}

const message = new TextEncoder().encode("dkeygen ecc signature test");

for (const curve of ECC_CURVES) {
  test(`${curve} keys sign with node:crypto and verify with @noble/curves, and back`, async () => {
    for (let i = 0; i < 4; i++) {
      const r = await derivePurpose("ecc", secretNumber(i), { curve });
      assert.equal(r.algorithm, `ecc-${curve}/v1`);
      const privateKey = createPrivateKey(r.secret.pkcs8 as string);
      const publicKey = createPublicKey(r.public.spki as string);
      const raw = unhex(r.secret.privateKey as string);
      const pub = unhex(r.public.publicKey as string);
      if (curve === "ed25519") {
        const nodeSig = sign(null, message, privateKey);
        assert.ok(ed25519.verify(nodeSig, message, pub));
        const nobleSig = ed25519.sign(message, raw);
        assert.ok(verify(null, message, publicKey, nobleSig));
        assert.deepEqual(new Uint8Array(nodeSig), nobleSig); // Ed25519 is deterministic
      } else {
        const { ecdsa } = WEIERSTRASS[curve];
        const nodeSig = sign("sha256", message, { key: privateKey, dsaEncoding: "ieee-p1363" });
        assert.ok(ecdsa.verify(nodeSig, message, pub, { lowS: false }));
        const nobleSig = ecdsa.sign(message, raw);
        assert.ok(
          verify("sha256", message, { key: publicKey, dsaEncoding: "ieee-p1363" }, nobleSig),
        );
        assert.ok(ecdsa.verify(nobleSig, message, unhex(r.public.uncompressed as string)));
      }
    }
  });

  test(`${curve} PEMs and JWKs are read by OpenSSL and node:crypto and describe the same key`, async () => {
    const r = await derivePurpose("ecc", secretNumber(10), { curve });
    const text = openssl(["pkey", "-noout", "-text"], r.secret.pkcs8 as string);
    assert.match(text, curve === "ed25519" ? /ED25519 Private-Key/ : /Private-Key: \(256 bit/);
    const spkiFromPrivate = openssl(["pkey", "-pubout"], r.secret.pkcs8 as string);
    assert.equal(spkiFromPrivate, r.public.spki);
    assert.equal(openssl(["pkey", "-pubin"], r.public.spki as string), r.public.spki);
    const fromJwk = createPublicKey({ key: r.public.jwk as never, format: "jwk" });
    assert.equal(fromJwk.export({ type: "spki", format: "pem" }), r.public.spki);
    const privateFromJwk = createPrivateKey({ key: r.secret.jwk as never, format: "jwk" });
    assert.equal(privateFromJwk.export({ type: "pkcs8", format: "pem" }), r.secret.pkcs8);
    assert.equal((r.public.jwk as Record<string, unknown>).d, undefined);
    assert.ok(!JSON.stringify(r.public).includes(r.secret.privateKey as string));
  });
}

test("Weierstrass private keys are the DRBG's rejection-sampled scalar in [1, n − 1]", async () => {
  for (const curve of ["secp256k1", "p256"] as const) {
    const secret = secretNumber(20);
    const r = await derivePurpose("ecc", secret, { curve });
    const expected = new DeterministicGenerator(secret, "dkeygen/v1/derive/ecc", { curve }).scalar(
      curveOrder(curve),
    );
    const d = BigInt(`0x${r.secret.privateKey}`);
    assert.equal(d, expected);
    assert.ok(d >= 1n && d < curveOrder(curve));
    const { ecdsa } = WEIERSTRASS[curve];
    const point = ecdsa.Point.fromHex(r.public.publicKey as string);
    assert.ok(point.equals(ecdsa.Point.fromHex(r.public.uncompressed as string)));
    assert.ok(point.equals(ecdsa.Point.BASE.multiply(d)));
    assert.match(r.public.publicKey as string, /^0[23][0-9a-f]{64}$/);
    assert.match(r.public.uncompressed as string, /^04[0-9a-f]{128}$/);
  }
});

test("the Ed25519 private key is the DRBG's first 32 bytes (an RFC 8032 seed)", async () => {
  const secret = secretNumber(21);
  const r = await derivePurpose("ecc", secret, { curve: "ed25519" });
  const seed = new DeterministicGenerator(secret, "dkeygen/v1/derive/ecc", {
    curve: "ed25519",
  }).bytes(32);
  assert.equal(r.secret.privateKey, Buffer.from(seed).toString("hex"));
  assert.equal(r.public.publicKey, Buffer.from(ed25519.getPublicKey(seed)).toString("hex"));
});
