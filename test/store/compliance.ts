/**
 * The KeyStore compliance suite: one set of tests every backend must pass (memory, the key_store
 * file, PostgreSQL later). It uses only the KeyStore interface, so it says nothing about how a
 * backend keeps its data — only what callers may rely on.
 *
 * A backend plugs in with a factory. `makeStore` returns a fresh, empty store that is not open yet,
 * `cleanup()` to remove what the factory made (the suite closes its stores first), and, for
 * persistent backends, `reopen()`: a new, not yet open store over the same data (the suite closes
 * the first store before calling it).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import {
  type ClaimInput,
  type ClaimOptions,
  type KeyRecord,
  type KeyStore,
  type ListQuery,
  MAX_LOG_LEAF_BYTES,
  MAX_ROUND_PART,
  MAX_ROUND_SECRET_BYTES,
  type RecordInput,
} from "../../src/store/types.js";

export interface StoreFixture {
  store: KeyStore;
  cleanup(): Promise<void>;
  reopen?(): Promise<KeyStore>;
}

const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

function input(overrides: Partial<RecordInput> = {}): RecordInput {
  return {
    purpose: "otp",
    roundId: "round-1",
    participants: ["alice", "bob"],
    algorithm: "otp/v1",
    public: { digits: 6, nested: { list: [1, "two", null, true] } },
    secret: new Uint8Array([1, 2, 3, 4]),
    ...overrides,
  };
}

function claim(n: number | string = 1, overrides: Partial<ClaimInput> = {}): ClaimInput {
  return {
    requester: "requester-1",
    subject: `subject-${n}`,
    requestId: `request-${n}`,
    expiresAt: new Date(Date.now() + 300_000),
    ...overrides,
  };
}

/** How the OTP pool claims (src/server/distribution/otp-pool.ts). */
const RESERVED: ClaimOptions = { ack: "reserved" };

function isCode(code: string) {
  return (error: unknown) => error instanceof DkeygenError && error.code === code;
}

/** A TypeError whose message names `name` as a word. */
function isTypeErrorNaming(name: string) {
  return (error: unknown) =>
    error instanceof TypeError && new RegExp(`\\b${name}\\b`).test(error.message);
}

