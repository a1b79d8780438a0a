/**
 * Proactive share refresh by resharing (docs/PROTOCOL.md §16.7): t of the n holders each deal a
 * fresh Shamir sharing of their own share to all n; every holder combines what it received with
 * the dealers' Lagrange coefficients into a new share of the same key. The group key stays; the
 * polynomial is new, so old shares and new ones do not combine — t old shares stolen before a
 * refresh and one after are worth nothing together.
 *
 *   dealer i       noble trustedDealer({t, n}, identifiers, secret = s_i): commitments D_i with
 *                  D_i,0 = s_i·G, which must equal i's verifying share V_i (public), so a dealer
 *                  cannot deal anything but its share; one sub-share per holder, sealed
 *                  (share-box.ts) to it — itself included, for recovery
 *   holder j       each sub-share checked against its dealer's commitment (noble validateSecret);
 *                  s'_j = Σ λ_i · sub_ij over the dealers, λ_i the Lagrange coefficient at 0;
 *                  the new group commitment G'_k = Σ λ_i · D_i,k (G'_0 must be the old group key)
 *                  and verifying shares V'_m = Σ_k x_m^k · G'_k; s'_j·G must be V'_j
 *
 * For secp256k1-tr the stored shares are already those of the tweaked output key (suites.ts), so
 * dealing uses the plain FROST-secp256k1 suite (the same group, without Taproot's adjustments).
 * Scalars and points are noble's (Fn, Point); nothing here is curve arithmetic of its own.
 */

import { createHash } from "node:crypto";
import type { FROST, FrostPublic } from "@noble/curves/abstract/frost.js";
import { ed25519, ed25519_FROST } from "@noble/curves/ed25519.js";
import { p256, p256_FROST } from "@noble/curves/nist.js";
import { secp256k1, secp256k1_FROST } from "@noble/curves/secp256k1.js";
import { lengthPrefixed } from "../crypto/canonical.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { DkgFault } from "./dkg.js";
import type { SuiteName } from "./suites.js";

/** What this module uses of a noble point class (the same for Edwards and Weierstrass). */
interface GroupPoint {
  add(other: GroupPoint): GroupPoint;
  multiply(scalar: bigint): GroupPoint;
  toBytes(): Uint8Array;
  assertValidity(): void;
}
interface GroupPointClass {
  readonly ZERO: GroupPoint;
  readonly BASE: GroupPoint;
  fromBytes(bytes: Uint8Array): GroupPoint;
}

/** The suite a refresh deals in: for secp256k1-tr, plain secp256k1 (no Taproot adjustments). */
function dealing(suite: SuiteName): { frost: FROST; Point: GroupPointClass } {
  const pick = (frost: FROST, Point: unknown) => ({ frost, Point: Point as GroupPointClass });
  if (suite === "secp256k1-tr") return pick(secp256k1_FROST, secp256k1.Point);
  if (suite === "ed25519") return pick(ed25519_FROST, ed25519.Point);
  return pick(p256_FROST, p256.Point);
}

export interface RefreshSessionParams {
  suite: SuiteName;
  t: number;
  n: number;
  serverFingerprint: string;
  /** The key being refreshed: its record id and its current public package's hash. */
  keyId: string;
  publicHash: Uint8Array;
  nonce: Uint8Array;
  /** The t dealers' indices, ascending. */
  dealers: number[];
  /** The holders' identity keys, index order. */
  identities: Uint8Array[];
}

export function refreshSessionIdOf(p: RefreshSessionParams): Uint8Array {
  return new Uint8Array(
    createHash("sha256")
      .update(
        lengthPrefixed(
          "dkeygen/v1/refresh-session",
          p.suite,
          String(p.t),
          String(p.n),
          p.serverFingerprint,
          p.keyId,
          p.publicHash,
          p.nonce,
          String(p.dealers.length),
          ...p.dealers.map(String),
          ...p.identities,
        ),
      )
      .digest(),
  );
}

export function checkDealers(t: number, n: number, dealers: number[]): void {
  const ascending = dealers.every((d, k) => k === 0 || d > dealers[k - 1]!);
  if (dealers.length !== t || !ascending || dealers[0]! < 1 || dealers[t - 1]! > n) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A refresh names t ascending dealers.");
  }
}

/** A dealer's fresh sharing of its share: the commitments, and one sub-share per holder. */
export function deal(
  suite: SuiteName,
  t: number,
  n: number,
  identifiers: string[],
  share: Uint8Array,
  verifyingShare: Uint8Array,
  random?: (bytes: number) => Uint8Array,
): { commitment: Uint8Array[]; subShares: Uint8Array[] } {
  const { frost } = dealing(suite);
  const rng = random === undefined ? undefined : (bytes = 32) => new Uint8Array(random(bytes));
  const dealt = frost.trustedDealer({ min: t, max: n }, identifiers, share, rng);
  const commitment = dealt.public.commitments.map((c) => new Uint8Array(c));
  if (!Buffer.from(commitment[0]!).equals(Buffer.from(verifyingShare))) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "This share is not the holder's: refusing to deal it.",
    );
  }
  return {
    commitment,
    subShares: identifiers.map((id) => new Uint8Array(dealt.secretShares[id]!.signingShare)),
  };
}

/** Whether dealer `d`'s commitment is well formed and deals the dealer's own share (D_0 = V_d). */
export function checkDeal(
  suite: SuiteName,
  t: number,
  commitment: Uint8Array[],
  verifyingShare: Uint8Array,
): boolean {
  const { Point } = dealing(suite);
  if (commitment.length !== t) return false;
  try {
    for (const c of commitment) Point.fromBytes(c).assertValidity();
  } catch {
    return false;
  }
  return Buffer.from(commitment[0]!).equals(Buffer.from(verifyingShare));
}

