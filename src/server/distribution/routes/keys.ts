/**
 * Generated keys. Any authenticated requester may read a key's public part (public keys,
 * addresses); only the requester a key was generated for (`dkeygen generate ... --for NAME`) may
 * fetch its secret part, sealed to its key. For anyone else the secret does not exist (404), which
 * says nothing about whose it is: the `owner` field is shown to the owner only.
 *
 * Two-factor records (otp, hotp, totp, recovery) are not keys to share: their public part names a
 * subject (an account, an issuer), so they exist only for the requester they were made for or
 * handed to. A recovery code's secret part (a slow hash) is nobody's to fetch.
 *
 * The owner may also export a record's derivation secret, sealed to its key, to re-derive the
 * record for audit (server/derivation-export.ts); a nonce record's is refused to everyone (403).
 * Likewise its record's opening (server/round-opening.ts, PROTOCOL §15.6), with which
 * `dkeygen audit record` checks the record against the round's log entry.
 *
 * A multisig set split among holders (`dkeygen generate multisig --holders a,b,c`) has no one
 * owner: holder i fetches key i alone, and sees the holders' names with the public part. Its
 * derivation secret and opening re-derive every key, so they are refused even to its holders
 * (403). The server itself knows every key of the set: what the split protects against is a holder
 * (or the admin's channel) taking the others' keys, not the server (PROTOCOL §13.9).
 *
 * A threshold key (`dkeygen threshold keygen --for NAME`) has no secret on the server at all: its
 * owner asks for signatures instead (POST /v1/keys/{id}/sign), made by t of its holders and
 * delivered sealed like everything else (PROTOCOL §16.6).
 */
import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { holderSecret } from "../../../derive/multisig.js";
import { DkeygenError, ErrorCodes } from "../../../errors.js";
import type { KeyRecord } from "../../../store/types.js";
import { derivationExport } from "../../derivation-export.js";
import { toPublicRecord } from "../../public-record.js";
import { RECOVERY_PURPOSE } from "../../recovery-codes.js";
import { recordOpening } from "../../round-opening.js";
import { readStoredSecret } from "../../stored-secret.js";
import { THRESHOLD_PURPOSE } from "../../threshold-record.js";
import { answers } from "../answers.js";
import type { RouteContext } from "../app.js";
import {
  EmptyBody,
  KeyDelivery,
  KeyParams,
  OpeningDelivery,
  PublicKeyRecord,
  SignBody,
} from "../schemas.js";
import { totpParameters } from "../two-factor.js";

const security = [{ credential: [] }];
const notFound = () => new DkeygenError(ErrorCodes.NOT_FOUND, "No such key was issued to you.");
const sharesOnly = () =>
  new DkeygenError(
    ErrorCodes.FORBIDDEN,
    "A threshold key exists only as its holders' shares: ask for a signature (POST /v1/keys/{id}/sign).",
  );
const SUBJECT_PURPOSES = new Set(["otp", "hotp", "totp", RECOVERY_PURPOSE]);

/** Whether `record` is registration `id`'s: made for it, or (an OTP) handed to it. */
const belongsTo = (record: KeyRecord, id: string) =>
  record.owner === id || record.claim?.requester === id;

/**
 * Whether registration `id` may ask for anything of `record`'s secret: its owner, or for a split
 * record (a multisig set made for holders), one of its holders, and then never its owner.
 */
