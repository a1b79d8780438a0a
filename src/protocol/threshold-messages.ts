/**
 * The wire messages of threshold key generation (docs/PROTOCOL.md §16): the server coordinates a
 * DKG among n contributors and relays only what they sign — round-1 packages, sealed round-2
 * shares, confirmations. Field encodings follow messages.ts (canonical unpadded base64url).
 *
 *   server → contributor     dkg.open, dkg.round1s, dkg.shares, dkg.certificate, dkg.aborted
 *                            sign.request, sign.package, refresh.open, refresh.deals,
 *                            dkg.recovery
 *   contributor → server     dkg.round1, dkg.round2, dkg.confirm, dkg.stored, dkg.fault
 *                            sign.commit, sign.share, sign.refuse, refresh.deal, dkg.recovered
 *   admin ⇄ server           admin.threshold.keygen → admin.threshold.key,
 *                            admin.threshold.sign → admin.threshold.signature,
 *                            admin.threshold.refresh → admin.threshold.key,
 *                            admin.threshold.recover → admin.threshold.recovery (in admin frames)
 */
import { Type } from "@sinclair/typebox";
import {
  Bytes,
  BytesUpTo,
  FingerprintSchema,
  IsoTime,
  message,
  Name,
  RequestId,
  ServerSignature,
  strict,
} from "./wire-types.js";

/** Most holders of one threshold key (threshold/suites.ts MAX_HOLDERS). */
export const MAX_DKG_PARTICIPANTS = 64;

const SessionId = Bytes(32);
const Suite = Type.Union([
  Type.Literal("secp256k1-tr"),
  Type.Literal("ed25519"),
  Type.Literal("p256"),
]);
const Index = Type.Integer({ minimum: 1, maximum: MAX_DKG_PARTICIPANTS });
const Count = Type.Integer({ minimum: 2, maximum: MAX_DKG_PARTICIPANTS });
const RecordId = Type.String({ pattern: "^[0-9A-HJKMNP-TV-Z]{26}$" });
/** A record owner as stored: "@admin", a registration id, or a legacy requester name. */
const Owner = Type.String({
  pattern: "^(?:@admin|rq:[A-Za-z0-9_-]{22}|[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$",
});
/** The largest message a threshold key signs through the server (bytes). */
export const MAX_SIGN_MESSAGE_BYTES = 16 * 1024;
/**
 * A message to sign, canonical base64url of 0 to MAX_SIGN_MESSAGE_BYTES bytes: the admin may sign
 * an empty message (FROST and the suites' verifiers take one), as it always could.
 */
const SignMessage = BytesUpTo(MAX_SIGN_MESSAGE_BYTES, 0);
const SignId = Bytes(16);
/** A serialized group element: 32 bytes (Ed25519) or 33 (compressed secp256k1, P-256). */
const Point = Type.Union([Bytes(32), Bytes(33)]);

