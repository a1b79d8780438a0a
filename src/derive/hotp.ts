/**
 * HOTP, RFC 4226: an HMAC-based one-time password, and purpose `hotp`, a shared secret for it.
 *
 *   HS  = HMAC-H(K, C)            C the 8-byte big-endian counter (§5.2)
 *   Sbits = DT(HS)                dynamic truncation (§5.3): offset = low nibble of HS's last byte,
 *                                 31 bits from the 4 bytes at offset
 *   HOTP = Sbits mod 10^Digit
 *
 * H is SHA-1 as in RFC 4226, or SHA-256/SHA-512 as RFC 6238 §1.2 allows. The shared secret is as long
 * as the hash's output (20, 32 or 64 bytes): RFC 4226 §4 R6 asks for at least 128 bits and recommends
 * 160, and RFC 6238's reference code (errata 2866) uses 32- and 64-byte seeds for SHA-256/SHA-512.
 * The secret is the first bytes of the derivation's HMAC_DRBG (src/derive/drbg.ts), personalized
 * with all the purpose's options: another issuer, account, digit count or counter/period gives
 * another secret, so one round secret never backs two differently labelled registrations.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { assertRoundSecret, DeterministicGenerator } from "./drbg.js";
import { otpauthUri, toBase32 } from "./otpauth.js";
import {
  checkKnownOptions,
  enumOption,
  intOption,
  type RawParams,
  stringOption,
} from "./params.js";
import type { Derivation, DerivationResult } from "./types.js";

export const OTP_ALGORITHMS = ["SHA1", "SHA256", "SHA512"] as const;
export type OtpAlgorithm = (typeof OTP_ALGORITHMS)[number];

/** Shared-secret length per algorithm: the hash's output length. */
export const OTP_KEY_BYTES: Readonly<Record<OtpAlgorithm, number>> = {
  SHA1: 20,
  SHA256: 32,
  SHA512: 64,
};

const NODE_HASH: Readonly<Record<OtpAlgorithm, string>> = {
  SHA1: "sha1",
  SHA256: "sha256",
  SHA512: "sha512",
};

export interface OtpCodeOptions {
  /** Default SHA1. */
  algorithm?: OtpAlgorithm;
  /** 6, 7 or 8 (default 6). RFC 4226 §5.3 takes at least 6; more than 8 would exceed the 31 bits. */
  digits?: number;
}

const MAX_COUNTER = (1n << 64n) - 1n;

function checkCodeOptions(options: OtpCodeOptions): { algorithm: OtpAlgorithm; digits: number } {
  const algorithm = options.algorithm ?? "SHA1";
  const digits = options.digits ?? 6;
  if (!OTP_ALGORITHMS.includes(algorithm)) {
    throw new TypeError(`algorithm must be one of ${OTP_ALGORITHMS.join(", ")}; got ${algorithm}`);
  }
  if (!Number.isInteger(digits) || digits < 6 || digits > 8) {
    throw new TypeError(`digits must be 6, 7 or 8; got ${digits}`);
  }
  return { algorithm, digits };
}

/** RFC 4226 §5.3: the HOTP value for `counter` (0 ≤ counter < 2^64), zero-padded to `digits`. */
export function hotpCode(
  secret: Uint8Array,
  counter: number | bigint,
  options: OtpCodeOptions = {},
): string {
  if (!(secret instanceof Uint8Array) || secret.length === 0) {
    throw new TypeError("secret must be a non-empty Uint8Array");
  }
  const { algorithm, digits } = checkCodeOptions(options);
  if (typeof counter === "number" && !Number.isSafeInteger(counter)) {
    throw new TypeError(`counter must be a whole number; got ${counter}`);
  }
  const c = BigInt(counter);
  if (c < 0n || c > MAX_COUNTER) throw new TypeError("counter must be in [0, 2^64 − 1]");
  const message = new Uint8Array(8);
  new DataView(message.buffer).setBigUint64(0, c, false);
  const hs = createHmac(NODE_HASH[algorithm], secret).update(message).digest();
  // Dynamic truncation: the low 4 bits of the last byte pick where the 31 bits are read.
  const offset = hs[hs.length - 1]! & 0x0f;
  const sbits = hs.readUInt32BE(offset) & 0x7fffffff;
  return String(sbits % 10 ** digits).padStart(digits, "0");
}

/** The widest look-ahead `verifyHotp` takes (a resynchronisation window, PROTOCOL §12.6). */
export const MAX_HOTP_LOOK_AHEAD = 1000;

