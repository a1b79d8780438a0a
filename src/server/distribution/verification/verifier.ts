/**
 * Verification of the codes a relying service's users type (docs/PROTOCOL.md §12.6, §12.9): an OTP
 * the service requested (valid once, before its expiry), a TOTP (RFC 6238 §5.2) or HOTP (RFC 4226
 * §7.2, §7.4; hotp-check.ts) code of an account's enrollment in force, and one of its recovery
 * codes (recovery-codes.ts). The routes parse and answer; every rule is here.
 *
 * Every verification first reserves an attempt of its lock key in the attempt store
 * (attempt-store.ts): a locked subject is refused (423 E_LOCKED), and so is one whose every
 * remaining attempt is in progress (429), so concurrency buys no extra guesses. It then ends the
 * attempt exactly once: a wrong code counts, a right one clears the count, an error (a store
 * failure) gives the attempt back. What is used once is used through the key store's atomic steps:
 * `consume` for an OTP or a recovery code, `useStep` for a TOTP step or HOTP counter, so two
 * servers on one store cannot accept one code twice.
 */

import type { OtpAlgorithm } from "../../../derive/hotp.js";
import { sameCode } from "../../../derive/hotp.js";
import { fromBase32 } from "../../../derive/otpauth.js";
import { recoveryTagKey } from "../../../derive/recovery.js";
import { totpCounter, verifyTotp } from "../../../derive/totp.js";
import { DkeygenError, ErrorCodes, isDkeygenError } from "../../../errors.js";
import type { KeyRecord, KeyStore } from "../../../store/types.js";
import { type RecoveryCheck, useRecoveryCode } from "../../recovery-codes.js";
import { readStoredSecret } from "../../stored-secret.js";
import { checkHotp, HotpResync, type HotpWindows } from "../hotp-check.js";
import { OTP_PURPOSE } from "../otp-pool.js";
import { enrollmentInForce, twoFactorLockKey } from "../two-factor.js";
import type { AttemptStore } from "./attempt-store.js";

export type FailureReason = "invalid" | "expired" | "used" | "replayed";

/** A wrong code's answer: why, and how many attempts the subject has left. */
export interface Failure {
  valid: false;
  reason: FailureReason;
  attemptsLeft: number;
  /** When this failure locked the subject: until when (ISO 8601). */
  lockedUntil?: string;
}

export type OtpVerdict = { valid: true; otpId: string } | Failure;
export type CodeVerdict = { valid: true } | Failure;
export type RecoveryVerdict = ({ valid: true } | Failure) & { recoveryCodesLeft: number };

/**
 * What the routes call. Each verification throws E_LOCKED (423) for a locked subject and
 * E_RATE_LIMITED (429) when all its attempts are in progress; a two-factor one throws E_NOT_FOUND
 * (404, counted as a wrong code) for an account with no enrollment in force.
 */
export interface Verifier {
  /** An OTP the requester asked for `subject`: one of the subject's latest, used up once. */
  verifyOtp(requesterId: string, subject: string, code: string, now: number): Promise<OtpVerdict>;
  /** A TOTP or HOTP code of `account`'s enrollment in force; its step or counter used once. */
  verifyTwoFactor(
    requesterId: string,
    account: string,
    code: string,
    now: number,
  ): Promise<CodeVerdict>;
  /** One of `account`'s recovery codes, used up once; says how many are left. */
  useRecoveryCode(
    requesterId: string,
    account: string,
    code: string,
    now: number,
  ): Promise<RecoveryVerdict>;
  /** Lifts `subject`'s OTP lockout (whether or not it is locked). */
  unlockOtp(requesterId: string, subject: string): Promise<void>;
  /** Lifts `account`'s two-factor lockout (TOTP, HOTP and recovery codes share it). */
  unlockTwoFactor(requesterId: string, account: string): Promise<void>;
  /** `account` has a new enrollment: a resynchronisation begun against the old one is dropped. */
  enrolled(requesterId: string, account: string): void;
}

/**
 * How many of a subject's latest OTPs (claimed by this requester for it) a verification looks at.
 * Only these can verify, so a guess never faces more than this many live codes at once, however
 * many a service requested (a guess wins with probability at most 16 / 10^digits), and the work
 * does not grow with the subject's history.
 */
export const LATEST_CODES = 16;