/** Whether a sub-share for `identifier` lies on the dealer's committed polynomial. */
export function subShareMatches(
  suite: SuiteName,
  t: number,
  n: number,
  identifier: string,
  subShare: Uint8Array,
  commitment: Uint8Array[],
): boolean {
  try {
    dealing(suite).frost.validateSecret(
      { identifier, signingShare: subShare },
      { signers: { min: t, max: n }, commitments: commitment, verifyingShares: {} },
    );
    return true;
  } catch {
    return false;
  }
}

function scalarOf(suite: SuiteName, identifier: string): bigint {
  const { Fn } = dealing(suite).frost.utils;
  return Fn.fromBytes(Buffer.from(identifier, "hex"));
}

/**
 * λ_i(x) for each of `ids`: Π_{k ≠ i} (x − x_k) / (x_i − x_k), the Lagrange coefficients that
 * interpolate a polynomial through the identifiers' points at x — at 0 for a refresh, at a lost
 * holder's identifier for a repair (repair.ts). The identifiers must be distinct.
 */
export function lagrangeAt(suite: SuiteName, ids: string[], x: bigint): bigint[] {
  const { Fn } = dealing(suite).frost.utils;
  const xs = ids.map((id) => scalarOf(suite, id));
  return xs.map((xi, i) => {
    let num = Fn.ONE;
    let den = Fn.ONE;
    xs.forEach((xk, k) => {
      if (k === i) return;
      num = Fn.mul(num, Fn.sub(x, xk));
      den = Fn.mul(den, Fn.sub(xi, xk));
    });
    return Fn.div(num, den);
  });
}

/** λ_i for each dealer: λ_i(0) = Π_{k ≠ i} x_k / (x_k − x_i) over the dealers' identifiers. */
export function lagrangeAtZero(suite: SuiteName, dealerIds: string[]): bigint[] {
  return lagrangeAt(suite, dealerIds, 0n);
}

/** s·G as the suite's public packages encode a verifying share (noble's point arithmetic). */
export function verifyingShareOf(suite: SuiteName, share: bigint): Uint8Array {
  return dealing(suite).Point.BASE.multiply(share).toBytes();
}

/**
 * Holder j's new share and the key's new public package from the dealers' commitments and j's
 * checked sub-shares (dealer order). Throws DkgFault if the result is not a share of the same key.
 */
export function combineRefresh(
  suite: SuiteName,
  t: number,
  n: number,
  identifiers: string[],
  dealers: number[],
  commitments: Uint8Array[][],
  subShares: Uint8Array[],
  me: number,
  oldPublic: FrostPublic,
): { signingShare: Uint8Array; public: FrostPublic } {
  const { frost, Point } = dealing(suite);
  const { Fn } = frost.utils;
  const lambdas = lagrangeAtZero(
    suite,
    dealers.map((d) => identifiers[d - 1]!),
  );
  let share = Fn.ZERO;
  subShares.forEach((s, i) => {
    share = Fn.add(share, Fn.mul(lambdas[i]!, Fn.fromBytes(s)));
  });
  const group = Array.from({ length: t }, (_, k) =>
    commitments.reduce(
      (sum, c, i) => sum.add(Point.fromBytes(c[k]!).multiply(lambdas[i]!)),
      Point.ZERO,
    ),
  );
  const groupBytes = group.map((p) => p.toBytes());
  if (!Buffer.from(groupBytes[0]!).equals(Buffer.from(oldPublic.commitments[0]!))) {
    throw new DkgFault(
      "coordinator",
      "certificate",
      "The refreshed sharing is not of the same key.",
    );
  }
  const verifyingShares: Record<string, Uint8Array> = {};
  for (const id of identifiers) {
    const x = scalarOf(suite, id);
    let power = Fn.ONE;
    let point = Point.ZERO;
    for (const g of group) {
      point = point.add(g.multiply(power));
      power = Fn.mul(power, x);
    }
    verifyingShares[id] = point.toBytes();
  }
  const shareBytes = Fn.toBytes(share);
  const mine = verifyingShareOf(suite, share);
  if (!Buffer.from(mine).equals(Buffer.from(verifyingShares[identifiers[me - 1]!]!))) {
    throw new DkgFault(
      "coordinator",
      "certificate",
      "The refreshed share does not match its verifying share.",
    );
  }
  return {
    signingShare: shareBytes,
    public: {
      signers: { min: t, max: n },
      commitments: groupBytes.map((b) => new Uint8Array(b)),
      verifyingShares: Object.fromEntries(
        Object.entries(verifyingShares).map(([id, v]) => [id, new Uint8Array(v)]),
      ),
    },
  };
}

/** Signed by a dealer over its commitment and ephemeral key (PROTOCOL §16.7). */
export function dealSignedData(
  sessionId: Uint8Array,
  index: number,
  ephemeralKey: Uint8Array,
  commitment: Uint8Array[],
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/refresh-deal",
    sessionId,
    String(index),
    ephemeralKey,
    String(commitment.length),
    ...commitment,
  );
}

/** The refresh's transcript: the session id and every dealer's signed deal, in dealer order. */
export function refreshTranscript(
  sessionId: Uint8Array,
  deals: {
    index: number;
    ephemeralKey: Uint8Array;
    commitment: Uint8Array[];
    signature: Uint8Array;
  }[],
): Uint8Array {
  const fields: Uint8Array[] = [];
  for (const d of deals) {
    fields.push(dealSignedData(sessionId, d.index, d.ephemeralKey, d.commitment), d.signature);
  }
  return new Uint8Array(
    createHash("sha256")
      .update(lengthPrefixed("dkeygen/v1/refresh-transcript", sessionId, ...fields))
      .digest(),
  );
}
