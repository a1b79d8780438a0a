/**
 * The threshold part of the golden wire frames (docs/PROTOCOL.md §16): one real, deterministic
 * DKG among three participants and one FROST signing attempt by two of them, run through the
 * code's own DkgParticipant and signing steps from fixed inputs, so that a second implementation
 * can check its session id, identifiers, polynomials, sealed shares, confirmations, group key and
 * signature shares against these bytes.
 *
 *   suite secp256k1-tr, t = 2, n = 3, owner "@admin"; participant 1 is the golden contributor
 *   (seed 55 56 57 …), participants 2 and 3 have the seeds b0 b1 b2 … and f0 f1 f2 …; the
 *   server's nonce is a6 a7 a8 … (see DKG_NONCE); participant i's ephemeral X25519 secret is the 32 bytes
 *   i·0x11, i·0x11 + 1, …; holders 1 and 3 sign the 32 bytes 5a 5b 5c … (signId c8 c9 ca …),
 *   holder i drawing its two nonces from the 64 bytes i·0x40 + 4, … (hiding's 32 random bytes,
 *   then binding's: RFC 9591 nonce_generate's random_bytes).
 *
 * Only dkg.open and sign.request carry randomized bytes (the server's RSASSA-PSS signatures);
 * every other frame here is deterministic. dkg.fault is a (false) complaint by participant 1
 * about participant 2's share with the real K_21 as evidence; dkg.aborted is the server's
 * judgement of it (the share checks, so the accuser is named); sign.refuse is a late holder's.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import { toBase64url } from "../../src/crypto/base64url.js";
import { lengthPrefixed } from "../../src/crypto/canonical.js";
import { fingerprintOf } from "../../src/crypto/fingerprint.js";
import { serverSign } from "../../src/crypto/server-signature.js";
import { rawPublicKey } from "../../src/crypto/signature.js";
import { contributorIdOf } from "../../src/protocol/identity.js";
import type { AnyMessage } from "../../src/protocol/messages.js";
import {
  dkgOpenSignedData,
  recoverySignedData,
  refreshOpenSignedData,
  signRequestSignedData,
} from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION as V } from "../../src/protocol/version.js";
import {
  publicToJson,
  round1FromJson,
  round1ToJson,
  shareToJson,
} from "../../src/threshold/codec.js";
import { DkgParticipant } from "../../src/threshold/dkg.js";
import {
  dealSignedData,
  type RefreshSessionParams,
  refreshSessionIdOf,
} from "../../src/threshold/refresh.js";
import { RefreshParticipant } from "../../src/threshold/refresh-participant.js";
import { encryptionKeyPair, pairwiseKey } from "../../src/threshold/share-box.js";
import { aggregateSignature, commitNonces, signShare } from "../../src/threshold/signing.js";
import { p2trAddress } from "../../src/threshold/taproot.js";
import {
  confirmSignedData,
  type DkgSessionParams,
  publicPackageHash,
  round1SignedData,
  type SealedShare,
  sessionIdOf,
  shareSignedData,
} from "../../src/threshold/transcript.js";

const bytes = (length: number, first: number) =>
  Uint8Array.from({ length }, (_, i) => (first + i) & 0xff);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

export function ed25519Key(seed: Uint8Array): KeyObject {
  return createPrivateKey({
    key: {
      kty: "OKP",
      crv: "Ed25519",
      d: toBase64url(seed),
      x: toBase64url(ed25519.getPublicKey(seed)),
    },
    format: "jwk",
  });
}

export const DKG_SUITE = "secp256k1-tr" as const;
export const DKG_T = 2;
export const DKG_N = 3;
const OWNER = "@admin";
const DKG_DEADLINE = "2026-12-01T12:01:00.000Z";
/**
 * Picked (among a1 a2 … to a9 aa …) so that both of noble's even-y steps for secp256k1-tr are
 * exercised: the internal key P = Σ C_i,0 has odd y (the DKG's output is negated before the
 * TapTweak) and so has the output key Q (signing negates shares and nonces).
 */
