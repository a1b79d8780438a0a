import assert from "node:assert/strict";
import { test } from "node:test";
import { lengthPrefixed } from "../../src/crypto/canonical.js";
import { canonicalJson } from "../../src/crypto/canonical-json.js";
import {
  bitLength,
  DeterministicGenerator,
  HmacDrbg,
  MAX_BYTES_PER_REQUEST,
} from "../../src/derive/drbg.js";
import { readVector } from "../helpers/paths.js";

interface CavpTest {
  section: string;
  count: number;
  entropyInput: string;
  nonce: string;
  personalizationString: string;
  additionalInput: [string, string];
  returnedBits: string;
}

const hex = (text: string) => new Uint8Array(Buffer.from(text, "hex"));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const vectors = readVector<{ tests: CavpTest[] }>("nist-hmac-drbg/hmac_drbg_sha512_no_reseed.json");

test("HMAC_DRBG with SHA-512 reproduces every NIST CAVP no-reseed known answer", () => {
  assert.ok(vectors.tests.length >= 6);
  for (const t of vectors.tests) {
    const drbg = new HmacDrbg(hex(t.entropyInput), hex(t.nonce), hex(t.personalizationString));
    const length = t.returnedBits.length / 2;
    drbg.generate(length, hex(t.additionalInput[0]));
    const got = drbg.generate(length, hex(t.additionalInput[1]));
    assert.equal(toHex(got), t.returnedBits, `${t.section} COUNT = ${t.count}`);
  }
});

test("a derivation's generator is HMAC_DRBG personalized with LP(label, canonical params JSON)", () => {
  const secret = new Uint8Array(64).fill(7);
  const params = { digits: 8, b: "x" };
  const ours = new DeterministicGenerator(secret, "dkeygen/v1/derive/test", params);
  const personalization = lengthPrefixed("dkeygen/v1/derive/test", '{"b":"x","digits":8}');
  const reference = new HmacDrbg(secret, new Uint8Array(0), personalization);
  assert.equal(canonicalJson(params), '{"b":"x","digits":8}');
  assert.equal(toHex(ours.bytes(100)), toHex(reference.generate(100)));
});

test("requests above 65536 bytes are split into several generate calls", () => {
  const secret = new Uint8Array(32).fill(1);
  const big = new DeterministicGenerator(secret, "L", {}).bytes(MAX_BYTES_PER_REQUEST + 10);
  const reference = new HmacDrbg(secret, new Uint8Array(0), lengthPrefixed("L", "{}"));
  const first = reference.generate(MAX_BYTES_PER_REQUEST);
  const second = reference.generate(10);
  assert.equal(toHex(big), toHex(first) + toHex(second));
  assert.throws(() => reference.generate(MAX_BYTES_PER_REQUEST + 1), RangeError);
});

test("an entropy input shorter than 256 bits is refused", () => {
  assert.throws(
    () => new HmacDrbg(new Uint8Array(31), new Uint8Array(0), new Uint8Array(0)),
    TypeError,
  );
  assert.throws(() => new DeterministicGenerator(new Uint8Array(16), "L", {}), TypeError);
});

test("uniformBigInt draws by rejection over the minimal bit mask and stays in range", () => {
  // For max = 5 the mask is 3 bits: one byte per draw, values 5..7 rejected. Replaying the same
  // stream by hand must give the same accepted values.
  const secret = new Uint8Array(64).fill(3);
  const sampler = new DeterministicGenerator(secret, "L", {});
  const replay = new DeterministicGenerator(secret, "L", {});
  const seen = new Set<bigint>();
  for (let i = 0; i < 200; i++) {
    const value = sampler.uniformBigInt(5n);
    let expected: number;
    do expected = replay.bytes(1)[0]! & 0b111;
    while (expected >= 5);
    assert.equal(value, BigInt(expected));
    seen.add(value);
  }
  assert.deepEqual([...seen].sort(), [0n, 1n, 2n, 3n, 4n]);
  assert.equal(sampler.uniformBigInt(1n), 0n);
  assert.throws(() => sampler.uniformBigInt(0n), RangeError);
});

test("scalar(n) lies in [1, n − 1] and uniformInt matches uniformBigInt", () => {
  const secret = new Uint8Array(64).fill(9);
  const a = new DeterministicGenerator(secret, "L", {});
  for (let i = 0; i < 500; i++) {
    const s = a.scalar(3n);
    assert.ok(s === 1n || s === 2n);
  }
  const x = new DeterministicGenerator(secret, "M", {});
  const y = new DeterministicGenerator(secret, "M", {});
  for (let i = 0; i < 50; i++)
    assert.equal(BigInt(x.uniformInt(1_000_000)), y.uniformBigInt(1_000_000n));
  assert.equal(bitLength(0n), 0);
  assert.equal(bitLength(255n), 8);
  assert.equal(bitLength(256n), 9);
});
