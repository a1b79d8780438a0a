/**
 * Purpose `otp`: a numeric one-time code of 6 to 10 digits, uniform over [0, 10^digits).
 *
 * The code is drawn from the derivation's HMAC_DRBG (src/derive/drbg.ts) by rejection sampling
 * over ⌈log2(10^digits)⌉ bits, never by reducing a larger number modulo 10^digits, so every code is
 * exactly equally likely; then written in decimal, left-padded with zeros to `digits` characters.
 */
import { assertRoundSecret, DeterministicGenerator } from "./drbg.js";
import { checkKnownOptions, intOption, type RawParams } from "./params.js";
import type { Derivation, DerivationResult } from "./types.js";

export interface OtpParams {
  /** Number of decimal digits, 6..10 (default 6). */
  digits: number;
}

export const OTP_LABEL = "dkeygen/v1/derive/otp";
const PURPOSE = "otp";

/** Draws a `digits`-digit code uniformly from a generator (exported for the uniformity test). */
export function drawOtpCode(generator: DeterministicGenerator, digits: number): string {
  const code = generator.uniformInt(10 ** digits);
  return String(code).padStart(digits, "0");
}

export const otp: Derivation<OtpParams> = {
  purpose: PURPOSE,
  label: OTP_LABEL,
  summary: "a numeric one-time code, 6 to 10 digits (digits=6), uniform over its range",
  parseParams(raw: RawParams): OtpParams {
    checkKnownOptions(PURPOSE, raw, ["digits"]);
    return { digits: intOption(PURPOSE, raw, "digits", { default: 6, min: 6, max: 10 }) };
  },
  paramsToJson: (params) => ({ digits: params.digits }),
  async derive(secret: Uint8Array, params: OtpParams): Promise<DerivationResult> {
    assertRoundSecret(secret);
    // Typed callers skip parseParams; check again so a library call cannot draw 3-digit codes.
    const { digits } = otp.parseParams(otp.paramsToJson(params));
    const generator = new DeterministicGenerator(secret, OTP_LABEL, { digits });
    return {
      purpose: PURPOSE,
      algorithm: "otp/v1",
      public: { digits },
      secret: { code: drawOtpCode(generator, digits) },
    };
  },
};
