import assert from "node:assert/strict";
import { test } from "node:test";
import {
  aggregateSignature,
  commitNonces,
  signShare,
  verifyThresholdSignature,
} from "../../src/threshold/signing.js";
import { SUITE_NAMES, suiteOf } from "../../src/threshold/suites.js";
import { localSession, runLocalDkg } from "../helpers/dkg-local.js";

for (const suite of SUITE_NAMES) {
  test(`${suite}: a 2-of-3 DKG gives every participant the same key, and any 2 shares sign for it`, () => {
    const dkg = localSession(suite, 2, 3);
    const { shares } = runLocalDkg(dkg);
    const group = Buffer.from(shares[0]!.groupPublicKey).toString("hex");
    for (const s of shares) assert.equal(Buffer.from(s.groupPublicKey).toString("hex"), group);
    const message = new TextEncoder().encode("pay 1 BTC to Alice");
    for (const subset of [
      [0, 1],
      [1, 2],
      [0, 2],
    ]) {
      const signers = subset.map((i) => shares[i]!);
      const round1 = signers.map((s) =>
        commitNonces({
          suite,
          identifier: s.identifiers[s.index - 1]!,
          signingShare: s.signingShare,
        }),
      );
      const commitments = round1.map((r) => r.commitments);
      const sigShares: Record<string, Uint8Array> = {};
      signers.forEach((s, i) => {
        const identifier = s.identifiers[s.index - 1]!;
        sigShares[identifier] = signShare(
          { suite, identifier, signingShare: s.signingShare },
          s.public,
          round1[i]!.nonces,
          commitments,
          message,
        );
      });
      const signature = aggregateSignature(
        suite,
        shares[0]!.public,
        commitments,
        message,
        sigShares,
      );
      const key = shares[0]!.outputKey ?? shares[0]!.groupPublicKey;
      assert.ok(verifyThresholdSignature(suite, signature, message, key), `${subset}`);
      assert.equal(
        verifyThresholdSignature(suite, signature, new TextEncoder().encode("x"), key),
        false,
      );
    }
    // The group secret, rebuilt from t shares, is the discrete log of the group key.
    const { frost } = suiteOf(suite);
    const secret = frost.combineSecret(
      shares
        .slice(0, 2)
        .map((s) => ({ identifier: s.identifiers[s.index - 1]!, signingShare: s.signingShare })),
      { min: 2, max: 3 },
    );
    const sig = frost.sign(message, secret);
    assert.ok(frost.verify(sig, message, shares[0]!.public.commitments[0]!));
    console.log(suite, group.length / 2, shares[0]!.outputKey?.length);
  });
}
