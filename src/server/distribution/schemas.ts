/**
 * Request and response schemas of the distribution API (JSON Schema via TypeBox). Every route
 * declares both: requests are validated (unknown fields refused) and responses are serialized from
 * their schema, so a field that is not in it — a secret, say — can never be sent by accident.
 * The OpenAPI document at /v1/openapi.json is generated from these.
 */
import { type Static, Type } from "@sinclair/typebox";
import { DEFAULT_RECOVERY_CODES, MAX_RECOVERY_CODES } from "../../derive/recovery.js";
import {
  DeliveryEnvelopeSchema as EnvelopeSchema,
  FingerprintSchema,
} from "../../protocol/messages.js";

const strict = { additionalProperties: false } as const;

export const Subject = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: "^[A-Za-z0-9][A-Za-z0-9._@+:-]*$",
  description: "Who the OTP is for, in the relying service's terms (a user id, an e-mail address).",
});
const Code = Type.String({ pattern: "^[0-9]{6,10}$", description: "The code the user typed." });
const RecordId = Type.String({ pattern: "^[0-9A-HJKMNP-TV-Z]{26}$" });
const Time = Type.String({ format: "date-time" });

export const ErrorBody = Type.Object(
  {
    error: Type.Object(
      {
        code: Type.String({ description: "Stable error code (docs/PROTOCOL.md §11)." }),
        message: Type.String(),
        retryAfter: Type.Optional(
          Type.Integer({ description: "Seconds before a retry may succeed." }),
        ),
      },
      strict,
    ),
  },
  { ...strict, $id: "ErrorBody" },
);

/**
 * Every error status with an ErrorBody, undescribed. Routes document their answers with answers()
 * (answers.ts) instead, which lists only the statuses each can return and says what they mean.
 */
export const errorResponses = {
  400: ErrorBody,
  401: ErrorBody,
  404: ErrorBody,
  413: ErrorBody,
  423: ErrorBody,
  429: ErrorBody,
  500: ErrorBody,
  503: ErrorBody,
} as const;

export const OtpRequestBody = Type.Object(
  {
    subject: Type.Optional(Subject),
    ttlSeconds: Type.Optional(
      Type.Integer({ minimum: 30, maximum: 3600, description: "Default 300." }),
    ),
  },
  strict,
);

export const OtpDelivery = Type.Object(
  {
    requestId: Type.String(),
    otpId: RecordId,
    subject: Subject,
    digits: Type.Integer(),
    expiresAt: Time,
    envelope: EnvelopeSchema,
  },
  strict,
);

export const OtpVerifyBody = Type.Object({ subject: Subject, code: Code }, strict);

export const VerifyResult = Type.Object(
  {
    valid: Type.Boolean(),
    reason: Type.Optional(
      Type.Union([
        Type.Literal("invalid"),
        Type.Literal("expired"),
        Type.Literal("used"),
        Type.Literal("replayed"),
      ]),
    ),
    otpId: Type.Optional(RecordId),
    attemptsLeft: Type.Optional(Type.Integer()),
    recoveryCodesLeft: Type.Optional(
      Type.Integer({ description: "Recovery verification: the account's unused codes left." }),
    ),
    lockedUntil: Type.Optional(Time),
  },
  strict,
);

export const UnlockBody = Type.Object({ subject: Subject }, strict);
export const UnlockResult = Type.Object({ subject: Subject, unlocked: Type.Boolean() }, strict);

/** A TOTP account: the user the secret is for, and the subject of its verifications. */
const Account = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: "^[A-Za-z0-9][A-Za-z0-9._@+:-]*$",
  description:
    "The user's account at the relying service (a user id, an e-mail address): authenticator apps show it, and it names the enrollment in /v1/totp/verify and /v1/totp/unlock.",
});

