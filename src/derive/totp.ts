/**
 * TOTP, RFC 6238: HOTP (RFC 4226) over the time step T = ⌊(time − T0) / X⌋, and purpose `totp`, a
 * shared secret for it. X (the period) defaults to 30 s and T0 to the Unix epoch, as in §4.1.
 */
import { assertRoundSecret, DeterministicGenerator } from "./drbg.js";
import {
  drawOtpSecret,
  hotpCode,
  type OtpCodeOptions,
  type OtpSecretParams,
  parseOtpSecretParams,
  sameCode,
} from "./hotp.js";
import { otpauthUri, toBase32 } from "./otpauth.js";
import { checkKnownOptions, intOption, type RawParams } from "./params.js";
import type { Derivation, DerivationResult } from "./types.js";

export interface TotpCodeOptions extends OtpCodeOptions {
  /** The time step X in seconds (default 30). */
  period?: number;
  /** T0, the Unix time steps are counted from (default 0). */
  t0?: number;
}

/** RFC 6238 §4.2: the time step counter T for a Unix time in seconds. */
export function totpCounter(timeSeconds: number, options: TotpCodeOptions = {}): number {
  const period = options.period ?? 30;
  const t0 = options.t0 ?? 0;
  if (!Number.isSafeInteger(period) || period < 1) {
    throw new TypeError(`period must be a whole number of seconds ≥ 1; got ${period}`);
  }
  if (!Number.isSafeInteger(t0) || t0 < 0) throw new TypeError(`t0 must be a whole number ≥ 0`);
  if (!Number.isFinite(timeSeconds) || timeSeconds < t0) {
    throw new TypeError(`time must be a number of seconds ≥ t0; got ${timeSeconds}`);
  }
  return Math.floor((Math.floor(timeSeconds) - t0) / period);
}

/** RFC 6238: the TOTP value at `timeSeconds` (Unix time, seconds). */
export function totpCode(
  secret: Uint8Array,
  timeSeconds: number,
  options: TotpCodeOptions = {},
): string {
  return hotpCode(secret, totpCounter(timeSeconds, options), options);
}

/**
 * Checks `code` at `timeSeconds`, accepting `window` steps either side for clock drift (RFC 6238
 * §5.2 recommends at most one). Returns the matching step's offset (−window..window) or null.
 */
export function verifyTotp(
  secret: Uint8Array,
  code: string,
  timeSeconds: number,
  options: TotpCodeOptions & { window?: number } = {},
): number | null {
  const window = options.window ?? 1;
  if (!Number.isInteger(window) || window < 0 || window > 10) {
    throw new TypeError("window must be a whole number from 0 to 10");
  }
  const step = totpCounter(timeSeconds, options);
  let match: number | null = null;
  // Every candidate is computed and compared, so timing does not tell which step matched.
  for (let offset = -window; offset <= window; offset++) {
    if (step + offset < 0) continue;
    if (sameCode(hotpCode(secret, step + offset, options), code) && match === null) match = offset;
  }
  return match;
}

// ---- purpose totp -----------------------------------------------------------------------------

export interface TotpParams extends OtpSecretParams {
  /** The time step in seconds (default 30). */
  period: number;
}

export const TOTP_LABEL = "dkeygen/v1/derive/totp";

export const totp: Derivation<TotpParams> = {
  purpose: "totp",
  label: TOTP_LABEL,
  summary:
    "an RFC 6238 TOTP shared secret with its otpauth:// URI (algorithm=SHA1|SHA256|SHA512, digits=6|8, period=30, issuer, account)",
  parseParams(raw: RawParams): TotpParams {
    checkKnownOptions("totp", raw, ["algorithm", "digits", "period", "issuer", "account"]);
    return {
      ...parseOtpSecretParams("totp", raw),
      period: intOption("totp", raw, "period", { default: 30, min: 1, max: 86400 }),
    };
  },
  paramsToJson: (p) => ({
    algorithm: p.algorithm,
    digits: p.digits,
    period: p.period,
    issuer: p.issuer,
    account: p.account,
  }),
  async derive(secret: Uint8Array, params: TotpParams): Promise<DerivationResult> {
    assertRoundSecret(secret);
    const p = totp.parseParams(totp.paramsToJson(params));
    const generator = new DeterministicGenerator(secret, TOTP_LABEL, totp.paramsToJson(p));
    const key = drawOtpSecret(generator, p.algorithm);
    const uri = otpauthUri({ type: "totp", secret: key, ...p });
    return {
      purpose: "totp",
      algorithm: "totp/v1",
      public: {
        type: "totp",
        issuer: p.issuer,
        account: p.account,
        algorithm: p.algorithm,
        digits: p.digits,
        period: p.period,
      },
      secret: { secret: toBase32(key), uri },
    };
  },
};
