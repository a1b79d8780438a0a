/**
 * Rebuilding a lost share from the identity key alone (ChillDKG's recovery, docs/PROTOCOL.md
 * §16.5). The recovery data is public — the session parameters, every round-1 package, the shares
 * sealed to this participant, and the certificate — and the server keeps it for every key. Since
 * a participant's polynomial is drawn from HMAC_DRBG(identity seed, session id) (dkg.ts), its
 * identity key re-creates its own round-1 package (checked byte for byte against the signed one),
 * opens the sealed shares (share-box.ts), and noble's round 3 yields the same signing share.
 */
import type { KeyObject } from "node:crypto";
import type { FrostPublic } from "@noble/curves/abstract/frost.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { publicKeyFromRaw, verifySignature } from "../crypto/signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import {
  blameShare,
  checkCertificate,
  checkPackages,
  checkSessionParams,
  groupKeyOf,
  openIncoming,
  polynomialRng,
  type ThresholdShare,
  toNoble,
} from "./dkg.js";
import {
  checkDealers,
  combineRefresh,
  dealSignedData,
  type RefreshSessionParams,
  refreshSessionIdOf,
  refreshTranscript,
  subShareMatches,
} from "./refresh.js";
import type { DealPackage } from "./refresh-participant.js";
import { encryptionKeyPair, identitySeed, openShare, pairwiseKey } from "./share-box.js";
import { type SuiteName, suiteOf } from "./suites.js";
import {
  type DkgSessionParams,
  identifiersOf,
  publicPackageHash,
  type Round1Package,
  type SealedShare,
  sessionIdOf,
  shareSignedData,
  transcriptHash,
} from "./transcript.js";

export interface RecoveryData {
  params: DkgSessionParams;
  packages: Round1Package[];
  /** The shares sealed to the recovering participant (or all of them: the others are skipped). */
  shares: SealedShare[];
  certificate: Uint8Array[];
}

export function recoverShare(
  data: RecoveryData,
  index: number,
  identityKey: KeyObject,
): ThresholdShare {
  const { params } = data;
  checkSessionParams(params);
  const suite = suiteOf(params.suite);
  const sessionId = sessionIdOf(params);
  const identifiers = identifiersOf(params.suite, sessionId, params.n);
  const packages = checkPackages(params, sessionId, data.packages);
  const own = packages[index - 1];
  if (own === undefined) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "This participant is not in the session.");
  }
  const seed = identitySeed(identityKey);
  const encryption = encryptionKeyPair(seed);
  try {
    const { public: pub, secret } = suite.frost.DKG.round1(
      identifiers[index - 1]!,
      { min: params.t, max: params.n },
      undefined,
      polynomialRng(seed, sessionId),
    );
    const same =
      Buffer.from(encryption.public).equals(Buffer.from(own.encryptionKey)) &&
      pub.commitment.every((c, i) => Buffer.from(c).equals(Buffer.from(own.commitment[i]!))) &&
      Buffer.from(pub.proofOfKnowledge).equals(Buffer.from(own.proof));
    if (!same) {
      suite.frost.DKG.clean(secret);
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "This identity key did not make participant " +
          `${index}'s round-1 package: it cannot recover that share.`,
      );
    }
    const others = packages.filter((p) => p.index !== index);
    suite.frost.DKG.round2(
      secret,
      others.map((p) => toNoble(identifiers, p)),
    );
    const incoming = data.shares.filter((s) => s.to === index);
    const opened = openIncoming(params, sessionId, packages, index, encryption.secret, incoming);
    let key: ReturnType<typeof suite.frost.DKG.round3>;
    try {
      key = suite.frost.DKG.round3(
        secret,
        others.map((p) => toNoble(identifiers, p)),
        opened.map((s) => ({ identifier: identifiers[s.from - 1]!, signingShare: s.share })),
      );
    } catch {
      throw blameShare(params, sessionId, identifiers, packages, index, encryption.secret, opened);
    } finally {
      for (const s of opened) s.share.fill(0);
    }
    const transcript = transcriptHash(sessionId, packages);
    checkCertificate(
      params,
      sessionId,
      transcript,
      publicPackageHash(key.public, identifiers),
      data.certificate,
    );
    const { groupPublicKey, outputKey } = groupKeyOf(params.suite, key.public, packages);
    return {
      suite: params.suite,
      t: params.t,
      n: params.n,
      sessionId,
      index,
      identifiers,
      identities: params.identities,
      public: key.public,
      signingShare: key.secret.signingShare,
      groupPublicKey,
      ...(outputKey === undefined ? {} : { outputKey }),
      transcript,
      certificate: data.certificate,
    };
  } finally {
    seed.fill(0);
    encryption.secret.fill(0);
  }
}

/** What rebuilds a share that a refresh made (PROTOCOL §16.7): all public. */
export interface RefreshRecoveryData {
  suite: DkgSessionParams["suite"];
  t: number;
  n: number;
  identifiers: string[];
  sessionId: Uint8Array;
  dealers: number[];
  deals: DealPackage[];
  /** The t sub-shares sealed to the recovering holder, dealer order. */
  shares: SealedShare[];
  /** The refreshed key's public package (as certified). */
  public: FrostPublic;
}

/**
 * Rebuilds a refreshed share from the identity key: opens the sub-shares sealed to this holder
 * with its static X25519 key, checks each against its dealer's commitment, combines them
 * (refresh.ts) and checks the result against the certified public package.
 */
