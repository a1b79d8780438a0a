/**
 * TOTP enrollment for two-factor authentication and code verification (RFC 6238). Enrollment runs
 * a round whose secret becomes the TOTP secret, stores it for the requester, and hands the
 * otpauth:// URI back sealed to the requester's key. Verification accepts the current time step
 * and one either side (§5.2), refuses a step already used (replay), and locks the account after
 * too many failures, like OTP verification.
 */
import type { FastifyInstance } from "fastify";
import type { OtpAlgorithm } from "../../../derive/hotp.js";
import { fromBase32 } from "../../../derive/otpauth.js";
import { totpCounter, verifyTotp } from "../../../derive/totp.js";
import { DkeygenError, ErrorCodes } from "../../../errors.js";
import type { KeyRecord } from "../../../store/types.js";
import { readStoredSecret } from "../../stored-secret.js";
import { answers } from "../answers.js";
import type { RouteContext } from "../app.js";
import {
  TotpEnrollBody,
  TotpEnrollment,
  TotpUnlockBody,
  TotpVerifyBody,
  UnlockResult,
  VerifyResult,
} from "../schemas.js";
import { verifyAttempt } from "./otp.js";

const security = [{ credential: [] }];
const TOTP = "totp";

/** A TOTP record's parameters from its public part: sealed with every delivery of its secret. */
export function totpParameters(pub: Record<string, unknown>) {
  return {
    issuer: pub.issuer as string,
    account: pub.account as string,
    algorithm: pub.algorithm as string,
    digits: pub.digits as number,
    period: pub.period as number,
  };
}

export function registerTotpRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{ Body: TotpEnrollBody }>(
    "/v1/totp/enroll",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["totp"],
        summary:
          "Make a TOTP secret for an account in a new round; get its otpauth:// URI, encrypted to your key.",
        security,
        body: TotpEnrollBody,
        response: answers({
          ok: [
            TotpEnrollment,
            "The enrollment, its secret and otpauth:// URI sealed to your key (a delivery of kind totp).",
          ],
          authenticated: true,
          sealed: true,
          body: true,
          errors: {
            400: "or an issuer or account the derivation refuses (a colon, a control character)",
            429: "or over an enrollment cap (retryAfter 1)",
            503: "or the round missed its quorum or its deadline (E_QUORUM_NOT_MET, E_UNAVAILABLE)",
          },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const params = { ...request.body };
      const release = ctx.quotas.startEnrollment(requester.id);
      let record: KeyRecord;
      try {
        record = await ctx.rounds.runRound({
          purpose: TOTP,
          params,
          owner: requester.id,
          subject: request.body.account,
        });
      } finally {
        release();
      }
      const { output } = await readStoredSecret(ctx.store, record.id);
      const pub = record.public;
      // What the client computes codes with travels sealed too, so it need not trust the clear copy.
      const envelope = await ctx.sealer.seal(requester, "totp", request.id, record.id, {
        recordId: record.id,
        secret: output.secret as string,
        uri: output.uri as string,
        ...totpParameters(pub),
      });
      request.sealedAnswer = true;
      return {
        requestId: request.id,
        recordId: record.id,
        issuer: pub.issuer as string,
        account: pub.account as string,
        algorithm: pub.algorithm as string,
        digits: pub.digits as number,
        period: pub.period as number,
        envelope,
      };
    },
  );

  app.post<{ Body: TotpVerifyBody }>(
    "/v1/totp/verify",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["totp"],
        summary: "Check a TOTP code for an account: ±1 time step, each step accepted once.",
        security,
        body: TotpVerifyBody,
        response: answers({
          ok: [
            VerifyResult,
            "Whether the code is valid; a wrong or replayed code is a 200 answer with the attempts left.",
          ],
          authenticated: true,
          body: true,
          errors: {
            404: "No TOTP enrollment of this account by you (E_NOT_FOUND; counted as a failed attempt)",
            423: "The account is locked after too many wrong codes (E_LOCKED), until lockedUntil or an unlock",
            429: "or every attempt the account has left is in progress",
          },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const { account, code } = request.body;
      const key = `totp\u0000${requester.id}\u0000${account}`;
      const now = ctx.clock();
      return verifyAttempt(ctx.limiter, key, now, async (outcome) => {
        // The newest enrollment of this account by this requester is the one in force. The
        // subject index keeps this lookup to the account's own enrollments.
        const record = (
          await ctx.store.list({ purpose: TOTP, owner: requester.id, subject: account })
        )
          .filter((r) => r.public.account === account)
          .at(-1);
        // Counted like a wrong code, so asking about accounts cannot go on without limit. Still
        // a 404: the caller is the relying service, which knows its own enrollments; the answer
        // tells a misconfigured service what is wrong and tells nobody else anything.
        if (!record) {
          outcome.fail("invalid");
          throw new DkeygenError(ErrorCodes.NOT_FOUND, "No TOTP enrollment for that account.");
        }
        const { output } = await readStoredSecret(ctx.store, record.id);
        const secret = fromBase32(String(output.secret));
        const options = {
          algorithm: record.public.algorithm as OtpAlgorithm,
          digits: record.public.digits as number,
          period: record.public.period as number,
        };
        const seconds = Math.floor(now / 1000);
        const offset = verifyTotp(secret, code, seconds, { ...options, window: 1 });
        secret.fill(0);
        if (offset === null) return outcome.fail("invalid");
        const step = totpCounter(seconds, options) + offset;
        if (!(await ctx.store.useStep(record.id, step, new Date(now)))) {
          return outcome.fail("replayed");
        }
        outcome.succeed();
        return { valid: true };
      });
    },
  );

  app.post<{ Body: { subject: string } }>(
    "/v1/totp/unlock",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["totp"],
        summary: "Lift an account's lockout after failed TOTP verifications.",
        security,
        body: TotpUnlockBody,
        response: answers({
          ok: [UnlockResult, "The account is unlocked (whether or not it was locked)."],
          authenticated: true,
          body: true,
        }),
      },
    },
    async (request) => {
      ctx.limiter.unlock(`totp\u0000${request.requester!.id}\u0000${request.body.subject}`);
      return { subject: request.body.subject, unlocked: true };
    },
  );
}
