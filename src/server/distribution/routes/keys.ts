/**
 * Generated keys. Any authenticated requester may read a key's public part (public keys,
 * addresses); only the requester a key was generated for (`dkeygen generate ... --for NAME`) may
 * fetch its secret part, sealed to its key. For anyone else the secret does not exist (404), which
 * says nothing about whose it is: the `owner` field is shown to the owner only.
 *
 * Two-factor records (otp, hotp, totp, recovery) are not keys to share: their public part names a
 * subject (an account, an issuer), so they exist only for the requester they were made for or
 * handed to. A recovery code's secret part (a slow hash) is nobody's to fetch.
 */
import type { FastifyInstance } from "fastify";
import { DkeygenError, ErrorCodes } from "../../../errors.js";
import type { KeyRecord } from "../../../store/types.js";
import { toPublicRecord } from "../../keygen-server.js";
import { RECOVERY_PURPOSE } from "../../recovery-codes.js";
import { readStoredSecret } from "../../stored-secret.js";
import type { RouteContext } from "../app.js";
import { errorResponses, KeyDelivery, KeyParams, PublicKeyRecord } from "../schemas.js";
import { totpParameters } from "./totp.js";

const security = [{ credential: [] }];
const notFound = () => new DkeygenError(ErrorCodes.NOT_FOUND, "No such key was issued to you.");
const SUBJECT_PURPOSES = new Set(["otp", "hotp", "totp", RECOVERY_PURPOSE]);

/** Whether `record` is registration `id`'s: made for it, or (an OTP) handed to it. */
const belongsTo = (record: KeyRecord, id: string) =>
  record.owner === id || record.claim?.requester === id;

export function registerKeyRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get<{ Params: KeyParams }>(
    "/v1/keys/:id",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["keys"],
        summary: "A record's public part.",
        security,
        params: KeyParams,
        response: { 200: PublicKeyRecord, ...errorResponses },
      },
    },
    async (request) => {
      const requester = request.requester!;
      const record = await ctx.store.get(request.params.id);
      if (!record || (SUBJECT_PURPOSES.has(record.purpose) && !belongsTo(record, requester.id))) {
        throw new DkeygenError(ErrorCodes.NOT_FOUND, "No such record.");
      }
      const { owner, ...shared } = toPublicRecord(record, record.owner);
      // Shown to its owner only, by the name it knows itself by.
      return owner === requester.id ? { ...shared, owner: requester.name } : shared;
    },
  );

  app.get<{ Params: KeyParams }>(
    "/v1/keys/:id/secret",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["keys"],
        summary:
          "A key's secret part, encrypted to your key; only for the requester it was made for.",
        security,
        params: KeyParams,
        response: { 200: KeyDelivery, ...errorResponses },
      },
    },
    async (request) => {
      const requester = request.requester!;
      const record = await ctx.store.get(request.params.id);
      // A recovery code's record holds only its slow hash, which nobody needs to see.
      if (!record || record.owner !== requester.id || record.purpose === RECOVERY_PURPOSE) {
        throw notFound();
      }
      const { output } = await readStoredSecret(ctx.store, record.id);
      const envelope = await ctx.sealer.seal(requester, "key", request.id, record.id, {
        recordId: record.id,
        purpose: record.purpose,
        algorithm: record.algorithm,
        // A TOTP secret comes with the parameters to use it with, sealed alike.
        secret:
          record.purpose === "totp" ? { ...output, ...totpParameters(record.public) } : output,
      });
      request.sealedAnswer = true;
      return { requestId: request.id, recordId: record.id, envelope };
    },
  );
}