/** A participant's round-1 package, signed by its identity key (threshold/transcript.ts). */
export const Round1Wire = Type.Object(
  {
    index: Index,
    commitment: Type.Array(Point, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
    /** noble's proof of knowledge: 64 bytes (secp256k1-tr, Ed25519) or 65 (P-256). */
    proof: Type.Union([Bytes(64), Bytes(65)]),
    encryptionKey: Bytes(32),
    ephemeralKey: Bytes(32),
    signature: Bytes(64),
  },
  strict,
);

/** One round-2 share sealed to its recipient (AES-256-GCM: 32-byte scalar + 16-byte tag). */
export const SealedShareWire = Type.Object(
  { from: Index, to: Index, ciphertext: Bytes(48), signature: Bytes(64) },
  strict,
);

// ---- server → contributor --------------------------------------------------------------------

/** An invitation to a DKG session, signed by the server's RSA key (signed-data.ts dkgOpenSignedData). */
export const DkgOpen = message("dkg.open", {
  sessionId: SessionId,
  suite: Suite,
  t: Count,
  n: Count,
  nonce: Bytes(32),
  /** The participants' Ed25519 identity keys, in session order (index i at position i - 1). */
  participants: Type.Array(Bytes(32), { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
  /** Every phase of the session ends by this instant. */
  deadline: IsoTime,
  /** Who owns the key: a requester's registration id, or "@admin"; only its requests are signed. */
  owner: Owner,
  signature: ServerSignature,
});

/** All n round-1 packages, as the server received them. */
export const DkgRound1s = message("dkg.round1s", {
  sessionId: SessionId,
  packages: Type.Array(Round1Wire, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
});

/** The n - 1 shares sealed to this participant. */
export const DkgShares = message("dkg.shares", {
  sessionId: SessionId,
  shares: Type.Array(SealedShareWire, { minItems: 1, maxItems: MAX_DKG_PARTICIPANTS - 1 }),
});

/** The success certificate: every participant's confirmation, in index order. */
export const DkgCertificate = message("dkg.certificate", {
  sessionId: SessionId,
  /** The id of the server's record of the key (its public part; no share). */
  keyId: RecordId,
  certificate: Type.Array(Bytes(64), { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
});

/** The session is over without a key: whom the server blames, and why. */
export const DkgAborted = message("dkg.aborted", {
  sessionId: SessionId,
  /** A participant's contributor id, "coordinator", or absent (nobody can be blamed: a timeout). */
  culprit: Type.Optional(Type.Union([FingerprintSchema, Type.Literal("coordinator")])),
  kind: Type.String({ pattern: "^[a-z][a-z-]{0,31}$" }),
  reason: Type.String({ maxLength: 512 }),
});

/**
 * A signing request for one attempt of a FROST signing session, signed by the server's RSA key
 * (signed-data.ts signRequestSignedData): the key, the message, who asks, and the t signers.
 */
export const SignRequest = message("sign.request", {
  signId: SignId,
  keyId: RecordId,
  /** The message to sign: 0 to MAX_SIGN_MESSAGE_BYTES bytes (as admin.threshold.sign's). */
  message: SignMessage,
  requester: Owner,
  signers: Type.Array(Index, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
  deadline: IsoTime,
  signature: ServerSignature,
});

/** Every chosen signer's nonce commitments (RFC 9591 §5.1), in index order. */
export const SignPackage = message("sign.package", {
  signId: SignId,
  commitments: Type.Array(Type.Object({ index: Index, hiding: Point, binding: Point }, strict), {
    minItems: 2,
    maxItems: MAX_DKG_PARTICIPANTS,
  }),
});

/** An invitation to refresh a key's shares, signed by the server (signed-data.ts refreshOpenSignedData). */
export const RefreshOpen = message("refresh.open", {
  sessionId: SessionId,
  keyId: RecordId,
  suite: Suite,
  t: Count,
  n: Count,
  nonce: Bytes(32),
  /** The t holders that deal, ascending indices. */
  dealers: Type.Array(Index, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
  /** The holders' identity keys, index order (as at keygen). */
  participants: Type.Array(Bytes(32), { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
  /** The hash of the key's current public package (threshold/transcript.ts publicPackageHash). */
  publicHash: Bytes(32),
  deadline: IsoTime,
  signature: ServerSignature,
});

/** A dealer's signed commitment to its fresh sharing (threshold/refresh.ts). */
export const DealWire = Type.Object(
  {
    index: Index,
    commitment: Type.Array(Point, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
    ephemeralKey: Bytes(32),
    signature: Bytes(64),
  },
  strict,
);

/** The t deals, and the t sub-shares sealed to this holder. */
export const RefreshDeals = message("refresh.deals", {
  sessionId: SessionId,
  deals: Type.Array(DealWire, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
  shares: Type.Array(SealedShareWire, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
});

/** A threshold key's public package: the group commitment and every verifying share. */
const PublicPackageWire = Type.Object(
  {
    commitments: Type.Array(Point, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
    verifyingShares: Type.Array(Point, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
  },
  strict,
);

/**
 * A key's public recovery data for one holder (PROTOCOL §16.8), signed by the server
 * (signed-data.ts recoverySignedData): the DKG's parameters, every round-1 package, the shares
 * sealed to this holder and the certificate, and for a refreshed key its last refresh. The holder
 * checks it all itself and rebuilds its share with its identity key when it has lost it.
 */
export const DkgRecovery = message("dkg.recovery", {
  recoveryId: Bytes(16),
  keyId: RecordId,
  /** The recipient's index among the key's holders. */
  index: Index,
  owner: Owner,
  /** The key record's creation time (the share file's createdAt). */
  createdAt: IsoTime,
  deadline: IsoTime,
  dkg: Type.Object(
    {
      params: Type.Object(
        {
          suite: Suite,
          t: Count,
          n: Count,
          serverFingerprint: FingerprintSchema,
          nonce: Bytes(32),
          identities: Type.Array(Bytes(32), { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
        },
        strict,
      ),
      packages: Type.Array(Round1Wire, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
      /** The n - 1 round-2 shares sealed to the recipient. */
      shares: Type.Array(SealedShareWire, { minItems: 1, maxItems: MAX_DKG_PARTICIPANTS - 1 }),
      certificate: Type.Array(Bytes(64), { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
    },
    strict,
  ),
  /** A refreshed key's last refresh: what the recipient's current share was made from. */
  refresh: Type.Optional(
    Type.Object(
      {
        /** The key that refresh refreshed (its `keyId` in the refresh session id). */
        refreshOf: RecordId,
        nonce: Bytes(32),
        /** The hash of the refreshed key's public package (threshold/transcript.ts). */
        publicHash: Bytes(32),
        dealers: Type.Array(Index, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
        deals: Type.Array(DealWire, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
        /** The t sub-shares sealed to the recipient, dealer order. */
        shares: Type.Array(SealedShareWire, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
        /** The key's public package after that refresh (as certified). */
        public: PublicPackageWire,
        certificate: Type.Array(Bytes(64), { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
      },
      strict,
    ),
  ),
  signature: ServerSignature,
});

// ---- contributor → server --------------------------------------------------------------------

export const DkgRound1 = message("dkg.round1", { sessionId: SessionId, package: Round1Wire });

/** The sender's n - 1 sealed shares, each signed. */
export const DkgRound2 = message("dkg.round2", {
  sessionId: SessionId,
  shares: Type.Array(SealedShareWire, { minItems: 1, maxItems: MAX_DKG_PARTICIPANTS - 1 }),
});

/**
 * The sender's part of the certificate: Ed25519 over its transcript hash and the hash of the
 * public key package it derived (threshold/transcript.ts confirmSignedData), and that package.
 */
export const DkgConfirm = message("dkg.confirm", {
  sessionId: SessionId,
  transcript: Bytes(32),
  public: Type.Object(
    {
      /** The group commitment, t points; the first is the group key as noble serializes it. */
      commitments: Type.Array(Point, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
      /** Every participant's verifying share, in index order. */
      verifyingShares: Type.Array(Point, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
    },
    strict,
  ),
  signature: Bytes(64),
});

/** The sender checked the certificate and keeps its share, sealed, on disk: the key is usable. */
export const DkgStored = message("dkg.stored", { sessionId: SessionId, keyId: RecordId });

/** The sender found a fault it cannot go on from; `culprit` 0 is the coordinator. */
export const DkgFaultMessage = message("dkg.fault", {
  sessionId: SessionId,
  culprit: Type.Integer({ minimum: 0, maximum: MAX_DKG_PARTICIPANTS }),
  kind: Type.String({ pattern: "^[a-z][a-z-]{0,31}$" }),
  /** A share complaint's evidence: the one share's key, so the server can open and judge it. */
  evidence: Type.Optional(Type.Object({ from: Index, to: Index, key: Bytes(32) }, strict)),
});

/** A dealer's deal: its package and one sealed sub-share for every holder, itself included. */
export const RefreshDeal = message("refresh.deal", {
  sessionId: SessionId,
  deal: DealWire,
  shares: Type.Array(SealedShareWire, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
});

/** Round 1 of signing: this holder's fresh nonce commitments. */
export const SignCommit = message("sign.commit", { signId: SignId, hiding: Point, binding: Point });

/** Round 2 of signing: this holder's signature share (a scalar). */
export const SignShare = message("sign.share", { signId: SignId, share: Bytes(32) });

/** This holder will not sign this request (policy, unknown key, bad request). */
export const SignRefuse = message("sign.refuse", {
  signId: SignId,
  reason: Type.String({ pattern: "^[a-z][a-z-]{0,31}$" }),
});

/** Why a holder refused a recovery message (PROTOCOL §16.8). */
export const RECOVERY_REFUSALS = [
  "signature",
  "late",
  "not-holder",
  "parameters",
  "package",
  "share",
  "certificate",
  "refresh",
  "store",
] as const;
export type RecoveryRefusal = (typeof RECOVERY_REFUSALS)[number];
const RecoveryRefusalWire = Type.Union(RECOVERY_REFUSALS.map((r) => Type.Literal(r)));

/**
 * A holder's answer to `dkg.recovery`: it rebuilt and saved its share (`recovered`), it already
 * holds a valid one (`kept`), or it refused the data (`refused`, with the check that failed).
 */
export const DkgRecovered = message("dkg.recovered", {
  recoveryId: Bytes(16),
  keyId: RecordId,
  outcome: Type.Union([Type.Literal("recovered"), Type.Literal("kept"), Type.Literal("refused")]),
  reason: Type.Optional(RecoveryRefusalWire),
});

// ---- admin -----------------------------------------------------------------------------------

export const AdminThresholdKeygen = message("admin.threshold.keygen", {
  requestId: RequestId,
  suite: Suite,
  t: Count,
  n: Count,
  /** The requesting client that owns the key (may ask for signatures); absent: the admin. */
  owner: Type.Optional(Name),
});

/** A threshold key's public description (the server's record; no share anywhere). */
export const ThresholdKeyWire = Type.Object(
  {
    id: RecordId,
    suite: Suite,
    t: Count,
    n: Count,
    createdAt: IsoTime,
    /** hex: 32-byte x-only (secp256k1-tr), 32-byte Ed25519, 33-byte compressed P-256. */
    groupPublicKey: Type.String({ pattern: "^[0-9a-f]{64,66}$" }),
    /** secp256k1-tr: the BIP 86 output key (hex, x-only) and its P2TR address. */
    outputKey: Type.Optional(Type.String({ pattern: "^[0-9a-f]{64}$" })),
    address: Type.Optional(Type.String({ pattern: "^(bc|tb|bcrt)1p[02-9ac-hj-np-z]{58}$" })),
    holders: Type.Array(FingerprintSchema, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
    sessionId: SessionId,
    owner: Type.Optional(Type.String({ maxLength: 64 })),
    /** The key this one refreshed (same key, new shares; the old record's shares are gone). */
    refreshOf: Type.Optional(RecordId),
  },
  strict,
);

export const AdminThresholdKey = message("admin.threshold.key", {
  requestId: RequestId,
  key: ThresholdKeyWire,
});

/** Refresh the shares of threshold key `keyId` (all n holders online): same key, new shares. */
export const AdminThresholdRefresh = message("admin.threshold.refresh", {
  requestId: RequestId,
  keyId: RecordId,
});

export const AdminThresholdSign = message("admin.threshold.sign", {
  requestId: RequestId,
  keyId: RecordId,
  /** The message to sign: 0 to MAX_SIGN_MESSAGE_BYTES bytes (HTTP's sign route asks for 1). */
  message: SignMessage,
});

export const AdminThresholdSignature = message("admin.threshold.signature", {
  requestId: RequestId,
  keyId: RecordId,
  /** hex: 64 bytes (BIP 340 for secp256k1-tr, RFC 8032 for Ed25519) or 65 (P-256 FROST). */
  signature: Type.String({ pattern: "^[0-9a-f]{128,130}$" }),
  /** The holders whose shares made it. */
  signers: Type.Array(FingerprintSchema, { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS }),
});

/** Ask every connected holder of threshold key `keyId` to check, and if lost rebuild, its share. */
export const AdminThresholdRecover = message("admin.threshold.recover", {
  requestId: RequestId,
  keyId: RecordId,
});

/** Each holder's outcome of a recovery (PROTOCOL §16.8), in index order. */
export const AdminThresholdRecovery = message("admin.threshold.recovery", {
  requestId: RequestId,
  keyId: RecordId,
  holders: Type.Array(
    Type.Object(
      {
        contributorId: FingerprintSchema,
        index: Index,
        outcome: Type.Union([
          Type.Literal("recovered"),
          Type.Literal("kept"),
          Type.Literal("refused"),
          Type.Literal("not-connected"),
          Type.Literal("no-answer"),
        ]),
        reason: Type.Optional(RecoveryRefusalWire),
      },
      strict,
    ),
    { minItems: 2, maxItems: MAX_DKG_PARTICIPANTS },
  ),
});
