/**
 * A batch of OTPs made for an owner keeps its round secret once and each record only its index
 * into it (docs/PROTOCOL.md §9): what the owner is given of such a record — its code, its
 * derivation export (§9.1) and its opening, which `dkeygen audit record` checks (§15.6) — is what
 * a record with a secret part of its own would give, and the audit passes every step.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { auditRecord } from "../../src/audit/record-audit.js";
import { derivePurpose } from "../../src/derive/index.js";
import type { JsonObject } from "../../src/json.js";
import { readStoredSecret } from "../../src/server/stored-secret.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import type { KeyStore } from "../../src/store/types.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { http, registerTestRequester, type TestRequester } from "../helpers/distribution.js";

/** Everything the audit of record `id` needs, as its owner gets it. */
async function gather(server: TestServer, owner: TestRequester, id: string) {
  const { record, opening } = await owner.client.fetchOpening(id);
  const identity = (await http(server, "GET", "/v1/log/identity")).body;
  const checkpoint = (await http(server, "GET", "/v1/log/checkpoint")).text;
  const size = Number(checkpoint.split("\n")[1]);
  const proof = (
    await http(server, "GET", `/v1/log/proof/inclusion?roundId=${record.roundId}&size=${size}`)
  ).body;
  const index = proof.index as number;
  const entries = (await http(server, "GET", `/v1/log/entries?start=${index}&end=${index + 1}`))
    .body.entries as { leaf: string }[];
  return {
    record: { ...record, public: record.public as JsonObject },
    opening,
    identity,
    serverFingerprint: server.fingerprint,
    checkpoint,
    proof,
    leaf: new Uint8Array(Buffer.from(entries[0]!.leaf, "base64")),
  };
}

for (const [name, store] of [
  ["the key_store file", () => undefined],
  ["a memory store", () => new MemoryKeyStore()],
] as const) {
  test(`an owner's batch of OTPs (${name}): its code, derivation export and opening re-derive each record, and its audit passes`, async () => {
    const given: KeyStore | undefined = store();
    const server = await startTestServer({ quorum: 2 }, given ? { store: given } : {});
    try {
      await startContributors(server, 3);
      const owner = await registerTestRequester(server, "owner");
      const told = new Map<string, JsonObject>();
      const records = await server.server.runBatchRound({
        purpose: "otp",
        params: { digits: 7 },
        count: 4,
        owner: owner.id,
        onStored: (record, output) => told.set(record.id, output),
      });
      const kinds = await Promise.all(records.map((r) => server.store.readSecretPart(r.id)));
      assert.deepEqual(
        kinds.map((part) => (part.kind === "round" ? part.roundPart : part.kind)),
        [0, 1, 2, 3],
        "each record keeps its part of the round's secret",
      );
      for (const part of kinds) (part.kind === "round" ? part.roundSecret : part.secret).fill(0);

      const record = records[2]!;
      const stored = await readStoredSecret(server.store, record.id);
      const { secret } = await owner.client.fetchKey(record.id);
      assert.equal(secret.code, told.get(record.id)!.code, "the code the round made");
      assert.equal(stored.output.code, secret.code);
      assert.match(String(secret.code), /^\d{7}$/);

      const { exported } = await owner.client.exportDerivationSecret(record.id);
      assert.deepEqual(exported.batch, { index: 2, size: 4 });
      assert.deepEqual(exported.params, { digits: 7 });
      assert.equal(exported.derivationSecret, stored.derivationSecret);
      const again = await derivePurpose(
        "otp",
        Buffer.from(String(exported.derivationSecret), "hex"),
        exported.params as JsonObject,
      );
      assert.deepEqual(again.public, record.public);
      assert.equal(again.secret.code, secret.code);

      const report = await auditRecord(await gather(server, owner, record.id));
      assert.deepEqual(
        report.steps.filter((s) => s.status !== "passed").map((s) => `${s.step}: ${s.message}`),
        [],
      );
      assert.equal(report.ok, true);
      assert.ok(
        report.steps.some((s) => /result 3 of 4/.test(s.message)),
        JSON.stringify(report.steps),
      );
    } finally {
      await server.cleanup();
    }
  });
}
