/**
 * The wire messages between the key generation server and its peers (contributors and admin
 * clients), schema first. Every message is a JSON object with `type` and `v`; unknown fields are
 * rejected; binary fields are unpadded base64url with exact or bounded lengths. `decodeMessage`
 * checks a frame's size before parsing it and validates it against its type's schema, so code past
 * the edge only ever sees well-formed messages. docs/PROTOCOL.md §"Messages" mirrors this file.
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { type TypeCheck, TypeCompiler } from "@sinclair/typebox/compiler";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { printableShort } from "../printable.js";
import * as Threshold from "./threshold-messages.js";
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from "./version.js";
import {
  Bytes,
  BytesUpTo,
  FingerprintSchema,
  IsoTime,
  message,
  Name,
  Purpose,
  RequestId,
  RoundIdSchema,
  ServerSignature,
  strict,
} from "./wire-types.js";

export { FingerprintSchema, RoundIdSchema } from "./wire-types.js";

export const EnvelopeSchema = Type.Object(
  {
    alg: Type.Literal("RSA-OAEP-256/A256GCM"),
    ek: BytesUpTo(1024),
    iv: Bytes(12),
    ct: BytesUpTo(4096),
    tag: Bytes(16),
  },
  strict,
);

/**
 * A delivery to a requesting client: the envelope plus the id of its (reused) delivery key and
 * that key's MAC under the requester's response key (answer-auth.ts deliveryKeyMac).
 */
export const DeliveryEnvelopeSchema = Type.Object(
  {
    alg: Type.Literal("RSA-OAEP-256/A256GCM"),
    kid: Bytes(16),
    ek: BytesUpTo(1024),
    km: Bytes(32),
    iv: Bytes(12),
    ct: BytesUpTo(65536),
    tag: Bytes(16),
  },
  strict,
);

/** Most holders one multisig set has: its most keys (derive/multisig.ts MAX_MULTISIG_KEYS). */
export const MAX_HOLDERS = 15;

const PublicRecord = Type.Object(
  {
    id: Type.String({ pattern: "^[0-9A-HJKMNP-TV-Z]{26}$" }),
    purpose: Purpose,
    createdAt: IsoTime,
    roundId: RoundIdSchema,
    participants: Type.Array(FingerprintSchema, { maxItems: 4096 }),
    algorithm: Type.String({ maxLength: 64 }),
    public: Type.Record(Type.String(), Type.Unknown()),
    /**
     * Who may fetch the secret part, as stored: a requesting client's registration id (`rq:` and
     * 22 base64url characters; a registration from before ids existed: its name), or "@admin" for
     * what an admin generated without --for.
     */
    owner: Type.Optional(
      Type.String({
        pattern: "^(?:@admin|rq:[A-Za-z0-9_-]{22}|[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$",
      }),
    ),
    /**
     * A split record's holders, as stored (registration ids, as `owner`): holder i is entitled
     * to key i of a multisig set and to nothing else (PROTOCOL §13.9).
     */
    holders: Type.Optional(
      Type.Array(
        Type.String({ pattern: "^(?:rq:[A-Za-z0-9_-]{22}|[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$" }),
        {
          minItems: 1,
          maxItems: MAX_HOLDERS,
        },
      ),
    ),
  },
  strict,
);

// ---- server → peer ---------------------------------------------------------------------------

export const Hello = message("hello", {
  server: Type.Object(
    { publicKey: BytesUpTo(2048), fingerprint: FingerprintSchema, keyType: Type.Literal("rsa") },
    strict,
  ),
  challenge: Bytes(32),
  heartbeatMs: Type.Integer({ minimum: 1000, maximum: 600_000 }),
});

export const Welcome = message("welcome", {
  contributorId: FingerprintSchema,
  name: Type.Optional(Name),
  enrolled: Type.Boolean(),
  /** The server's signature over the handshake (signed-data.ts welcomeProofData). */
  proof: ServerSignature,
});

/** Most contributors one round may invite: its commit set must fit one frame (MAX_FRAME_BYTES). */
export const MAX_INVITED = 256;

