import assert from "node:assert/strict";
import { test } from "node:test";
import {
  derivePurpose,
  fromBase32,
  otpauthUri,
  parseOtpauthUri,
  toBase32,
} from "../../src/derive/index.js";
import { isDkeygenError } from "../../src/errors.js";

const ascii = (s: string) => new TextEncoder().encode(s);

test("the URI has Google Authenticator's Key Uri Format with every parameter explicit", () => {
  const uri = otpauthUri({
    type: "totp",
    secret: ascii("12345678901234567890"),
    issuer: "ACME Co",
    account: "john.doe@email.com",
  });
  assert.equal(
    uri,
    "otpauth://totp/ACME%20Co:john.doe%40email.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" +
      "&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30",
  );
  const hotp = otpauthUri({
    type: "hotp",
    secret: ascii("12345678901234567890"),
    account: "a b+c/d?e&f=g(h)!",
    algorithm: "SHA512",
    digits: 8,
    counter: 42,
  });
  assert.equal(
    hotp,
    "otpauth://hotp/a%20b%2Bc%2Fd%3Fe%26f%3Dg%28h%29%21?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" +
      "&algorithm=SHA512&digits=8&counter=42",
  );
});

test("the Key Uri Format wiki's example parses to its fields", () => {
  const parsed = parseOtpauthUri(
    "otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ" +
      "&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30",
  );
  assert.equal(parsed.type, "totp");
  assert.equal(parsed.issuer, "ACME Co");
  assert.equal(parsed.account, "john.doe@email.com");
  assert.equal(toBase32(parsed.secret), "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ");
  assert.equal(parsed.algorithm, "SHA1");
  assert.equal(parsed.digits, 6);
  assert.equal(parsed.period, 30);
  // Defaults of the format, and the "Issuer:%20account" spelling it allows.
  const minimal = parseOtpauthUri("otpauth://totp/Example:%20alice?secret=jbswy3dpehpk3pxp");
  assert.equal(minimal.issuer, "Example");
  assert.equal(minimal.account, "alice");
  assert.equal(minimal.algorithm, "SHA1");
  assert.equal(minimal.digits, 6);
  assert.equal(minimal.period, 30);
});

test("otpauth URIs round-trip through the parser, Unicode and reserved characters included", async () => {
  const cases = [
    { issuer: "Bank of Zürich", account: "renée@example.ch" },
    { issuer: "A&B=C?D/E#F", account: "100% sure + more" },
    { issuer: "日本", account: "ユーザー" },
  ];
  for (const names of cases) {
    for (const purpose of ["totp", "hotp"]) {
      const r = await derivePurpose(purpose, new Uint8Array(64).fill(5), { ...names, digits: 8 });
      const uri = r.secret.uri as string;
      const parsed = parseOtpauthUri(uri);
      assert.equal(parsed.type, purpose);
      assert.equal(parsed.issuer, names.issuer);
      assert.equal(parsed.account, names.account);
      assert.equal(parsed.digits, 8);
      assert.deepEqual(parsed.secret, fromBase32(r.secret.secret as string));
      assert.equal(otpauthUri({ ...parsed, issuer: parsed.issuer! }), uri);
    }
  }
});

test("the parser refuses malformed or ambiguous URIs with an E_INVALID_INPUT error", () => {
  const good = "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PXP&issuer=I";
  assert.doesNotThrow(() => parseOtpauthUri(good));
  const bad = [
    "http://totp/I:a?secret=JBSWY3DPEHPK3PXP",
    "otpauth://motp/I:a?secret=JBSWY3DPEHPK3PXP",
    "otpauth://totp/I:a",
    "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PX1",
    "otpauth://totp/I:a?secret=",
    "otpauth://totp/I:a?issuer=I",
    "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PXP&issuer=J",
    "otpauth://totp/I:a:b?secret=JBSWY3DPEHPK3PXP",
    "otpauth://totp/I:?secret=JBSWY3DPEHPK3PXP",
    "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PXP&secret=JBSWY3DPEHPK3PXP",
    "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PXP&image=x",
    "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PXP&algorithm=MD5",
    "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PXP&digits=7",
    "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PXP&period=0",
    "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PXP&period=-30",
    "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PXP&counter=1",
    "otpauth://hotp/I:a?secret=JBSWY3DPEHPK3PXP",
    "otpauth://hotp/I:a?secret=JBSWY3DPEHPK3PXP&counter=1&period=30",
    "otpauth://totp/%E0%A4%A?secret=JBSWY3DPEHPK3PXP",
    "otpauth://totp/I:a?secret=JBSWY3DPEHPK3PXP#frag",
  ];
  for (const uri of bad) {
    assert.throws(
      () => parseOtpauthUri(uri),
      (e) => isDkeygenError(e, "E_INVALID_INPUT"),
      uri,
    );
  }
});

test("the builder refuses label parts with colons and hotp without a counter", () => {
  const secret = ascii("x");
  assert.throws(() => otpauthUri({ type: "totp", secret, account: "a:b" }), TypeError);
  assert.throws(() => otpauthUri({ type: "totp", secret, account: "a", issuer: "I:J" }), TypeError);
  assert.throws(() => otpauthUri({ type: "hotp", secret, account: "a" }), TypeError);
  assert.throws(() => otpauthUri({ type: "totp", secret, account: "a", digits: 7 }), TypeError);
});
