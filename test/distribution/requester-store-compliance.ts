/**
 * The RequesterStore compliance suite (src/server/requester-store.ts): what every place that keeps
 * requester registrations must do, requesters.json and PostgreSQL alike, checked through
 * `RequesterRegistry`, the servers' view, so it proves what a distribution server sees.
 *
 * A backend plugs in with a factory returning a fresh, empty store and a `cleanup()` the suite
 * calls after each test.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { afterEach, describe, test } from "node:test";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { REGISTRATION_ID, type RequesterStore } from "../../src/server/requester-store.js";
import { RequesterRegistry } from "../../src/server/requesters.js";

export interface RequesterStoreFixture {
  store: RequesterStore;
  cleanup(): Promise<void>;
}

const rsa = () =>
  generateKeyPairSync("rsa", { modulusLength: 3072 }).publicKey.export({
    type: "spki",
    format: "pem",
  }) as string;
/** Two client keys for every test (made once: RSA-3072 takes a while). */
const KEYS = [rsa(), rsa()] as const;
const bearer = (credential: string) => `Bearer ${credential}`;

export function requesterStoreCompliance(
  name: string,
  make: () => Promise<RequesterStoreFixture>,
): void {
  describe(`RequesterStore compliance: ${name}`, () => {
    let fixture: RequesterStoreFixture | undefined;
    const open = async () => {
      fixture = await make();
      return fixture.store;
    };
    afterEach(async () => {
      await fixture?.cleanup();
      fixture = undefined;
    });

    test("an empty store lists nobody and authenticates nobody", async () => {
      const store = await open();
      assert.deepEqual(await store.list(), { requesters: [], removed: [] });
      const registry = await RequesterRegistry.open(store);
      assert.equal(await registry.authenticate(`Bearer dkr_shop.${"A".repeat(43)}`), undefined);
    });

    test("an added requester is listed and its credential authenticates it, at once", async () => {
      const store = await open();
      const registry = await RequesterRegistry.open(store);
      const added = await store.add("shop", KEYS[0], { now: new Date("2030-01-02T03:04:05Z") });
      assert.match(added.id, REGISTRATION_ID);
      assert.match(added.credential, /^dkr_shop\.[A-Za-z0-9_-]{43}$/);
      assert.equal(added.keptRegistration, false);
      assert.deepEqual(added.removedBefore, []);
      const who = await registry.authenticate(bearer(added.credential));
      assert.equal(who?.id, added.id);
      assert.equal(who?.name, "shop");
      assert.equal(who?.fingerprint, added.fingerprint);
      assert.equal(who?.responseKey?.length, 32);
      assert.equal(registry.nameOf(added.id), "shop");
      assert.deepEqual((await store.list()).requesters, [
        {
          name: "shop",
          id: added.id,
          fingerprint: added.fingerprint,
          addedAt: "2030-01-02T03:04:05.000Z",
          responseKey: true,
        },
      ]);
    });

    test("a wrong secret and an unknown name are refused alike", async () => {
      const store = await open();
      const added = await store.add("shop", KEYS[0]);
      const registry = await RequesterRegistry.open(store);
      const secret = added.credential.split(".")[1]!;
      const wrong = `${secret[0] === "A" ? "B" : "A"}${secret.slice(1)}`;
      assert.equal(await registry.authenticate(bearer(`dkr_shop.${wrong}`)), undefined);
      assert.equal(await registry.authenticate(bearer(`dkr_other.${secret}`)), undefined);
      assert.equal(await registry.authenticate(added.credential), undefined); // no "Bearer "
    });

    test("a live name is refused without replace; replace keeps the id and retires the old credential", async () => {
      const store = await open();
      const first = await store.add("shop", KEYS[0]);
      await assert.rejects(store.add("shop", KEYS[1]), (e) => isDkeygenError(e, ErrorCodes.USAGE));
      const registry = await RequesterRegistry.open(store);
      const second = await store.add("shop", KEYS[1], { replace: true });
      assert.equal(second.id, first.id);
      assert.equal(second.keptRegistration, true);
      assert.notEqual(second.fingerprint, first.fingerprint);
      await registry.reload();
      assert.equal(await registry.authenticate(bearer(first.credential)), undefined);
      assert.equal((await registry.authenticate(bearer(second.credential)))?.id, first.id);
      assert.equal((await store.list()).requesters.length, 1);
    });

    test("a removed requester is refused and leaves a tombstone; adding the name again makes a new id", async () => {
      const store = await open();
      const first = await store.add("shop", KEYS[0]);
      const other = await store.add("bank", KEYS[1]);
      const registry = await RequesterRegistry.open(store);
      const removed = await store.remove("shop", { now: new Date("2030-02-03T04:05:06Z") });
      assert.deepEqual(removed, { name: "shop", id: first.id });
      await registry.reload();
      assert.equal(await registry.authenticate(bearer(first.credential)), undefined);
      assert.equal(registry.nameOf(first.id), undefined);
      assert.equal((await registry.authenticate(bearer(other.credential)))?.name, "bank");
      const listed = await store.list();
      assert.deepEqual(
        listed.requesters.map((r) => r.name),
        ["bank"],
      );
      assert.deepEqual(listed.removed, [
        { name: "shop", id: first.id, removedAt: "2030-02-03T04:05:06.000Z" },
      ]);

      const again = await store.add("shop", KEYS[1]);
      assert.notEqual(again.id, first.id);
      assert.equal(again.keptRegistration, false);
      assert.deepEqual(again.removedBefore, [first.id]);
      await registry.reload();
      assert.equal(await registry.authenticate(bearer(first.credential)), undefined);
      assert.equal((await registry.authenticate(bearer(again.credential)))?.id, again.id);
    });

    test("removing a name nobody holds is E_NOT_FOUND and changes nothing", async () => {
      const store = await open();
      await store.add("shop", KEYS[0]);
      const version = await store.version();
      await assert.rejects(store.remove("bank"), (e) => isDkeygenError(e, ErrorCodes.NOT_FOUND));
      await store.remove("shop");
      await assert.rejects(store.remove("shop"), (e) => isDkeygenError(e, ErrorCodes.NOT_FOUND));
      assert.equal((await store.list()).removed.length, 1);
      assert.notEqual(await store.version(), version);
    });

    test("bad names and keys are refused before anything is kept", async () => {
      const store = await open();
      for (const bad of ["", "a:b", "-x", "a".repeat(65), "a b", "é"]) {
        await assert.rejects(store.add(bad, KEYS[0]), (e) => isDkeygenError(e, ErrorCodes.USAGE));
      }
      const small = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({
        type: "spki",
        format: "pem",
      }) as string;
      for (const pem of [small, "not a key"]) {
        await assert.rejects(store.add("shop", pem), (e) =>
          isDkeygenError(e, ErrorCodes.INVALID_INPUT),
        );
      }
      assert.deepEqual(await store.list(), { requesters: [], removed: [] });
    });

    test("the version changes with every add, replace and removal, and not otherwise", async () => {
      const store = await open();
      const seen = [await store.version()];
      await store.add("shop", KEYS[0]);
      seen.push(await store.version());
      assert.equal(await store.version(), seen[1]);
      await store.add("shop", KEYS[1], { replace: true });
      seen.push(await store.version());
      await store.remove("shop");
      seen.push(await store.version());
      assert.equal(new Set(seen).size, 4, seen.join(" "));
    });

    test("concurrent adds of one name register it once", async () => {
      const store = await open();
      const results = await Promise.allSettled(
        Array.from({ length: 4 }, () => store.add("shop", KEYS[0])),
      );
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
      for (const r of results) {
        if (r.status === "rejected") assert.ok(isDkeygenError(r.reason, ErrorCodes.USAGE));
      }
      assert.equal((await store.list()).requesters.length, 1);
    });
  });
}