const DKG_NONCE = bytes(32, 0xa6);
/** Seeds of participants 2 and 3 (participant 1's is the golden contributor's). */
const OTHER_SEEDS = [bytes(32, 0xb0), bytes(32, 0xf0)];
const ephemeralSecret = (index: number) => bytes(32, 0x11 * index);
const KEY_ID = "01JDKGEN0000000000000000TK";
const KEY_CREATED_AT = "2026-12-01T12:00:30.000Z";
const SIGNERS = [1, 3];
const SIGN_ID = bytes(16, 0xc8);
const SIGN_MESSAGE = bytes(32, 0x5a);
const SIGN_DEADLINE = "2026-12-01T12:02:00.000Z";
const nonceRandom = (index: number) => bytes(64, 0x40 * index + 4);
const REFRESH_NONCE = bytes(32, 0xe6);
const REFRESH_DEALERS = [1, 2];
const REFRESH_DEADLINE = "2026-12-01T12:03:00.000Z";
const REFRESHED_KEY_ID = "01JDKGEN0000000000000000TR";
/** A dealer's fixed randomness: its t − 1 = 1 coefficient (48 bytes), then its ephemeral key. */
const refreshRandom = (index: number) => bytes(80, 0x10 * index + 7);
/** A recovery of the refreshed key (§16.8), sent to holder 2. */
const RECOVERY_ID = bytes(16, 0xd4);
const RECOVERY_DEADLINE = "2026-12-01T12:04:00.000Z";
const REFRESHED_CREATED_AT = "2026-12-01T12:03:30.000Z";

/** An rng that hands out `stream` in order (noble's commit asks for 32 bytes twice). */
export function fixedRng(stream: Uint8Array<ArrayBuffer>): (n?: number) => Uint8Array<ArrayBuffer> {
  let offset = 0;
  return (n = 32) => {
    if (offset + n > stream.length) throw new RangeError("fixedRng: the fixed bytes ran out");
    const out = stream.slice(offset, offset + n);
    offset += n;
    return out;
  };
}

export interface ThresholdGolden {
  inputs: Record<string, string>;
  frames: Record<string, AnyMessage>;
  lp: Record<string, Uint8Array>;
}