/** 1..n in an order fixed by `seed` (a small LCG: reproducible, no dependency). */
function shuffled(n: number, seed: number): number[] {
  const out = Array.from({ length: n }, (_, i) => i + 1);
  let state = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export function keyStoreCompliance(name: string, makeStore: () => Promise<StoreFixture>): void {
  /** Runs `body` against a fresh open store and always closes and cleans up. */
  async function withStore(body: (store: KeyStore, fixture: StoreFixture) => Promise<void>) {
    const fixture = await makeStore();
    let store = fixture.store;
    await store.open();
    try {
      await body(store, {
        ...fixture,
        // Track the store the test reopened so it is the one closed at the end.
        ...(fixture.reopen
          ? {
              reopen: async () => {
                store = await fixture.reopen!();
                return store;
              },
            }
          : {}),
      });
    } finally {
      await store.close();
      await fixture.cleanup();
    }
  }

  /** Puts `n` records one after another (so their order is defined). */
  async function putMany(store: KeyStore, n: number, overrides: Partial<RecordInput> = {}) {
    const out: KeyRecord[] = [];
    for (let i = 0; i < n; i++) {
      out.push(await store.put(input({ roundId: `round-${i}`, ...overrides })));
    }
    return out;
  }

  describe(`KeyStore compliance: ${name}`, () => {
    test("put returns the stored record with a ULID id, and get and list return the same", async () => {
      await withStore(async (store) => {
        const before = Date.now();
        const record = await store.put(input({ owner: "carol" }));
        assert.match(record.id, ULID);
        assert.equal(record.purpose, "otp");
        assert.equal(record.roundId, "round-1");
        assert.deepEqual(record.participants, ["alice", "bob"]);
        assert.equal(record.algorithm, "otp/v1");
        assert.deepEqual(record.public, { digits: 6, nested: { list: [1, "two", null, true] } });
        assert.equal(record.owner, "carol");
        assert.equal(record.claim, undefined);
        assert.equal(record.consumedAt, undefined);
        assert.equal(record.lastStep, undefined);
        assert.equal(record.lastStepAt, undefined);
        assert.ok(Date.parse(record.createdAt) >= before - 1000);
        assert.equal(new Date(record.createdAt).toISOString(), record.createdAt);
        assert.ok(!("secret" in record), "a record never carries its secret part");
        assert.deepEqual(await store.get(record.id), record);
        assert.deepEqual(await store.list(), [record]);
      });
    });

    test("put keeps a given createdAt", async () => {
      await withStore(async (store) => {
        const createdAt = new Date("2020-01-02T03:04:05.678Z");
        const record = await store.put(input({ createdAt }));
        assert.equal(record.createdAt, "2020-01-02T03:04:05.678Z");
        assert.equal((await store.get(record.id))?.createdAt, "2020-01-02T03:04:05.678Z");
      });
    });

    test("ids are distinct and increase in the order records were put", async () => {
      await withStore(async (store) => {
        const records = await putMany(store, 50);
        const ids = records.map((r) => r.id);
        assert.equal(new Set(ids).size, 50);
        assert.deepEqual([...ids].sort(), ids);
      });
    });

    test("readSecret returns exactly the bytes put, as a copy the store does not share", async () => {
      await withStore(async (store) => {
        const secret = new Uint8Array(300).map((_, i) => (i * 7 + 3) & 0xff);
        const expected = new Uint8Array(secret);
        const empty = await store.put(input({ secret: new Uint8Array(0) }));
        const record = await store.put(input({ secret }));
        secret.fill(0); // callers wipe their buffers after put
        const read = await store.readSecret(record.id);
        assert.deepEqual(read, expected);
        read.fill(0xee);
        assert.deepEqual(await store.readSecret(record.id), expected);
        assert.deepEqual(await store.readSecret(empty.id), new Uint8Array(0));
      });
    });

    test("records handed out are copies: editing one does not change the store", async () => {
      await withStore(async (store) => {
        const publicPart = { digits: 6, list: [1, 2] };
        const participants = ["alice"];
        const record = await store.put(input({ public: publicPart, participants }));
        publicPart.digits = 8;
        participants.push("mallory");
        record.participants.push("eve");
        (record.public as { digits: number }).digits = 9;
        const [listed] = await store.list();
        listed!.purpose = "changed";
        const fresh = await store.get(record.id);
        assert.deepEqual(fresh?.participants, ["alice"]);
        assert.deepEqual(fresh?.public, { digits: 6, list: [1, 2] });
        assert.equal(fresh?.purpose, "otp");
      });
    });

    test("an unknown id: get gives undefined; readSecret and consume fail with E_NOT_FOUND", async () => {
      await withStore(async (store) => {
        await store.put(input());
        const unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        assert.equal(await store.get(unknown), undefined);
        assert.equal(await store.get("not-an-id"), undefined);
        await assert.rejects(store.readSecret(unknown), isCode(ErrorCodes.NOT_FOUND));
        await assert.rejects(store.consume(unknown), isCode(ErrorCodes.NOT_FOUND));
        await assert.rejects(store.useStep(unknown, 1), isCode(ErrorCodes.NOT_FOUND));
      });
    });

    test("list filters by purpose, owner, claim, subject and consumption, oldest first", async () => {
      await withStore(async (store) => {
        const otp = await putMany(store, 4);
        const totp = await store.put(input({ purpose: "totp" }));
        const owned = await store.put(input({ purpose: "rsa", owner: "carol" }));
        const ownedOtp = await store.put(input({ owner: "dave" }));
        const claimedA = await store.claimNext("otp", claim("a"));
        const claimedB = await store.claimNext("otp", claim("b"));
        assert.equal(claimedA?.id, otp[0]!.id);
        assert.equal(claimedB?.id, otp[1]!.id);
        assert.equal(await store.consume(otp[1]!.id), true);
        assert.equal(await store.consume(otp[3]!.id), true);

        const ids = async (query?: Parameters<KeyStore["list"]>[0]) =>
          (await store.list(query)).map((r) => r.id);
        const all = [...otp.map((r) => r.id), totp.id, owned.id, ownedOtp.id];
        assert.deepEqual(await ids(), all);
        assert.deepEqual(await ids({}), all);
        assert.deepEqual(await ids({ purpose: "otp" }), [...otp.map((r) => r.id), ownedOtp.id]);
        assert.deepEqual(await ids({ purpose: "totp" }), [totp.id]);
        assert.deepEqual(await ids({ purpose: "none" }), []);
        assert.deepEqual(await ids({ owner: "carol" }), [owned.id]);
        assert.deepEqual(await ids({ owner: "dave", purpose: "otp" }), [ownedOtp.id]);
        assert.deepEqual(await ids({ claimed: true }), [otp[0]!.id, otp[1]!.id]);
        assert.deepEqual(await ids({ purpose: "otp", claimed: false }), [
          otp[2]!.id,
          otp[3]!.id,
          ownedOtp.id,
        ]);
        assert.deepEqual(await ids({ subject: "subject-b" }), [otp[1]!.id]);
        assert.deepEqual(await ids({ subject: "nobody" }), []);
        assert.deepEqual(await ids({ consumed: true }), [otp[1]!.id, otp[3]!.id]);
        assert.deepEqual(await ids({ purpose: "otp", consumed: false, claimed: false }), [
          otp[2]!.id,
          ownedOtp.id,
        ]);
        assert.deepEqual(await ids({ limit: 2 }), [otp[0]!.id, otp[1]!.id]);
        assert.deepEqual(await ids({ purpose: "otp", consumed: false, limit: 1 }), [otp[0]!.id]);
        assert.deepEqual(await ids({ limit: 0 }), []);

        const [first] = await store.list({ subject: "subject-a" });
        assert.equal(first?.claim?.requester, "requester-1");
        assert.equal(first?.claim?.requestId, "request-a");
        const [consumed] = await store.list({ consumed: true, limit: 1 });
        assert.ok(consumed?.consumedAt);
      });
    });

    test("a record made for a subject is found by it, as is a record claimed for it; a subject needs an owner", async () => {
      await withStore(async (store) => {
        const pooled = await putMany(store, 3);
        const mine = await store.put(
          input({ purpose: "totp", owner: "carol", subject: "alice@example.com" }),
        );
        const other = await store.put(input({ purpose: "totp", owner: "carol", subject: "bob" }));
        const elsewhere = await store.put(
          input({ purpose: "totp", owner: "dave", subject: "alice@example.com" }),
        );
        assert.equal(mine.subject, "alice@example.com");
        assert.equal((await store.get(mine.id))?.subject, "alice@example.com");
        assert.equal(mine.claim, undefined, "made for a subject is not a claim");
        assert.equal(
          await store.countUnclaimed("totp"),
          0,
          "records made for a subject never pool",
        );
        const claimed = await store.claimNext("otp", claim(1, { subject: "alice@example.com" }));
        assert.equal(claimed?.id, pooled[0]!.id);

        const ids = async (query: Parameters<KeyStore["list"]>[0]) =>
          (await store.list(query)).map((r) => r.id);
        assert.deepEqual(await ids({ subject: "alice@example.com" }), [
          pooled[0]!.id,
          mine.id,
          elsewhere.id,
        ]);
        assert.deepEqual(await ids({ subject: "alice@example.com", owner: "carol" }), [mine.id]);
        assert.deepEqual(await ids({ subject: "alice@example.com", purpose: "otp" }), [
          pooled[0]!.id,
        ]);
        assert.deepEqual(await ids({ subject: "alice@example.com", claimed: false }), [
          mine.id,
          elsewhere.id,
        ]);
        assert.deepEqual(await ids({ subject: "bob", purpose: "totp", owner: "carol" }), [
          other.id,
        ]);
        assert.deepEqual(await ids({ subject: "alice@example.com", limit: 1 }), [pooled[0]!.id]);

        await assert.rejects(
          store.put(input({ subject: "alice@example.com" })),
          isTypeErrorNaming("subject"),
          "a subject without an owner is refused",
        );
        await assert.rejects(
          store.put(input({ owner: "carol", subject: "" })),
          isTypeErrorNaming("subject"),
        );
      });
    });

    test("a lookup by owner and subject returns exactly that owner's records for the subject, never other requesters' claims for it, also after a reopen", async () => {
      await withStore(async (store, fixture) => {
        const account = "alice@example.com";
        await putMany(store, 24);
        const totp = await store.put(input({ purpose: "totp", owner: "carol", subject: account }));
        // OTPs claimed for the same subject by other requesters, and by carol as a requester:
        // claims, not records carol owns.
        const claims: string[] = [];
        for (let i = 0; i < 20; i++) {
          const requester = ["requester-2", "carol", "dave"][i % 3]!;
          const claimed = await store.claimNext(
            "otp",
            claim(`f${i}`, { requester, subject: account }),
          );
          claims.push(claimed!.id);
        }
        const hotp = await store.put(input({ purpose: "hotp", owner: "carol", subject: account }));
        const recovery = await store.put(
          input({ purpose: "recovery", owner: "carol", subject: account }),
        );
        await store.put(input({ purpose: "totp", owner: "carol", subject: "bob" }));
        await store.put(input({ purpose: "totp", owner: "carol" }));
        const daves = await store.put(input({ purpose: "totp", owner: "dave", subject: account }));
        await store.consume(recovery.id);
        await store.consume(claims[1]!);
        const replaced = await store.put(
          input({ purpose: "totp", owner: "carol", subject: account }),
        );

        const check = async (s: KeyStore) => {
          const ids = async (query: ListQuery) => (await s.list(query)).map((r) => r.id);
          const carols = { owner: "carol", subject: account };
          assert.deepEqual(await ids(carols), [totp.id, hotp.id, recovery.id, replaced.id]);
          assert.deepEqual(await ids({ ...carols, purpose: "totp" }), [totp.id, replaced.id]);
          assert.deepEqual(await ids({ ...carols, purpose: "otp" }), [], "her claims are not hers");
          assert.deepEqual(await ids({ ...carols, claimedBy: "carol" }), []);
          assert.deepEqual(await ids({ ...carols, consumed: true }), [recovery.id]);
          assert.deepEqual(await ids({ ...carols, claimed: false, limit: 2 }), [totp.id, hotp.id]);
          assert.deepEqual(await ids({ owner: "dave", subject: account }), [daves.id]);
          assert.deepEqual(await ids({ owner: "requester-2", subject: account }), []);
          assert.deepEqual(await ids({ owner: "carol", subject: "nobody" }), []);
          // The subject alone still finds every record for it, the claims among them.
          assert.deepEqual(
            await ids({ subject: account }),
            [...claims, totp.id, hotp.id, recovery.id, daves.id, replaced.id].sort(),
          );
        };
        await check(store);
        if (fixture.reopen) {
          await store.close();
          const reopened = await fixture.reopen();
          await reopened.open();
          await check(reopened);
        }
      });
    });

    test("a split record keeps its holders in order, across a reopen; holders need an owner and may not repeat", async () => {
      await withStore(async (store, fixture) => {
        const holders = ["rq:holder-a", "rq:holder-b", "rq:holder-c"];
        const split = await store.put(input({ purpose: "multisig", owner: "@admin", holders }));
        const plain = await store.put(input({ purpose: "multisig", owner: "@admin" }));
        assert.deepEqual(split.holders, holders);
        assert.deepEqual((await store.get(split.id))?.holders, holders);
        assert.equal((await store.get(plain.id))?.holders, undefined);
        const copy = (await store.get(split.id))!;
        copy.holders!.push("rq:intruder");
        assert.deepEqual((await store.get(split.id))?.holders, holders, "handed out as a copy");
        for (const bad of [[], ["rq:a", "rq:a"], [""], "rq:a"]) {
          await assert.rejects(
            store.put(input({ owner: "@admin", holders: bad as string[] })),
            isTypeErrorNaming("holders"),
          );
        }
        await assert.rejects(
          store.put(input({ holders: ["rq:a"] })),
          isTypeErrorNaming("holders"),
          "holders without an owner are refused",
        );
        if (fixture.reopen) {
          await store.close();
          const reopened = await fixture.reopen();
          await reopened.open();
          assert.deepEqual((await reopened.get(split.id))?.holders, holders);
          assert.equal((await reopened.get(plain.id))?.holders, undefined);
        }
      });
    });

    test("claimNext takes the oldest record that is neither owned, claimed nor consumed", async () => {
      await withStore(async (store) => {
        const owned = await store.put(input({ owner: "carol" }));
        const [first, second, third] = await putMany(store, 3);
        await store.put(input({ purpose: "totp" }));
        assert.equal(await store.consume(first!.id), true);
        const expiresAt = new Date("2031-01-01T00:00:00.000Z");
        const claimedAt = new Date("2030-12-31T23:55:00.000Z");
        const got = await store.claimNext("otp", claim(1, { expiresAt, claimedAt }));
        assert.equal(got?.id, second!.id);
        assert.deepEqual(got?.claim, {
          requester: "requester-1",
          subject: "subject-1",
          requestId: "request-1",
          claimedAt: "2030-12-31T23:55:00.000Z",
          expiresAt: "2031-01-01T00:00:00.000Z",
        });
        assert.deepEqual((await store.get(second!.id))?.claim, got?.claim);
        assert.equal((await store.claimNext("otp", claim(2)))?.id, third!.id);
        assert.equal(await store.claimNext("otp", claim(3)), undefined);
        assert.equal(await store.claimNext("nothing-here", claim(4)), undefined);
        assert.equal((await store.get(owned.id))?.claim, undefined, "owned records never pool");
        assert.equal(await store.countUnclaimed("totp"), 1, "other purposes are untouched");
      });
    });

    test("claimNext never hands out a record made for a named owner", async () => {
      await withStore(async (store) => {
        await putMany(store, 5, { owner: "carol" });
        assert.equal(await store.claimNext("otp", claim()), undefined);
        assert.equal(await store.countUnclaimed("otp"), 0);
      });
    });

    test("200 concurrent claimNext calls on 150 records get 150 distinct records and 50 undefined", async () => {
      await withStore(async (store) => {
        const records = await Promise.all(
          Array.from({ length: 150 }, (_, i) => store.put(input({ roundId: `round-${i}` }))),
        );
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) => store.claimNext("otp", claim(i))),
        );
        const claimed = results.filter((r): r is KeyRecord => r !== undefined);
        assert.equal(claimed.length, 150);
        assert.equal(results.filter((r) => r === undefined).length, 50);
        const ids = new Set(claimed.map((r) => r.id));
        assert.equal(ids.size, 150, "no record handed out twice");
        assert.deepEqual([...ids].sort(), records.map((r) => r.id).sort());
        // Each record carries the claim of the call that got it.
        for (const record of claimed) {
          const stored = await store.get(record.id);
          assert.deepEqual(stored?.claim, record.claim);
        }
        assert.equal(new Set(claimed.map((r) => r.claim?.requestId)).size, 150);
        assert.equal(await store.countUnclaimed("otp"), 0);
      });
    });

    test("consume is true the first time and false after, also when two race", async () => {
      await withStore(async (store) => {
        const [a, b] = await putMany(store, 2);
        const at = new Date("2030-05-06T07:08:09.010Z");
        assert.equal(await store.consume(a!.id, at), true);
        assert.equal(await store.consume(a!.id), false);
        assert.equal((await store.get(a!.id))?.consumedAt, "2030-05-06T07:08:09.010Z");
        const race = await Promise.all([store.consume(b!.id), store.consume(b!.id)]);
        assert.deepEqual(race.sort(), [false, true]);
      });
    });

    test("useStep records a step only if it is above every step recorded before; equal and lower steps are replays", async () => {
      await withStore(async (store) => {
        const [a, b] = await putMany(store, 2);
        const t0 = new Date("2030-01-01T00:00:00.000Z");
        assert.equal(await store.useStep(a!.id, 0, t0), true, "step 0 is a step");
        assert.equal((await store.get(a!.id))?.lastStep, 0);
        assert.equal((await store.get(a!.id))?.lastStepAt, "2030-01-01T00:00:00.000Z");
        assert.equal(await store.useStep(a!.id, 0), false, "the same step again is a replay");
        const t5 = new Date("2030-01-01T00:02:30.000Z");
        assert.equal(await store.useStep(a!.id, 5, t5), true, "steps may skip");
        assert.equal(await store.useStep(a!.id, 5, new Date("2030-01-01T00:02:31.000Z")), false);
        assert.equal(await store.useStep(a!.id, 4), false, "a lower step is a replay");
        assert.equal(await store.useStep(a!.id, 0), false);
        const after = await store.get(a!.id);
        assert.equal(after?.lastStep, 5, "a refused step changes nothing");
        assert.equal(after?.lastStepAt, "2030-01-01T00:02:30.000Z");
        const before = Date.now();
        assert.equal(await store.useStep(a!.id, 6), true);
        const stamped = (await store.get(a!.id))?.lastStepAt;
        assert.ok(stamped && Date.parse(stamped) >= before - 1000, "at defaults to now");
        assert.equal(new Date(stamped).toISOString(), stamped);
        assert.equal(await store.useStep(a!.id, Number.MAX_SAFE_INTEGER), true);
        assert.equal(await store.useStep(a!.id, Number.MAX_SAFE_INTEGER), false);
        assert.equal(await store.useStep(a!.id, -0), false, "-0 is step 0");

        // Steps are per record, show in list, and neither claim nor consume.
        assert.equal((await store.get(b!.id))?.lastStep, undefined);
        assert.equal(await store.useStep(b!.id, 3), true);
        assert.deepEqual(
          (await store.list()).map((r) => r.lastStep),
          [Number.MAX_SAFE_INTEGER, 3],
        );
        assert.equal(await store.countUnclaimed("otp"), 2);
        assert.equal((await store.get(b!.id))?.consumedAt, undefined);
        assert.equal((await store.get(b!.id))?.claim, undefined);
        // And claims and consumptions leave steps alone.
        assert.equal((await store.claimNext("otp", claim()))?.lastStep, Number.MAX_SAFE_INTEGER);
        assert.equal(await store.consume(b!.id), true);
        assert.equal((await store.get(b!.id))?.lastStep, 3);
      });
    });

    test("concurrent useStep calls with the same step: exactly one gets true", async () => {
      await withStore(async (store) => {
        const [a] = await putMany(store, 1);
        for (const step of [0, 1, 7, 1000]) {
          const results = await Promise.all(
            Array.from({ length: 10 }, () => store.useStep(a!.id, step)),
          );
          assert.equal(results.filter((r) => r).length, 1, `step ${step}: ${results}`);
        }
        assert.equal((await store.get(a!.id))?.lastStep, 1000);
      });
    });

    test("concurrent useStep calls with steps 1..50 in random order: step 50 wins, lastStep ends at 50, and every step is a replay afterwards", async () => {
      await withStore(async (store) => {
        for (const seed of [1, 2, 3, 42]) {
          const record = await store.put(input({ roundId: `seed-${seed}` }));
          const order = shuffled(50, seed);
          const results = await Promise.all(order.map((step) => store.useStep(record.id, step)));
          const won = order.filter((_, i) => results[i]);
          // With every call concurrent, any outcome is linearizable iff the highest step won
          // (nothing can make it a replay); then every losing step has a greater winner.
          assert.ok(won.includes(50), `seed ${seed}: step 50 must win; winners ${won}`);
          assert.equal((await store.get(record.id))?.lastStep, 50, `seed ${seed}`);
          const again = await Promise.all(order.map((step) => store.useStep(record.id, step)));
          assert.ok(
            again.every((r) => r === false),
            `seed ${seed}: a step was accepted twice`,
          );
        }
      });
    });

    test("useStep in waves of concurrent calls: a step wins only above every step won in an earlier wave, and each wave's highest new step wins", async () => {
      await withStore(async (store) => {
        for (const seed of [7, 8]) {
          const record = await store.put(input({ roundId: `waves-${seed}` }));
          const order = shuffled(60, seed);
          let highest = -1; // the highest step won so far (all earlier waves have resolved)
          for (let w = 0; w < order.length; w += 6) {
            const wave = order.slice(w, w + 6);
            const results = await Promise.all(wave.map((step) => store.useStep(record.id, step)));
            const top = Math.max(...wave);
            wave.forEach((step, i) => {
              if (step <= highest) {
                assert.equal(results[i], false, `seed ${seed}: step ${step} after ${highest} won`);
              }
              if (step === top && top > highest) {
                assert.equal(
                  results[i],
                  true,
                  `seed ${seed}: step ${top}, the wave's highest, lost`,
                );
              }
            });
            highest = Math.max(highest, top);
            assert.equal((await store.get(record.id))?.lastStep, highest, `seed ${seed}`);
          }
          assert.equal(highest, 60);
        }
      });
    });

    test("useStep refuses a bad step or at with a TypeError naming it, and records nothing", async () => {
      await withStore(async (store) => {
        const [a] = await putMany(store, 1);
        const badSteps: unknown[] = [
          -1,
          1.5,
          Number.MAX_SAFE_INTEGER + 1,
          Number.NaN,
          Number.POSITIVE_INFINITY,
          "3",
          3n,
          undefined,
          null,
        ];
        for (const step of badSteps) {
          await assert.rejects(
            store.useStep(a!.id, step as number),
            isTypeErrorNaming("step"),
            String(step),
          );
        }
        await assert.rejects(store.useStep(a!.id, 1, new Date("nope")), isTypeErrorNaming("at"));
        await assert.rejects(
          store.useStep(a!.id, 1, "2030-01-01T00:00:00.000Z" as unknown as Date),
          isTypeErrorNaming("at"),
        );
        await assert.rejects(store.useStep(7 as unknown as string, 1), isTypeErrorNaming("id"));
        assert.equal((await store.get(a!.id))?.lastStep, undefined);
        assert.equal(await store.useStep(a!.id, 1), true);
      });
    });

    test("countUnclaimed counts records neither owned, claimed nor consumed", async () => {
      await withStore(async (store) => {
        assert.equal(await store.countUnclaimed("otp"), 0);
        const records = await putMany(store, 5);
        await store.put(input({ owner: "carol" }));
        await store.put(input({ purpose: "totp" }));
        assert.equal(await store.countUnclaimed("otp"), 5);
        await store.claimNext("otp", claim());
        assert.equal(await store.countUnclaimed("otp"), 4);
        await store.consume(records[4]!.id);
        assert.equal(await store.countUnclaimed("otp"), 3);
        await store.consume(records[0]!.id); // already claimed: no change
        assert.equal(await store.countUnclaimed("otp"), 3);
        assert.equal(await store.countUnclaimed("totp"), 1);
        assert.equal(await store.countUnclaimed("unknown"), 0);
      });
    });

    // The OTP pool (src/server/distribution/otp-pool.ts) claims with { ack: "reserved" }, consumes
    // a claimed record it withdraws, and verification finds a claim by latestClaims: that path.
    test("reserved claims, as the OTP pool makes them: 200 concurrent on 150 claimable records get 150 distinct, oldest first, owned and held never", async () => {
      await withStore(async (store) => {
        await store.put(input({ owner: "carol" }));
        const held = await store.put(input({ roundId: "refill-x", held: true }));
        const records = await putMany(store, 150);
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) => store.claimNext("otp", claim(i), RESERVED)),
        );
        const claimed = results.filter((r): r is KeyRecord => r !== undefined);
        assert.equal(claimed.length, 150);
        assert.deepEqual(
          claimed.map((r) => r.id).sort(),
          records.map((r) => r.id),
          "no record handed out twice, none left out",
        );
        assert.equal(new Set(claimed.map((r) => r.claim?.requestId)).size, 150);
        for (const record of claimed) {
          assert.deepEqual((await store.get(record.id))?.claim, record.claim);
        }
        assert.equal(await store.countUnclaimed("otp"), 0);
        assert.equal(await store.claimNext("otp", claim("late"), RESERVED), undefined);
        assert.equal((await store.get(held.id))?.claim, undefined);
      });
    });

    test("reserved claims one after another take the oldest first; each is found by latestClaims and consumed once", async () => {
      await withStore(async (store) => {
        const records = await putMany(store, 6);
        const ids = records.map((r) => r.id);
        const order: (string | undefined)[] = [];
        for (let i = 0; i < 6; i++) {
          order.push((await store.claimNext("otp", claim(i, { subject: "alice" }), RESERVED))?.id);
        }
        assert.deepEqual(order, ids);
        const latest = await store.list({
          claimedBy: "requester-1",
          subject: "alice",
          latestClaims: 2,
        });
        assert.deepEqual(
          latest.map((r) => r.id),
          ids.slice(-2),
        );
        // The pool withdraws a claimed record by consuming it; verification consumes it too.
        assert.equal(await store.consume(ids[4]!), true);
        assert.equal(await store.consume(ids[4]!), false);
        const race = await Promise.all([store.consume(ids[0]!), store.consume(ids[0]!)]);
        assert.deepEqual(race.sort(), [false, true]);
        assert.equal((await store.get(ids[4]!))?.claim?.requestId, "request-4");
      });
    });

    // The key_store file leases the oldest records for reserved claims; a durable claim takes
    // those first (its own claims line), so both kinds share one order on every store.
    test("durable and reserved claims mixed in one store share one oldest-first order", async () => {
      await withStore(async (store) => {
        const records = await putMany(store, 4);
        const order: (string | undefined)[] = [];
        for (let i = 0; i < 5; i++) {
          order.push((await store.claimNext("otp", claim(i), i % 2 === 0 ? RESERVED : {}))?.id);
        }
        assert.deepEqual(order, [...records.map((r) => r.id), undefined]);
      });
    });

    test("a record consumed by id before any claim is never handed out by a reserved claim", async () => {
      await withStore(async (store) => {
        const records = await putMany(store, 4);
        // One reserved claim first, so a store that reserves ahead holds the rest already.
        assert.equal((await store.claimNext("otp", claim(0), RESERVED))?.id, records[0]!.id);
        assert.equal(await store.consume(records[1]!.id), true);
        assert.equal(await store.countUnclaimed("otp"), 2);
        assert.equal((await store.claimNext("otp", claim(1), RESERVED))?.id, records[2]!.id);
        assert.equal((await store.claimNext("otp", claim(2), RESERVED))?.id, records[3]!.id);
        assert.equal(await store.claimNext("otp", claim(3), RESERVED), undefined);
        assert.equal((await store.get(records[1]!.id))?.claim, undefined);
      });
    });

    test("reserved claims and their consumptions survive a clean close and reopen; what was not claimed is claimable again, in order", async (t) => {
      const probe = await makeStore();
      const persistent = probe.reopen !== undefined;
      await probe.cleanup();
      if (!persistent) {
        t.skip("this backend keeps nothing across a reopen");
        return;
      }
      await withStore(async (store, fixture) => {
        const records = await putMany(store, 8);
        const a = await store.claimNext("otp", claim("a"), RESERVED);
        const b = await store.claimNext("otp", claim("b"), RESERVED);
        assert.equal(await store.consume(b!.id), true);
        const before = await store.list();
        await store.close();
        const reopened = await fixture.reopen!();
        await reopened.open();
        assert.deepEqual(await reopened.list(), before);
        assert.deepEqual((await reopened.get(a!.id))?.claim, a!.claim);
        assert.equal(await reopened.consume(b!.id), false);
        assert.equal(await reopened.countUnclaimed("otp"), 6);
        const next: (string | undefined)[] = [];
        for (let i = 0; i < 7; i++) {
          next.push((await reopened.claimNext("otp", claim(`r${i}`), RESERVED))?.id);
        }
        assert.deepEqual(next, [...records.slice(2).map((r) => r.id), undefined]);
      });
    });

    test("held records are never claimed, even by 200 concurrent claims (durable and reserved); released ones are, oldest first", async () => {
      await withStore(async (store) => {
        const held = { held: true as const };
        const h1 = await store.put(input({ roundId: "refill-1", ...held }));
        const h2 = await store.put(input({ roundId: "refill-1", ...held }));
        const o1 = await store.put(input({ roundId: "old" }));
        const h3 = await store.put(input({ roundId: "refill-1", ...held }));
        const other = await store.put(input({ roundId: "refill-2", ...held }));
        const o2 = await store.put(input({ roundId: "old" }));
        assert.equal(h1.held, true, "put returns it held");
        assert.equal(o1.held, undefined);
        assert.equal(await store.countUnclaimed("otp"), 2, "held records are not counted");
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) =>
            store.claimNext("otp", claim(i), i % 2 === 0 ? {} : { ack: "reserved" }),
          ),
        );
        const claimed = results.filter((r): r is KeyRecord => r !== undefined);
        assert.deepEqual(claimed.map((r) => r.id).sort(), [o1.id, o2.id].sort());
        assert.equal(await store.countUnclaimed("otp"), 0);
        // Listed and read as usual, shown held.
        const listed = await store.list({ purpose: "otp", claimed: false });
        assert.deepEqual(
          listed.map((r) => [r.id, r.held]),
          [h1, h2, h3, other].map((r) => [r.id, true]),
        );
        assert.equal((await store.get(h2.id))?.held, true);
        assert.deepEqual(await store.readSecret(h3.id), new Uint8Array([1, 2, 3, 4]));
        // A newer record put meanwhile: the released ones are older, so they go first.
        const o3 = await store.put(input({ roundId: "old" }));
        assert.equal(await store.releaseHeld("refill-1"), 3);
        assert.equal((await store.get(h2.id))?.held, undefined, "released: no longer held");
        assert.equal(await store.countUnclaimed("otp"), 4);
        const order: (string | undefined)[] = [];
        for (let i = 0; i < 5; i++) {
          order.push((await store.claimNext("otp", claim(`after-${i}`), { ack: "reserved" }))?.id);
        }
        assert.deepEqual(order, [h1.id, h2.id, h3.id, o3.id, undefined]);
        assert.equal((await store.get(other.id))?.held, true, "another round stays held");
        assert.equal((await store.get(other.id))?.claim, undefined);
      });
    });

    test("releaseHeld is idempotent, releases a round's records together, and survives a reopen", async () => {
      await withStore(async (store, fixture) => {
        const a = await putMany(store, 3, { roundId: "refill-a", held: true });
        const b = await store.put(input({ roundId: "refill-b", held: true }));
        const c = await store.put(input({ roundId: "refill-c", held: true }));
        assert.equal(await store.releaseHeld("refill-a"), 3);
        assert.equal(await store.releaseHeld("refill-a"), 0, "released before");
        assert.equal(await store.releaseHeld("no-such-round"), 0);
        assert.equal(await store.releaseHeld("old"), 0);
        const race = await Promise.all([
          store.releaseHeld("refill-b"),
          store.releaseHeld("refill-b"),
        ]);
        assert.deepEqual(race.sort(), [0, 1], "two racing releases release it once");
        await assert.rejects(store.releaseHeld(""), isTypeErrorNaming("roundId"));
        assert.equal(await store.countUnclaimed("otp"), 4);
        if (!fixture.reopen) return;
        await store.close();
        const reopened = await fixture.reopen();
        await reopened.open();
        assert.equal(await reopened.countUnclaimed("otp"), 4, "releases survive a reopen");
        for (const r of [...a, b]) assert.equal((await reopened.get(r.id))?.held, undefined);
        assert.equal((await reopened.get(c.id))?.held, true, "an unreleased round stays held");
        assert.equal(await reopened.releaseHeld("refill-a"), 0, "still released after a reopen");
        const got = [];
        for (let i = 0; i < 5; i++) got.push((await reopened.claimNext("otp", claim(i)))?.id);
        assert.deepEqual(got, [...a.map((r) => r.id), b.id, undefined]);
        assert.equal(await reopened.releaseHeld("refill-c"), 1);
        assert.equal((await reopened.claimNext("otp", claim(9)))?.id, c.id);
      });
    });

    test("consuming a held record withdraws it for good: not claimable once its round is released, nor after a reopen", async () => {
      await withStore(async (store, fixture) => {
        const [x, y] = await putMany(store, 2, { roundId: "refill", held: true });
        assert.equal(await store.consume(x!.id), true);
        assert.equal(await store.consume(x!.id), false);
        assert.equal(await store.countUnclaimed("otp"), 0);
        assert.equal(
          await store.releaseHeld("refill"),
          2,
          "a round's records are released together",
        );
        assert.equal(await store.countUnclaimed("otp"), 1);
        assert.equal((await store.claimNext("otp", claim(1)))?.id, y!.id);
        assert.equal(await store.claimNext("otp", claim(2)), undefined);
        const withdrawn = await store.get(x!.id);
        assert.ok(withdrawn?.consumedAt !== undefined && withdrawn.claim === undefined);
        if (!fixture.reopen) return;
        await store.close();
        const reopened = await fixture.reopen();
        await reopened.open();
        assert.equal(await reopened.claimNext("otp", claim(3)), undefined);
        assert.equal(await reopened.countUnclaimed("otp"), 0);
      });
    });

    test("held is for pool records only: a held record with an owner, or held other than true, is refused", async () => {
      await withStore(async (store) => {
        await assert.rejects(
          store.put(input({ owner: "carol", held: true })),
          isTypeErrorNaming("input.held"),
        );
        await assert.rejects(
          store.put({ ...input(), held: false as unknown as true }),
          isTypeErrorNaming("input.held"),
        );
        assert.deepEqual(await store.list(), []);
      });
    });

    test("wrong arguments are refused with a TypeError and store nothing", async () => {
      await withStore(async (store) => {
        const bad: [string, unknown][] = [
          ["purpose", { ...input(), purpose: "" }],
          ["roundId", { ...input(), roundId: 7 }],
          ["participants", { ...input(), participants: "alice" }],
          ["participants[0]", { ...input(), participants: [""] }],
          ["public", { ...input(), public: [] }],
          ["public.when", { ...input(), public: { when: new Date() } }],
          ["public.n", { ...input(), public: { n: Number.NaN } }],
          ["secret", { ...input(), secret: "secret" }],
          ["owner", { ...input(), owner: "" }],
          ["createdAt", { ...input(), createdAt: new Date("nope") }],
        ];
        for (const [field, value] of bad) {
          await assert.rejects(store.put(value as RecordInput), TypeError, field);
        }
        assert.deepEqual(await store.list(), []);
        await store.put(input());
        await assert.rejects(store.claimNext("", claim()), TypeError);
        await assert.rejects(
          store.claimNext("otp", { ...claim(), expiresAt: "tomorrow" as unknown as Date }),
          TypeError,
        );
        await assert.rejects(store.claimNext("otp", { ...claim(), requester: "" }), TypeError);
        await assert.rejects(store.list({ limit: -1 }), TypeError);
        await assert.rejects(store.list({ claimed: "yes" as unknown as boolean }), TypeError);
        assert.equal(await store.countUnclaimed("otp"), 1, "a refused claim takes nothing");
      });
    });

    test("data survives close and reopen: records, secrets, claims, consumptions and order", async (t) => {
      const probe = await makeStore();
      const persistent = probe.reopen !== undefined;
      await probe.cleanup();
      if (!persistent) {
        t.skip("this backend keeps nothing across a reopen");
        return;
      }
      await withStore(async (store, fixture) => {
        const secrets = Array.from({ length: 6 }, (_, i) => new Uint8Array(40).fill(i + 1));
        const records: KeyRecord[] = [];
        for (const [i, secret] of secrets.entries()) {
          records.push(
            await store.put(
              input({
                secret,
                roundId: `round-${i}`,
                ...(i === 5 ? { owner: "carol", subject: "account-5" } : {}),
              }),
            ),
          );
        }
        const claimed = await store.claimNext("otp", claim("x"));
        await store.consume(records[2]!.id);
        const before = await store.list();
        await store.close();

        const reopened = await fixture.reopen!();
        await reopened.open();
        assert.deepEqual(await reopened.list(), before);
        assert.deepEqual(await reopened.get(claimed!.id), claimed);
        assert.deepEqual(
          (await reopened.list({ subject: "account-5" })).map((r) => [r.id, r.subject]),
          [[records[5]!.id, "account-5"]],
        );
        assert.deepEqual(
          (await reopened.list({ subject: "subject-x" })).map((r) => r.id),
          [claimed!.id],
        );
        for (const [i, record] of records.entries()) {
          assert.deepEqual(await reopened.readSecret(record.id), secrets[i]);
        }
        assert.equal(await reopened.countUnclaimed("otp"), 3);
        assert.equal((await reopened.claimNext("otp", claim("y")))?.id, records[1]!.id);
        assert.equal((await reopened.claimNext("otp", claim("z")))?.id, records[3]!.id);
        assert.equal((await reopened.claimNext("otp", claim("w")))?.id, records[4]!.id);
        assert.equal(await reopened.claimNext("otp", claim("v")), undefined);
        assert.equal(await reopened.consume(records[2]!.id), false);
        const later = await reopened.put(input());
        assert.ok(later.id > records[5]!.id, "ids keep increasing after a reopen");
      });
    });

    test("latestClaims lists a requester's latest claims for a subject in claim order, also after a reopen", async () => {
      await withStore(async (store, fixture) => {
        await putMany(store, 30);
        const mine: string[] = [];
        const theirs: string[] = [];
        // Interleaved: another requester's claims for the same subject, and other subjects.
        for (let i = 0; i < 20; i++) {
          mine.push((await store.claimNext("otp", claim(`m${i}`, { subject: "alice" })))!.id);
          if (i % 4 === 0) {
            const other = { subject: "alice", requester: "requester-2" };
            theirs.push((await store.claimNext("otp", claim(`t${i}`, other)))!.id);
            await store.claimNext("otp", claim(`b${i}`, { subject: "bob" }));
          }
        }
        await store.consume(mine[19]!);
        const latest = async (query: Partial<ListQuery> = {}) =>
          (
            await store.list({
              claimedBy: "requester-1",
              subject: "alice",
              latestClaims: 16,
              ...query,
            })
          ).map((r) => r.id);
        assert.deepEqual(await latest(), mine.slice(-16));
        assert.deepEqual(await latest({ latestClaims: 3 }), mine.slice(-3));
        assert.deepEqual(await latest({ latestClaims: 0 }), []);
        assert.deepEqual(await latest({ latestClaims: 100 }), mine);
        assert.deepEqual(await latest({ consumed: false }), mine.slice(-16, -1));
        assert.deepEqual(await latest({ claimedBy: "requester-2" }), theirs);
        assert.deepEqual(await latest({ subject: "nobody" }), []);
        assert.deepEqual(
          (await store.list({ claimedBy: "requester-2" })).map((r) => r.id),
          theirs,
          "claimedBy alone filters",
        );
        await assert.rejects(store.list({ latestClaims: 2, subject: "alice" }), TypeError);
        await assert.rejects(store.list({ latestClaims: 2, claimedBy: "requester-1" }), TypeError);
        await assert.rejects(
          store.list({ latestClaims: -1, claimedBy: "requester-1", subject: "alice" }),
          TypeError,
        );
        if (fixture.reopen) {
          await store.close();
          const reopened = await fixture.reopen();
          await reopened.open();
          assert.deepEqual(
            (
              await reopened.list({ claimedBy: "requester-1", subject: "alice", latestClaims: 16 })
            ).map((r) => r.id),
            mine.slice(-16),
          );
        }
      });
    });

    test("steps survive close and reopen, and a replayed step stays refused", async (t) => {
      const probe = await makeStore();
      const persistent = probe.reopen !== undefined;
      await probe.cleanup();
      if (!persistent) {
        t.skip("this backend keeps nothing across a reopen");
        return;
      }
      await withStore(async (store, fixture) => {
        const [a, b, c] = await putMany(store, 3);
        assert.equal(await store.useStep(a!.id, 3), true);
        assert.equal(await store.useStep(a!.id, 9, new Date("2030-02-03T04:05:06.007Z")), true);
        assert.equal(await store.useStep(b!.id, 0), true);
        const before = await store.list();
        await store.close();

        let reopened = await fixture.reopen!();
        await reopened.open();
        assert.deepEqual(await reopened.list(), before);
        assert.equal((await reopened.get(a!.id))?.lastStep, 9);
        assert.equal((await reopened.get(a!.id))?.lastStepAt, "2030-02-03T04:05:06.007Z");
        assert.equal((await reopened.get(c!.id))?.lastStep, undefined);
        assert.equal(await reopened.useStep(a!.id, 9), false);
        assert.equal(await reopened.useStep(a!.id, 4), false);
        assert.equal(await reopened.useStep(b!.id, 0), false);
        assert.equal(await reopened.useStep(a!.id, 10), true);
        assert.equal(await reopened.useStep(c!.id, 1), true);
        await reopened.close();

        reopened = await fixture.reopen!();
        await reopened.open();
        assert.equal((await reopened.get(a!.id))?.lastStep, 10);
        assert.equal((await reopened.get(c!.id))?.lastStep, 1);
        assert.equal(await reopened.useStep(a!.id, 10), false);
      });
    });

    test("log entries get indexes in call order, come back as copies, and survive a reopen", async () => {
      await withStore(async (store, fixture) => {
        assert.equal(store.logSize(), 0);
        assert.deepEqual(await store.logEntries(0, 0), []);
        const leaves = Array.from({ length: 5 }, (_, i) => new Uint8Array(i + 1).fill(i + 10));
        // Appended concurrently: indexes still follow the calls.
        const indexes = await Promise.all(leaves.map((leaf) => store.appendLogEntry(leaf)));
        assert.deepEqual(indexes, [0, 1, 2, 3, 4]);
        assert.equal(store.logSize(), 5);
        leaves[0]!.fill(0); // the caller's buffer is not the store's
        const read = await store.logEntries(1, 4);
        assert.deepEqual(read, leaves.slice(1, 4));
        read[0]!.fill(0); // nor is what it hands out
        assert.deepEqual((await store.logEntries(1, 2))[0], new Uint8Array(2).fill(11));
        assert.deepEqual((await store.logEntries(0, 1))[0], new Uint8Array(1).fill(10));
        // Records and entries interleave without disturbing each other.
        await store.put(input());
        assert.equal(await store.appendLogEntry(new Uint8Array([7])), 5);
        if (!fixture.reopen) return;
        await store.close();
        const reopened = await fixture.reopen();
        await reopened.open();
        assert.equal(reopened.logSize(), 6);
        assert.deepEqual(await reopened.logEntries(4, 6), [
          new Uint8Array(5).fill(14),
          new Uint8Array([7]),
        ]);
        assert.equal(await reopened.appendLogEntry(new Uint8Array([8])), 6);
      });
    });

    test("log entries and ranges outside the rules are refused", async () => {
      await withStore(async (store) => {
        await store.appendLogEntry(new Uint8Array([1]));
        for (const leaf of [
          new Uint8Array(0),
          new Uint8Array(MAX_LOG_LEAF_BYTES + 1),
          "leaf",
          [1],
        ]) {
          await assert.rejects(store.appendLogEntry(leaf as Uint8Array), TypeError);
        }
        assert.ok((await store.appendLogEntry(new Uint8Array(MAX_LOG_LEAF_BYTES))) === 1);
        for (const [start, end] of [
          [-1, 1],
          [0, 3],
          [2, 1],
          [0.5, 1],
          [0, Number.NaN],
        ]) {
          await assert.rejects(store.logEntries(start!, end!), TypeError);
        }
        assert.equal((await store.logEntries(0, 2)).length, 2);
        assert.equal(store.logSize(), 2);
      });
    });

    test("a round's opening comes back as put (as a copy), at most one per round, also when two race, and survives a reopen", async () => {
      await withStore(async (store, fixture) => {
        assert.equal(await store.readRoundOpening("round-A"), undefined);
        const opening = new Uint8Array(Buffer.from('{"v":1,"roundId":"round-A"}'));
        await store.putRoundOpening("round-A", opening);
        const expected = new Uint8Array(opening);
        opening.fill(0); // the caller's buffer is not the store's
        const read = await store.readRoundOpening("round-A");
        assert.deepEqual(read, expected);
        read!.fill(0); // nor is what it hands out
        assert.deepEqual(await store.readRoundOpening("round-A"), expected);
        // A second opening for the round is refused, and the first stays.
        await assert.rejects(
          store.putRoundOpening("round-A", new Uint8Array([1])),
          isCode(ErrorCodes.INVALID_INPUT),
        );
        assert.deepEqual(await store.readRoundOpening("round-A"), expected);
        // Two racing for one round: exactly one is kept.
        const raced = await Promise.allSettled([
          store.putRoundOpening("round-B", new Uint8Array([1])),
          store.putRoundOpening("round-B", new Uint8Array([2])),
        ]);
        assert.deepEqual(
          raced.map((r) => r.status),
          ["fulfilled", "rejected"],
        );
        assert.deepEqual(await store.readRoundOpening("round-B"), new Uint8Array([1]));
        // Openings and records do not mix: a record of the round is not its opening.
        await store.put(input({ roundId: "round-C" }));
        assert.equal(await store.readRoundOpening("round-C"), undefined);
        for (const [roundId, bytes] of [
          ["", new Uint8Array([1])],
          [7, new Uint8Array([1])],
          ["round-D", new Uint8Array(0)],
          ["round-D", "opening"],
        ] as const) {
          await assert.rejects(
            store.putRoundOpening(roundId as string, bytes as Uint8Array),
            TypeError,
          );
        }
        await assert.rejects(store.readRoundOpening(""), TypeError);
        assert.equal(await store.readRoundOpening("round-D"), undefined);
        if (!fixture.reopen) return;
        await store.close();
        const reopened = await fixture.reopen();
        await reopened.open();
        assert.deepEqual(await reopened.readRoundOpening("round-A"), expected);
        assert.deepEqual(await reopened.readRoundOpening("round-B"), new Uint8Array([1]));
        await assert.rejects(
          reopened.putRoundOpening("round-B", new Uint8Array([3])),
          isCode(ErrorCodes.INVALID_INPUT),
        );
        await reopened.putRoundOpening("round-E", new Uint8Array([4]));
        assert.deepEqual(await reopened.readRoundOpening("round-E"), new Uint8Array([4]));
      });
    });

    test("records put with a roundPart share their round's secret: readSecretPart hands back copies of it with each record's part, readSecret refuses them", async () => {
      await withStore(async (store, fixture) => {
        const roundSecret = new Uint8Array(100).map((_, i) => (i * 13 + 5) & 0xff);
        const expected = new Uint8Array(roundSecret);
        await store.putRoundSecret("round-S", roundSecret);
        roundSecret.fill(0); // the caller's buffer is not the store's
        const parts = [0, 7, 1, MAX_ROUND_PART];
        const records: KeyRecord[] = [];
        for (const roundPart of parts) {
          const { secret: _, ...rest } = input({ roundId: "round-S" });
          records.push(await store.put({ ...rest, roundPart }));
        }
        const own = await store.put(input({ roundId: "round-S", secret: new Uint8Array([9]) }));
        for (const [i, record] of records.entries()) {
          assert.ok(!("roundPart" in record), "a record never carries its part number");
          const read = await store.readSecretPart(record.id);
          assert.deepEqual(read, { kind: "round", roundSecret: expected, roundPart: parts[i] });
          if (read.kind === "round") read.roundSecret.fill(0); // nor is what it hands out
          await assert.rejects(store.readSecret(record.id), isCode(ErrorCodes.INVALID_INPUT));
        }
        assert.deepEqual(await store.readSecretPart(records[0]!.id), {
          kind: "round",
          roundSecret: expected,
          roundPart: 0,
        });
        assert.deepEqual(await store.readSecretPart(own.id), {
          kind: "own",
          secret: new Uint8Array([9]),
        });
        await assert.rejects(
          store.readSecretPart("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
          isCode(ErrorCodes.NOT_FOUND),
        );
        // They pool, claim and consume like any record, oldest first.
        assert.equal(await store.countUnclaimed("otp"), 5);
        assert.equal((await store.claimNext("otp", claim(1), RESERVED))?.id, records[0]!.id);
        assert.equal((await store.claimNext("otp", claim(2)))?.id, records[1]!.id);
        assert.equal(await store.consume(records[1]!.id), true);
        assert.equal(await store.consume(records[2]!.id), true);
        if (!fixture.reopen) return;
        await store.close();
        const reopened = await fixture.reopen();
        await reopened.open();
        for (const [i, record] of records.entries()) {
          assert.deepEqual(await reopened.readSecretPart(record.id), {
            kind: "round",
            roundSecret: expected,
            roundPart: parts[i],
          });
        }
        assert.equal(await reopened.consume(records[2]!.id), false);
        await assert.rejects(
          reopened.putRoundSecret("round-S", new Uint8Array([1])),
          isCode(ErrorCodes.INVALID_INPUT),
        );
        const { secret: _, ...rest } = input({ roundId: "round-S" });
        const later = await reopened.put({ ...rest, roundPart: 3 });
        assert.deepEqual(await reopened.readSecretPart(later.id), {
          kind: "round",
          roundSecret: expected,
          roundPart: 3,
        });
      });
    });

    test("a round secret: at most one per round, also when two race; a roundPart needs one and excludes a secret; sizes and parts pinned", async () => {
      await withStore(async (store) => {
        const { secret: _, ...base } = input({ roundId: "round-T" });
        // No round secret for the round yet: refused, and nothing stored.
        await assert.rejects(
          store.put({ ...base, roundPart: 0 }),
          isCode(ErrorCodes.INVALID_INPUT),
        );
        assert.deepEqual(await store.list(), []);
        const raced = await Promise.allSettled([
          store.putRoundSecret("round-T", new Uint8Array([1])),
          store.putRoundSecret("round-T", new Uint8Array([2])),
        ]);
        assert.deepEqual(
          raced.map((r) => r.status),
          ["fulfilled", "rejected"],
        );
        assert.ok(isCode(ErrorCodes.INVALID_INPUT)((raced[1] as PromiseRejectedResult).reason));
        const record = await store.put({ ...base, roundPart: 0 });
        assert.deepEqual(await store.readSecretPart(record.id), {
          kind: "round",
          roundSecret: new Uint8Array([1]),
          roundPart: 0,
        });
        // A round's opening is not its round secret, nor the other way round.
        assert.equal(await store.readRoundOpening("round-T"), undefined);
        for (const roundPart of [-1, MAX_ROUND_PART + 1, 1.5, Number.NaN, "0"]) {
          await assert.rejects(
            store.put({ ...base, roundPart: roundPart as number }),
            isTypeErrorNaming("input.roundPart"),
          );
        }
        await assert.rejects(
          store.put({ ...base, roundPart: 1, secret: new Uint8Array([1]) }),
          isTypeErrorNaming("input.roundPart"),
        );
        await assert.rejects(store.put(base as RecordInput), isTypeErrorNaming("input.secret"));
        assert.equal((await store.list()).length, 1);
        // The largest round secret is taken; one byte more is refused.
        await store.putRoundSecret("round-U", new Uint8Array(MAX_ROUND_SECRET_BYTES).fill(7));
        await assert.rejects(
          store.putRoundSecret("round-V", new Uint8Array(MAX_ROUND_SECRET_BYTES + 1)),
          isCode(ErrorCodes.INVALID_INPUT),
        );
        for (const [roundId, bytes] of [
          ["", new Uint8Array([1])],
          [7, new Uint8Array([1])],
          ["round-V", new Uint8Array(0)],
          ["round-V", "secret"],
        ] as const) {
          await assert.rejects(
            store.putRoundSecret(roundId as string, bytes as Uint8Array),
            TypeError,
          );
        }
        await assert.rejects(
          store.put({ ...base, roundId: "round-V", roundPart: 0 }),
          isCode(ErrorCodes.INVALID_INPUT),
        );
        const big = await store.put({ ...base, roundId: "round-U", roundPart: 5, held: true });
        const read = await store.readSecretPart(big.id);
        assert.equal(read.kind === "round" && read.roundSecret.length, MAX_ROUND_SECRET_BYTES);
        assert.equal(await store.releaseHeld("round-U"), 1);
      });
    });

    test("a closed store refuses to be used", async () => {
      const fixture = await makeStore();
      await fixture.store.open();
      const record = await fixture.store.put(input());
      await fixture.store.close();
      try {
        await assert.rejects(fixture.store.get(record.id), isCode(ErrorCodes.OPERATIONAL));
        await assert.rejects(fixture.store.put(input()), isCode(ErrorCodes.OPERATIONAL));
        await assert.rejects(fixture.store.useStep(record.id, 1), isCode(ErrorCodes.OPERATIONAL));
        await assert.rejects(
          fixture.store.putRoundOpening("round-1", new Uint8Array([1])),
          isCode(ErrorCodes.OPERATIONAL),
        );
        await assert.rejects(
          fixture.store.readRoundOpening("round-1"),
          isCode(ErrorCodes.OPERATIONAL),
        );
        await assert.rejects(
          fixture.store.putRoundSecret("round-1", new Uint8Array([1])),
          isCode(ErrorCodes.OPERATIONAL),
        );
        await assert.rejects(
          fixture.store.readSecretPart(record.id),
          isCode(ErrorCodes.OPERATIONAL),
        );
        await fixture.store.close(); // closing twice is harmless
      } finally {
        await fixture.cleanup();
      }
    });
  });
}
