/**
 * Two-factor enrollment and code verification: TOTP (RFC 6238) and HOTP (RFC 4226). Enrollment
 * runs a round whose secret becomes the shared secret and the account's recovery codes, stores the
 * secret and the codes' slow hashes for the requester, and hands the otpauth:// URI and the codes
 * back sealed to the requester's key, once. An account has one enrollment in force
 * (two-factor.ts): enrolling it again needs `replace`. Verification is the verifier's
 * (verification/verifier.ts): TOTP accepts the current time step and one either side (§5.2) and
 * refuses a step already used (replay); HOTP looks ahead and resynchronises (hotp-check.ts). Both
 * lock the account after too many failures, like OTP verification.
 */
import type { FastifyInstance } from "fastify";
import {
  DEFAULT_RECOVERY_CODES,
  deriveRecoveryCodes,
  formatRecoveryCode,
} from "../../../derive/recovery.js";
import { DkeygenError, ErrorCodes } from "../../../errors.js";
import type { KeyRecord } from "../../../store/types.js";
import { storeRecoveryCodes } from "../../recovery-codes.js";
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
import {
  alreadyEnrolled,
  enrollmentInForce,
  enrollmentInProgress,
  enrollmentParameters,
  twoFactorLockKey,
} from "../two-factor.js";

const security = [{ credential: [] }];

const invalid = (message: string) => new DkeygenError(ErrorCodes.INVALID_INPUT, message);

export function registerTotpRoutes(app: FastifyInstance, ctx: RouteContext): void {
  /** Accounts being enrolled now: a second enrollment of one waits for none, it is refused. */
  const enrolling = new Set<string>();

  app.post<{ Body: TotpEnrollBody }>(
    "/v1/totp/enroll",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["totp"],
        summary:
          "Make a TOTP or HOTP secret and recovery codes for an account in a new round; get its otpauth:// URI and the codes, encrypted to your key.",
        security,
        body: TotpEnrollBody,
        response: answers({
          ok: [
            TotpEnrollment,
            "The enrollment, its secret, otpauth:// URI and recovery codes sealed to your key (a delivery of kind totp).",
          ],
          authenticated: true,
          sealed: true,
          body: true,
          errors: {
            400: "or an issuer or account the derivation refuses (a colon, a control character), or a field of the other enrollment type",
            409: "The account already has an enrollment in force, or one in progress, and replace was not asked for (E_ALREADY_ENROLLED)",
            429: "or over an enrollment cap (retryAfter 1)",
            503: "or the round missed its quorum or its deadline (E_QUORUM_NOT_MET, E_UNAVAILABLE)",
          },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const { replace, recoveryCodes, type, ...params } = request.body;
      const purpose = type ?? "totp";
      if (purpose === "hotp" && params.period !== undefined)
        throw invalid("An HOTP enrollment has no period.");
      if (purpose === "totp" && params.counter !== undefined)
        throw invalid("A TOTP enrollment has no counter.");
      const count = recoveryCodes ?? DEFAULT_RECOVERY_CODES;
      const lockKey = twoFactorLockKey(requester.id, params.account);
      if (enrolling.has(lockKey)) throw enrollmentInProgress();
      enrolling.add(lockKey);
      try {
        const current = await enrollmentInForce(ctx.store, requester.id, params.account);
        if (current && replace !== true) throw alreadyEnrolled(current);
        const release = ctx.quotas.startEnrollment(requester.id);
        let record: KeyRecord;
        try {
          record = await ctx.rounds.runRound({
            purpose,
            params,
            owner: requester.id,
            subject: params.account,
          });
        } finally {
          release();
        }
        const stored = await readStoredSecret(ctx.store, record.id);
        // The recovery codes come from the round secret (derive/recovery.ts); only their hashes
        // are stored, and they leave here once, sealed.
        const roundSecret = Buffer.from(stored.derivationSecret, "hex");
        const set = deriveRecoveryCodes(roundSecret, count);
        roundSecret.fill(0);
        try {
          await storeRecoveryCodes(ctx.store, record, set, { random: ctx.random });
        } finally {
          set.tagKey.fill(0);
        }
        const parameters = enrollmentParameters(record.public);
        // What the client computes codes with travels sealed too, so it need not trust the clear copy.
        const envelope = await ctx.sealer.seal(requester, "totp", request.id, record.id, {
          recordId: record.id,
          secret: stored.output.secret as string,
          uri: stored.output.uri as string,
          ...parameters,
          recoveryCodes: set.codes.map(formatRecoveryCode),
        });
        request.sealedAnswer = true;
        ctx.verifier.enrolled(requester.id, params.account);
        return {
          requestId: request.id,
          recordId: record.id,
          ...parameters,
          recoveryCodes: count,
          ...(current === undefined ? {} : { replaced: current.id }),
          envelope,
        };
      } finally {
        enrolling.delete(lockKey);
      }
    },
  );

  app.post<{ Body: TotpVerifyBody }>(
    "/v1/totp/verify",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["totp"],
        summary:
          "Check a TOTP code (±1 time step, each step accepted once) or an HOTP code (look-ahead window, resynchronisation, each counter once) for an account.",
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
      const { account, code } = request.body;
      return ctx.verifier.verifyTwoFactor(request.requester!.id, account, code, ctx.clock());
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
      await ctx.verifier.unlockTwoFactor(request.requester!.id, request.body.subject);
      return { subject: request.body.subject, unlocked: true };
    },
  );
}