export function buildThresholdGolden(
  serverKey: KeyObject,
  contributorSeed: Uint8Array,
): ThresholdGolden {
  const fingerprint = fingerprintOf(createPublicKey(serverKey));
  const seeds = [contributorSeed, ...OTHER_SEEDS];
  const keys = seeds.map(ed25519Key);
  const identities = keys.map((k) => rawPublicKey(k));
  const contributorIds = identities.map(contributorIdOf);
  const params: DkgSessionParams = {
    suite: DKG_SUITE,
    t: DKG_T,
    n: DKG_N,
    serverFingerprint: fingerprint,
    nonce: DKG_NONCE,
    identities,
  };
  const sessionId = sessionIdOf(params);
  const sid = toBase64url(sessionId);
  const lp: Record<string, Uint8Array> = {};
  const frames: Record<string, AnyMessage> = {};

  // Open (§16.2: the LP whose SHA-256 is the session id; the server's signed invitation).
  lp.dkgSession = lengthPrefixed(
    "dkeygen/v1/dkg-session",
    DKG_SUITE,
    String(DKG_T),
    String(DKG_N),
    fingerprint,
    DKG_NONCE,
    ...identities,
  );
  lp.dkgOpen = dkgOpenSignedData(
    fingerprint,
    sessionId,
    DKG_SUITE,
    DKG_T,
    DKG_N,
    DKG_NONCE,
    identities,
    DKG_DEADLINE,
    OWNER,
  );
  frames["dkg.open"] = {
    type: "dkg.open",
    v: V,
    sessionId: sid,
    suite: DKG_SUITE,
    t: DKG_T,
    n: DKG_N,
    nonce: toBase64url(DKG_NONCE),
    participants: identities.map(toBase64url),
    deadline: DKG_DEADLINE,
    owner: OWNER,
    signature: toBase64url(serverSign(serverKey, lp.dkgOpen)),
  };

  // Round 1: each participant's signed package.
  const participants = keys.map(
    (identityKey, i) =>
      new DkgParticipant({
        params,
        index: i + 1,
        identityKey,
        random: () => ephemeralSecret(i + 1),
      }),
  );
  const identifiers = participants[0]!.identifiers;
  const packages = participants.map((p) => round1ToJson(p.round1));
  packages.forEach((pkg, i) => {
    frames[`dkg.round1 (from ${i + 1})`] = {
      type: "dkg.round1",
      v: V,
      sessionId: sid,
      package: pkg,
    };
  });
  lp.dkgRound1 = round1SignedData(sessionId, participants[0]!.round1);
  frames["dkg.round1s"] = { type: "dkg.round1s", v: V, sessionId: sid, packages };

  // Round 2: each participant's n - 1 sealed shares, relayed to their recipients.
  const sent = participants.map((p) => p.round2(packages.map(round1FromJson)));
  sent.forEach((shares, i) => {
    frames[`dkg.round2 (from ${i + 1})`] = {
      type: "dkg.round2",
      v: V,
      sessionId: sid,
      shares: shares.map(shareToJson),
    };
  });
  const all = sent.flat();
  const incoming = participants.map((_, i) =>
    all.filter((s) => s.to === i + 1).sort((a, b) => a.from - b.from),
  );
  incoming.forEach((shares, i) => {
    frames[`dkg.shares (to ${i + 1})`] = {
      type: "dkg.shares",
      v: V,
      sessionId: sid,
      shares: shares.map(shareToJson),
    };
  });
  // The share from 1 to 2: its key's HKDF info, the key, the AEAD's AAD and the signed data.
  const share12 = all.find((s) => s.from === 1 && s.to === 2) as SealedShare;
  const round1 = participants.map((p) => p.round1);
  lp.dkgShareKeyInfo = lengthPrefixed(
    "dkeygen/v1/dkg-share-key",
    round1[0]!.ephemeralKey,
    round1[1]!.encryptionKey,
    "1",
    "2",
  );
  lp.dkgShareKey = pairwiseKey(
    ephemeralSecret(1),
    round1[1]!.encryptionKey,
    sessionId,
    round1[0]!.ephemeralKey,
    round1[1]!.encryptionKey,
    1,
    2,
  );
  lp.dkgShareAad = lengthPrefixed("dkeygen/v1/dkg-share", sessionId, "1", "2");
  lp.dkgShare = shareSignedData(sessionId, 1, 2, share12.ciphertext);

  // Round 3: each participant opens its shares and confirms.
  const confirms = participants.map((p, i) => p.round3(incoming[i]!));
  confirms.forEach((c, i) => {
    frames[`dkg.confirm (from ${i + 1})`] = {
      type: "dkg.confirm",
      v: V,
      sessionId: sid,
      transcript: toBase64url(c.transcript),
      public: publicToJson(c.public, identifiers),
      signature: toBase64url(c.signature),
    };
  });
  const pub = confirms[0]!.public;
  lp.dkgTranscript = lengthPrefixed(
    "dkeygen/v1/dkg-transcript",
    sessionId,
    ...round1.flatMap((p) => [round1SignedData(sessionId, p), p.signature]),
  );
  lp.dkgPublic = lengthPrefixed(
    "dkeygen/v1/dkg-public",
    String(pub.commitments.length),
    ...pub.commitments,
    ...identifiers.map((id) => pub.verifyingShares[id]!),
  );
  lp.dkgConfirm = confirmSignedData(
    sessionId,
    confirms[0]!.transcript,
    publicPackageHash(pub, identifiers),
  );

  // The certificate; every participant keeps its share.
  const certificate = confirms.map((c) => c.signature);
  frames["dkg.certificate"] = {
    type: "dkg.certificate",
    v: V,
    sessionId: sid,
    keyId: KEY_ID,
    certificate: certificate.map(toBase64url),
  };
  const held = participants.map((p) => p.finish(certificate));
  frames["dkg.stored (from 1)"] = { type: "dkg.stored", v: V, sessionId: sid, keyId: KEY_ID };
  const outputKey = held[0]!.outputKey!;

  // A complaint (participant 1 says participant 2's share is bad, revealing K_21) and the
  // server's verdict: the share checks, so the accuser is to blame.
  const k21 = pairwiseKey(
    encryptionKeyPair(contributorSeed).secret,
    round1[1]!.ephemeralKey,
    sessionId,
    round1[1]!.ephemeralKey,
    round1[0]!.encryptionKey,
    2,
    1,
  );
  frames["dkg.fault (from 1)"] = {
    type: "dkg.fault",
    v: V,
    sessionId: sid,
    culprit: 2,
    kind: "share",
    evidence: { from: 2, to: 1, key: toBase64url(k21) },
  };
  frames["dkg.aborted"] = {
    type: "dkg.aborted",
    v: V,
    sessionId: sid,
    kind: "share",
    reason: "Participant 1 complained about a share that checks.",
    culprit: contributorIds[0]!,
  };

  frames["admin.threshold.keygen"] = {
    type: "admin.threshold.keygen",
    v: V,
    requestId: "req-4",
    suite: DKG_SUITE,
    t: DKG_T,
    n: DKG_N,
  };
  frames["admin.threshold.key"] = {
    type: "admin.threshold.key",
    v: V,
    requestId: "req-4",
    key: {
      id: KEY_ID,
      suite: DKG_SUITE,
      t: DKG_T,
      n: DKG_N,
      createdAt: KEY_CREATED_AT,
      groupPublicKey: hex(held[0]!.groupPublicKey),
      outputKey: hex(outputKey),
      address: p2trAddress(outputKey),
      holders: contributorIds,
      sessionId: sid,
      owner: OWNER,
    },
  };

  // Signing: holders 1 and 3 sign the golden message for the owner.
  const signId = toBase64url(SIGN_ID);
  lp.signRequest = signRequestSignedData(
    fingerprint,
    SIGN_ID,
    KEY_ID,
    SIGN_MESSAGE,
    OWNER,
    SIGNERS,
    SIGN_DEADLINE,
  );
  frames["admin.threshold.sign"] = {
    type: "admin.threshold.sign",
    v: V,
    requestId: "req-5",
    keyId: KEY_ID,
    message: toBase64url(SIGN_MESSAGE),
  };
  frames["sign.request"] = {
    type: "sign.request",
    v: V,
    signId,
    keyId: KEY_ID,
    message: toBase64url(SIGN_MESSAGE),
    requester: OWNER,
    signers: SIGNERS,
    deadline: SIGN_DEADLINE,
    signature: toBase64url(serverSign(serverKey, lp.signRequest)),
  };
  const signerShare = (i: number) => ({
    suite: DKG_SUITE,
    identifier: identifiers[i - 1]!,
    signingShare: held[i - 1]!.signingShare,
  });
  const round1s = SIGNERS.map((i) => commitNonces(signerShare(i), fixedRng(nonceRandom(i))));
  SIGNERS.forEach((i, k) => {
    frames[`sign.commit (from ${i})`] = {
      type: "sign.commit",
      v: V,
      signId,
      hiding: toBase64url(round1s[k]!.commitments.hiding),
      binding: toBase64url(round1s[k]!.commitments.binding),
    };
  });
  frames["sign.package"] = {
    type: "sign.package",
    v: V,
    signId,
    commitments: SIGNERS.map((index, k) => ({
      index,
      hiding: toBase64url(round1s[k]!.commitments.hiding),
      binding: toBase64url(round1s[k]!.commitments.binding),
    })),
  };
  const commitments = round1s.map((r) => r.commitments);
  const shares = SIGNERS.map((i, k) =>
    signShare(signerShare(i), pub, round1s[k]!.nonces, commitments, SIGN_MESSAGE),
  );
  SIGNERS.forEach((i, k) => {
    frames[`sign.share (from ${i})`] = {
      type: "sign.share",
      v: V,
      signId,
      share: toBase64url(shares[k]!),
    };
  });
  const signature = aggregateSignature(
    DKG_SUITE,
    pub,
    commitments,
    SIGN_MESSAGE,
    Object.fromEntries(SIGNERS.map((i, k) => [identifiers[i - 1]!, shares[k]!])),
  );
  frames["sign.refuse (from 2)"] = { type: "sign.refuse", v: V, signId, reason: "late" };
  frames["admin.threshold.signature"] = {
    type: "admin.threshold.signature",
    v: V,
    requestId: "req-5",
    keyId: KEY_ID,
    signature: hex(signature),
    signers: SIGNERS.map((i) => contributorIds[i - 1]!),
  };
  // A share refresh of the key (§16.7): dealers 1 and 2, each polynomial's coefficient and
  // ephemeral key from fixed bytes.
  const refreshParams: RefreshSessionParams = {
    suite: DKG_SUITE,
    t: DKG_T,
    n: DKG_N,
    serverFingerprint: fingerprint,
    keyId: KEY_ID,
    publicHash: publicPackageHash(held[0]!.public, identifiers),
    nonce: REFRESH_NONCE,
    dealers: REFRESH_DEALERS,
    identities,
  };
  const refreshId = refreshSessionIdOf(refreshParams);
  const rid = toBase64url(refreshId);
  lp.refreshSession = lengthPrefixed(
    "dkeygen/v1/refresh-session",
    DKG_SUITE,
    String(DKG_T),
    String(DKG_N),
    fingerprint,
    KEY_ID,
    refreshParams.publicHash,
    REFRESH_NONCE,
    String(REFRESH_DEALERS.length),
    ...REFRESH_DEALERS.map(String),
    ...identities,
  );
  lp.refreshOpen = refreshOpenSignedData(
    fingerprint,
    refreshId,
    KEY_ID,
    REFRESH_NONCE,
    REFRESH_DEALERS,
    refreshParams.publicHash,
    REFRESH_DEADLINE,
    identities,
  );
  frames["refresh.open"] = {
    type: "refresh.open",
    v: V,
    sessionId: rid,
    keyId: KEY_ID,
    suite: DKG_SUITE,
    t: DKG_T,
    n: DKG_N,
    nonce: toBase64url(REFRESH_NONCE),
    dealers: REFRESH_DEALERS,
    participants: identities.map(toBase64url),
    publicHash: toBase64url(refreshParams.publicHash),
    deadline: REFRESH_DEADLINE,
    signature: toBase64url(serverSign(serverKey, lp.refreshOpen)),
  };
  const encryptionKeys = round1.map((r) => r.encryptionKey);
  const refreshers = keys.map(
    (identityKey, i) =>
      new RefreshParticipant({
        params: refreshParams,
        index: i + 1,
        identityKey,
        identifiers,
        encryptionKeys,
        oldPublic: held[0]!.public,
        ...(REFRESH_DEALERS.includes(i + 1) ? { signingShare: held[i]!.signingShare } : {}),
        random: fixedRng(refreshRandom(i + 1)),
      }),
  );
  const dealt = refreshers.filter((r) => r.isDealer).map((r) => r.deal());
  const dealWire = dealt.map((d) => ({
    index: d.package.index,
    commitment: d.package.commitment.map(toBase64url),
    ephemeralKey: toBase64url(d.package.ephemeralKey),
    signature: toBase64url(d.package.signature),
  }));
  dealt.forEach((d, k) => {
    frames[`refresh.deal (from ${d.package.index})`] = {
      type: "refresh.deal",
      v: V,
      sessionId: rid,
      deal: dealWire[k]!,
      shares: d.shares.map(shareToJson),
    };
  });
  lp.refreshDeal = dealSignedData(
    refreshId,
    1,
    dealt[0]!.package.ephemeralKey,
    dealt[0]!.package.commitment,
  );
  const refreshConfirms = refreshers.map((r, j) => {
    const mine = dealt.map((d) => d.shares[j]!);
    frames[`refresh.deals (to ${j + 1})`] = {
      type: "refresh.deals",
      v: V,
      sessionId: rid,
      deals: dealWire,
      shares: mine.map(shareToJson),
    };
    const confirmation = r.confirm(
      dealt.map((d) => d.package),
      mine,
    );
    frames[`dkg.confirm (refresh, from ${j + 1})`] = {
      type: "dkg.confirm",
      v: V,
      sessionId: rid,
      transcript: toBase64url(confirmation.transcript),
      public: publicToJson(confirmation.public, identifiers),
      signature: toBase64url(confirmation.signature),
    };
    return confirmation;
  });
  lp.refreshTranscript = lengthPrefixed(
    "dkeygen/v1/refresh-transcript",
    refreshId,
    ...dealt.flatMap((d) => [
      dealSignedData(refreshId, d.package.index, d.package.ephemeralKey, d.package.commitment),
      d.package.signature,
    ]),
  );
  frames["dkg.certificate (refresh)"] = {
    type: "dkg.certificate",
    v: V,
    sessionId: rid,
    keyId: REFRESHED_KEY_ID,
    certificate: refreshConfirms.map((c) => toBase64url(c.signature)),
  };
  frames["admin.threshold.refresh"] = {
    type: "admin.threshold.refresh",
    v: V,
    requestId: "req-6",
    keyId: KEY_ID,
  };
  // A recovery of the refreshed key (§16.8): what holder 2 is sent, and its answer.
  const recoveryFor2: Omit<Extract<AnyMessage, { type: "dkg.recovery" }>, "signature"> = {
    type: "dkg.recovery",
    v: V,
    recoveryId: toBase64url(RECOVERY_ID),
    keyId: REFRESHED_KEY_ID,
    index: 2,
    owner: OWNER,
    createdAt: REFRESHED_CREATED_AT,
    deadline: RECOVERY_DEADLINE,
    dkg: {
      params: {
        suite: DKG_SUITE,
        t: DKG_T,
        n: DKG_N,
        serverFingerprint: fingerprint,
        nonce: toBase64url(DKG_NONCE),
        identities: identities.map(toBase64url),
      },
      packages,
      shares: incoming[1]!.map(shareToJson),
      certificate: certificate.map(toBase64url),
    },
    refresh: {
      refreshOf: KEY_ID,
      nonce: toBase64url(REFRESH_NONCE),
      publicHash: toBase64url(refreshParams.publicHash),
      dealers: REFRESH_DEALERS,
      deals: dealWire,
      shares: dealt.map((d) => shareToJson(d.shares[1]!)),
      public: publicToJson(refreshConfirms[0]!.public, identifiers),
      certificate: refreshConfirms.map((c) => toBase64url(c.signature)),
    },
  };
  lp.dkgRecovery = recoverySignedData(fingerprint, recoveryFor2);
  frames["dkg.recovery (to 2)"] = {
    ...recoveryFor2,
    signature: toBase64url(serverSign(serverKey, lp.dkgRecovery)),
  };
  frames["dkg.recovered (from 2)"] = {
    type: "dkg.recovered",
    v: V,
    recoveryId: toBase64url(RECOVERY_ID),
    keyId: REFRESHED_KEY_ID,
    outcome: "recovered",
  };
  frames["dkg.recovered (from 3, refused)"] = {
    type: "dkg.recovered",
    v: V,
    recoveryId: toBase64url(RECOVERY_ID),
    keyId: REFRESHED_KEY_ID,
    outcome: "refused",
    reason: "certificate",
  };
  frames["admin.threshold.recover"] = {
    type: "admin.threshold.recover",
    v: V,
    requestId: "req-7",
    keyId: REFRESHED_KEY_ID,
  };
  frames["admin.threshold.recovery"] = {
    type: "admin.threshold.recovery",
    v: V,
    requestId: "req-7",
    keyId: REFRESHED_KEY_ID,
    holders: [
      { contributorId: contributorIds[0]!, index: 1, outcome: "kept" },
      { contributorId: contributorIds[1]!, index: 2, outcome: "recovered" },
      { contributorId: contributorIds[2]!, index: 3, outcome: "not-connected" },
    ],
  };
  for (const r of refreshers)
    r.finish(refreshConfirms.map((c) => c.signature)).signingShare.fill(0);
  for (const h of held) h.signingShare.fill(0);

  return {
    inputs: {
      dkgSuite: DKG_SUITE,
      dkgT: String(DKG_T),
      dkgN: String(DKG_N),
      dkgOwner: OWNER,
      dkgDeadline: DKG_DEADLINE,
      dkgNonce: hex(DKG_NONCE),
      dkgIdentitySeed1: hex(seeds[0]!),
      dkgIdentitySeed2: hex(seeds[1]!),
      dkgIdentitySeed3: hex(seeds[2]!),
      dkgEphemeralSecret1: hex(ephemeralSecret(1)),
      dkgEphemeralSecret2: hex(ephemeralSecret(2)),
      dkgEphemeralSecret3: hex(ephemeralSecret(3)),
      dkgKeyId: KEY_ID,
      dkgKeyCreatedAt: KEY_CREATED_AT,
      signId: hex(SIGN_ID),
      signMessage: hex(SIGN_MESSAGE),
      signSigners: SIGNERS.join(","),
      signDeadline: SIGN_DEADLINE,
      signNonceRandom1: hex(nonceRandom(1)),
      signNonceRandom3: hex(nonceRandom(3)),
      refreshNonce: hex(REFRESH_NONCE),
      refreshDealers: REFRESH_DEALERS.join(","),
      refreshDeadline: REFRESH_DEADLINE,
      refreshRandom1: hex(refreshRandom(1)),
      refreshRandom2: hex(refreshRandom(2)),
      refreshedKeyId: REFRESHED_KEY_ID,
      refreshedCreatedAt: REFRESHED_CREATED_AT,
      recoveryId: hex(RECOVERY_ID),
      recoveryDeadline: RECOVERY_DEADLINE,
    },
    frames,
    lp,
  };
}

export const sha256 = (data: Uint8Array) =>
  new Uint8Array(createHash("sha256").update(data).digest());