export const RoundOpen = message("round.open", {
  roundId: RoundIdSchema,
  purpose: Purpose,
  /** SHA-256 of the purpose's parameters (signed-data.ts paramsHash). */
  paramsHash: Bytes(32),
  seed: Bytes(32),
  /** SHA-256 commitment to the server's own secret for this round (signed-data.ts). */
  serverCommitment: Bytes(32),
  /**
   * The round's own Ed25519 public key, fresh for this round: the server signs the round's commit
   * set, receipts and closing with it (a microsecond-cheap signature per reveal instead of an RSA
   * one); this round.open, signed by the server's RSA key, is what makes them the server's.
   */
  roundKey: Bytes(32),
  /** No commitment is accepted after this instant, no reveal after `revealDeadline`. */
  commitDeadline: IsoTime,
  revealDeadline: IsoTime,
  /** Every contributor invited, in the order the server chose (each at most once). */
  invited: Type.Array(FingerprintSchema, { minItems: 1, maxItems: MAX_INVITED }),
  /** The server's signature over all of the above (signed-data.ts roundOpenSignedData). */
  signature: ServerSignature,
});

/** One accepted commitment of a commit set. */
const CommitEntry = Type.Object(
  { contributorId: FingerprintSchema, commitment: Bytes(32) },
  strict,
);

/**
 * The commitments the server accepted, sorted by contributor id, sent at the end of the commit
 * phase; every listed contributor countersigns the set's hash in its reveal.
 */
export const RoundCommits = message("round.commits", {
  roundId: RoundIdSchema,
  commits: Type.Array(CommitEntry, { minItems: 1, maxItems: MAX_INVITED }),
  /** Ed25519 by the round key over the set's hash (signed-data.ts commitSetSignedData). */
  signature: Bytes(64),
});

/** The server's signed receipt of a reveal that matched its commitment. */
export const RoundReceipt = message("round.receipt", {
  roundId: RoundIdSchema,
  contributorId: FingerprintSchema,
  setHash: Bytes(32),
  commitment: Bytes(32),
  /** Ed25519 by the round key (signed-data.ts revealReceiptSignedData). */
  signature: Bytes(64),
});

export const RoundClosed = message("round.closed", {
  roundId: RoundIdSchema,
  outcome: Type.Union([Type.Literal("completed"), Type.Literal("failed"), Type.Literal("aborted")]),
  /** How many contributions the result used (completed), or were revealed (aborted). */
  accepted: Type.Integer({ minimum: 0, maximum: MAX_INVITED }),
  /** Aborted: the committed contributors that did not reveal a valid contribution in time. */
  missing: Type.Optional(Type.Array(FingerprintSchema, { minItems: 1, maxItems: MAX_INVITED })),
  reason: Type.Optional(Type.String({ maxLength: 512 })),
  /** The hash of the commit set the round went on with (absent when it failed before one). */
  setHash: Type.Optional(Bytes(32)),
  /** Ed25519 by the round key over the outcome (signed-data.ts roundClosedSignedData). */
  signature: Bytes(64),
});

export const ErrorMessage = message("error", {
  code: Type.String({ pattern: "^E_[A-Z_]{1,40}$" }),
  message: Type.String({ maxLength: 1024 }),
  roundId: Type.Optional(RoundIdSchema),
  requestId: Type.Optional(RequestId),
  fatal: Type.Boolean(),
});

export const AdminReady = message("admin.ready", {
  /** The server's signature over the admin handshake (signed-data.ts adminReadyProofData). */
  proof: ServerSignature,
});

/**
 * Every admin message after admin.ready, in either direction: the inner message's JSON as sent
 * (`body`), its sequence number in its direction (0, 1, 2, …) and an HMAC-SHA-256 over both under
 * that direction's session key (admin-channel.ts). The body is decoded only once the MAC checks.
 */
export const AdminFrame = message("admin.frame", {
  seq: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  body: Type.String({ minLength: 2, maxLength: MAX_FRAME_BYTES }),
  mac: Bytes(32),
});

export const AdminRoundResult = message("admin.round", {
  requestId: RequestId,
  record: PublicRecord,
  /** The record's secret part, sealed to the `revealTo` key of the request (only if it had one). */
  secret: Type.Optional(EnvelopeSchema),
});

