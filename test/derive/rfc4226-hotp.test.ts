import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import {
  derivePurpose,
  fromBase32,
  hotpCode,
  MAX_HOTP_LOOK_AHEAD,
  verifyHotp,
} from "../../src/derive/index.js";
import { readVector } from "../helpers/paths.js";

interface Rfc4226 {
  hotp: {
    secretHex: string;
    digits: number;
    vectors: { counter: number; hmacSha1Hex: string; truncatedDecimal: number; hotp: string }[];
  };
}

const { hotp } = readVector<Rfc4226>("rfc4226-rfc6238/rfc4226_rfc6238_vectors.json");
const secret = new Uint8Array(Buffer.from(hotp.secretHex, "hex"));

test("HOTP matches every RFC 4226 Appendix D value (counters 0-9, SHA-1, 6 digits)", () => {
  assert.equal(hotp.vectors.length, 10);
  for (const v of hotp.vectors) {
    assert.equal(
      hotpCode(secret, v.counter, { digits: hotp.digits }),
      v.hotp,
      `counter ${v.counter}`,
    );
    assert.equal(hotpCode(secret, BigInt(v.counter)), v.hotp);
  }
});

test("dynamic truncation yields the RFC's intermediate 31-bit values", () => {
  for (const v of hotp.vectors) {
    const mac = createHmac("sha1", secret).update(
      Buffer.from(`000000000000000${v.counter}`, "hex"),
    );
    assert.equal(mac.digest("hex"), v.hmacSha1Hex);
    // With 8 digits the code is the truncated value mod 10^8, so the truncation itself is checked.
    const eight = String(v.truncatedDecimal % 100_000_000).padStart(8, "0");
    assert.equal(hotpCode(secret, v.counter, { digits: 8 }), eight);
  }
});

test("verifyHotp finds a code within the look-ahead window and nowhere else", () => {
  assert.equal(verifyHotp(secret, "969429", 0, { lookAhead: 5 }), 3n);
  assert.equal(verifyHotp(secret, "969429", 0, { lookAhead: 2 }), null);
  assert.equal(verifyHotp(secret, "755224", 0), 0n);
  assert.equal(verifyHotp(secret, "75522", 0), null);
});

test("hotpCode refuses counters and digit counts outside RFC 4226", () => {
  assert.throws(() => hotpCode(secret, -1), TypeError);
  assert.throws(() => hotpCode(secret, 2n ** 64n), TypeError);
  assert.throws(() => hotpCode(secret, 1.5), TypeError);
  assert.throws(() => hotpCode(secret, 0, { digits: 5 }), TypeError);
  assert.throws(() => hotpCode(secret, 0, { digits: 9 }), TypeError);
  assert.throws(() => hotpCode(new Uint8Array(0), 0), TypeError);
  assert.equal(hotpCode(secret, 2n ** 64n - 1n).length, 6);
});

test("a derived hotp secret has the hash's length and its URI carries the counter", async () => {
  const round = new Uint8Array(64).fill(0x42);
  for (const [algorithm, bytes] of [
    ["SHA1", 20],
    ["SHA256", 32],
    ["SHA512", 64],
  ] as const) {
    const r = await derivePurpose("hotp", round, { algorithm, counter: 7, digits: 8 });
    assert.equal(r.algorithm, "hotp/v1");
    const key = fromBase32(r.secret.secret as string);
    assert.equal(key.length, bytes);
    assert.deepEqual(r.public, {
      type: "hotp",
      issuer: "dkeygen",
      account: "user",
      algorithm,
      digits: 8,
      counter: 7,
    });
    assert.match(r.secret.uri as string, /&counter=7$/);
  }
});

test("verifyHotp looks ahead at most 1000 counters (a resynchronisation window's room)", () => {
  assert.equal(MAX_HOTP_LOOK_AHEAD, 1000);
  assert.equal(verifyHotp(secret, "969429", 0, { lookAhead: 1000 }), 3n);
  assert.throws(() => verifyHotp(secret, "969429", 0, { lookAhead: 1001 }), TypeError);
});
