import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  checkPrime,
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  sign,
  verify,
} from "node:crypto";
import { test } from "node:test";
import { promisify } from "node:util";
import { lengthPrefixed } from "../../src/crypto/canonical.js";
import { HmacDrbg } from "../../src/derive/drbg.js";
import { derivePurpose } from "../../src/derive/index.js";
import { fips186RsaViolations, passesSieve, SIEVE_BOUND } from "../../src/derive/rsa.js";

const secretNumber = (i: number) =>
  new Uint8Array(createHash("sha512").update(`rsa-test/${i}`).digest());

const fromB64u = (text: string) => BigInt(`0x${Buffer.from(text, "base64url").toString("hex")}`);

function keyNumbers(pkcs8: string) {
  const jwk = createPrivateKey(pkcs8).export({ format: "jwk" });
  return {
    n: fromB64u(jwk.n!),
    e: fromB64u(jwk.e!),
    d: fromB64u(jwk.d!),
    p: fromB64u(jwk.p!),
    q: fromB64u(jwk.q!),
  };
}

function openssl(args: string[], input: string): string {
  return execFileSync("openssl", args, {
    input,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
  });
}

for (const bits of [2048, 3072, 4096]) {
  test(`an rsa-${bits} key meets FIPS 186-5's conditions and passes openssl rsa -check`, async () => {
    const r = await derivePurpose("rsa", secretNumber(bits), { bits });
    assert.equal(r.algorithm, `rsa-${bits}/v1`);
    const pkcs8 = r.secret.pkcs8 as string;
    const spki = r.public.spki as string;
    assert.match(pkcs8, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(spki, /^-----BEGIN PUBLIC KEY-----\n/);

    const { n, e, d, p, q } = keyNumbers(pkcs8);
    assert.deepEqual(fips186RsaViolations(bits, p, q, e, d), []);
    assert.equal(e, 65537n);
    assert.ok(p > q, "p > q, as OpenSSL orders them");
    assert.equal(r.public.n, n.toString(16));
    assert.equal(r.public.e, 65537);
    assert.equal(r.public.bits, bits);

    assert.match(openssl(["rsa", "-check", "-noout"], pkcs8), /RSA key ok/);
    const modulus = openssl(["rsa", "-pubin", "-noout", "-modulus"], spki).trim();
    assert.equal(modulus, `Modulus=${n.toString(16).toUpperCase()}`);
    assert.ok(!JSON.stringify(r.public).includes("PRIVATE"));
  });
}

test("signatures made with a derived RSA key verify with node:crypto (PKCS #1 v1.5 and PSS)", async () => {
  const r = await derivePurpose("rsa", secretNumber(1), { bits: 2048 });
  const privateKey = createPrivateKey(r.secret.pkcs8 as string);
  const publicKey = createPublicKey(r.public.spki as string);
  const message = Buffer.from("dkeygen rsa signature test");
  const pkcs1 = sign("sha256", message, privateKey);
  assert.ok(verify("sha256", message, publicKey, pkcs1));
  const pss = { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
  const signature = sign("sha256", message, pss);
  assert.ok(verify("sha256", message, { ...pss, key: publicKey }, signature));
  assert.ok(!verify("sha256", Buffer.from("other"), publicKey, pkcs1));
});

test("the same secret gives the same RSA key; another secret gives another", async () => {
  const a = await derivePurpose("rsa", secretNumber(7), {});
  const b = await derivePurpose("rsa", secretNumber(7), { bits: 3072 });
  const c = await derivePurpose("rsa", secretNumber(8), {});
  assert.deepEqual(a, b);
  assert.notEqual(a.public.n, c.public.n);
});

test("trial division agrees with BigInt remainders, e's condition included", () => {
  const primes: bigint[] = [];
  for (let x = 3n; x < BigInt(SIEVE_BOUND); x += 2n) {
    if (primes.every((p) => p * p > x || x % p !== 0n)) primes.push(x);
  }
  for (let i = 0; i < 300; i++) {
    const bytes = createHash("sha512").update(`sieve/${i}`).digest();
    let c = BigInt(`0x${bytes.toString("hex")}`) | 1n;
    if (i % 3 === 0) c = c - (c % 16381n); // divisible by the largest prime in the table
    if (i % 5 === 0) c = c - (c % 65537n) + 1n; // c ≡ 1 mod e
    const expected = primes.every((p) => c % p !== 0n) && c % 65537n !== 1n;
    assert.equal(passesSieve(c), expected, `candidate ${i}`);
  }
});

const isPrime = promisify(checkPrime) as (c: bigint, o: { checks: number }) => Promise<boolean>;

test("the key is what a plain one-at-a-time FIPS 186-5 A.1.3 search finds (no sieve, no concurrency)", async () => {
  // The documented algorithm, written out again as simply as possible.
  const secret = secretNumber(2048 + 1);
  const nlen = 2048;
  const k = nlen / 2;
  const drbg = new HmacDrbg(
    secret,
    new Uint8Array(0),
    lengthPrefixed("dkeygen/v1/derive/rsa", '{"bits":2048}'),
  );
  const stream: number[] = [];
  const nextByte = () => {
    if (stream.length === 0) stream.push(...drbg.generate((k / 8) * 64));
    return stream.shift()!;
  };
  const bound = (() => {
    // ⌈√2·2^(k−1)⌉ by bisection
    let lo = 1n << BigInt(k - 1);
    let hi = 1n << BigInt(k);
    const target = 1n << BigInt(2 * k - 1);
    while (hi - lo > 1n) {
      const mid = (lo + hi) / 2n;
      if (mid * mid < target) lo = mid;
      else hi = mid;
    }
    return hi;
  })();
  const nextCandidate = (): bigint => {
    for (;;) {
      const first = nextByte();
      if (first < 0xb5) continue;
      let c = BigInt(first);
      for (let i = 1; i < k / 8; i++) c = (c << 8n) | BigInt(nextByte());
      c |= 1n;
      if (c >= bound) return c;
    }
  };
  const nextPrime = async (): Promise<bigint> => {
    for (;;) {
      const c = nextCandidate();
      if ((c - 1n) % 65537n !== 0n && (await isPrime(c, { checks: 64 }))) return c;
    }
  };
  let p = await nextPrime();
  let q = await nextPrime();
  while ((p > q ? p - q : q - p) <= 1n << BigInt(k - 100)) q = await nextPrime();
  // d > 2^(nlen/2) fails with negligible probability; the test would notice a mismatch below.
  if (q > p) [p, q] = [q, p];

  const r = await derivePurpose("rsa", secret, { bits: nlen });
  const numbers = keyNumbers(r.secret.pkcs8 as string);
  assert.equal(numbers.p, p);
  assert.equal(numbers.q, q);
});

test("rsa refuses sizes other than 2048, 3072 and 4096", async () => {
  for (const bits of [1024, 3000, 8192, "big"]) {
    await assert.rejects(derivePurpose("rsa", secretNumber(0), { bits }), /rsa: option "bits"/);
  }
});