const entitled = (record: KeyRecord, id: string) =>
  record.holders === undefined ? record.owner === id : record.holders.includes(id);

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
        response: answers({
          ok: [PublicKeyRecord, "The record's public part."],
          authenticated: true,
          params: true,
          errors: {
            404: "No such record, or a two-factor record that is not yours (E_NOT_FOUND)",
          },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const record = await ctx.store.get(request.params.id);
      if (!record || (SUBJECT_PURPOSES.has(record.purpose) && !belongsTo(record, requester.id))) {
        throw new DkeygenError(ErrorCodes.NOT_FOUND, "No such record.");
      }
      // A split record's holders are shown to its holders only, by name (an id once removed).
      const holders = record.holders?.includes(requester.id)
        ? record.holders.map((id) => ctx.requesters.nameOf(id) ?? id)
        : undefined;
      const { owner, ...shared } = toPublicRecord(record, record.owner, holders);
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
          "A key's secret part, encrypted to your key; only for the requester it was made for (a multisig set's holder: its own key only).",
        security,
        params: KeyParams,
        response: answers({
          ok: [KeyDelivery, "The secret part, sealed to your key (a delivery of kind key)."],
          authenticated: true,
          sealed: true,
          params: true,
          errors: { 404: "No such key was issued to you (E_NOT_FOUND), whether or not it exists" },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const record = await ctx.store.get(request.params.id);
      // A recovery code's record holds only its slow hash, which nobody needs to see.
      if (!record || !entitled(record, requester.id) || record.purpose === RECOVERY_PURPOSE) {
        throw notFound();
      }
      if (record.purpose === THRESHOLD_PURPOSE) throw sharesOnly();
      const { output } = await readStoredSecret(ctx.store, record.id);
      const envelope = await ctx.sealer.seal(requester, "key", request.id, record.id, {
        recordId: record.id,
        purpose: record.purpose,
        algorithm: record.algorithm,
        // A split set's holder gets its own key alone; a TOTP secret comes with the parameters
        // to use it with, sealed alike.
        secret: record.holders
          ? holderSecret(output, record.holders.indexOf(requester.id))
          : record.purpose === "totp"
            ? { ...output, ...totpParameters(record.public) }
            : output,
      });
      request.sealedAnswer = true;
      return { requestId: request.id, recordId: record.id, envelope };
    },
  );

  app.post<{ Params: KeyParams }>(
    "/v1/keys/:id/derivation-secret",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["keys"],
        summary:
          "A record's derivation secret and parameters, encrypted to your key, to re-derive it with dkeygen derive; only for the requester it was made for.",
        security,
        params: KeyParams,
        body: EmptyBody,
        response: answers({
          ok: [
            KeyDelivery,
            "The derivation export (PROTOCOL §9.1), sealed to your key (a delivery of kind derivation-secret).",
          ],
          authenticated: true,
          sealed: true,
          body: true,
          params: true,
          errors: {
            403: "A nonce record, or a multisig set split among holders: its derivation secret never leaves the server, for anyone (E_FORBIDDEN)",
            404: "No such key was issued to you (E_NOT_FOUND), whether or not it exists",
          },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const record = await ctx.store.get(request.params.id);
      // Ownership first: whoever does not own it learns nothing of it, not even its purpose.
      if (!record || !entitled(record, requester.id)) throw notFound();
      if (record.purpose === THRESHOLD_PURPOSE) throw sharesOnly();
      const payload = await derivationExport(ctx.store, record);
      const envelope = await ctx.sealer.seal(
        requester,
        "derivation-secret",
        request.id,
        record.id,
        payload,
      );
      ctx.logger.info(
        { reqId: request.id, recordId: record.id, requester: requester.name },
        "derivation secret exported to the record's owner, sealed to its key",
      );
      request.sealedAnswer = true;
      return { requestId: request.id, recordId: record.id, envelope };
    },
  );

  app.post<{ Params: KeyParams }>(
    "/v1/keys/:id/opening",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["keys"],
        summary:
          "A record's opening (its round's server secret, envelopes, content keys and phrases, and result commitments), encrypted to your key, to check the record against the round's log entry with dkeygen audit record; only for the requester it was made for.",
        security,
        params: KeyParams,
        body: EmptyBody,
        response: answers({
          ok: [
            OpeningDelivery,
            "The record's opening (PROTOCOL §15.6), sealed to your key (a delivery of kind opening).",
          ],
          authenticated: true,
          sealed: true,
          body: true,
          params: true,
          errors: {
            403: "A nonce record, or a multisig set split among holders: its opening would re-derive its derivation secret, which never leaves the server (E_FORBIDDEN)",
            404: "No such key was issued to you, whether or not it exists; or its round has no opening (made before openings were kept) (E_NOT_FOUND)",
          },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const record = await ctx.store.get(request.params.id);
      // Ownership first: whoever does not own it learns nothing of it, not even its purpose.
      if (!record || !entitled(record, requester.id)) throw notFound();
      if (record.purpose === THRESHOLD_PURPOSE) throw sharesOnly();
      const payload = await recordOpening(ctx.store, record);
      const envelope = await ctx.sealer.seal(requester, "opening", request.id, record.id, payload);
      ctx.logger.info(
        { reqId: request.id, recordId: record.id, requester: requester.name },
        "record opening sent to the record's owner, sealed to its key",
      );
      request.sealedAnswer = true;
      return { requestId: request.id, recordId: record.id, envelope };
    },
  );

  app.post<{ Params: KeyParams; Body: SignBody }>(
    "/v1/keys/:id/sign",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["keys"],
        summary:
          "A FROST signature of a message by t holders of a threshold key, encrypted to your key; only for the requester the key was made for.",
        security,
        params: KeyParams,
        body: SignBody,
        response: answers({
          ok: [
            KeyDelivery,
            "The signature, its suite and signers (PROTOCOL §16.6), sealed to your key (a delivery of kind signature).",
          ],
          authenticated: true,
          sealed: true,
          body: true,
          params: true,
          errors: {
            403: "Not a threshold key (E_FORBIDDEN)",
            404: "No such key was issued to you (E_NOT_FOUND), whether or not it exists",
            503: "Fewer than t of its holders are online and willing (E_QUORUM_NOT_MET), or signing is not served here (E_UNAVAILABLE)",
          },
        }),
      },
    },
    async (request) => {
      const requester = request.requester!;
      const record = await ctx.store.get(request.params.id);
      if (!record || record.owner !== requester.id) throw notFound();
      if (record.purpose !== THRESHOLD_PURPOSE) {
        throw new DkeygenError(
          ErrorCodes.FORBIDDEN,
          "Only a threshold key signs through the server.",
        );
      }
      if (ctx.rounds.thresholdSign === undefined) {
        throw new DkeygenError(ErrorCodes.UNAVAILABLE, "This server does not coordinate signing.");
      }
      const message = Buffer.from(request.body.message, "base64url");
      const result = await ctx.rounds.thresholdSign(record, message, requester.id);
      const p = record.public as { suite: string; outputKey?: string; groupPublicKey: string };
      const envelope = await ctx.sealer.seal(requester, "signature", request.id, record.id, {
        recordId: record.id,
        suite: p.suite,
        messageSha256: createHash("sha256").update(message).digest("hex"),
        signature: Buffer.from(result.signature).toString("hex"),
        signers: result.signers,
        verifyKey: p.outputKey ?? p.groupPublicKey,
      });
      ctx.logger.info(
        { reqId: request.id, recordId: record.id, requester: requester.name },
        "threshold signature sent to the key's owner, sealed to its key",
      );
      request.sealedAnswer = true;
      return { requestId: request.id, recordId: record.id, envelope };
    },
  );
}
