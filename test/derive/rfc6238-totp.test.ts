import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import {
  derivePurpose,
  fromBase32,
  type OtpAlgorithm,
  parseOtpauthUri,
  totpCode,
  totpCounter,
  verifyTotp,
} from "../../src/derive/index.js";
import { readVector } from "../helpers/paths.js";

interface Rfc6238 {
  totp: {
    timeStep: number;
    T0: number;
    digits: number;
    seeds: Record<OtpAlgorithm, { hex: string }>;
    vectors: { unixTime: number; T_hex: string; mode: OtpAlgorithm; totp: string }[];
  };
}

const { totp } = readVector<Rfc6238>("rfc4226-rfc6238/rfc4226_rfc6238_vectors.json");
const seed = (mode: OtpAlgorithm) => new Uint8Array(Buffer.from(totp.seeds[mode].hex, "hex"));

test("TOTP matches all 18 rows of RFC 6238 Appendix B (SHA1, SHA256, SHA512)", () => {
  assert.equal(totp.vectors.length, 18);
  for (const v of totp.vectors) {
    const options = { algorithm: v.mode, digits: totp.digits, period: totp.timeStep, t0: totp.T0 };
    assert.equal(totpCounter(v.unixTime, options), Number.parseInt(v.T_hex, 16));
    assert.equal(totpCode(seed(v.mode), v.unixTime, options), v.totp, `${v.mode} at ${v.unixTime}`);
  }
});

test("verifyTotp accepts one step of drift by default and no more", () => {
  const key = seed("SHA1");
  const options = { digits: 8 };
  assert.equal(verifyTotp(key, "07081804", 1111111109, options), 0);
  assert.equal(verifyTotp(key, "07081804", 1111111109 + 30, options), -1);
  assert.equal(verifyTotp(key, "07081804", 1111111109 + 60, options), null);
  assert.equal(verifyTotp(key, "07081804", 1111111109 + 60, { ...options, window: 2 }), -2);
});

test("totpCode refuses times before T0 and periods below one second", () => {
  const key = seed("SHA1");
  assert.throws(() => totpCode(key, -1), TypeError);
  assert.throws(() => totpCode(key, 10, { t0: 20 }), TypeError);
  assert.throws(() => totpCode(key, 10, { period: 0 }), TypeError);
  assert.throws(() => totpCode(key, Number.NaN), TypeError);
});

const hasOathtool = (() => {
  try {
    execFileSync("oathtool", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

test("derived TOTP secrets give the codes oathtool computes", {
  skip: !hasOathtool && "oathtool is not installed",
}, async () => {
  const round = new Uint8Array(64).fill(0x17);
  for (const algorithm of ["SHA1", "SHA256", "SHA512"] as const) {
    for (const digits of [6, 8]) {
      const r = await derivePurpose("totp", round, { algorithm, digits, period: 60 });
      const base32 = r.secret.secret as string;
      const key = fromBase32(base32);
      for (const time of [0, 59, 1111111109, 2000000000]) {
        const expected = execFileSync(
          "oathtool",
          [
            `--totp=${algorithm.toLowerCase()}`,
            "--base32",
            `--digits=${digits}`,
            "--time-step-size=60s",
            `--now=@${time}`,
            base32,
          ],
          { encoding: "utf8" },
        ).trim();
        assert.equal(totpCode(key, time, { algorithm, digits, period: 60 }), expected);
      }
    }
  }
});

test("a derived totp secret has the hash's length, public data only in public, and its URI parses back", async () => {
  const round = new Uint8Array(64).fill(0x99);
  const r = await derivePurpose("totp", round, {
    algorithm: "sha256",
    issuer: "Example Bank",
    account: "alice@example.com",
  });
  assert.equal(r.algorithm, "totp/v1");
  assert.deepEqual(r.public, {
    type: "totp",
    issuer: "Example Bank",
    account: "alice@example.com",
    algorithm: "SHA256",
    digits: 6,
    period: 30,
  });
  const key = fromBase32(r.secret.secret as string);
  assert.equal(key.length, 32);
  const parsed = parseOtpauthUri(r.secret.uri as string);
  assert.deepEqual(parsed.secret, key);
  assert.equal(parsed.issuer, "Example Bank");
  assert.equal(parsed.account, "alice@example.com");
  assert.equal(parsed.period, 30);
  assert.ok(!JSON.stringify(r.public).includes(r.secret.secret as string));
});
