/**
 * Batch rounds (a pool refill) derive their outputs on the derivation thread (batch-worker.ts):
 * the outputs must be exactly what docs/PROTOCOL.md says (HKDF of the round secret per index,
 * then the purpose's derivation), stored in index order, each handed to onStored, and a thread
 * that stops fails the round instead of hanging it. A batch of OTPs stores its round secret once
 * and each record only its index into it (§9); other purposes and one-result rounds keep a secret
 * part per record.
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
import {
  decodeRoundSecret,
  encodeStoredSecret,
  readStoredSecret,
} from "../../src/server/stored-secret.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import type { KeyRecord, RecordInput } from "../../src/store/types.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { registerTestRequester } from "../helpers/distribution.js";

/** A memory store that notes the round secrets put and how each record's secret part came. */
class WatchedStore extends MemoryKeyStore {
  readonly roundSecrets: string[] = [];
  readonly parts = new Map<string, "own" | number>();
  override async putRoundSecret(roundId: string, secret: Uint8Array): Promise<void> {
    this.roundSecrets.push(roundId);
    return super.putRoundSecret(roundId, secret);
  }
  override async put(input: RecordInput): Promise<KeyRecord> {
    const record = await super.put(input);
    this.parts.set(record.id, input.roundPart ?? "own");
    return record;
  }
}

let server: TestServer;
let memory: TestServer;
const watched = new WatchedStore();

before(async () => {
  server = await startTestServer({ quorum: 2 });
  await startContributors(server, 2);
  memory = await startTestServer({ quorum: 2 }, { store: watched, otpPool: 20 });
  await startContributors(memory, 2);
});
after(async () => {
  await server.cleanup();
  await memory.cleanup();
});

for (const [name, target] of [
  ["the key_store file", () => server],
  ["a memory store", () => memory],
] as const) {
  test(`a batch round of OTPs (${name}) stores its round secret once and each record its index: every output in index order, re-derivable as the protocol says`, async () => {
    const { store } = target();
    const count = 300; // several chunks from the thread
    const told = new Map<string, JsonObject>();
    const records = await target().server.runBatchRound({
      purpose: "otp",
      params: { digits: 8 },
      count,
      onStored: (record, output) => told.set(record.id, output),
    });
    assert.equal(records.length, count);
    assert.equal(told.size, count);
    const roundId = records[0]!.roundId;
    const roundSecrets = new Set<string>();
    const inputs = new Set<string>();
    for (const [index, record] of records.entries()) {
      assert.equal(record.purpose, "otp");
      assert.equal(record.roundId, roundId);
      assert.equal(record.public.digits, 8);
      // No secret part of its own: its part of the round's secret.
      await assert.rejects(store.readSecret(record.id), (e) =>
        isDkeygenError(e, ErrorCodes.INVALID_INPUT),
      );
      const part = await store.readSecretPart(record.id);
      assert.ok(part.kind === "round");
      assert.equal(part.roundPart, index);
      const round = decodeRoundSecret(part.roundSecret);
      assert.deepEqual(
        { purpose: round.purpose, size: round.size, params: round.params },
        { purpose: "otp", size: count, params: { digits: 8 } },
      );
      roundSecrets.add(Buffer.from(round.roundSecret).toString("hex"));

      const stored = await readStoredSecret(store, record.id);
      assert.equal(stored.v, 3);
      assert.deepEqual(stored.batch, { index, size: count });
      assert.deepEqual(stored.params, { digits: 8 });
      assert.equal(
        stored.derivationSecret,
        Buffer.from(batchOutputSecret(round.roundSecret, "otp", index)).toString("hex"),
      );
      inputs.add(stored.derivationSecret);
      // What an auditor does: derive again from the derivation secret.
      const again = await derivePurpose(
        "otp",
        Buffer.from(stored.derivationSecret, "hex"),
        stored.params,
      );
      assert.deepEqual(stored.output, again.secret);
      assert.deepEqual(told.get(record.id), again.secret);
      assert.match(String(again.secret.code), /^\d{8}$/);
    }
    assert.equal(roundSecrets.size, 1, "one round secret for the whole round");
    assert.equal(inputs.size, count, "every output has its own input");
    if (store === watched) {
      assert.deepEqual(
        watched.roundSecrets.filter((id) => id === roundId),
        [roundId],
        "the round secret put once",
      );
      assert.deepEqual(
        records.map((r) => watched.parts.get(r.id)),
        records.map((_, index) => index),
      );
    }
    // A round made for no owner (a pool refill) keeps no opening: nobody could ask for it.
    assert.equal(await store.readRoundOpening(roundId), undefined);
    // Stored oldest first, in index order.
    assert.deepEqual(
      records.map((r) => r.id),
      [...records.map((r) => r.id)].sort(),
    );
  });
}

