/**
 * Recovery-code verification (docs/PROTOCOL.md §12.6, §12.9): a relying service checks a code its
 * user typed instead of an authenticator code. A code of the account's enrollment in force is used
 * up exactly once (recovery-codes.ts); failures count on the account's lock key like wrong TOTP or
 * HOTP codes, and a success clears them. The answer says how many codes the account has left.
 */
import type { FastifyInstance } from "fastify";
import { recoveryTagKey } from "../../../derive/recovery.js";
import { DkeygenError, ErrorCodes } from "../../../errors.js";
import { type RecoveryCheck, useRecoveryCode } from "../../recovery-codes.js";
import { readStoredSecret } from "../../stored-secret.js";
import { answers } from "../answers.js";
import type { RouteContext } from "../app.js";
import { RecoveryVerifyBody, VerifyResult } from "../schemas.js";
import { enrollmentInForce, twoFactorLockKey } from "../two-factor.js";
import { verifyAttempt } from "./otp.js";

const security = [{ credential: [] }];

export function registerRecoveryRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{ Body: RecoveryVerifyBody }>(
    "/v1/recovery/verify",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["totp"],
        summary:
          "Check and use up one of an account's recovery codes (each accepted once); the answer says how many are left.",
        security,
        body: RecoveryVerifyBody,
        response: answers({
          ok: [
            VerifyResult,
            "Whether the recovery code was accepted (and used up), with the codes left; a wrong or used code is a 200 answer with the attempts left.",
          ],
          authenticated: true,
          body: true,
          errors: {
            404: "No two-factor enrollment of this account by you (E_NOT_FOUND; counted as a failed attempt)",
            423: "The account is locked after too many wrong codes (E_LOCKED), until lockedUntil or an unlock",
            429: "or every attempt the account has left is in progress",
          },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const { account, code } = request.body;
      const now = ctx.clock();
      const key = twoFactorLockKey(requester.id, account);
      return verifyAttempt(ctx.limiter, key, now, async (outcome) => {
        const enrollment = await enrollmentInForce(ctx.store, requester.id, account);
        if (!enrollment) {
          // Counted like a wrong code, as for /v1/totp/verify.
          outcome.fail("invalid");
          throw new DkeygenError(ErrorCodes.NOT_FOUND, "No TOTP enrollment for that account.");
        }
        const stored = await readStoredSecret(ctx.store, enrollment.id);
        const roundSecret = Buffer.from(stored.derivationSecret, "hex");
        const tagKey = recoveryTagKey(roundSecret);
        roundSecret.fill(0);
        let check: RecoveryCheck;
        try {
          check = await useRecoveryCode(ctx.store, enrollment, tagKey, code, new Date(now));
        } finally {
          tagKey.fill(0);
        }
        if (check.outcome !== "valid") {
          return { ...outcome.fail(check.outcome), recoveryCodesLeft: check.left };
        }
        outcome.succeed();
        return { valid: true, recoveryCodesLeft: check.left };
      });
    },
  );
}
