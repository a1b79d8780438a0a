/**
 * Quotas that keep one requester from taking what all share (docs/PROTOCOL.md §12.2):
 *
 * - TOTP enrollment runs a whole round per request (every connected contributor does work), so
 *   the rounds an enrollment may start are capped, server-wide and per requester: a request over
 *   either cap is refused at once (429) rather than queued.
 * - OTPs come from one pool; a requester may claim at most so many per minute (a fixed window,
 *   rate-limit.ts). Counting claims, not claimed-and-unused OTPs, is deliberate: a requester can
 *   verify its own codes (it can open them), so an outstanding count would not stop it draining
 *   the pool.
 *
 * A cap of 0 disables it. Enrollment counts are in memory, per process (only the dkeygen server
 * runs rounds); the OTP quota is counted by the limiter it is given: in memory, or in the
 * PostgreSQL store for every process on it (shared-window-limiter.ts).
 */
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { memoryWindows, type WindowLimiter, type WindowLimiterFactory } from "./rate-limit.js";

export interface QuotaConfig {
  /** TOTP enrollment rounds running at once, all requesters together (0: no cap). */
  enrollmentsAtOnce: number;
  /** TOTP enrollment rounds one requester may have running at once (0: no cap). */
  enrollmentsAtOncePerRequester: number;
  /** OTPs one requester may request per minute (0: no cap). */
  otpPerMinutePerRequester: number;
}

/** Seconds a refused enrollment is told to wait: a round usually takes well under that. */
const ENROLLMENT_RETRY_SECONDS = 1;

export class Quotas {
  readonly #config: QuotaConfig;
  #running = 0;
  readonly #runningBy = new Map<string, number>();
  readonly #otp: WindowLimiter;

  constructor(config: QuotaConfig, windows: WindowLimiterFactory = memoryWindows) {
    this.#config = config;
    this.#otp = windows("otp", config.otpPerMinutePerRequester, 60_000);
  }

  /**
   * Takes an enrollment slot for `requesterId`, or throws E_RATE_LIMITED when a cap is reached.
   * Returns the function that gives the slot back (call it exactly once, when the round is over).
   */
  startEnrollment(requesterId: string): () => void {
    const { enrollmentsAtOnce: all, enrollmentsAtOncePerRequester: each } = this.#config;
    const mine = this.#runningBy.get(requesterId) ?? 0;
    if ((all > 0 && this.#running >= all) || (each > 0 && mine >= each)) {
      throw new DkeygenError(
        ErrorCodes.RATE_LIMITED,
        all > 0 && this.#running >= all
          ? "Too many TOTP enrollments are running at once; retry in a moment."
          : "You have too many TOTP enrollments running at once; retry in a moment.",
        { retryAfterSeconds: ENROLLMENT_RETRY_SECONDS },
      );
    }
    this.#running++;
    this.#runningBy.set(requesterId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#running--;
      const left = (this.#runningBy.get(requesterId) ?? 1) - 1;
      if (left > 0) this.#runningBy.set(requesterId, left);
      else this.#runningBy.delete(requesterId);
    };
  }

  /** Counts one OTP request of `requesterId`; rejects with E_RATE_LIMITED over the quota. */
  async countOtp(requesterId: string, now: number): Promise<void> {
    const wait = await this.#otp.hit(requesterId, now);
    if (wait > 0) {
      throw new DkeygenError(
        ErrorCodes.RATE_LIMITED,
        "You have requested as many OTPs as allowed this minute; retry later.",
        { retryAfterSeconds: wait },
      );
    }
  }
}
