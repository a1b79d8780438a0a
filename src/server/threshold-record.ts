/**
 * The server's record of a threshold key (docs/PROTOCOL.md §16.4): public facts only. Its public
 * part names the suite, t, n, the group key (with the BIP 86 output key and P2TR address for
 * secp256k1-tr), the holders and their verifying shares, the session and the success
 * certificate. Its "secret" part — sealed at rest like every record's, though nothing in it is
 * secret — is the recovery data: the session parameters, every round-1 package and every sealed
 * share, from which each holder rebuilds its share with its identity key alone
 * (threshold/recovery.ts). No share is ever in it: the server never sees one in the clear.
 */
import type { FrostPublic } from "@noble/curves/abstract/frost.js";
import type { Static } from "@sinclair/typebox";
import { toBase64url } from "../crypto/base64url.js";
import type { JsonObject } from "../json.js";
import type { ThresholdKeyWire } from "../protocol/threshold-messages.js";
import type { KeyRecord, KeyStore } from "../store/types.js";
import { publicToJson, round1ToJson, shareToJson } from "../threshold/codec.js";
import { groupKeyOf } from "../threshold/dkg.js";
import type { RefreshSessionParams } from "../threshold/refresh.js";
import type { DealPackage } from "../threshold/refresh-participant.js";
import type { SuiteName } from "../threshold/suites.js";
import { p2trAddress } from "../threshold/taproot.js";
import type { DkgSessionParams, Round1Package, SealedShare } from "../threshold/transcript.js";
import type { ServerContext } from "./server-context.js";

export const THRESHOLD_PURPOSE = "threshold-key";