/** The lock key of a subject's OTP verifications (apart from its two-factor one). */
export const otpLockKey = (requesterId: string, subject: string) =>
  `otp\u0000${requesterId}\u0000${subject}`;

function lockedError(lockedUntil: number, now: number): DkeygenError {
  return new DkeygenError(
    ErrorCodes.LOCKED,
    `Too many failed attempts for this subject; it is locked until ${new Date(lockedUntil).toISOString()} or an unlock.`,
    { retryAfterSeconds: Math.max(1, Math.ceil((lockedUntil - now) / 1000)) },
  );
}

function busyError(): DkeygenError {
  return new DkeygenError(
    ErrorCodes.RATE_LIMITED,
    "Too many verifications of this subject at once: every attempt it has left is in progress. Retry in a moment.",
    { retryAfterSeconds: 1 },
  );
}

const noEnrollment = () =>
  new DkeygenError(ErrorCodes.NOT_FOUND, "No TOTP enrollment for that account.");

/** How a verification ends its reserved attempt. */
interface AttemptOutcome {
  /** Counts the failure and returns the answer, with the attempts left. */
  fail(reason: FailureReason): Promise<Failure>;
  /** Clears the subject's failures. */
  succeed(): Promise<void>;
}

export interface VerifierComponents {
  store: KeyStore;
  attempts: AttemptStore;
  /** HOTP verification windows (hotp-check.ts). */
  hotp: HotpWindows;
  /** HOTP resynchronisations in progress (in memory; a new one without it). */
  resync?: HotpResync;
}

/** The verifier over a key store and an attempt store. */
export class StoreVerifier implements Verifier {
  readonly #store: KeyStore;
  readonly #attempts: AttemptStore;
  readonly #hotp: HotpWindows;
  readonly #resync: HotpResync;

  constructor(components: VerifierComponents) {
    this.#store = components.store;
    this.#attempts = components.attempts;
    this.#hotp = components.hotp;
    this.#resync = components.resync ?? new HotpResync();
  }

