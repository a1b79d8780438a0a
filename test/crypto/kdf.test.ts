import assert from "node:assert/strict";
import { test } from "node:test";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { combineRoundSecret } from "../../src/crypto/kdf.js";
import {
  PHRASE_GENERATOR_NAMES,
  phraseGenerator,
  secretPhraseInput,
} from "../../src/crypto/phrase-generators.js";

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const base = {
  roundId: "AAAAAAAAAAAAAAAAAAAAAA",
  purpose: "otp",
  seedPhrase: bytes(32, 9),
  serverSecret: bytes(32, 4),
  contributions: [
    { contributorId: "SHA256:b", phrase: bytes(64, 2) },
    { contributorId: "SHA256:a", phrase: bytes(64, 1) },
  ],
};

/** The construction of docs/PROTOCOL.md, written out again independently, on @noble/hashes. */
function reference(input: typeof base): Uint8Array {
  const enc = new TextEncoder();
  const lp = (...fields: Uint8Array[]) => {
    const parts: number[] = [];
    for (const f of fields) {
      parts.push(
        (f.length >>> 24) & 255,
        (f.length >>> 16) & 255,
        (f.length >>> 8) & 255,
        f.length & 255,
        ...f,
      );
    }
    return new Uint8Array(parts);
  };
  const sorted = [...input.contributions].sort((x, y) =>
    x.contributorId < y.contributorId ? -1 : 1,
  );
  const count = new Uint8Array([0, 0, 0, sorted.length]);
  const ikm = lp(
    enc.encode("dkeygen/v1/response-phrase"),
    input.seedPhrase,
    input.serverSecret,
    count,
    ...sorted.flatMap((c) => [enc.encode(c.contributorId), c.phrase]),
  );
  const info = lp(enc.encode("dkeygen/v1/round-secret"), enc.encode(input.purpose));
  return hkdf(sha512, ikm, enc.encode(`dkeygen/v1/round/${input.roundId}`), info, 64);
}

test("the round secret is HKDF-SHA-512 exactly as PROTOCOL.md defines it", () => {
  assert.deepEqual(combineRoundSecret(base), reference(base));
});

test("the round secret does not depend on the order contributions arrived in", () => {
  const reversed = { ...base, contributions: [...base.contributions].reverse() };
  assert.deepEqual(combineRoundSecret(reversed), combineRoundSecret(base));
});

test("changing any input changes the round secret", () => {
  const secret = Buffer.from(combineRoundSecret(base)).toString("hex");
  const variants = [
    { ...base, roundId: "BAAAAAAAAAAAAAAAAAAAAA" },
    { ...base, purpose: "totp" },
    { ...base, seedPhrase: bytes(32, 8) },
    { ...base, serverSecret: bytes(32, 5) },
    {
      ...base,
      contributions: [base.contributions[0]!, { contributorId: "SHA256:a", phrase: bytes(64, 3) }],
    },
    { ...base, contributions: [base.contributions[0]!] },
  ];
  for (const variant of variants) {
    assert.notEqual(Buffer.from(combineRoundSecret(variant)).toString("hex"), secret);
  }
});

test("a server secret of any length but 32 bytes is refused", () => {
  for (const length of [0, 31, 33]) {
    assert.throws(
      () => combineRoundSecret({ ...base, serverSecret: bytes(length, 1) }),
      /32 bytes/,
    );
  }
});

test("a contributor counted twice is refused", () => {
  assert.throws(
    () =>
      combineRoundSecret({
        ...base,
        contributions: [base.contributions[0]!, base.contributions[0]!],
      }),
    /twice/,
  );
});

test("every secret phrase generator gives 64 bytes that depend on its key and input", () => {
  const input = secretPhraseInput("round", bytes(32, 1), bytes(64, 2));
  const outputs = new Set<string>();
  for (const name of PHRASE_GENERATOR_NAMES) {
    const g = phraseGenerator(name);
    const key = bytes(g.keyBytes, 5);
    const out = g.compute(key, input);
    assert.equal(out.length, 64, name);
    assert.deepEqual(g.compute(key, input), out, `${name} is deterministic`);
    assert.notDeepEqual(g.compute(bytes(g.keyBytes, 6), input), out, `${name} depends on its key`);
    assert.notDeepEqual(
      g.compute(key, secretPhraseInput("round", bytes(32, 1), bytes(64, 3))),
      out,
    );
    outputs.add(Buffer.from(out).toString("hex"));
  }
  assert.equal(outputs.size, PHRASE_GENERATOR_NAMES.length, "generators are distinct functions");
  assert.ok(PHRASE_GENERATOR_NAMES.length >= 3);
  assert.throws(() => phraseGenerator("md5"), /Unknown secret phrase generator/);
});
