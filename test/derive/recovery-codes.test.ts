/**
 * Recovery codes (src/derive/recovery.ts, PROTOCOL §13.12): derived from the round secret by their
 * own domain-separated draw, exactly as the protocol text says (checked against a second
 * implementation of that text on @noble/hashes), 50 bits each, normalised the Crockford way.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import {
  deriveRecoveryCodes,
  formatRecoveryCode,
  MAX_RECOVERY_CODES,
  normaliseRecoveryCode,
  RECOVERY_ALPHABET,
  recoveryTag,
  recoveryTagKey,
} from "../../src/derive/recovery.js";

const SECRET = Uint8Array.from({ length: 64 }, (_, i) => i);

/** PROTOCOL §13.3 written out again: HMAC_DRBG-SHA-512, personalization LP(L, canonicalJson(Q)). */
function independentGenerator(secret: Uint8Array, label: string, canonicalParams: string) {
  const H = (k: Uint8Array, ...parts: Uint8Array[]) => hmac(sha512, k, concat(...parts));
  let K: Uint8Array = new Uint8Array(64);
  let V: Uint8Array = new Uint8Array(64).fill(1);
  const update = (data: Uint8Array) => {
    K = H(K, V, Uint8Array.of(0), data);
    V = H(K, V);
    if (data.length > 0) {
      K = H(K, V, Uint8Array.of(1), data);
      V = H(K, V);
    }
  };
  const lp = (...items: string[]) =>
    concat(
      ...items.flatMap((item) => {
        const bytes = new TextEncoder().encode(item);
        const len = new Uint8Array(4);
        new DataView(len.buffer).setUint32(0, bytes.length);
        return [len, bytes];
      }),
    );
  update(concat(secret, lp(label, canonicalParams)));
  return (m: number) => {
    let T: Uint8Array = new Uint8Array(0);
    while (T.length < m) {
      V = H(K, V);
      T = concat(T, V);
    }
    update(new Uint8Array(0));
    return T.subarray(0, m);
  };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test("recovery codes and their tag key are the draws PROTOCOL §13.12 describes, in order", () => {
  const bytes = independentGenerator(SECRET, "dkeygen/v1/derive/recovery-codes", "{}");
  const tagKey = bytes(32);
  const expected = Array.from({ length: 12 }, () =>
    Array.from(bytes(10), (b) => "0123456789abcdefghjkmnpqrstvwxyz"[b & 31]).join(""),
  );
  const set = deriveRecoveryCodes(SECRET, 12);
  assert.deepEqual(set.codes, expected);
  assert.deepEqual(set.tagKey, tagKey);
  assert.deepEqual(recoveryTagKey(SECRET), tagKey);
  // The known answer (PROTOCOL §13.12), so a change to the derivation shows up here too.
  assert.deepEqual(set.codes.slice(0, 3), ["6cnrp2kmbs", "kggcqr1dwb", "3y4ctee6yb"]);
  assert.equal(
    Buffer.from(set.tagKey).toString("hex"),
    "e63de8ace4937d08b2ea465921d5a7bce4da517391ec4170e5ab90d3eb13e3d5",
  );
  assert.equal(formatRecoveryCode(set.codes[0]!), "6cnrp-2kmbs");
  // The tag: the first 8 bytes of HMAC-SHA-256(tagKey, code).
  const tag = Buffer.from(hmac(sha256, tagKey, new TextEncoder().encode(expected[0]!)))
    .subarray(0, 8)
    .toString("hex");
  assert.equal(recoveryTag(set.tagKey, set.codes[0]!), tag);
  assert.equal(tag, "571ab32dcafc095c");
});

test("code i does not depend on how many codes are made, and another round gives other codes", () => {
  const ten = deriveRecoveryCodes(SECRET, 10).codes;
  assert.deepEqual(deriveRecoveryCodes(SECRET, 3).codes, ten.slice(0, 3));
  assert.deepEqual(deriveRecoveryCodes(SECRET, 0).codes, []);
  const other = deriveRecoveryCodes(
    Uint8Array.from({ length: 64 }, (_, i) => 255 - i),
    10,
  ).codes;
  assert.equal(new Set([...ten, ...other]).size, 20);
});

test("a code is 10 characters of Crockford's base32 (50 bits), and every symbol turns up", () => {
  assert.equal(RECOVERY_ALPHABET.length, 32);
  assert.equal(new Set(RECOVERY_ALPHABET).size, 32);
  assert.doesNotMatch(RECOVERY_ALPHABET, /[ilou]/);
  const seen = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const secret = Uint8Array.from({ length: 64 }, (_, j) => (i * 64 + j) & 0xff);
    for (const code of deriveRecoveryCodes(secret, MAX_RECOVERY_CODES).codes) {
      assert.match(code, /^[0-9a-hjkmnp-tv-z]{10}$/);
      for (const c of code) seen.add(c);
    }
  }
  assert.equal(seen.size, 32, "2000 symbols drawn cover the whole alphabet");
});

test("the count is pinned to 0..20", () => {
  assert.equal(deriveRecoveryCodes(SECRET, MAX_RECOVERY_CODES).codes.length, 20);
  assert.equal(MAX_RECOVERY_CODES, 20);
  for (const bad of [21, -1, 1.5, Number.NaN]) {
    assert.throws(() => deriveRecoveryCodes(SECRET, bad), TypeError, String(bad));
  }
  assert.throws(() => deriveRecoveryCodes(new Uint8Array(16), 1), TypeError);
});

test("typed codes are normalised: case, hyphens, spaces, o→0, i/l→1; anything else is no code", () => {
  assert.equal(normaliseRecoveryCode("ab0de-fgh1k"), "ab0defgh1k");
  assert.equal(normaliseRecoveryCode("AB0DE-FGH1K"), "ab0defgh1k");
  assert.equal(normaliseRecoveryCode("abOde fghLk"), "ab0defgh1k");
  assert.equal(normaliseRecoveryCode("abodefghik"), "ab0defgh1k");
  assert.equal(normaliseRecoveryCode("abcde-fghju"), null, "u is not in the alphabet");
  assert.equal(normaliseRecoveryCode("abcde-fghj"), null, "9 characters");
  assert.equal(normaliseRecoveryCode("abcde-fghjkm"), null, "11 characters");
  assert.equal(normaliseRecoveryCode("abcde_fghjk"), null);
  assert.equal(normaliseRecoveryCode(`${"-".repeat(60)}abcdefghjk`), null, "too long to read");
});