export function recoverRefreshedShare(
  data: RefreshRecoveryData,
  index: number,
  identityKey: KeyObject,
): Uint8Array {
  const seed = identitySeed(identityKey);
  const encryption = encryptionKeyPair(seed);
  seed.fill(0);
  const subs: Uint8Array[] = [];
  try {
    const deals = [...data.deals].sort((a, b) => a.index - b.index);
    const mine = [...data.shares].sort((a, b) => a.from - b.from);
    if (deals.length !== data.t || mine.length !== data.t) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "A refresh's recovery data has t deals and t sub-shares.",
      );
    }
    mine.forEach((s, k) => {
      const dealer = deals[k]!;
      if (s.from !== dealer.index || s.to !== index) {
        throw new DkeygenError(
          ErrorCodes.INVALID_INPUT,
          "The recovery data's sub-shares are not this holder's.",
        );
      }
      const key = pairwiseKey(
        encryption.secret,
        dealer.ephemeralKey,
        data.sessionId,
        dealer.ephemeralKey,
        encryption.public,
        s.from,
        index,
      );
      const sub = openShare(key, s.ciphertext, data.sessionId, s.from, index);
      key.fill(0);
      if (
        sub === undefined ||
        !subShareMatches(
          data.suite,
          data.t,
          data.n,
          data.identifiers[index - 1]!,
          sub,
          dealer.commitment,
        )
      ) {
        throw new DkeygenError(
          ErrorCodes.DECRYPTION_FAILED,
          `The sub-share from dealer ${s.from} does not open to a share of its deal with this identity key.`,
        );
      }
      subs.push(sub);
    });
    const combined = combineRefresh(
      data.suite,
      data.t,
      data.n,
      data.identifiers,
      data.dealers,
      deals.map((d) => d.commitment),
      subs,
      index,
      data.public,
    );
    const expected = publicPackageHash(data.public, data.identifiers);
    if (
      !Buffer.from(publicPackageHash(combined.public, data.identifiers)).equals(
        Buffer.from(expected),
      )
    ) {
      combined.signingShare.fill(0);
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "The rebuilt share is not of the certified package.",
      );
    }
    return combined.signingShare;
  } finally {
    for (const s of subs) s.fill(0);
    encryption.secret.fill(0);
  }
}

/**
 * Checks a refresh's recovery data as it came from someone not trusted (PROTOCOL §16.8): the
 * session id recomputes from the parameters, each deal is signed by its dealer and each sub-share
 * sealed to `index` by its dealer, and all n holders certified the refresh transcript and `pub`.
 * Returns the refresh's session id and transcript. Throws DkgFault (kind `certificate` when the
 * certificate fails) or DkeygenError.
 */
export function checkRefreshRecovery(
  params: RefreshSessionParams,
  identifiers: string[],
  index: number,
  deals: DealPackage[],
  shares: SealedShare[],
  pub: FrostPublic,
  certificate: Uint8Array[],
): { sessionId: Uint8Array; transcript: Uint8Array } {
  checkDealers(params.t, params.n, params.dealers);
  const sessionId = refreshSessionIdOf(params);
  const sorted = [...deals].sort((a, b) => a.index - b.index);
  const mine = [...shares].sort((a, b) => a.from - b.from);
  if (
    sorted.length !== params.t ||
    mine.length !== params.t ||
    sorted.some((d, k) => d.index !== params.dealers[k]) ||
    mine.some((s, k) => s.from !== params.dealers[k] || s.to !== index)
  ) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "A refresh's recovery data has one deal and one sub-share from each dealer.",
    );
  }
  sorted.forEach((d, k) => {
    const identity = publicKeyFromRaw(params.identities[d.index - 1]!);
    const s = mine[k]!;
    if (
      !verifySignature(
        identity,
        dealSignedData(sessionId, d.index, d.ephemeralKey, d.commitment),
        d.signature,
      ) ||
      !verifySignature(
        identity,
        shareSignedData(sessionId, s.from, s.to, s.ciphertext),
        s.signature,
      )
    ) {
      throw new DkeygenError(
        ErrorCodes.BAD_SIGNATURE,
        `Dealer ${d.index}'s deal or sub-share is not signed by it.`,
      );
    }
  });
  const transcript = refreshTranscript(sessionId, sorted);
  checkCertificate(params, sessionId, transcript, publicPackageHash(pub, identifiers), certificate);
  return { sessionId, transcript };
}

const BASES: Record<SuiteName, { BASE: { multiply(s: bigint): { toBytes(): Uint8Array } } }> = {
  "secp256k1-tr": secp256k1.Point,
  ed25519: ed25519.Point,
  p256: p256.Point,
};

/** Whether `share`·G is `verifyingShare` (the share's public image, as the package encodes it). */
export function shareMatchesVerifyingShare(
  suite: SuiteName,
  share: Uint8Array,
  verifyingShare: Uint8Array,
): boolean {
  const { Fn } = suiteOf(suite).frost.utils;
  let scalar: bigint;
  try {
    scalar = Fn.fromBytes(share);
  } catch {
    return false;
  }
  if (scalar === 0n) return false;
  const image = BASES[suite].BASE.multiply(scalar).toBytes();
  return Buffer.from(image).equals(Buffer.from(verifyingShare));
}
