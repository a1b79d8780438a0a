/**
 * Share refresh by resharing (src/threshold/refresh.ts, refresh-participant.ts), among
 * in-process holders: the same key, new shares that sign, old and new shares that do not mix, and
 * a dealer that deals anything but its own share is named.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { rawPublicKey, signMessage } from "../../src/crypto/signature.js";
import type { ThresholdShare } from "../../src/threshold/dkg.js";
import { DkgFault } from "../../src/threshold/dkg.js";
import { dealSignedData, type RefreshSessionParams } from "../../src/threshold/refresh.js";
import { RefreshParticipant } from "../../src/threshold/refresh-participant.js";
import {
  aggregateSignature,
  commitNonces,
  signShare,
  verifyThresholdSignature,
} from "../../src/threshold/signing.js";
import { SUITE_NAMES, type SuiteName } from "../../src/threshold/suites.js";
import { publicPackageHash } from "../../src/threshold/transcript.js";
import { localSession, runLocalDkg } from "../helpers/dkg-local.js";

function sign(
  suite: SuiteName,
  holders: { share: Uint8Array; index: number }[],
  base: ThresholdShare,
  pub: ThresholdShare["public"],
  message: Uint8Array,
) {
  const ids = holders.map((h) => base.identifiers[h.index - 1]!);
  const round1 = holders.map((h, i) =>
    commitNonces({ suite, identifier: ids[i]!, signingShare: h.share }),
  );
  const commitments = round1.map((r) => r.commitments);
  const shares = Object.fromEntries(
    holders.map((h, i) => [
      ids[i]!,
      signShare(
        { suite, identifier: ids[i]!, signingShare: h.share },
        pub,
        round1[i]!.nonces,
        commitments,
        message,
      ),
    ]),
  );
  return aggregateSignature(suite, pub, commitments, message, shares);
}

function refreshSetup(suite: SuiteName, t: number, n: number, dealers: number[]) {
  const dkg = localSession(suite, t, n);
  const { shares } = runLocalDkg(dkg);
  const base = shares[0]!;
  const params: RefreshSessionParams = {
    suite,
    t,
    n,
    serverFingerprint: "SHA256:test",
    keyId: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    publicHash: publicPackageHash(base.public, base.identifiers),
    nonce: new Uint8Array(randomBytes(32)),
    dealers,
    identities: dkg.keys.map((k) => rawPublicKey(k.publicKey)),
  };
  const encryptionKeys = dkg.participants.map((p) => p.round1.encryptionKey);
  const holders = dkg.keys.map(
    (k, i) =>
      new RefreshParticipant({
        params,
        index: i + 1,
        identityKey: k.privateKey,
        identifiers: base.identifiers,
        encryptionKeys,
        oldPublic: base.public,
        ...(dealers.includes(i + 1) ? { signingShare: shares[i]!.signingShare } : {}),
        random: (b) => new Uint8Array(randomBytes(b)),
      }),
  );
  return { shares, base, holders, params };
}

for (const suite of SUITE_NAMES) {
  test(`${suite}: a refresh keeps the key, gives new shares that sign, and old and new shares do not mix`, () => {
    const { shares, base, holders } = refreshSetup(suite, 2, 3, [2, 3]);
    const deals = holders.filter((h) => h.isDealer).map((h) => h.deal());
    const packages = deals.map((d) => d.package);
    const sealed = deals.flatMap((d) => d.shares);
    const confirmations = holders.map((h) =>
      h.confirm(
        packages,
        sealed.filter((s) => s.to === h.index),
      ),
    );
    const certificate = confirmations.map((c) => c.signature);
    const refreshed = holders.map((h) => h.finish(certificate));
    const pub = refreshed[0]!.public;
    assert.deepEqual(pub.commitments[0], base.public.commitments[0], "the same group key");
    for (const r of refreshed) assert.deepEqual(r.public, pub);
    for (let i = 0; i < 3; i++) {
      assert.notDeepEqual(
        Buffer.from(refreshed[i]!.signingShare),
        Buffer.from(shares[i]!.signingShare),
      );
    }
    const message = new TextEncoder().encode("after the refresh");
    const key = base.outputKey ?? base.groupPublicKey;
    const fresh = [0, 2].map((i) => ({ share: refreshed[i]!.signingShare, index: i + 1 }));
    assert.ok(
      verifyThresholdSignature(suite, sign(suite, fresh, base, pub, message), message, key),
    );
    // An old share and a new one: no signature (noble refuses to aggregate shares that fail).
    const mixed = [
      { share: shares[0]!.signingShare, index: 1 },
      { share: refreshed[2]!.signingShare, index: 3 },
    ];
    assert.throws(() => sign(suite, mixed, base, pub, message));
  });
}

test("a dealer cannot deal anything but its own share: its commitment must open to its verifying share", () => {
  const suite = "ed25519";
  const dkg = localSession(suite, 2, 3);
  const { shares } = runLocalDkg(dkg);
  const base = shares[0]!;
  const params: RefreshSessionParams = {
    suite,
    t: 2,
    n: 3,
    serverFingerprint: "SHA256:test",
    keyId: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    publicHash: publicPackageHash(base.public, base.identifiers),
    nonce: new Uint8Array(randomBytes(32)),
    dealers: [1, 2],
    identities: dkg.keys.map((k) => rawPublicKey(k.publicKey)),
  };
  const encryptionKeys = dkg.participants.map((p) => p.round1.encryptionKey);
  const holder = (i: number, share?: Uint8Array) =>
    new RefreshParticipant({
      params,
      index: i,
      identityKey: dkg.keys[i - 1]!.privateKey,
      identifiers: base.identifiers,
      encryptionKeys,
      oldPublic: base.public,
      ...(share === undefined ? {} : { signingShare: share }),
      random: (b) => new Uint8Array(randomBytes(b)),
    });
  // A dealer given a share that is not its own refuses to deal it.
  assert.throws(() => holder(1, shares[1]!.signingShare).deal(), /not the holder's/);
  // A dealer that deals a commitment to another value, signed with its own key, is named.
  const honest = holder(1, shares[0]!.signingShare).deal();
  const other = holder(2, shares[1]!.signingShare).deal();
  const cheat = holder(2, shares[1]!.signingShare);
  const forged = { ...other.package, commitment: honest.package.commitment };
  forged.signature = signMessage(
    dkg.keys[1]!.privateKey,
    dealSignedData(cheat.sessionId, 2, forged.ephemeralKey, forged.commitment),
  );
  const sealed = [...honest.shares, ...other.shares].filter((s) => s.to === 3);
  assert.throws(
    () => holder(3).confirm([honest.package, forged], sealed),
    (e: unknown) => e instanceof DkgFault && e.culpritIndex === 2 && e.kind === "commitment",
  );
  // The same deal relayed with its commitment swapped but the old signature: the coordinator.
  const relayed = { ...other.package, commitment: honest.package.commitment };
  assert.throws(
    () => holder(3).confirm([honest.package, relayed], sealed),
    (e: unknown) => e instanceof DkgFault && e.culpritIndex === "coordinator",
  );
});
