/**
 * Batch rounds (a pool refill) derive their outputs on the derivation thread (batch-worker.ts):
 * the outputs must be exactly what docs/PROTOCOL.md says (HKDF of the round secret per index,
 * then the purpose's derivation), stored in index order, each handed to onStored, and a thread
 * that stops fails the round instead of hanging it.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { batchOutputSecret } from "../../src/crypto/kdf.js";
import { derivePurpose } from "../../src/derive/index.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import type { JsonObject } from "../../src/json.js";
import { BatchDeriver } from "../../src/server/batch-deriver.js";
import type { BatchItem } from "../../src/server/batch-worker.js";
import { decodeStoredSecret, encodeStoredSecret } from "../../src/server/stored-secret.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";

let server: TestServer;

before(async () => {
  server = await startTestServer({ quorum: 2 });
  await startContributors(server, 2);
});
after(() => server.cleanup());

test("a batch round stores every output in index order, re-derivable from its stored secret", async () => {
  const count = 300; // several chunks from the thread
  const told = new Map<string, JsonObject>();
  const records = await server.server.runBatchRound({
    purpose: "otp",
    params: { digits: 8 },
    count,
    onStored: (record, output) => told.set(record.id, output),
  });
  assert.equal(records.length, count);
  assert.equal(told.size, count);
  const inputs = new Set<string>();
  for (const [index, record] of records.entries()) {
    assert.equal(record.purpose, "otp");
    assert.equal(record.public.digits, 8);
    const stored = decodeStoredSecret(await server.store.readSecret(record.id));
    assert.deepEqual(stored.batch, { index, size: count });
    inputs.add(stored.derivationSecret);
    // What an auditor does: derive again from the stored input.
    const again = await derivePurpose(
      "otp",
      Buffer.from(stored.derivationSecret, "hex"),
      stored.params,
    );
    assert.deepEqual(stored.output, again.secret);
    assert.deepEqual(told.get(record.id), again.secret);
    assert.match(String(again.secret.code), /^\d{8}$/);
  }
  assert.equal(inputs.size, count, "every output has its own input");
  // A round made for no owner (a pool refill) keeps no opening: nobody could ask for it.
  assert.equal(await server.store.readRoundOpening(records[0]!.roundId), undefined);
  // Stored oldest first, in index order.
  assert.deepEqual(
    records.map((r) => r.id),
    [...records.map((r) => r.id)].sort(),
  );
});

test("the derivation thread computes exactly the protocol's outputs, and leaves the caller's secret alone", async () => {
  const deriver = new BatchDeriver();
  try {
    const secret = new Uint8Array(randomBytes(64));
    const original = Uint8Array.from(secret);
    const params = { digits: 6 };
    const items: BatchItem[] = [];
    await deriver.derive(secret, "otp", params, 130, (chunk) => items.push(...chunk));
    assert.deepEqual(secret, original);
    assert.equal(items.length, 130);
    for (const [index, item] of items.entries()) {
      const input = batchOutputSecret(secret, "otp", index);
      const expected = await derivePurpose("otp", input, params);
      assert.equal(item.algorithm, expected.algorithm);
      assert.deepEqual(item.public, expected.public);
      assert.deepEqual(item.output, expected.secret);
      assert.deepEqual(
        Buffer.from(item.payload),
        Buffer.from(
          encodeStoredSecret({
            v: 2,
            derivationSecret: Buffer.from(input).toString("hex"),
            batch: { index, size: 130 },
            params,
            output: expected.secret,
          }),
        ),
      );
    }
    // Several jobs at once stay apart.
    const [a, b] = await Promise.all(
      [1, 2].map(async (n) => {
        const got: BatchItem[] = [];
        await deriver.derive(
          new Uint8Array(64).fill(n),
          "otp",
          params,
          100,
          (chunk) => void got.push(...chunk),
        );
        return got.map((item) => item.output.code);
      }),
    );
    assert.equal(a!.length, 100);
    assert.notDeepEqual(a, b);
  } finally {
    await deriver.close();
  }
});

test("a derivation that fails, or a thread that stops, fails the batch with a clear error", async () => {
  const deriver = new BatchDeriver();
  try {
    await assert.rejects(
      deriver.derive(new Uint8Array(64), "otp", { digits: 99 }, 10, () => {}),
      (error) => isDkeygenError(error) && !String(error.message).includes("0000"),
    );
    // A receiver that fails on a chunk ends its job (the thread stops deriving it).
    await assert.rejects(
      deriver.derive(new Uint8Array(64).fill(3), "otp", { digits: 6 }, 1_000, () => {
        throw new Error("the store refused");
      }),
      /the store refused/,
    );
    // The thread is still there for the next batch.
    let got = 0;
    await deriver.derive(new Uint8Array(64).fill(7), "otp", { digits: 6 }, 5, (items) => {
      got += items.length;
    });
    assert.equal(got, 5);
    const running = deriver.derive(new Uint8Array(64), "otp", { digits: 6 }, 5_000, () => {});
    await deriver.close();
    await assert.rejects(running, (error) => isDkeygenError(error, ErrorCodes.OPERATIONAL));
    await assert.rejects(
      deriver.derive(new Uint8Array(64), "otp", { digits: 6 }, 1, () => {}),
      (error) => isDkeygenError(error, ErrorCodes.OPERATIONAL),
    );
  } finally {
    await deriver.close();
  }
});