/**
 * Checks `code` against counters `counter .. counter + lookAhead` (RFC 4226 §7.4 resynchronisation)
 * in constant time per comparison; returns the matching counter or null.
 */
export function verifyHotp(
  secret: Uint8Array,
  code: string,
  counter: number | bigint,
  options: OtpCodeOptions & { lookAhead?: number } = {},
): bigint | null {
  const lookAhead = options.lookAhead ?? 0;
  if (!Number.isInteger(lookAhead) || lookAhead < 0 || lookAhead > MAX_HOTP_LOOK_AHEAD) {
    throw new TypeError(`lookAhead must be a whole number from 0 to ${MAX_HOTP_LOOK_AHEAD}`);
  }
  for (let i = 0n; i <= BigInt(lookAhead); i++) {
    const candidate = BigInt(counter) + i;
    if (candidate > MAX_COUNTER) break;
    if (sameCode(hotpCode(secret, candidate, options), code)) return candidate;
  }
  return null;
}

/** Constant-time comparison of two codes (a length mismatch is not secret). */
export function sameCode(expected: string, given: string): boolean {
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(given, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

// ---- shared parameters of purposes hotp and totp ---------------------------------------------

/** Parameters common to `hotp` and `totp`. */
export interface OtpSecretParams {
  algorithm: OtpAlgorithm;
  digits: 6 | 8;
  issuer: string;
  account: string;
}

/** Issuer and account go into the otpauth label `issuer:account`, so neither may hold a colon. */
const LABEL_PART = /^[^:\p{Cc}]+$/u;

export function parseOtpSecretParams(purpose: string, raw: RawParams): OtpSecretParams {
  const labelPart = (name: string, fallback: string) =>
    stringOption(purpose, raw, name, {
      default: fallback,
      maxLength: 128,
      pattern: LABEL_PART,
      what: "text without colons or control characters",
    });
  return {
    algorithm: enumOption(purpose, raw, "algorithm", OTP_ALGORITHMS, "SHA1"),
    digits: intOption(purpose, raw, "digits", { default: 6, allowed: [6, 8] }) as 6 | 8,
    issuer: labelPart("issuer", "dkeygen"),
    account: labelPart("account", "user"),
  };
}

// ---- purpose hotp -----------------------------------------------------------------------------

export interface HotpParams extends OtpSecretParams {
  /** The counter the authenticator starts from (default 0). */
  counter: number;
}

export const HOTP_LABEL = "dkeygen/v1/derive/hotp";

/** Draws the shared secret for `algorithm` from a derivation's generator. */
export function drawOtpSecret(generator: DeterministicGenerator, algorithm: OtpAlgorithm) {
  return generator.bytes(OTP_KEY_BYTES[algorithm]);
}

export const hotp: Derivation<HotpParams> = {
  purpose: "hotp",
  label: HOTP_LABEL,
  summary:
    "an RFC 4226 HOTP shared secret with its otpauth:// URI (algorithm=SHA1|SHA256|SHA512, digits=6|8, counter=0, issuer, account)",
  parseParams(raw: RawParams): HotpParams {
    checkKnownOptions("hotp", raw, ["algorithm", "digits", "counter", "issuer", "account"]);
    return {
      ...parseOtpSecretParams("hotp", raw),
      counter: intOption("hotp", raw, "counter", {
        default: 0,
        min: 0,
        max: Number.MAX_SAFE_INTEGER,
      }),
    };
  },
  paramsToJson: (p) => ({
    algorithm: p.algorithm,
    digits: p.digits,
    counter: p.counter,
    issuer: p.issuer,
    account: p.account,
  }),
  async derive(secret: Uint8Array, params: HotpParams): Promise<DerivationResult> {
    assertRoundSecret(secret);
    const p = hotp.parseParams(hotp.paramsToJson(params));
    const key = drawOtpSecret(
      new DeterministicGenerator(secret, HOTP_LABEL, hotp.paramsToJson(p)),
      p.algorithm,
    );
    const uri = otpauthUri({ type: "hotp", secret: key, ...p });
    return {
      purpose: "hotp",
      algorithm: "hotp/v1",
      public: {
        type: "hotp",
        issuer: p.issuer,
        account: p.account,
        algorithm: p.algorithm,
        digits: p.digits,
        counter: p.counter,
      },
      secret: { secret: toBase32(key), uri },
    };
  },
};
