/**
 * The derivations: one registry from purpose name to its pure, deterministic function of a round
 * secret, and `derivePurpose`, the one code path the server and `dkeygen derive` share.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";
import { ecc } from "./ecc.js";
import { hotp } from "./hotp.js";
import { multisig } from "./multisig.js";
import { nonce } from "./nonce.js";
import { otp } from "./otp.js";
import { rsa } from "./rsa.js";
import { totp } from "./totp.js";
import type { Derivation, DerivationResult } from "./types.js";
import { wallet } from "./wallet.js";

/** Every purpose, by name. Each entry is a `Derivation` of its own parameter type. */
export const derivations = {
  otp,
  hotp,
  totp,
  rsa,
  ecc,
  wallet,
  multisig,
  nonce,
} as const;

export type Purpose = keyof typeof derivations;

export const PURPOSES = Object.keys(derivations) as Purpose[];

export function isPurpose(purpose: string): purpose is Purpose {
  return Object.hasOwn(derivations, purpose);
}

/** The derivation of `purpose`, typed loosely for callers that only know its name. */
export function derivationOf(purpose: string): Derivation<unknown> {
  if (!isPurpose(purpose)) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `Unknown purpose "${purpose}"; choose one of ${PURPOSES.join(", ")}.`,
    );
  }
  return derivations[purpose] as unknown as Derivation<unknown>;
}

/**
 * Parses `rawParams` for `purpose` (defaults filled in, unknown options refused) and derives: the
 * one code path of the server and of `dkeygen derive`.
 */
export async function derivePurpose(
  purpose: string,
  secret: Uint8Array,
  rawParams: Readonly<Record<string, unknown>>,
): Promise<DerivationResult> {
  const derivation = derivationOf(purpose);
  return derivation.derive(secret, derivation.parseParams(rawParams));
}

export { canonicalJson } from "../crypto/canonical-json.js";
export {
  compareBytes,
  descriptorChecksum,
  isDescriptorChecksumValid,
  multisigScript,
  withDescriptorChecksum,
} from "./descriptor.js";
export {
  assertRoundSecret,
  DeterministicGenerator,
  HmacDrbg,
  MAX_BYTES_PER_REQUEST,
  MIN_ENTROPY_BYTES,
  personalizationFor,
} from "./drbg.js";
export {
  curveOrder,
  drawPrivateScalar,
  ECC_CURVES,
  ECC_LABEL,
  type EccCurve,
  type EccParams,
  ecc,
  eccKeyPairParts,
  eccPrivateKeyObject,
  privateJwk,
  WEIERSTRASS,
  type WeierstrassCurve,
} from "./ecc.js";
export {
  drawOtpSecret,
  HOTP_LABEL,
  type HotpParams,
  hotp,
  hotpCode,
  MAX_HOTP_LOOK_AHEAD,
  OTP_ALGORITHMS,
  OTP_KEY_BYTES,
  type OtpAlgorithm,
  type OtpCodeOptions,
  type OtpSecretParams,
  sameCode,
  verifyHotp,
} from "./hotp.js";
export {
  fromWif,
  MAX_MULTISIG_KEYS,
  MULTISIG_LABEL,
  type MultisigOutput,
  type MultisigParams,
  multisig,
  p2wshSortedMulti,
  toWif,
} from "./multisig.js";
export {
  drawRoundNonce,
  NONCE_CURVES,
  NONCE_LABEL,
  type NonceCurve,
  type NonceParams,
  nonce,
  type SignatureScheme,
  type SignOptions,
  signingKeyFromPem,
  signWithRoundNonce,
  verifyRoundSignature,
} from "./nonce.js";
export { drawOtpCode, OTP_LABEL, type OtpParams, otp } from "./otp.js";
export {
  fromBase32,
  type OtpauthKey,
  type OtpType,
  otpauthUri,
  type ParsedOtpauth,
  parseOtpauthUri,
  toBase32,
} from "./otpauth.js";
export {
  DEFAULT_RECOVERY_CODES,
  deriveRecoveryCodes,
  formatRecoveryCode,
  MAX_RECOVERY_CODES,
  normaliseRecoveryCode,
  RECOVERY_ALPHABET,
  RECOVERY_LABEL,
  type RecoveryCodeSet,
  recoveryTag,
  recoveryTagKey,
} from "./recovery.js";
export {
  fips186RsaViolations,
  generateRsaPrimes,
  passesSieve,
  RSA_LABEL,
  RSA_PUBLIC_EXPONENT,
  RSA_SIZES,
  type RsaBits,
  type RsaParams,
  type RsaPrimes,
  rsa,
  rsaPrivateKeyFromPrimes,
  SIEVE_BOUND,
} from "./rsa.js";
export {
  TOTP_LABEL,
  type TotpCodeOptions,
  type TotpParams,
  totp,
  totpCode,
  totpCounter,
  verifyTotp,
} from "./totp.js";
export type { Derivation, DerivationResult } from "./types.js";
export {
  ethereumAddress,
  hash160,
  isChecksumAddress,
  MNEMONIC_WORDS,
  mnemonicEntropy,
  p2wpkhAddress,
  parseExtendedKey,
  segwitV0Address,
  toChecksumAddress,
  WALLET_LABEL,
  type Wallet,
  type WalletAccount,
  type WalletAddress,
  type WalletParams,
  wallet,
  walletFromEntropy,
  walletFromMnemonic,
} from "./wallet.js";
