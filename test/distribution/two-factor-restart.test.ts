/**
 * Two-factor state lives in the key store, through its own append path: a server restarted on the
 * same data folder still refuses a used recovery code and an HOTP counter already passed, and
 * still knows the account is enrolled.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RequesterClient } from "../../src/client/requester.js";
import { loadOrCreateRequesterKeys } from "../../src/client/requester-state.js";
import { Secret } from "../../src/crypto/secret.js";
import { hotpCode } from "../../src/derive/hotp.js";
import { fromBase32 } from "../../src/derive/otpauth.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { startContributors, startTestServer, tempDir } from "../helpers/ceremony.js";
import { registerTestRequester } from "../helpers/distribution.js";

test("after a restart on the same data folder a used recovery code stays used and the HOTP counter stays where it was", async () => {
  const dir = await tempDir();
  try {
    const first = await startTestServer({ quorum: 2 }, { dataDir: dir.path });
    const contributors = await startContributors(first, 2);
    const app = await registerTestRequester(first, "shop");
    const enrollment = await app.client.enrollTotp({
      issuer: "ACME",
      account: "rita",
      type: "hotp",
      recoveryCodes: 3,
    });
    const secret = fromBase32(enrollment.secret);
    const [used, unused] = enrollment.recoveryCodes as [string, string];
    assert.equal((await app.client.verifyRecoveryCode("rita", used)).valid, true);
    assert.equal((await app.client.verifyTotp("rita", hotpCode(secret, 3))).valid, true);
    for (const c of contributors) await c.contributor.stop();
    await first.stop();

    const second = await startTestServer({ quorum: 2 }, { dataDir: dir.path });
    try {
      const keys = await loadOrCreateRequesterKeys(app.dataDir);
      const client = new RequesterClient({
        server: second.httpUrl!,
        credential: new Secret(new Uint8Array(Buffer.from(app.credential))),
        privateKey: keys.privateKey,
        fingerprint: keys.fingerprint,
      });
      assert.deepEqual(await client.verifyRecoveryCode("rita", used), {
        valid: false,
        reason: "used",
        attemptsLeft: 4,
        recoveryCodesLeft: 2,
      });
      assert.equal((await client.verifyTotp("rita", hotpCode(secret, 3))).reason, "replayed");
      assert.equal((await client.verifyTotp("rita", hotpCode(secret, 2))).reason, "invalid");
      assert.deepEqual(await client.verifyTotp("rita", hotpCode(secret, 4)), { valid: true });
      assert.deepEqual(await client.verifyRecoveryCode("rita", unused), {
        valid: true,
        recoveryCodesLeft: 1,
      });
      await assert.rejects(client.enrollTotp({ issuer: "ACME", account: "rita" }), (e: unknown) =>
        isDkeygenError(e, ErrorCodes.ALREADY_ENROLLED),
      );
    } finally {
      await second.stop();
    }
  } finally {
    await dir.remove();
  }
});
