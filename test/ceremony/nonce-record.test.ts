/**
 * A `nonce` round end to end: what the key store keeps, what an admin's reveal and the owner's
 * delivery carry. None of them may hold a scalar usable as a signing k (docs/PROTOCOL.md §13.10).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { curveOrder, DeterministicGenerator, NONCE_LABEL } from "../../src/derive/index.js";
import { decodeStoredSecret } from "../../src/server/stored-secret.js";
import { startContributors, startTestServer } from "../helpers/ceremony.js";
import { registerTestRequester } from "../helpers/distribution.js";

test("a nonce record's stored secret, its reveal to the admin and its delivery to its owner hold the value and no scalar", async () => {
  const server = await startTestServer({ quorum: 2 });
  const admin = await server.admin();
  try {
    await startContributors(server, 2);
    const owner = await registerTestRequester(server, "signer");
    for (const curve of ["secp256k1", "p256"] as const) {
      const { record, secret } = await admin.generateRevealed("nonce", { curve }, owner.name);
      const plaintext = await server.store.readSecret(record.id);
      const stored = decodeStoredSecret(plaintext);
      // The scalar version 1 output, recomputed from the round's derivation secret.
      const generator = new DeterministicGenerator(
        new Uint8Array(Buffer.from(stored.derivationSecret, "hex")),
        NONCE_LABEL,
        { curve },
      );
      const scalar = generator.scalar(curveOrder(curve)).toString(16).padStart(64, "0");
      const value = Buffer.from(generator.bytes(32)).toString("hex");

      assert.deepEqual(stored.output, { value }, `${curve}: stored`);
      assert.equal(Buffer.from(plaintext).toString("utf8").includes(scalar), false);
      assert.deepEqual(secret, { value }, `${curve}: revealed to the admin`);
      const fetched = await owner.client.fetchKey(record.id);
      assert.deepEqual(fetched.secret, { value }, `${curve}: delivered to its owner`);
      assert.equal(JSON.stringify(fetched).includes(scalar), false);
      assert.equal(JSON.stringify(record).includes(scalar), false);
    }
  } finally {
    admin.close();
    await server.cleanup();
  }
});
