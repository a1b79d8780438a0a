/**
 * Requester registrations on PostgreSQL pass the RequesterStore compliance suite, and a removal
 * reaches another server on the database within a second: two registries (two connection pools,
 * as two distribution servers) on one database, one removes, the other refuses the credential.
 * The schema itself keeps tombstones and one live registration per name; no response key is
 * stored in the clear.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { PostgresRequesterStore } from "../../src/server/postgres-requester-store.js";
import { RequesterRegistry } from "../../src/server/requesters.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { startPostgres } from "../helpers/postgres.js";
import { requesterStoreCompliance } from "./requester-store-compliance.js";

const cluster = await startPostgres();
after(() => cluster.stop());

const pem = generateKeyPairSync("rsa", { modulusLength: 3072 }).publicKey.export({
  type: "spki",
  format: "pem",
}) as string;

/** `count` open key stores with a requester store each (a process each) on one new database. */
async function processes(count: number) {
  const url = await cluster.createDatabase();
  const storeKey = randomBytes(32);
  const stores: PostgresKeyStore[] = [];
  for (let i = 0; i < count; i++) {
    const store = new PostgresKeyStore({ url, storeKey });
    await store.open();
    stores.push(store);
  }
  const sql = <T = Record<string, unknown>>(text: string, values: unknown[] = []) =>
    cluster.admin<T>(text, values, new URL(url).pathname.slice(1));
  return {
    requesters: stores.map((s) => new PostgresRequesterStore(s, storeKey)),
    sql,
    close: () => Promise.all(stores.map((s) => s.close())),
  };
}

requesterStoreCompliance("postgres", async () => {
  const { requesters, close } = await processes(1);
  return { store: requesters[0]!, cleanup: async () => void (await close()) };
});

test("a requester removed through one server is refused by another on the database within a second", async (t) => {
  const { requesters, close } = await processes(2);
  const registry = await RequesterRegistry.open(requesters[1]!);
  try {
    registry.watch();
    const added = await requesters[0]!.add("shop", pem);
    const header = `Bearer ${added.credential}`;
    assert.equal((await registry.authenticate(header))?.id, added.id);
    // Served from memory now, without asking the database.
    assert.equal((registry.authenticateKnown(header) as { id: string }).id, added.id);
    const removedAt = performance.now();
    await requesters[0]!.remove("shop");
    let refusedAfter: number | undefined;
    while (performance.now() - removedAt < 2000) {
      if (
        registry.authenticateKnown(header) !== undefined &&
        registry.authenticateKnown(header) !== "recheck"
      ) {
        await sleep(10);
        continue;
      }
      refusedAfter = performance.now() - removedAt;
      break;
    }
    assert.ok(
      refusedAfter !== undefined && refusedAfter < 1000,
      `refused after ${refusedAfter} ms`,
    );
    t.diagnostic(`refused ${refusedAfter?.toFixed(0)} ms after the removal`);
    assert.equal(await registry.authenticate(header), undefined);
  } finally {
    registry.close();
    await close();
  }
});

test("the schema keeps tombstones, one live registration per name, and no response key in the clear", async () => {
  const { requesters, sql, close } = await processes(1);
  try {
    const added = await requesters[0]!.add("shop", pem);
    await requesters[0]!.remove("shop");
    const refused = (text: string, values: unknown[]) =>
      assert.rejects(
        sql(text, values),
        /tombstone never changes|never changed or removed|duplicate key/,
      );
    await refused("UPDATE requesters SET removed_at = NULL WHERE id = $1", [added.id]);
    await refused("DELETE FROM requesters WHERE id = $1", [added.id]);
    const again = await requesters[0]!.add("shop", pem);
    await refused(
      "INSERT INTO requesters (id, name, public_key, fingerprint, credential_hash, response_key_iv, " +
        "response_key_ct, response_key_tag, added_at) SELECT $1, name, public_key, fingerprint, " +
        "credential_hash, response_key_iv, response_key_ct, response_key_tag, added_at " +
        "FROM requesters WHERE id = $2",
      [`rq:${"A".repeat(22)}`, again.id],
    );
    await assert.rejects(
      sql("UPDATE requester_changes SET version = version - 1", []),
      /only increases/,
    );
    // The live registration's K_resp, as the registry unseals it, appears nowhere in the table.
    const registry = await RequesterRegistry.open(requesters[0]!);
    const key = (await registry.authenticate(`Bearer ${again.credential}`))!.responseKey!;
    const dump = await sql<{ row: string }>("SELECT requesters::text AS row FROM requesters", []);
    for (const { row } of dump) {
      for (const form of [key.toString("hex"), key.toString("base64url"), key.toString("base64")]) {
        assert.ok(!row.includes(form), "response key stored in the clear");
      }
    }
  } finally {
    await close();
  }
});
