/**
 * OTP delivery and verification. A request claims a ready OTP from the pool (atomically: never
 * the same one twice), binds it to the requester and subject until it expires, and returns it
 * sealed to the requester's key. Verification, by the same requester (the relying service),
 * accepts a code once, before its expiry, compared in constant time, and locks the subject after
 * too many failures.
 */
import type { FastifyInstance } from "fastify";
import { sameCode } from "../../../derive/hotp.js";
import { DkeygenError, ErrorCodes } from "../../../errors.js";
import type { KeyRecord } from "../../../store/types.js";
import { readStoredSecret } from "../../stored-secret.js";
import { answers } from "../answers.js";
import type { RouteContext } from "../app.js";
import type { AttemptLimiter } from "../attempts.js";
import { OTP_PURPOSE } from "../otp-pool.js";
import {
  OtpDelivery,
  OtpRequestBody,
  OtpVerifyBody,
  UnlockBody,
  UnlockResult,
  VerifyResult,
} from "../schemas.js";

const security = [{ credential: [] }];

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

type FailureReason = "invalid" | "expired" | "used" | "replayed";

/** How a verification ends its reserved attempt (attempts.ts). */
export interface AttemptOutcome {
  /** Counts the failure and returns the answer, with the attempts left. */
  fail(reason: FailureReason): {
    valid: false;
    reason: FailureReason;
    attemptsLeft: number;
    lockedUntil?: string;
  };
  /** Clears the subject's failures. */
  succeed(): void;
}

/**
 * Runs one verification for lock key `key`: refuses a locked subject (423) or one whose every
 * remaining attempt is already in progress (429), else reserves an attempt for `run`, which ends
 * it with `fail` or `succeed`; an attempt it ends with neither (an error) is released uncounted.
 */
export async function verifyAttempt<T>(
  limiter: AttemptLimiter,
  key: string,
  now: number,
  run: (outcome: AttemptOutcome) => Promise<T>,
): Promise<T> {
  const start = limiter.begin(key, now);
  if (start.locked) throw lockedError(start.lockedUntil!, now);
  if (start.busy) throw busyError();
  let ended = false;
  const outcome: AttemptOutcome = {
    fail(reason) {
      ended = true;
      const state = limiter.fail(key, now);
      return {
        valid: false,
        reason,
        attemptsLeft: state.remaining,
        ...(state.lockedUntil === undefined
          ? {}
          : { lockedUntil: new Date(state.lockedUntil).toISOString() }),
      };
    },
    succeed() {
      ended = true;
      limiter.succeed(key);
    },
  };
  try {
    return await run(outcome);
  } finally {
    if (!ended) limiter.abandon(key);
  }
}

/**
 * How many of a subject's latest OTPs (claimed by this requester for it) a verification looks at.
 * Only these can verify, so a guess never faces more than this many live codes at once, however
 * many a service requested (a guess wins with probability at most 16 / 10^digits), and the work
 * does not grow with the subject's history.
 */
export const LATEST_CODES = 16;

/**
 * The first of `records` whose code is `code`. Every record is read and compared (in constant
 * time), so the time taken does not say which one matched.
 */
async function findCode(
  ctx: RouteContext,
  records: readonly KeyRecord[],
  code: string,
): Promise<KeyRecord | undefined> {
  let match: KeyRecord | undefined;
  for (const record of records) {
    const expected = String((await readStoredSecret(ctx.store, record.id)).output.code);
    if (sameCode(expected, code) && match === undefined) match = record;
  }
  return match;
}

export function registerOtpRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{ Body: OtpRequestBody }>(
    "/v1/otp/request",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["otp"],
        summary: "Get a fresh OTP for a subject, encrypted to your key.",
        security,
        body: OtpRequestBody,
        response: answers({
          ok: [OtpDelivery, "The OTP, its code sealed to your key (a delivery of kind otp)."],
          authenticated: true,
          sealed: true,
          body: true,
          errors: {
            429: "or over this requester's OTP quota",
            503: "or no OTP is ready and none could be made in time (E_UNAVAILABLE)",
          },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const subject = request.body.subject ?? requester.name;
      const now = ctx.clock();
      ctx.quotas.countOtp(requester.id, now);
      const ttlMs =
        request.body.ttlSeconds === undefined
          ? ctx.config.otpTtlMs
          : request.body.ttlSeconds * 1000;
      const expiresAt = new Date(now + ttlMs);
      const { record, code } = await ctx.pool.claim(
        {
          requester: requester.id,
          subject,
          requestId: request.id,
          expiresAt,
          claimedAt: new Date(now),
        },
        ctx.config.otpWaitMs,
      );
      const envelope = await ctx.sealer.seal(requester, "otp", request.id, record.id, {
        otpId: record.id,
        code,
        subject,
        expiresAt: expiresAt.toISOString(),
      });
      request.sealedAnswer = true;
      return {
        requestId: request.id,
        otpId: record.id,
        subject,
        digits: record.public.digits as number,
        expiresAt: expiresAt.toISOString(),
        envelope,
      };
    },
  );

  app.post<{ Body: OtpVerifyBody }>(
    "/v1/otp/verify",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["otp"],
        summary: "Check a code a subject typed: valid once, before expiry.",
        security,
        body: OtpVerifyBody,
        response: answers({
          ok: [
            VerifyResult,
            "Whether the code is valid; a wrong code is a 200 answer with the attempts left.",
          ],
          authenticated: true,
          body: true,
          errors: {
            423: "The subject is locked after too many wrong codes (E_LOCKED), until lockedUntil or an unlock",
            429: "or every attempt the subject has left is in progress",
          },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const { subject, code } = request.body;
      const key = `otp\u0000${requester.id}\u0000${subject}`;
      const now = ctx.clock();
      return verifyAttempt(ctx.limiter, key, now, async (outcome) => {
        const candidates = await ctx.store.list({
          purpose: OTP_PURPOSE,
          claimedBy: requester.id,
          subject,
          latestClaims: LATEST_CODES,
        });
        const live = (r: KeyRecord) =>
          r.consumedAt === undefined && Date.parse(r.claim!.expiresAt) > now;
        // The subject's outstanding codes first: a code that is live wins even if an old, used
        // or expired OTP of the subject happens to have the same digits.
        let match = await findCode(ctx, candidates.filter(live), code);
        if (match) {
          if (!(await ctx.store.consume(match.id, new Date(now)))) return outcome.fail("used");
          outcome.succeed();
          return { valid: true, otpId: match.id };
        }
        // Otherwise say why, if it is one of those latest codes, spent.
        match = await findCode(
          ctx,
          candidates.filter((r) => !live(r)),
          code,
        );
        if (!match) return outcome.fail("invalid");
        return outcome.fail(match.consumedAt === undefined ? "expired" : "used");
      });
    },
  );

  app.post<{ Body: { subject: string } }>(
    "/v1/otp/unlock",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["otp"],
        summary: "Lift a subject's lockout after failed OTP verifications.",
        security,
        body: UnlockBody,
        response: answers({
          ok: [UnlockResult, "The subject is unlocked (whether or not it was locked)."],
          authenticated: true,
          body: true,
        }),
      },
    },
    async (request) => {
      ctx.limiter.unlock(`otp\u0000${request.requester!.id}\u0000${request.body.subject}`);
      return { subject: request.body.subject, unlocked: true };
    },
  );
}