export interface FinishedDkg {
  params: DkgSessionParams;
  sessionId: Uint8Array;
  identifiers: string[];
  /** Contributor ids by index - 1. */
  members: string[];
  owner: string;
  packages: Round1Package[];
  shares: SealedShare[];
  public: FrostPublic;
  transcript: Uint8Array;
  certificate: Uint8Array[];
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** The record's public part (what `threshold keygen --json` and the HTTP API show). */
export function thresholdPublic(dkg: FinishedDkg): JsonObject {
  const { suite, t, n } = dkg.params;
  const { groupPublicKey, outputKey } = groupKeyOf(suite, dkg.public, dkg.packages);
  const pub = publicToJson(dkg.public, dkg.identifiers);
  return {
    suite,
    t,
    n,
    groupPublicKey: hex(groupPublicKey),
    ...(outputKey === undefined
      ? {}
      : { outputKey: hex(outputKey), address: p2trAddress(outputKey) }),
    sessionId: toBase64url(dkg.sessionId),
    transcript: hex(dkg.transcript),
    holders: dkg.members.map((contributorId, i) => ({
      contributorId,
      index: i + 1,
      identity: toBase64url(dkg.params.identities[i]!),
      identifier: dkg.identifiers[i]!,
      verifyingShare: pub.verifyingShares[i]!,
    })),
    commitments: pub.commitments,
    certificate: dkg.certificate.map(toBase64url),
  };
}

/** The public recovery data (RecoveryData of threshold/recovery.ts, as JSON). */
export function recoveryJson(dkg: FinishedDkg): JsonObject {
  const { params } = dkg;
  return {
    params: {
      suite: params.suite,
      t: params.t,
      n: params.n,
      serverFingerprint: params.serverFingerprint,
      nonce: toBase64url(params.nonce),
      identities: params.identities.map(toBase64url),
    },
    packages: dkg.packages.map((p) => ({ ...round1ToJson(p) })),
    shares: dkg.shares.map((s) => ({ ...shareToJson(s) })),
    certificate: dkg.certificate.map(toBase64url),
  };
}

export async function storeThresholdKey(ctx: ServerContext, dkg: FinishedDkg): Promise<KeyRecord> {
  const secret = Buffer.from(JSON.stringify(recoveryJson(dkg)), "utf8");
  return ctx.c.store.put({
    purpose: THRESHOLD_PURPOSE,
    // Record round ids are 16 bytes: the session id's first 16 name the session.
    roundId: toBase64url(dkg.sessionId.subarray(0, 16)),
    participants: dkg.members,
    algorithm: `frost-dkg/${dkg.params.suite}/v1`,
    public: thresholdPublic(dkg),
    secret: new Uint8Array(secret),
    owner: dkg.owner,
  });
}

/** The wire description of a stored threshold key (protocol/threshold-messages.ts ThresholdKeyWire). */
export function thresholdKeyWire(record: KeyRecord): Static<typeof ThresholdKeyWire> {
  const p = record.public as {
    suite: SuiteName;
    t: number;
    n: number;
    groupPublicKey: string;
    outputKey?: string;
    address?: string;
    sessionId: string;
    holders: { contributorId: string }[];
    refreshOf?: string;
  };
  return {
    id: record.id,
    suite: p.suite,
    t: p.t,
    n: p.n,
    createdAt: record.createdAt,
    groupPublicKey: p.groupPublicKey,
    ...(p.outputKey === undefined ? {} : { outputKey: p.outputKey }),
    ...(p.address === undefined ? {} : { address: p.address }),
    holders: p.holders.map((h) => h.contributorId),
    sessionId: p.sessionId,
    ...(record.owner === undefined ? {} : { owner: record.owner }),
    ...(p.refreshOf === undefined ? {} : { refreshOf: p.refreshOf }),
  };
}

/** The public part of a threshold key record, as thresholdPublic writes it. */
export interface ThresholdPublicPart {
  suite: SuiteName;
  t: number;
  n: number;
  groupPublicKey: string;
  outputKey?: string;
  address?: string;
  sessionId: string;
  transcript: string;
  holders: {
    contributorId: string;
    index: number;
    identity: string;
    identifier: string;
    verifyingShare: string;
  }[];
  commitments: string[];
  certificate: string[];
  refreshOf?: string;
}

export interface FinishedRefresh {
  old: KeyRecord;
  params: RefreshSessionParams;
  sessionId: Uint8Array;
  identifiers: string[];
  deals: DealPackage[];
  /** Every sealed sub-share of every dealer. */
  shares: SealedShare[];
  public: FrostPublic;
  transcript: Uint8Array;
  certificate: Uint8Array[];
}

/**
 * Stores a refreshed key as a new record: the old one's group key, holders and owner; the new
 * public package, session, transcript and certificate; `refreshOf` the old record. Its secret
 * part is the refresh's public recovery data (PROTOCOL §16.7).
 */
export async function storeRefreshedKey(
  ctx: ServerContext,
  r: FinishedRefresh,
): Promise<KeyRecord> {
  const old = r.old.public as unknown as ThresholdPublicPart;
  const pub = publicToJson(r.public, r.identifiers);
  const publicPart: ThresholdPublicPart = {
    ...old,
    sessionId: toBase64url(r.sessionId),
    transcript: hex(r.transcript),
    holders: old.holders.map((h, i) => ({ ...h, verifyingShare: pub.verifyingShares[i]! })),
    commitments: pub.commitments,
    certificate: r.certificate.map(toBase64url),
    refreshOf: r.old.id,
  };
  const recovery = {
    kind: "refresh",
    params: {
      suite: r.params.suite,
      t: r.params.t,
      n: r.params.n,
      serverFingerprint: r.params.serverFingerprint,
      keyId: r.params.keyId,
      publicHash: toBase64url(r.params.publicHash),
      nonce: toBase64url(r.params.nonce),
      dealers: r.params.dealers,
      identities: r.params.identities.map(toBase64url),
    },
    deals: r.deals.map((d) => ({
      index: d.index,
      commitment: d.commitment.map(toBase64url),
      ephemeralKey: toBase64url(d.ephemeralKey),
      signature: toBase64url(d.signature),
    })),
    shares: r.shares.map((s) => ({ ...shareToJson(s) })),
    certificate: r.certificate.map(toBase64url),
    // The key's DKG recovery data, carried along: a holder rebuilding its refreshed share also
    // needs the DKG's (its share file keeps both, PROTOCOL §16.5, §16.8).
    dkg: await dkgRecoveryJson(ctx.c.store, r.old),
  };
  return ctx.c.store.put({
    purpose: THRESHOLD_PURPOSE,
    roundId: toBase64url(r.sessionId.subarray(0, 16)),
    participants: r.old.participants,
    algorithm: r.old.algorithm,
    public: publicPart as unknown as JsonObject,
    secret: new Uint8Array(Buffer.from(JSON.stringify(recovery), "utf8")),
    ...(r.old.owner === undefined ? {} : { owner: r.old.owner }),
  });
}

/** A refreshed record's secret part, as storeRefreshedKey writes it. */
export interface RefreshRecoveryJson {
  kind: "refresh";
  params: {
    suite: SuiteName;
    t: number;
    n: number;
    serverFingerprint: string;
    keyId: string;
    publicHash: string;
    nonce: string;
    dealers: number[];
    identities: string[];
  };
  deals: { index: number; commitment: string[]; ephemeralKey: string; signature: string }[];
  shares: { from: number; to: number; ciphertext: string; signature: string }[];
  certificate: string[];
  /** Absent in records stored before recovery existed: then walk `params.keyId` back. */
  dkg?: DkgRecoveryJson;
}

/** A DKG record's secret part (recoveryJson). */
export type DkgRecoveryJson = {
  params: {
    suite: SuiteName;
    t: number;
    n: number;
    serverFingerprint: string;
    nonce: string;
    identities: string[];
  };
  packages: ReturnType<typeof round1ToJson>[];
  shares: ReturnType<typeof shareToJson>[];
  certificate: string[];
};

/** A threshold record's secret part: its DKG's recovery data, or its last refresh's. */
export async function readRecovery(
  store: KeyStore,
  id: string,
): Promise<DkgRecoveryJson | RefreshRecoveryJson> {
  const secret = await store.readSecret(id);
  try {
    return JSON.parse(Buffer.from(secret).toString("utf8")) as
      | DkgRecoveryJson
      | RefreshRecoveryJson;
  } finally {
    secret.fill(0);
  }
}

/**
 * The recovery data of the DKG that made threshold key `record` (itself, or the first of the keys
 * it refreshed): carried in a refreshed record, else found by walking `refreshOf` back.
 */
export async function dkgRecoveryJson(
  store: KeyStore,
  record: KeyRecord,
): Promise<DkgRecoveryJson> {
  let id = record.id;
  for (let hops = 0; hops < 10_000; hops++) {
    const data = await readRecovery(store, id);
    if (!("kind" in data)) return data;
    if (data.dkg !== undefined) return data.dkg;
    id = data.params.keyId;
  }
  throw new Error(`Threshold key ${record.id}: no DKG found behind its refreshes.`);
}
