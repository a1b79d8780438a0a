/**
 * Retirement (issue 17): a pooled OTP leaves the key_store file store's memory for good once its
 * claim has expired (plus the grace), or at once when it is consumed without a claim; a retire
 * line records it, so a reopened store never loads it again. Everything else stays. The lazy
 * index structures that make removal O(1) are held to a plain model with fast-check.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { RecordIndex } from "../../src/store/record-index.js";
import { retirePolicy } from "../../src/store/record-rules.js";
import type { Claim, KeyRecord } from "../../src/store/types.js";
import { bodies, fresh, input } from "../helpers/key-store-file.js";

const T0 = Date.parse("2030-01-01T00:00:00.000Z");
const TTL = 300_000;
const GRACE = 60_000;

function clockAt(start: number) {
  let now = start;
  return { clock: () => new Date(now), set: (ms: number) => (now = ms) };
}

const claimFor = (n: number, expiresAt: number) => ({
  requester: "requester-1",
  subject: `subject-${n % 2}`,
  requestId: `request-${n}`,
  expiresAt: new Date(expiresAt),
});

test("claimed OTPs retire once claim expiry + grace has passed (to the millisecond), withdrawn ones at once; enrollments, owned and pooled records stay, also after a reopen", async () => {
  const time = clockAt(T0);
  const store = await fresh({ clock: time.clock, retireEveryMs: 0, retireGraceMs: GRACE });
  const first = store.make();
  await first.open();
  try {
    const otps = [];
    for (let i = 0; i < 5; i++) otps.push(await first.put(input()));
    const totp = await first.put(input({ purpose: "totp", owner: "requester-1", subject: "a" }));
    const claimed = [];
    for (let i = 0; i < 3; i++) {
      claimed.push((await first.claimNext("otp", claimFor(i, T0 + TTL)))!);
    }
    // One verified (consumed after its claim), one withdrawn (consumed unclaimed).
    assert.equal(await first.consume(claimed[0]!.id), true);
    const withdrawn = otps[4]!;
    assert.equal(await first.consume(withdrawn.id), true);
    assert.equal(await first.useStep(totp.id, 7), true);
    assert.equal(first.liveRecords, 6);

    assert.equal(await first.retireDue(), 1, "the withdrawn OTP retires at once");
    assert.equal(await first.get(withdrawn.id), undefined);
    assert.equal(first.liveRecords, 5);

    time.set(T0 + TTL + GRACE - 1);
    assert.equal(await first.retireDue(), 0, "one millisecond before expiry + grace: none");
    time.set(T0 + TTL + GRACE);
    assert.equal(await first.retireDue(), 3, "at expiry + grace: the three claimed OTPs");
    for (const record of claimed) {
      assert.equal(await first.get(record.id), undefined);
      await assert.rejects(
        first.consume(record.id),
        (error: unknown) => error instanceof DkeygenError && error.code === ErrorCodes.NOT_FOUND,
      );
      await assert.rejects(first.readSecret(record.id), /not found|unknown|no record/i);
    }
    assert.deepEqual(
      await first.list({ claimedBy: "requester-1", subject: "subject-0", latestClaims: 5 }),
      [],
    );
    assert.deepEqual(
      (await first.list()).map((r) => r.id),
      [otps[3]!.id, totp.id],
    );
    assert.equal(await first.countUnclaimed("otp"), 1);
    assert.equal(first.liveRecords, 2);
    const retireLines = (await bodies(first.path)).filter((body) => body.t === "retire");
    assert.deepEqual(
      retireLines.map((body) => [body.at, (body.ids as string[]).length]),
      [
        [new Date(T0).toISOString(), 1],
        [new Date(T0 + TTL + GRACE).toISOString(), 3],
      ],
    );
  } finally {
    await first.close();
  }

  // Reopened, the retired records are not loaded again; the rest is as it was.
  const second = store.make();
  await second.open();
  try {
    assert.equal(second.liveRecords, 2);
    const [pooled, totp] = await second.list();
    assert.equal(pooled!.purpose, "otp");
    assert.equal(totp!.lastStep, 7);
    assert.equal(await second.retireDue(), 0);
    const next = await second.claimNext("otp", claimFor(9, T0 + 2 * TTL));
    assert.equal(next?.id, pooled!.id);
  } finally {
    await second.close();
    await store.remove();
  }
});

test("a store reopened after the grace passed retires what was due while it was down", async () => {
  const time = clockAt(T0);
  const store = await fresh({ clock: time.clock, retireEveryMs: 0, retireGraceMs: GRACE });
  const first = store.make();
  await first.open();
  await first.put(input());
  const claimed = (await first.claimNext("otp", claimFor(1, T0 + TTL)))!;
  await first.close();
  time.set(T0 + TTL + GRACE);
  const second = store.make();
  await second.open();
  try {
    assert.equal(second.liveRecords, 1, "loaded: its retirement was never written");
    assert.equal(await second.retireDue(), 1);
    assert.equal(await second.get(claimed.id), undefined);
  } finally {
    await second.close();
    await store.remove();
  }
});

test("retirement runs by itself every retireEveryMs", async () => {
  const store = await fresh({ retireEveryMs: 20, retireGraceMs: 0 });
  const live = store.make();
  await live.open();
  try {
    await live.put(input());
    await live.put(input());
    const record = (await live.claimNext("otp", claimFor(1, Date.now() + 30)))!;
    const deadline = Date.now() + 5000;
    while ((await live.get(record.id)) !== undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(await live.get(record.id), undefined, "retired by the timer");
    assert.equal(live.liveRecords, 1);
  } finally {
    await live.close();
    await store.remove();
  }
});

test("the grace and the interval are checked", async () => {
  const store = await fresh();
  assert.throws(() => store.make({ retireGraceMs: -1 }), /retireGraceMs/);
  assert.throws(() => store.make({ retireGraceMs: 0.5 }), /retireGraceMs/);
  assert.throws(() => store.make({ retireEveryMs: -1 }), /retireEveryMs/);
  await store.remove();
});

// --- The index against a model -------------------------------------------------------------

const ops = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant("add" as const), purpose: fc.constantFrom("otp", "totp") }),
    // An enrollment-like record: owned, made for a subject (never pooled, never retired).
    fc.record({
      op: fc.constant("own" as const),
      purpose: fc.constantFrom("otp", "totp"),
      owner: fc.nat(1),
      subject: fc.nat(1),
    }),
    // Any record leaving the index (RecordIndex.remove takes any id; the store decides which).
    fc.record({ op: fc.constant("remove" as const), pick: fc.nat() }),
    // A claim by id (as a replayed claim line makes one) of any unclaimed record, owned ones too.
    fc.record({
      op: fc.constant("claimId" as const),
      pick: fc.nat(),
      requester: fc.nat(1),
      subject: fc.nat(1),
    }),
    fc.record({
      op: fc.constant("claim" as const),
      requester: fc.nat(1),
      subject: fc.nat(1),
      ttl: fc.integer({ min: 1, max: 5000 }),
    }),
    fc.record({ op: fc.constant("consume" as const), pick: fc.nat() }),
    fc.record({ op: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 3000 }) }),
  ),
  { minLength: 10, maxLength: 200, size: "large" },
);

test("the index with retirement answers every query as a plain model does (fast-check)", () => {
  fc.assert(
    fc.property(ops, (sequence) => {
      const policy = retirePolicy(500);
      const index = new RecordIndex(policy);
      const model = new Map<string, KeyRecord>();
      const claimOrder: string[] = [];
      let now = T0;
      let n = 0;
      const id = (i: number) => `01J${String(i).padStart(23, "0")}`;
      for (const step of sequence) {
        if (step.op === "add") {
          const record: KeyRecord = {
            id: id(n++),
            purpose: step.purpose,
            createdAt: new Date(now).toISOString(),
            roundId: "r",
            participants: ["a"],
            algorithm: "x",
            public: {},
          };
          index.add(record);
          // The index's own object: the changes below are made to it.
          model.set(record.id, index.get(record.id)!);
        } else if (step.op === "own") {
          const record: KeyRecord = {
            id: id(n++),
            purpose: step.purpose,
            createdAt: new Date(now).toISOString(),
            roundId: "r",
            participants: ["a"],
            algorithm: "x",
            public: {},
            owner: `q${step.owner}`,
            subject: `s${step.subject}`,
          };
          index.add(record);
          // The index's own object: the changes below are made to it.
          model.set(record.id, index.get(record.id)!);
        } else if (step.op === "remove") {
          const all = [...model.keys()];
          const target = all[step.pick % Math.max(1, all.length)];
          if (target) {
            assert.equal(index.remove(target)?.id, target);
            model.delete(target);
          }
        } else if (step.op === "claim") {
          const claim: Claim = {
            requester: `q${step.requester}`,
            subject: `s${step.subject}`,
            requestId: `r${n}`,
            claimedAt: new Date(now).toISOString(),
            expiresAt: new Date(now + step.ttl).toISOString(),
          };
          const open = [...model.values()]
            .filter(
              (r) => r.purpose === "otp" && !r.owner && !r.claim && r.consumedAt === undefined,
            )
            .sort((a, b) => (a.id < b.id ? -1 : 1))[0]?.id;
          const got = index.claimOldest("otp", claim);
          assert.equal(got?.id, open);
          if (got) claimOrder.push(got.id);
        } else if (step.op === "claimId") {
          const unclaimed = [...model.values()].filter((r) => !r.claim);
          const target = unclaimed[step.pick % Math.max(1, unclaimed.length)];
          if (target) {
            index.setClaim(target.id, {
              requester: `q${step.requester}`,
              subject: `s${step.subject}`,
              requestId: `r${n}`,
              claimedAt: new Date(now).toISOString(),
              expiresAt: new Date(now + 1000).toISOString(),
            });
            claimOrder.push(target.id);
          }
        } else if (step.op === "consume") {
          const live = [...model.values()].filter((r) => r.consumedAt === undefined);
          const target = live[step.pick % Math.max(1, live.length)];
          if (target) index.setConsumed(target.id, new Date(now).toISOString());
        } else {
          now += step.ms;
          for (const due of index.dueForRetirement(now)) {
            const record = index.remove(due)!;
            const at = policy(record);
            assert.ok(at !== undefined && at <= now, "only due records retire");
            model.delete(due);
          }
          // Nothing due is left behind.
          for (const record of model.values()) {
            const at = policy(record);
            assert.ok(at === undefined || at > now, `${record.id} is due and still held`);
          }
        }
        // The queries agree with the model.
        const sorted = [...model.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
        assert.deepEqual(
          index.list().map((r) => r.id),
          sorted.map((r) => r.id),
        );
        assert.deepEqual(
          index.list({ purpose: "otp" }).map((r) => r.id),
          sorted.filter((r) => r.purpose === "otp").map((r) => r.id),
        );
        for (const q of ["q0", "q1"]) {
          for (const s of ["s0", "s1"]) {
            const mine = claimOrder.filter(
              (i) => model.get(i)?.claim?.requester === q && model.get(i)?.claim?.subject === s,
            );
            assert.deepEqual(
              index.list({ claimedBy: q, subject: s, latestClaims: 3 }).map((r) => r.id),
              mine.slice(-3),
            );
            assert.deepEqual(
              index.list({ subject: s }).map((r) => r.id),
              sorted.filter((r) => r.subject === s || r.claim?.subject === s).map((r) => r.id),
            );
            // q is a requester claiming for s and an owner of records for s at once.
            assert.deepEqual(
              index.list({ owner: q, subject: s }).map((r) => r.id),
              sorted
                .filter((r) => r.owner === q && (r.subject === s || r.claim?.subject === s))
                .map((r) => r.id),
            );
          }
        }
        assert.equal(index.size, model.size);
        assert.equal(
          index.countPoolable("otp"),
          sorted.filter(
            (r) => r.purpose === "otp" && !r.owner && !r.claim && r.consumedAt === undefined,
          ).length,
        );
      }
    }),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 100) > 1000 ? 5000 : 100 },
  );
});