export const AdminStatusResult = message("admin.status.result", {
  requestId: RequestId,
  contributors: Type.Array(
    Type.Object({ id: FingerprintSchema, name: Type.Optional(Name) }, strict),
    { maxItems: 100_000 },
  ),
  enrolled: Type.Integer({ minimum: 0 }),
  roundsRunning: Type.Integer({ minimum: 0 }),
  /** The key store: its kind and, for the key_store file, its durable chain head. */
  store: Type.Object(
    {
      kind: Type.String({ pattern: "^[a-z]{1,16}$" }),
      lines: Type.Optional(Type.Integer({ minimum: 0 })),
      head: Type.Optional(Type.String({ pattern: "^[0-9a-f]{64}$" })),
    },
    strict,
  ),
});

export const AdminExportResult = message("admin.export.result", {
  requestId: RequestId,
  record: PublicRecord,
  /**
   * The record's derivation export (server/derivation-export.ts, UTF-8 JSON) sealed to the
   * request's `revealTo` key, with the associated data of signed-data.ts exportAad.
   */
  secret: EnvelopeSchema,
});

export const AdminOpeningResult = message("admin.opening.result", {
  requestId: RequestId,
  record: PublicRecord,
  /**
   * The record's opening (server/round-opening.ts RecordOpening, UTF-8 JSON, PROTOCOL §15.6)
   * sealed to the request's `revealTo` key, with the associated data of signed-data.ts openingAad.
   */
  opening: EnvelopeSchema,
});

/** The largest log entry (its leaf bytes), as the key store takes (store/types.ts). */
const MAX_LOG_LEAF_BYTES = 1024 * 1024;
/** Most round entries (with their inclusion proofs) one `log.checkpoint` carries. */
export const MAX_CHECKPOINT_ROUNDS = 16;
/** Longest checkpoint note a `log.checkpoint` carries (characters; checkpoints are ASCII). */
export const MAX_CHECKPOINT_NOTE = 16 * 1024;
/** A Merkle tree size or leaf index (PROTOCOL §14.1: 0 to 2^53 - 1). */
const TreeSize = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/**
 * The log's newest checkpoint, for a contributor to witness (PROTOCOL §15.5): a consistency proof
 * from the size the server believes it last cosigned, and the entries of its own rounds with their
 * inclusion proofs in this checkpoint's tree.
 */
export const LogCheckpoint = message("log.checkpoint", {
  /** The signed note (C2SP checkpoint), with whatever cosignatures it has. */
  checkpoint: Type.String({ minLength: 1, maxLength: MAX_CHECKPOINT_NOTE }),
  /** The size this witness last cosigned, as the server believes (0: none, or not known). */
  old: TreeSize,
  /** The consistency proof from `old` to the checkpoint's size (empty when old is 0 or equal). */
  consistency: Type.Array(Bytes(32), { maxItems: 128 }),
  rounds: Type.Array(
    Type.Object(
      {
        roundId: RoundIdSchema,
        index: TreeSize,
        /** The entry's exact leaf bytes (PROTOCOL §15.1). */
        leaf: BytesUpTo(MAX_LOG_LEAF_BYTES),
        /** Its inclusion proof in the checkpoint's tree. */
        proof: Type.Array(Bytes(32), { maxItems: 64 }),
      },
      strict,
    ),
    { maxItems: MAX_CHECKPOINT_ROUNDS },
  ),
  /** The log's key, certified by the server key (PROTOCOL §15.2). */
  identity: Type.Optional(
    Type.Object(
      {
        origin: Type.String({ minLength: 1, maxLength: 256 }),
        verifierKey: Type.String({ minLength: 1, maxLength: 512 }),
        signature: ServerSignature,
      },
      strict,
    ),
  ),
});

// ---- peer → server ---------------------------------------------------------------------------

export const Join = message("join", {
  identity: Bytes(32),
  token: Type.Optional(Type.String({ pattern: "^dkt_[A-Za-z0-9_-]{8,32}\\.[A-Za-z0-9_-]{43}$" })),
  name: Type.Optional(Name),
  /** Fresh from the contributor: the server's proof in `welcome` covers it. */
  clientChallenge: Bytes(32),
  signature: Bytes(64),
});

/** Commit phase: a hash of the envelope the contributor will reveal, signed; nothing else. */
export const Commit = message("commit", {
  roundId: RoundIdSchema,
  contributorId: FingerprintSchema,
  commitment: Bytes(32),
  signature: Bytes(64),
});

