import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { lengthPrefixed } from "../../src/crypto/canonical.js";
import { canonicalJson } from "../../src/crypto/canonical-json.js";
import { HmacDrbg } from "../../src/derive/drbg.js";
import { derivationOf, derivations, derivePurpose, PURPOSES } from "../../src/derive/index.js";
import type { Json } from "../../src/json.js";
import { readVector } from "../helpers/paths.js";

/** One parameter set per purpose (defaults, except where a smaller key keeps the test quick). */
const CASES: Record<string, Record<string, unknown>> = {
  otp: {},
  hotp: {},
  totp: {},
  rsa: { bits: 2048 },
  ecc: {},
  wallet: {},
  multisig: {},
  nonce: {},
};

const SECRET = Uint8Array.from({ length: 64 }, (_, i) => i);
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

test("every purpose has a test case, a versioned algorithm and its documented label", () => {
  assert.deepEqual([...PURPOSES].sort(), Object.keys(CASES).sort());
  for (const purpose of PURPOSES) {
    assert.equal(derivations[purpose].label, `dkeygen/v1/derive/${purpose}`);
    assert.equal(derivationOf(purpose).purpose, purpose);
  }
});

test("the same secret and parameters give the same output, for every purpose", async () => {
  for (const purpose of PURPOSES) {
    const a = await derivePurpose(purpose, SECRET, CASES[purpose]!);
    const b = await derivePurpose(purpose, new Uint8Array(SECRET), { ...CASES[purpose] });
    assert.deepEqual(a, b, purpose);
    assert.equal(a.purpose, purpose);
    assert.match(a.algorithm, /\/v1$/);
    // JSON only: what goes in survives a JSON round trip unchanged.
    assert.deepEqual(JSON.parse(JSON.stringify(a)), a);
  }
});

test("outputs are pinned: a change to any derivation shows up here (golden file)", async () => {
  const golden = readVector<{ secretHex: string; results: Record<string, string> }>(
    "dkeygen-derive/golden.json",
  );
  assert.equal(golden.secretHex, Buffer.from(SECRET).toString("hex"));
  for (const purpose of PURPOSES) {
    const r = await derivePurpose(purpose, SECRET, CASES[purpose]!);
    assert.equal(sha256(canonicalJson(r as unknown as Json)), golden.results[purpose], purpose);
  }
});

test("different purpose labels draw unrelated streams from the same secret", async () => {
  const streams = PURPOSES.map((purpose) => {
    const drbg = new HmacDrbg(
      SECRET,
      new Uint8Array(0),
      lengthPrefixed(derivations[purpose].label, "{}"),
    );
    return Buffer.from(drbg.generate(64)).toString("hex");
  });
  assert.equal(new Set(streams).size, PURPOSES.length);
  // And no secret material of one purpose appears in another's (no shared 16-hex-digit run).
  const secretsOf = await Promise.all(
    PURPOSES.map(async (p) => JSON.stringify((await derivePurpose(p, SECRET, CASES[p]!)).secret)),
  );
  const runs = (text: string) =>
    new Set(
      (text.match(/[0-9a-f]{16,}/g) ?? []).flatMap((h) =>
        [...h.matchAll(/.{16}/g)].map((m) => m[0]),
      ),
    );
  for (let i = 0; i < PURPOSES.length; i++) {
    for (let j = i + 1; j < PURPOSES.length; j++) {
      const shared = [...runs(secretsOf[i]!)].filter((r) => runs(secretsOf[j]!).has(r));
      assert.deepEqual(shared, [], `${PURPOSES[i]} and ${PURPOSES[j]}`);
    }
  }
});

test("one secret bit flipped changes every purpose's output", async () => {
  const flipped = new Uint8Array(SECRET);
  flipped[63]! ^= 1;
  for (const purpose of PURPOSES) {
    const a = await derivePurpose(purpose, SECRET, CASES[purpose]!);
    const b = await derivePurpose(purpose, flipped, CASES[purpose]!);
    assert.notDeepEqual(a.secret, b.secret, purpose);
  }
});
