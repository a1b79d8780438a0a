/**
 * Request and response schemas of the distribution API (JSON Schema via TypeBox). Every route
 * declares both: requests are validated (unknown fields refused) and responses are serialized from
 * their schema, so a field that is not in it — a secret, say — can never be sent by accident.
 * The OpenAPI document at /v1/openapi.json is generated from these.
 */
import { type Static, Type } from "@sinclair/typebox";
import { base64urlLength, base64urlPattern } from "../../crypto/base64url.js";
import { DEFAULT_RECOVERY_CODES, MAX_RECOVERY_CODES } from "../../derive/recovery.js";
import {
  DKG_ENTRY_TYPE,
  type DkgEntry,
  ENTRY_FAULTS,
  ENTRY_SUITES,
} from "../../protocol/dkg-log-entry.js";
import { ENTRY_TYPE, type RoundEntry } from "../../protocol/log-entry.js";
import {
  DeliveryEnvelopeSchema as EnvelopeSchema,
  FingerprintSchema,
  RoundIdSchema,
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

/** POST /v1/keys/{id}/sign's body: the message, base64url, up to 16 KiB. */
export const SignBody = Type.Object(
  {
    message: Type.String({
      pattern: base64urlPattern(16 * 1024, true),
      minLength: 2,
      maxLength: base64urlLength(16 * 1024),
      description: "The message to sign (e.g. a transaction's sighash), unpadded base64url.",
    }),
  },
  strict,
);

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
    holders: Type.Optional(
      Type.Array(Type.String(), {
        description:
          "A multisig set split among holders: their names, key i's holder at i; shown to its holders only.",
      }),
    ),
  },
  strict,
);

export const KeyDelivery = Type.Object(
  { requestId: Type.String(), recordId: RecordId, envelope: EnvelopeSchema },
  strict,
);

/**
 * The most ciphertext an opening's delivery carries (PROTOCOL §15.6): a record opening of a round
 * of 256 contributors is about 250 KiB, over the 64 KiB of other deliveries.
 */
export const MAX_OPENING_CT_BYTES = 512 * 1024;

/** POST /v1/keys/{id}/opening's answer: a KeyDelivery whose envelope may be larger. */
export const OpeningDelivery = Type.Object(
  {
    requestId: Type.String(),
    recordId: RecordId,
    envelope: Type.Object(
      {
        ...EnvelopeSchema.properties,
        ct: Type.String({
          pattern: base64urlPattern(MAX_OPENING_CT_BYTES, true),
          minLength: 2,
          maxLength: base64urlLength(MAX_OPENING_CT_BYTES),
        }),
      },
      strict,
    ),
  },
  strict,
);

export const Health = Type.Object({ status: Type.Literal("ok") }, strict);
export const Readiness = Type.Object(
  {
    status: Type.Union([Type.Literal("ready"), Type.Literal("degraded")]),
    store: Type.String(),
    /** With a PostgreSQL store: whether its database answered this check. */
    database: Type.Optional(Type.Union([Type.Literal("reachable"), Type.Literal("unreachable")])),
    /** On a distributor the target is 0: the key generation server keeps the pool filled. */
    otpPool: Type.Object({ available: Type.Integer(), target: Type.Integer() }, strict),
    /** Contributors connected to the key generation server; absent on a distributor. */
    contributors: Type.Optional(Type.Integer()),
    problem: Type.Optional(Type.String()),
  },
  strict,
);

// ---- The transparency log (PROTOCOL §15.3) -------------------------------------------------

/**
 * A query parameter holding a tree size or leaf index: decimal, no sign, no leading zero ("0"
 * itself allowed), at most 16 digits; the route refuses values over 2^53 − 1.
 */
const Decimal = (description: string) =>
  Type.String({ pattern: "^(?:0|[1-9][0-9]{0,15})$", maxLength: 16, description });
/** Standard base64 with padding (RFC 4648 §4) of any bytes. */
const Base64 = Type.String({
  pattern: "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
});
/** A 32-byte SHA-256 hash, standard base64 with padding. */
const Hash = Type.String({ pattern: "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$" });
const B64url = (bytes: number, upTo = false) =>
  Type.String({ pattern: base64urlPattern(bytes, upTo) });

export const LogEntriesQuery = Type.Object({
  start: Decimal("The first index to read."),
  end: Decimal(
    "One past the last index wanted (≥ start); the answer stops earlier at the log's size or after 1000 entries.",
  ),
});
export const InclusionProofQuery = Type.Object({
  index: Type.Optional(Decimal("The leaf's index (exactly one of index and roundId).")),
  roundId: Type.Optional(
    Type.String({
      ...RoundIdSchema,
      description: "The round whose entry to prove (exactly one of index and roundId).",
    }),
  ),
  size: Type.Optional(Decimal("The tree size to prove it in (default: the log's current size).")),
});
export const ConsistencyProofQuery = Type.Object({
  from: Decimal("The earlier tree size, at least 1."),
  to: Type.Optional(Decimal("The later tree size (default: the log's current size).")),
});

export const LogText = Type.String();