export const TotpEnrollBody = Type.Object(
  {
    issuer: Type.String({
      minLength: 1,
      maxLength: 64,
      description: "The relying service's name, shown by authenticator apps.",
    }),
    account: Account,
    algorithm: Type.Optional(
      Type.Union([Type.Literal("SHA1"), Type.Literal("SHA256"), Type.Literal("SHA512")]),
    ),
    digits: Type.Optional(Type.Union([Type.Literal(6), Type.Literal(8)])),
    period: Type.Optional(Type.Integer({ minimum: 15, maximum: 300, description: "TOTP only." })),
    type: Type.Optional(
      Type.Union([Type.Literal("totp"), Type.Literal("hotp")], { description: "Default totp." }),
    ),
    counter: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: Number.MAX_SAFE_INTEGER,
        description: "HOTP only: the authenticator's first counter (default 0).",
      }),
    ),
    replace: Type.Optional(
      Type.Boolean({ description: "Replace the account's enrollment in force (else 409)." }),
    ),
    recoveryCodes: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_RECOVERY_CODES,
        description: `Single-use recovery codes to make (default ${DEFAULT_RECOVERY_CODES}).`,
      }),
    ),
  },
  strict,
);

export const TotpEnrollment = Type.Object(
  {
    requestId: Type.String(),
    recordId: RecordId,
    issuer: Type.String(),
    account: Account,
    algorithm: Type.String(),
    digits: Type.Integer(),
    type: Type.Union([Type.Literal("totp"), Type.Literal("hotp")]),
    period: Type.Optional(Type.Integer()),
    counter: Type.Optional(Type.Integer()),
    recoveryCodes: Type.Integer({ description: "How many recovery codes the envelope holds." }),
    replaced: Type.Optional(RecordId),
    envelope: EnvelopeSchema,
  },
  strict,
);

export const TotpVerifyBody = Type.Object({ account: Account, code: Code }, strict);

/** /v1/totp/unlock's body: its `subject` is the enrolled account. */
export const TotpUnlockBody = Type.Object(
  {
    subject: Type.String({
      ...Account,
      description: "The enrolled account whose lockout to lift (the account of /v1/totp/enroll).",
    }),
  },
  strict,
);

export const RecoveryVerifyBody = Type.Object(
  {
    account: Subject,
    code: Type.String({
      pattern: "^[0-9A-Za-z]{5}[- ]?[0-9A-Za-z]{5}$",
      description: "A recovery code, xxxxx-xxxxx (case, hyphen, o/0 and i/l/1 do not matter).",
    }),
  },
  strict,
);

export const RequesterRegistration = Type.Object(
  { name: Type.String(), fingerprint: FingerprintSchema },
  strict,
);

export const KeyParams = Type.Object({ id: RecordId }, strict);

/** The body of a POST that takes no fields: `{}`. */
export const EmptyBody = Type.Object({}, strict);

export const PublicKeyRecord = Type.Object(
  {
    id: RecordId,
    purpose: Type.String(),
    createdAt: Time,
    roundId: Type.String(),
    participants: Type.Array(FingerprintSchema),
    algorithm: Type.String(),
    public: Type.Record(Type.String(), Type.Unknown()),
    owner: Type.Optional(Type.String()),
  },
  strict,
);

export const KeyDelivery = Type.Object(
  { requestId: Type.String(), recordId: RecordId, envelope: EnvelopeSchema },
  strict,
);

export const Health = Type.Object({ status: Type.Literal("ok") }, strict);
export const Readiness = Type.Object(
  {
    status: Type.Union([Type.Literal("ready"), Type.Literal("degraded")]),
    store: Type.String(),
    otpPool: Type.Object({ available: Type.Integer(), target: Type.Integer() }, strict),
    contributors: Type.Integer(),
    problem: Type.Optional(Type.String()),
  },
  strict,
);

export type OtpRequestBody = Static<typeof OtpRequestBody>;
export type OtpVerifyBody = Static<typeof OtpVerifyBody>;
export type UnlockBody = Static<typeof UnlockBody>;
export type TotpEnrollBody = Static<typeof TotpEnrollBody>;
export type TotpVerifyBody = Static<typeof TotpVerifyBody>;
export type RecoveryVerifyBody = Static<typeof RecoveryVerifyBody>;
export type KeyParams = Static<typeof KeyParams>;
