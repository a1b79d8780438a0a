/**
 * Recovery codes in the key store (src/server/recovery-codes.ts): only scrypt hashes are stored,
 * with per-code salts and the parameters recorded; a verification hashes at most once however many
 * codes are stored, and a code is used up exactly once, also when two verifications race.
 */
import assert from "node:assert/strict";
import { scryptSync } from "node:crypto";
import { test } from "node:test";
import { fromBase64url } from "../../src/crypto/base64url.js";
import { osRandom } from "../../src/crypto/random.js";
import { deriveRecoveryCodes, formatRecoveryCode } from "../../src/derive/recovery.js";
import {
  RECOVERY_SCRYPT,
  type RecoveryHasher,
  recoveryCodesLeft,
  scryptHasher,
  storeRecoveryCodes,
  useRecoveryCode,
} from "../../src/server/recovery-codes.js";
import { MemoryKeyStore } from "../../src/store/memory.js";

const SECRET = Uint8Array.from({ length: 64 }, (_, i) => i * 3);

const enrollmentInput = {
  purpose: "totp",
  roundId: "AAAAAAAAAAAAAAAAAAAAAA",
  participants: [],
  algorithm: "totp/v1",
  owner: "req-1",
  subject: "alice",
  public: { type: "totp", account: "alice" },
  secret: new Uint8Array([1]),
};

async function enrolled(count: number, secret = SECRET) {
  const store = new MemoryKeyStore();
  await store.open();
  const enrollment = await store.put(enrollmentInput);
  const set = deriveRecoveryCodes(secret, count);
  let calls = 0;
  const counting: RecoveryHasher = (code, salt, params) => {
    calls++;
    return scryptHasher(code, salt, params);
  };
  const records = await storeRecoveryCodes(store, enrollment, set, {
    random: osRandom,
    hasher: counting,
  });
  return { store, enrollment, set, records, calls: () => calls, counting };
}

test("each code is stored as one record holding only its scrypt hash, salt and parameters", async () => {
  const { store, set, records, calls } = await enrolled(3);
  assert.equal(calls(), 3);
  assert.equal(records.length, 3);
  const salts = new Set<string>();
  for (const [i, record] of records.entries()) {
    assert.equal(record.purpose, "recovery");
    assert.equal(record.owner, "req-1");
    assert.equal(record.subject, "alice");
    assert.equal(record.public.index, i);
    assert.match(String(record.public.tag), /^[0-9a-f]{16}$/);
    const text = Buffer.from(await store.readSecret(record.id)).toString("utf8");
    assert.equal(text.includes(set.codes[i]!), false, "the code itself is not stored");
    const stored = JSON.parse(text);
    assert.deepEqual(
      { v: stored.v, kdf: stored.kdf, N: stored.N, r: stored.r, p: stored.p, dkLen: stored.dkLen },
      { v: 1, kdf: "scrypt", N: 16384, r: 8, p: 1, dkLen: 32 },
    );
    salts.add(stored.salt);
    // An independent scrypt of the normalised code under the recorded salt gives the stored hash.
    const salt = fromBase64url(stored.salt, "salt", 16);
    const hash = scryptSync(set.codes[i]!, salt, 32, { N: 16384, r: 8, p: 1 });
    assert.equal(hash.toString("base64url"), stored.hash);
  }
  assert.equal(salts.size, 3, "a fresh salt per code");
  assert.deepEqual(RECOVERY_SCRYPT, { N: 16384, r: 8, p: 1, dkLen: 32 });
});

test("a wrong code costs no scrypt at all and a right one exactly one, with 20 codes stored", async () => {
  const { store, enrollment, set, calls, counting } = await enrolled(20);
  const before = calls();
  const at = new Date();
  for (const wrong of ["aaaaa-aaaaa", "zzzzz-zzzzz", "00000-00000"]) {
    const check = await useRecoveryCode(store, enrollment, set.tagKey, wrong, at, counting);
    assert.deepEqual(check, { outcome: "invalid", left: 20 });
  }
  assert.equal(calls(), before, "no hash for a code whose tag matches nothing");
  const right = formatRecoveryCode(set.codes[17]!).toUpperCase();
  assert.deepEqual(await useRecoveryCode(store, enrollment, set.tagKey, right, at, counting), {
    outcome: "valid",
    left: 19,
  });
  assert.equal(calls(), before + 1, "one hash for the code whose tag matched");
  assert.deepEqual(await useRecoveryCode(store, enrollment, set.tagKey, right, at, counting), {
    outcome: "used",
    left: 19,
  });
});

test("a code whose tag matches but whose hash does not is refused: the scrypt hash decides", async () => {
  const { store, enrollment, set, records } = await enrolled(2);
  // Another enrollment whose one record carries code 0's tag over the hash of code 1 (a tag
  // collision, or a tampered tag).
  const other = await store.put({ ...enrollmentInput, roundId: "CCCCCCCCCCCCCCCCCCCCCC" });
  const code1 = await store.readSecret(records[1]!.id);
  await store.put({
    purpose: "recovery",
    roundId: other.roundId,
    participants: [],
    algorithm: "recovery/v1",
    owner: "req-1",
    subject: "alice",
    public: { type: "recovery", enrollment: other.id, index: 0, tag: records[0]!.public.tag! },
    secret: code1,
  });
  const at = new Date();
  const impostor = await useRecoveryCode(store, other, set.tagKey, set.codes[0]!, at);
  assert.deepEqual(impostor, { outcome: "invalid", left: 1 });
  // The same code against its own record is accepted.
  const own = await useRecoveryCode(store, enrollment, set.tagKey, set.codes[0]!, at);
  assert.equal(own.outcome, "valid");
});

test("two verifications of one code at once: exactly one uses it up", async () => {
  const { store, enrollment, set } = await enrolled(4);
  const at = new Date();
  for (const code of set.codes) {
    const results = await Promise.all(
      [1, 2, 3].map(() => useRecoveryCode(store, enrollment, set.tagKey, code, at)),
    );
    assert.equal(results.filter((r) => r.outcome === "valid").length, 1, code);
    assert.equal(results.filter((r) => r.outcome === "used").length, 2, code);
  }
  assert.equal(await recoveryCodesLeft(store, enrollment), 0);
});

test("codes belong to their enrollment: another enrollment of the account does not take them", async () => {
  const { store, enrollment, set } = await enrolled(2);
  const newer = await store.put({ ...enrollmentInput, roundId: "BBBBBBBBBBBBBBBBBBBBBB" });
  const check = await useRecoveryCode(store, newer, set.tagKey, set.codes[0]!, new Date());
  assert.deepEqual(check, { outcome: "invalid", left: 0 });
  assert.equal(await recoveryCodesLeft(store, enrollment), 2);
});
