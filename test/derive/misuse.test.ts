import assert from "node:assert/strict";
import { test } from "node:test";
import { derivationOf, derivePurpose, PURPOSES } from "../../src/derive/index.js";
import { holderSecret } from "../../src/derive/multisig.js";
import { otpauthUri } from "../../src/derive/otpauth.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";

/** [purpose, raw options, a word the error must contain] */
const BAD_PARAMS: [string, Record<string, unknown>, string][] = [
  ["otp", { digits: 5 }, "digits"],
  ["otp", { digits: 11 }, "digits"],
  ["otp", { digits: 6.5 }, "digits"],
  ["otp", { digits: "six" }, "digits"],
  ["otp", { length: 6 }, "length"],
  ["hotp", { algorithm: "MD5" }, "algorithm"],
  ["hotp", { digits: 7 }, "digits"],
  ["hotp", { counter: -1 }, "counter"],
  ["hotp", { period: 30 }, "period"],
  ["hotp", { issuer: "a:b" }, "issuer"],
  ["totp", { account: "" }, "account"],
  ["totp", { account: 42 }, "account"],
  ["totp", { account: "x".repeat(129) }, "account"],
  ["totp", { period: 0 }, "period"],
  ["totp", { counter: 1 }, "counter"],
  ["totp", { issuer: "bad\nissuer" }, "issuer"],
  ["rsa", { bits: 1024 }, "bits"],
  ["rsa", { bits: 2049 }, "bits"],
  ["rsa", { e: 3 }, "e"],
  ["ecc", { curve: "curve25519" }, "curve"],
  ["ecc", { curve: 1 }, "curve"],
  ["wallet", { words: 13 }, "words"],
  ["wallet", { accounts: 0 }, "accounts"],
  ["wallet", { indexes: 101 }, "indexes"],
  ["wallet", { passphrase: 1234 }, "passphrase"],
  ["wallet", { language: "fr" }, "language"],
  ["multisig", { m: 3, n: 2 }, "m"],
  ["multisig", { n: 16 }, "n"],
  ["multisig", { m: 0 }, "m"],
  ["nonce", { curve: "ed25519" }, "curve"],
  ["nonce", { bits: 128 }, "bits"],
];

const SECRET = new Uint8Array(64).fill(7);

test("every derivation refuses bad options with E_INVALID_INPUT naming the option", async () => {
  const covered = new Set(BAD_PARAMS.map(([purpose]) => purpose));
  assert.deepEqual([...covered].sort(), [...PURPOSES].sort());
  for (const [purpose, params, word] of BAD_PARAMS) {
    await assert.rejects(
      derivePurpose(purpose, SECRET, params),
      (e: unknown) =>
        e instanceof DkeygenError &&
        e.code === ErrorCodes.INVALID_INPUT &&
        e.message.startsWith(`${purpose}:`) &&
        e.message.includes(`"${word}"`),
      `${purpose} ${JSON.stringify(params)}`,
    );
  }
});

test("a secret passphrase is never echoed in an error message", async () => {
  await assert.rejects(derivePurpose("wallet", SECRET, { passphrase: 987654 }), (e: unknown) => {
    return e instanceof DkeygenError && !e.message.includes("987654");
  });
});

test("options that are not an object are refused", () => {
  for (const purpose of PURPOSES) {
    for (const raw of [null, [], "digits=6", 5]) {
      assert.throws(
        () => derivationOf(purpose).parseParams(raw as never),
        (e: unknown) => e instanceof DkeygenError && e.code === ErrorCodes.INVALID_INPUT,
      );
    }
  }
});

test("every derivation refuses a round secret shorter than 256 bits or not bytes", async () => {
  for (const purpose of PURPOSES) {
    const derivation = derivationOf(purpose);
    const params = derivation.parseParams({});
    for (const secret of [new Uint8Array(31), new Uint8Array(0), "00".repeat(64), null]) {
      await assert.rejects(
        derivation.derive(secret as never, params),
        (e: unknown) => e instanceof TypeError && /round secret/.test(e.message),
        `${purpose} with ${String(secret).slice(0, 10)}`,
      );
    }
  }
});