/**
 * Reveal phase: the committed envelope, signed together with the hash of the commit set the
 * contributor was shown (its countersignature of that set).
 */
export const Reveal = message("reveal", {
  roundId: RoundIdSchema,
  contributorId: FingerprintSchema,
  setHash: Bytes(32),
  envelope: EnvelopeSchema,
  signature: Bytes(64),
});

/** A witness's cosignature of the checkpoint of `size` it was sent (PROTOCOL §14.4, §15.5). */
export const LogCosign = message("log.cosign", {
  size: TreeSize,
  /** The 4-byte key ID and the 72-byte cosignature/v1 signature (timestamp ‖ Ed25519). */
  cosignature: Bytes(76),
});

/** The witness last cosigned another size than `old`: resend with a proof from `size`. */
export const LogConflict = message("log.conflict", { size: TreeSize });

export const AdminAuth = message("admin.auth", {
  /** Fresh from the admin client: the server's proof in `admin.ready` covers it. */
  clientChallenge: Bytes(32),
  proof: Bytes(32),
});

export const AdminGenerate = message("admin.generate", {
  requestId: RequestId,
  purpose: Purpose,
  params: Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 32 }),
  owner: Type.Optional(Name),
  /**
   * A multisig set split among registered requesters: key i for `holders[i]` alone, no owner and
   * no `revealTo` (PROTOCOL §4, §13.9).
   */
  holders: Type.Optional(Type.Array(Name, { minItems: 1, maxItems: MAX_HOLDERS })),
  /** SPKI DER of a one-off RSA key (≥ 3072 bits): seal the secret part to it in the reply. */
  revealTo: Type.Optional(BytesUpTo(2048)),
});

export const AdminStatus = message("admin.status", { requestId: RequestId });

/** Export record `recordId`'s derivation secret, sealed to `revealTo` (a one-off RSA key). */
export const AdminExport = message("admin.export", {
  requestId: RequestId,
  recordId: Type.String({ pattern: "^[0-9A-HJKMNP-TV-Z]{26}$" }),
  /** SPKI DER of a one-off RSA key (≥ 3072 bits, e = 65537): the export is sealed to it. */
  revealTo: BytesUpTo(2048),
});

/** Record `recordId`'s opening (§15.6), sealed to `revealTo`: only for a record of the admin's. */
export const AdminOpening = message("admin.opening", {
  requestId: RequestId,
  recordId: Type.String({ pattern: "^[0-9A-HJKMNP-TV-Z]{26}$" }),
  /** SPKI DER of a one-off RSA key (≥ 3072 bits, e = 65537): the opening is sealed to it. */
  revealTo: BytesUpTo(2048),
});

export const SCHEMAS = {
  hello: Hello,
  welcome: Welcome,
  "round.open": RoundOpen,
  "round.commits": RoundCommits,
  "round.receipt": RoundReceipt,
  "round.closed": RoundClosed,
  error: ErrorMessage,
  "log.checkpoint": LogCheckpoint,
  "admin.ready": AdminReady,
  "admin.round": AdminRoundResult,
  "admin.status.result": AdminStatusResult,
  "admin.export.result": AdminExportResult,
  "admin.opening.result": AdminOpeningResult,
  join: Join,
  commit: Commit,
  reveal: Reveal,
  "log.cosign": LogCosign,
  "log.conflict": LogConflict,
  "admin.auth": AdminAuth,
  "admin.generate": AdminGenerate,
  "admin.status": AdminStatus,
  "admin.export": AdminExport,
  "admin.opening": AdminOpening,
  "admin.frame": AdminFrame,
  "dkg.open": Threshold.DkgOpen,
  "dkg.round1s": Threshold.DkgRound1s,
  "dkg.shares": Threshold.DkgShares,
  "dkg.certificate": Threshold.DkgCertificate,
  "dkg.aborted": Threshold.DkgAborted,
  "dkg.round1": Threshold.DkgRound1,
  "dkg.round2": Threshold.DkgRound2,
  "dkg.confirm": Threshold.DkgConfirm,
  "dkg.stored": Threshold.DkgStored,
  "dkg.fault": Threshold.DkgFaultMessage,
  "admin.threshold.keygen": Threshold.AdminThresholdKeygen,
  "admin.threshold.key": Threshold.AdminThresholdKey,
  "sign.request": Threshold.SignRequest,
  "sign.package": Threshold.SignPackage,
  "sign.commit": Threshold.SignCommit,
  "sign.share": Threshold.SignShare,
  "sign.refuse": Threshold.SignRefuse,
  "admin.threshold.sign": Threshold.AdminThresholdSign,
  "admin.threshold.refresh": Threshold.AdminThresholdRefresh,
  "refresh.open": Threshold.RefreshOpen,
  "refresh.deals": Threshold.RefreshDeals,
  "refresh.deal": Threshold.RefreshDeal,
  "admin.threshold.signature": Threshold.AdminThresholdSignature,
  "dkg.recovery": Threshold.DkgRecovery,
  "dkg.recovered": Threshold.DkgRecovered,
  "admin.threshold.recover": Threshold.AdminThresholdRecover,
  "admin.threshold.recovery": Threshold.AdminThresholdRecovery,
} as const;

