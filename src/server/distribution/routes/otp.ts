/**
 * OTP delivery and verification. A request claims a ready OTP from the pool (atomically: never
 * the same one twice), binds it to the requester and subject until it expires, and returns it
 * sealed to the requester's key. Verification, by the same requester (the relying service), is
 * the verifier's (verification/verifier.ts): a code once, before its expiry, and a lock after too
 * many failures.
 */
import type { FastifyInstance } from "fastify";
import { answers } from "../answers.js";
import type { RouteContext } from "../app.js";
import {
  OtpDelivery,
  OtpRequestBody,
  OtpVerifyBody,
  UnlockBody,
  UnlockResult,
  VerifyResult,
} from "../schemas.js";

const security = [{ credential: [] }];

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
      await ctx.quotas.countOtp(requester.id, now);
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
      const { subject, code } = request.body;
      return ctx.verifier.verifyOtp(request.requester!.id, subject, code, ctx.clock());
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
      await ctx.verifier.unlockOtp(request.requester!.id, request.body.subject);
      return { subject: request.body.subject, unlocked: true };
    },
  );
}