  verifyOtp(requesterId: string, subject: string, code: string, now: number): Promise<OtpVerdict> {
    return this.#attempt(otpLockKey(requesterId, subject), now, async (outcome) => {
      const candidates = await this.#store.list({
        purpose: OTP_PURPOSE,
        claimedBy: requesterId,
        subject,
        latestClaims: LATEST_CODES,
      });
      const live = (r: KeyRecord) =>
        r.consumedAt === undefined && Date.parse(r.claim!.expiresAt) > now;
      // The subject's outstanding codes first: a code that is live wins even if an old, used
      // or expired OTP of the subject happens to have the same digits.
      let match = await this.#findCode(candidates.filter(live), code);
      if (match) {
        if (!(await this.#store.consume(match.id, new Date(now)))) return outcome.fail("used");
        await outcome.succeed();
        return { valid: true, otpId: match.id };
      }
      // Otherwise say why, if it is one of those latest codes, spent.
      match = await this.#findCode(
        candidates.filter((r) => !live(r)),
        code,
      );
      if (!match) return outcome.fail("invalid");
      return outcome.fail(match.consumedAt === undefined ? "expired" : "used");
    });
  }

  verifyTwoFactor(
    requesterId: string,
    account: string,
    code: string,
    now: number,
  ): Promise<CodeVerdict> {
    const key = twoFactorLockKey(requesterId, account);
    return this.#attempt(key, now, async (outcome) => {
      const record = await this.#enrollment(requesterId, account, outcome);
      const { output } = await readStoredSecret(this.#store, record.id);
      const secret = fromBase32(String(output.secret));
      let result: "valid" | "invalid" | "replayed";
      try {
        result =
          record.purpose === "hotp"
            ? await checkHotp(this.#store, record, secret, code, {
                key,
                now,
                windows: this.#hotp,
                resync: this.#resync,
              })
            : await this.#checkTotp(record, secret, code, now);
      } finally {
        secret.fill(0);
      }
      if (result !== "valid") return outcome.fail(result);
      await outcome.succeed();
      return { valid: true };
    });
  }

  useRecoveryCode(
    requesterId: string,
    account: string,
    code: string,
    now: number,
  ): Promise<RecoveryVerdict> {
    const key = twoFactorLockKey(requesterId, account);
    return this.#attempt(key, now, async (outcome) => {
      const enrollment = await this.#enrollment(requesterId, account, outcome);
      const stored = await readStoredSecret(this.#store, enrollment.id);
      const roundSecret = Buffer.from(stored.derivationSecret, "hex");
      const tagKey = recoveryTagKey(roundSecret);
      roundSecret.fill(0);
      let check: RecoveryCheck;
      try {
        check = await useRecoveryCode(this.#store, enrollment, tagKey, code, new Date(now));
      } finally {
        tagKey.fill(0);
      }
      if (check.outcome !== "valid") {
        return { ...(await outcome.fail(check.outcome)), recoveryCodesLeft: check.left };
      }
      await outcome.succeed();
      return { valid: true, recoveryCodesLeft: check.left };
    });
  }

  async unlockOtp(requesterId: string, subject: string): Promise<void> {
    await this.#attempts.unlock(otpLockKey(requesterId, subject));
  }

  async unlockTwoFactor(requesterId: string, account: string): Promise<void> {
    await this.#attempts.unlock(twoFactorLockKey(requesterId, account));
  }

  enrolled(requesterId: string, account: string): void {
    this.#resync.forget(twoFactorLockKey(requesterId, account));
  }

  /**
   * Runs one verification for lock key `key`: refuses a locked subject (423) or one whose every
   * remaining attempt is already in progress (429), else reserves an attempt for `run`, which ends
   * it with `fail` or `succeed`; an attempt it ends with neither (an error) is given back uncounted.
   */
  async #attempt<T>(
    key: string,
    now: number,
    run: (outcome: AttemptOutcome) => Promise<T>,
  ): Promise<T> {
    const attempts = this.#attempts;
    const start = await attempts.begin(key, now);
    if (start.locked) throw lockedError(start.lockedUntil!, now);
    if (start.busy) throw busyError();
    let ended = false;
    const outcome: AttemptOutcome = {
      async fail(reason) {
        ended = true;
        const state = await attempts.fail(key, now);
        return {
          valid: false,
          reason,
          attemptsLeft: state.remaining,
          ...(state.lockedUntil === undefined
            ? {}
            : { lockedUntil: new Date(state.lockedUntil).toISOString() }),
        };
      },
      async succeed() {
        ended = true;
        await attempts.succeed(key);
      },
    };
    try {
      return await run(outcome);
    } finally {
      if (!ended) await attempts.abandon(key);
    }
  }

  /**
   * The account's enrollment in force. None is counted like a wrong code, so asking about accounts
   * cannot go on without limit. Still a 404: the caller is the relying service, which knows its
   * own enrollments; the answer tells a misconfigured service what is wrong and nobody else
   * anything.
   */
  async #enrollment(
    requesterId: string,
    account: string,
    outcome: AttemptOutcome,
  ): Promise<KeyRecord> {
    const record = await enrollmentInForce(this.#store, requesterId, account);
    if (record) return record;
    await outcome.fail("invalid");
    throw noEnrollment();
  }

  /**
   * The first of `records` whose code is `code`. Every record is read and compared (in constant
   * time), so the time taken does not say which one matched. A record gone since it was listed
   * (a retention sweep removed a used or expired OTP in between) matches nothing, as it would
   * had it been gone before.
   */
  async #findCode(records: readonly KeyRecord[], code: string): Promise<KeyRecord | undefined> {
    let match: KeyRecord | undefined;
    for (const record of records) {
      let expected: string;
      try {
        expected = String((await readStoredSecret(this.#store, record.id)).output.code);
      } catch (error) {
        if (isDkeygenError(error, ErrorCodes.NOT_FOUND)) continue;
        throw error;
      }
      if (sameCode(expected, code) && match === undefined) match = record;
    }
    return match;
  }

  /** RFC 6238 §5.2: the steps T−1, T, T+1; the step accepted is recorded, once. */
  async #checkTotp(
    record: KeyRecord,
    secret: Uint8Array,
    code: string,
    now: number,
  ): Promise<"valid" | "invalid" | "replayed"> {
    const options = {
      algorithm: record.public.algorithm as OtpAlgorithm,
      digits: record.public.digits as number,
      period: record.public.period as number,
    };
    const seconds = Math.floor(now / 1000);
    const offset = verifyTotp(secret, code, seconds, { ...options, window: 1 });
    if (offset === null) return "invalid";
    const step = totpCounter(seconds, options) + offset;
    return (await this.#store.useStep(record.id, step, new Date(now))) ? "valid" : "replayed";
  }
}