export type MessageType = keyof typeof SCHEMAS;
export type MessageOf<T extends MessageType> = Static<(typeof SCHEMAS)[T]>;
export type AnyMessage = { [T in MessageType]: MessageOf<T> }[MessageType];
export type PublicRecordWire = Static<typeof PublicRecord>;
export type EnvelopeWire = Static<typeof EnvelopeSchema>;
export type DeliveryEnvelopeWire = Static<typeof DeliveryEnvelopeSchema>;

const CHECKERS = Object.fromEntries(
  Object.entries(SCHEMAS).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]),
) as { [T in MessageType]: TypeCheck<(typeof SCHEMAS)[T]> };

function malformed(message: string): DkeygenError {
  return new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, message);
}

/**
 * Decodes one frame. Throws FRAME_TOO_LARGE before parsing anything if the frame is over the
 * limit (MAX_FRAME_BYTES, what a peer may send the server; a contributor reading the server's
 * frames passes MAX_SERVER_FRAME_BYTES), MALFORMED_MESSAGE for anything that is not a valid
 * message, VERSION_MISMATCH for a valid frame of another protocol version. The error text names
 * the offending field, never its value.
 */
export function decodeMessage(
  frame: string | Uint8Array,
  maxBytes: number = MAX_FRAME_BYTES,
): AnyMessage {
  const size = typeof frame === "string" ? Buffer.byteLength(frame, "utf8") : frame.byteLength;
  if (size > maxBytes) {
    throw new DkeygenError(
      ErrorCodes.FRAME_TOO_LARGE,
      `The frame is ${size} bytes; the limit is ${maxBytes}.`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof frame === "string" ? frame : Buffer.from(frame).toString("utf8"));
  } catch {
    throw malformed("The frame is not valid JSON.");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw malformed("A message must be a JSON object.");
  }
  const { type, v } = value as { type?: unknown; v?: unknown };
  if (typeof type !== "string" || !Object.hasOwn(CHECKERS, type)) {
    throw malformed("The message has no known `type`.");
  }
  if (!Number.isInteger(v)) throw malformed("The message has no integer `v`.");
  if (v !== PROTOCOL_VERSION) {
    throw new DkeygenError(
      ErrorCodes.VERSION_MISMATCH,
      `This peer speaks protocol version ${PROTOCOL_VERSION}; the message is not of that version.`,
    );
  }
  const checker = CHECKERS[type as MessageType];
  if (!checker.Check(value)) {
    const first = checker.Errors(value).First();
    // The path can hold a field name the peer chose: escaped and cut short before it is shown.
    const where = first?.path ? `field ${printableShort(first.path)}` : "the message";
    throw malformed(`Invalid ${type} message: ${where} ${first?.message ?? "is invalid"}.`);
  }
  return value as AnyMessage;
}

/** Encodes a message for the wire. Messages are built by our own code, so this only serializes. */
export function encodeMessage(msg: AnyMessage): string {
  return JSON.stringify(msg);
}

export function isMessage<T extends MessageType>(msg: AnyMessage, type: T): msg is MessageOf<T> {
  return msg.type === type;
}
