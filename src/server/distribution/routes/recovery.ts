/**
 * Recovery-code verification (docs/PROTOCOL.md §12.6, §12.9): a relying service checks a code its
 * user typed instead of an authenticator code. The verifier (verification/verifier.ts) uses a code
 * of the account's enrollment in force up exactly once (recovery-codes.ts); failures count on the
 * account's lock key like wrong TOTP or HOTP codes, and a success clears them. The answer says how
 * many codes the account has left.
 */
import type { FastifyInstance } from "fastify";
import { answers } from "../answers.js";
import type { RouteContext } from "../app.js";
import { RecoveryVerifyBody, VerifyResult } from "../schemas.js";

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
      const { account, code } = request.body;
      return ctx.verifier.useRecoveryCode(request.requester!.id, account, code, ctx.clock());
    },
  );
}