test("a batch of another purpose, and a one-result round of an OTP, keep a secret part of their own and no round secret", async () => {
  const eccs = await memory.server.runBatchRound({
    purpose: "ecc",
    params: { curve: "p256" },
    count: 3,
  });
  const [one] = await memory.server.runBatchRound({ purpose: "otp", count: 1 });
  for (const [index, record] of [...eccs, one!].entries()) {
    assert.equal(watched.parts.get(record.id), "own");
    assert.ok(!watched.roundSecrets.includes(record.roundId), "no round secret");
    const stored = await readStoredSecret(watched, record.id);
    assert.equal(stored.v, 2);
    assert.deepEqual(
      stored.batch,
      record.purpose === "ecc" ? { index, size: 3 } : { index: 0, size: 1 },
    );
  }
});

test("pooled OTPs keep round parts; a code handed out verifies (read back from its round's secret), once", async () => {
  const svc = await registerTestRequester(memory, "svc");
  await memory.pool!.refill();
  const otp = await svc.client.requestOtp({ subject: "dana" });
  const part = watched.parts.get(otp.otpId);
  assert.equal(typeof part, "number", "a pooled OTP keeps its part of its round's secret");
  assert.equal(
    String((await readStoredSecret(watched, otp.otpId)).output.code),
    otp.code,
    "the code handed out is the one derived from the round secret",
  );
  assert.deepEqual(await svc.client.verifyOtp("dana", otp.code), { valid: true, otpId: otp.otpId });
  const again = await svc.client.verifyOtp("dana", otp.code);
  assert.equal(again.valid, false);
  // The admin's export of a pooled OTP re-derives its code.
  const admin = await memory.admin();
  try {
    const { exported } = await admin.exportDerivationSecret(otp.otpId);
    assert.deepEqual(exported.batch, (await readStoredSecret(watched, otp.otpId)).batch);
    assert.equal((exported.batch as JsonObject).index, part);
    const derived = await derivePurpose(
      "otp",
      Buffer.from(String(exported.derivationSecret), "hex"),
      exported.params as JsonObject,
    );
    assert.equal(derived.secret.code, otp.code);
  } finally {
    admin.close();
  }
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
      assert.equal(item.index, index);
      const input = batchOutputSecret(secret, "otp", index);
      const expected = await derivePurpose("otp", input, params);
      assert.equal(item.algorithm, expected.algorithm);
      assert.deepEqual(item.public, expected.public);
      assert.deepEqual(item.output, expected.secret);
      assert.deepEqual(
        Buffer.from(item.payload!),
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
    // With round parts: the same outputs, each with its index, and no payload to store.
    const parts: BatchItem[] = [];
    await deriver.derive(secret, "otp", params, 130, (chunk) => parts.push(...chunk), {
      roundParts: true,
    });
    assert.deepEqual(secret, original);
    assert.deepEqual(
      parts.map((item) => item.index),
      items.map((_, index) => index),
    );
    for (const [index, item] of parts.entries()) {
      assert.equal(item.payload, undefined);
      const { payload, ...withoutPayload } = items[index]!;
      assert.deepEqual(item, withoutPayload);
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