export const LogIdentityAnswer = Type.Object(
  {
    origin: Type.String({ description: "The log's origin: its checkpoints' first line." }),
    verifierKey: Type.String({ description: "The log's Ed25519 verifier key (signed-note vkey)." }),
    serverKey: Type.String({ description: "The server's RSA key: SPKI DER, base64url." }),
    serverFingerprint: FingerprintSchema,
    signature: Type.String({
      description:
        'RSASSA-PSS by the server key over LP("dkeygen/v1/log-identity", V, serverFingerprint, origin, verifierKey), base64url.',
    }),
  },
  strict,
);

/** A round's entry as the log holds it (PROTOCOL §15.1), parsed from its leaf. */
const EntryCommitSchema = Type.Object(
  {
    contributorId: FingerprintSchema,
    identity: B64url(32),
    commitment: B64url(32),
    signature: B64url(64),
    reveal: Type.Optional(B64url(64)),
  },
  strict,
);
export const RoundEntrySchema = Type.Object(
  {
    type: Type.Literal(ENTRY_TYPE),
    protocol: Type.Integer(),
    server: FingerprintSchema,
    roundId: RoundIdSchema,
    purpose: Type.String(),
    paramsHash: B64url(32),
    seed: B64url(32),
    serverCommitment: B64url(32),
    roundKey: B64url(32),
    commitDeadline: Time,
    revealDeadline: Time,
    invited: Type.Array(FingerprintSchema),
    openSignature: B64url(1024, true),
    commits: Type.Array(EntryCommitSchema),
    setSignature: B64url(64),
    outcome: Type.Union([
      Type.Literal("completed"),
      Type.Literal("aborted"),
      Type.Literal("failed"),
    ]),
    accepted: Type.Integer(),
    missing: Type.Optional(Type.Array(FingerprintSchema)),
    closedSignature: B64url(64),
    results: Type.Optional(Type.Object({ count: Type.Integer(), hash: B64url(32) }, strict)),
    closedAt: Time,
  },
  strict,
);
// The schema serializes the answer (a field it lacks would be dropped): it must be RoundEntry's.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const entrySchemaIsRoundEntry: Same<Static<typeof RoundEntrySchema>, RoundEntry> = true;
void entrySchemaIsRoundEntry;

/** A threshold-key session's entry (DKG or refresh, PROTOCOL §15.1, §16), parsed from its leaf. */
export const DkgEntrySchema = Type.Object(
  {
    type: Type.Literal(DKG_ENTRY_TYPE),
    protocol: Type.Integer(),
    server: FingerprintSchema,
    roundId: RoundIdSchema,
    session: Type.Union([Type.Literal("keygen"), Type.Literal("refresh")]),
    sessionId: B64url(32),
    suite: Type.Union(ENTRY_SUITES.map((s) => Type.Literal(s))),
    t: Type.Integer(),
    n: Type.Integer(),
    nonce: B64url(32),
    holders: Type.Array(
      Type.Object({ contributorId: FingerprintSchema, identity: B64url(32) }, strict),
    ),
    keyId: Type.Optional(RecordId),
    previous: Type.Optional(B64url(32)),
    dealers: Type.Optional(Type.Array(Type.Integer())),
    outcome: Type.Union([Type.Literal("completed"), Type.Literal("aborted")]),
    transcript: Type.Optional(B64url(32)),
    publicHash: Type.Optional(B64url(32)),
    certificate: Type.Optional(Type.Array(B64url(64))),
    fault: Type.Optional(Type.Union(ENTRY_FAULTS.map((f) => Type.Literal(f)))),
    culprit: Type.Optional(FingerprintSchema),
    closedAt: Time,
  },
  strict,
);
const entrySchemaIsDkgEntry: Same<Static<typeof DkgEntrySchema>, DkgEntry> = true;
void entrySchemaIsDkgEntry;

export const LogEntries = Type.Object(
  {
    size: Type.Integer({ description: "The log's size now (its latest checkpoint's)." }),
    entries: Type.Array(
      Type.Object(
        {
          index: Type.Integer(),
          leaf: Type.String({
            ...Base64,
            description: "The leaf's exact bytes, standard base64 with padding.",
          }),
          entry: Type.Union([RoundEntrySchema, DkgEntrySchema], {
            description: "The parsed entry: a round's, or a threshold-key session's (by `type`).",
          }),
        },
        strict,
      ),
    ),
  },
  strict,
);

export const InclusionProofAnswer = Type.Object(
  {
    index: Type.Integer(),
    size: Type.Integer(),
    leafHash: Type.String({ ...Hash, description: "SHA-256(0x00 ‖ leaf), base64." }),
    proof: Type.Array(Hash, { description: "RFC 9162 §2.1.3.1 PATH, leaf side first." }),
  },
  strict,
);

export const ConsistencyProofAnswer = Type.Object(
  {
    from: Type.Integer(),
    to: Type.Integer(),
    proof: Type.Array(Hash, { description: "RFC 9162 §2.1.4.1 SUBPROOF; empty when from = to." }),
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
export type LogEntriesQuery = Static<typeof LogEntriesQuery>;
export type InclusionProofQuery = Static<typeof InclusionProofQuery>;
export type ConsistencyProofQuery = Static<typeof ConsistencyProofQuery>;
export type SignBody = Static<typeof SignBody>;