test("typed parameters that bypass parseParams are still checked", async () => {
  await assert.rejects(derivationOf("otp").derive(SECRET, { digits: 3 }), DkeygenError);
  await assert.rejects(derivationOf("rsa").derive(SECRET, { bits: 512 }), DkeygenError);
  await assert.rejects(derivationOf("multisig").derive(SECRET, { m: 5, n: 2 }), DkeygenError);
});

test("an unknown purpose is refused with the list of purposes", async () => {
  await assert.rejects(
    derivePurpose("password", SECRET, {}),
    (e: unknown) =>
      e instanceof DkeygenError &&
      e.code === ErrorCodes.INVALID_INPUT &&
      /otp, hotp, totp/.test(e.message),
  );
  await assert.rejects(derivePurpose("__proto__", SECRET, {}), DkeygenError);
  await assert.rejects(derivePurpose("toString", SECRET, {}), DkeygenError);
});

test("a 32-byte secret (the minimum) is accepted by every purpose", async () => {
  for (const purpose of PURPOSES) {
    const params = purpose === "rsa" ? { bits: 2048 } : {};
    const r = await derivePurpose(purpose, new Uint8Array(32).fill(1), params);
    assert.equal(r.purpose, purpose);
  }
});

test("a lone UTF-16 surrogate in a text option is E_INVALID_INPUT naming the option", async () => {
  const lone = ["\ud800", "a\udbffb", "\udc00", "x\udfff", "\ude00\ud83d"];
  for (const purpose of ["totp", "hotp"]) {
    for (const name of ["issuer", "account"]) {
      for (const text of lone) {
        await assert.rejects(
          derivePurpose(purpose, SECRET, { [name]: text }),
          (e: unknown) =>
            e instanceof DkeygenError &&
            e.code === ErrorCodes.INVALID_INPUT &&
            e.message.startsWith(`${purpose}:`) &&
            e.message.includes(`"${name}"`) &&
            /well-formed Unicode/.test(e.message),
          `${purpose} ${name}=${JSON.stringify(text)}`,
        );
      }
    }
  }
  // The wallet passphrase is text too; its value stays out of the message.
  await assert.rejects(
    derivePurpose("wallet", SECRET, { passphrase: "secret\ud800" }),
    (e: unknown) =>
      e instanceof DkeygenError &&
      e.code === ErrorCodes.INVALID_INPUT &&
      e.message.includes(`"passphrase"`) &&
      !e.message.includes("secret\ud800"),
  );
  // A surrogate pair (an emoji) is well-formed and accepted.
  const ok = await derivePurpose("totp", SECRET, { issuer: "Bank 🏦", account: "😀@example.com" });
  assert.match(String(ok.secret.uri), /^otpauth:\/\/totp\/Bank%20%F0%9F%8F%A6:%F0%9F%98%80/);
});

test("otpauthUri refuses a lone surrogate with a TypeError, not a URIError", () => {
  for (const field of ["issuer", "account"] as const) {
    assert.throws(
      () =>
        otpauthUri({
          type: "totp",
          secret: new Uint8Array(20),
          account: "user",
          issuer: "dkeygen",
          [field]: "bad\ud800",
        }),
      (e: unknown) => e instanceof TypeError && e.message.includes(field),
    );
  }
});

test("length limits on text options are in UTF-16 code units, and the message says so", async () => {
  // 64 emoji are 128 code units: at the limit. 65 are 130: over it.
  await derivePurpose("totp", SECRET, { account: "😀".repeat(64) });
  await assert.rejects(
    derivePurpose("totp", SECRET, { account: "😀".repeat(65) }),
    (e: unknown) =>
      e instanceof DkeygenError &&
      e.code === ErrorCodes.INVALID_INPUT &&
      e.message.includes("1 to 128 UTF-16 code units"),
  );
});

test("holderSecret gives a split multisig set's holder its own key alone, and refuses an index the set has no key of", async () => {
  const { secret } = await derivePurpose("multisig", new Uint8Array(32).fill(9), { m: 2, n: 3 });
  const keys = secret.keys as { index: number }[];
  assert.deepEqual(holderSecret(secret, 1), { keys: [keys[1]] });
  for (const index of [-1, 3, 0.5, Number.NaN]) {
    assert.throws(() => holderSecret(secret, index), TypeError, String(index));
  }
  assert.throws(() => holderSecret({ keys: [{ index: 1 }] }, 0), TypeError, "index mismatch");
  assert.throws(() => holderSecret({}, 0), TypeError);
});
