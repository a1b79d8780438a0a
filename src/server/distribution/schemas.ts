/**
 * Request and response schemas of the distribution API (JSON Schema via TypeBox). Every route
 * declares both: requests are validated (unknown fields refused) and responses are serialized from
 * their schema, so a field that is not in it — a secret, say — can never be sent by accident.
 * The OpenAPI document at /v1/openapi.json is generated from these.
 */
import { type Static, Type } from "@sinclair/typebox";
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
    lockedUntil: Type.Optional(Time),
  },
  strict,
);

export const UnlockBody = Type.Object({ subject: Subject }, strict);
export const UnlockResult = Type.Object({ subject: Subject, unlocked: Type.Boolean() }, strict);

export const TotpEnrollBody = Type.Object(
  {
    issuer: Type.String({ minLength: 1, maxLength: 64 }),
    account: Subject,
    algorithm: Type.Optional(
      Type.Union([Type.Literal("SHA1"), Type.Literal("SHA256"), Type.Literal("SHA512")]),
    ),
    digits: Type.Optional(Type.Union([Type.Literal(6), Type.Literal(8)])),
    period: Type.Optional(Type.Integer({ minimum: 15, maximum: 300 })),
  },
  strict,
);

export const TotpEnrollment = Type.Object(
  {
    requestId: Type.String(),
    recordId: RecordId,
    issuer: Type.String(),
    account: Subject,
    algorithm: Type.String(),
    digits: Type.Integer(),
    period: Type.Integer(),
    envelope: EnvelopeSchema,
  },
  strict,
);

export const TotpVerifyBody = Type.Object({ account: Subject, code: Code }, strict);

export const RequesterRegistration = Type.Object(
  { name: Type.String(), fingerprint: FingerprintSchema },
  strict,
);

export const KeyParams = Type.Object({ id: RecordId }, strict);

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
export type KeyParams = Static<typeof KeyParams>;
