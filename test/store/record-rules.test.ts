/**
 * The record rules (src/store/record-rules.ts) from a table: a record brought into a state by
 * earlier events, then one event, and whether the rules allow it or which refusal they give. The
 * stores' own tests show what a refusal becomes (E_NOT_FOUND or false live, E_STORE_CORRUPT in
 * a replay).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import {
  describeRefusal,
  liveAnswer,
  RecordCore,
  type Refusal,
} from "../../src/store/record-rules.js";
import type { Claim, KeyRecord } from "../../src/store/types.js";

const AT = "2030-01-01T00:00:00.000Z";
const A = "01J00000000000000000000001";
const GHOST = "01J0000000000000000000000Z";

const claim: Claim = {
  requester: "r",
  subject: "s",
  requestId: "q",
  claimedAt: AT,
  expiresAt: AT,
};

function record(extra: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id: A,
    purpose: "otp",
    createdAt: AT,
    roundId: "round-1",
    participants: ["alice"],
    algorithm: "otp/v1",
    public: {},
    ...extra,
  };
}

type Event = (core: RecordCore) => Refusal | undefined | { released: number };

const add =
  (extra: Partial<KeyRecord> = {}): Event =>
  (core) =>
    core.add(record(extra));
const claimIt: Event = (core) => core.claim(A, claim);
const consume: Event = (core) => core.consume(A, AT);
const step =
  (n: number): Event =>
  (core) =>
    core.useStep(A, n, AT);
const lease: Event = (core) => core.lease(A);
const release: Event = (core) => core.release(A);
const unhold =
  (roundId = "round-1"): Event =>
  (core) =>
    core.releaseRound(roundId);

/** [state, before (each must be allowed), event, refusal rule or undefined when allowed] */
const rows: [string, Event[], Event, Refusal["rule"] | undefined][] = [
  ["add a new record", [], add(), undefined],
  ["add an id stored already", [add()], add(), "stored-twice"],
  ["claim an unknown record", [], claimIt, "unknown"],
  ["claim an open record", [add()], claimIt, undefined],
  ["claim a claimed record", [add(), claimIt], claimIt, "claimed-twice"],
  ["claim a held record", [add({ held: true })], claimIt, "claim-held"],
  ["claim a released record", [add({ held: true }), unhold()], claimIt, undefined],
  ["claim a leased record", [add(), lease], claimIt, undefined],
  ["consume an unknown record", [], consume, "unknown"],
  ["consume an open record", [add()], consume, undefined],
  ["consume a claimed record", [add(), claimIt], consume, undefined],
  ["consume a held record", [add({ held: true })], consume, undefined],
  ["consume a consumed record", [add(), consume], consume, "consumed-twice"],
  ["step of an unknown record", [], step(1), "unknown"],
  ["first step, 0", [add()], step(0), undefined],
  ["a higher step", [add(), step(5)], step(6), undefined],
  ["the same step", [add(), step(5)], step(5), "step-not-above"],
  ["a lower step", [add(), step(5)], step(4), "step-not-above"],
  ["lease an unknown record", [], lease, "unknown"],
  ["lease an open record", [add()], lease, undefined],
  ["lease a leased record", [add(), lease], lease, "not-leasable"],
  ["lease a claimed record", [add(), claimIt], lease, "not-leasable"],
  ["lease a consumed record", [add(), consume], lease, "not-leasable"],
  ["lease a held record", [add({ held: true })], lease, "not-leasable"],
  ["lease an owned record", [add({ owner: "carol" })], lease, "not-leasable"],
  ["release a leased record", [add(), lease], release, undefined],
  ["release a record never leased", [add()], release, "not-leased"],
  ["release a leased record claimed since", [add(), lease, claimIt], release, "not-leased"],
  ["release a leased record consumed since", [add(), lease, consume], release, "not-leased"],
  ["release a lease twice", [add(), lease, release], release, "not-leased"],
  ["unhold a round with a held record", [add({ held: true })], unhold(), undefined],
  ["unhold a round with nothing held", [add()], unhold(), "nothing-held"],
  ["unhold an unknown round", [add({ held: true })], unhold("round-9"), "nothing-held"],
  ["unhold a round twice", [add({ held: true }), unhold()], unhold(), "nothing-held"],
];

for (const [name, before, event, expected] of rows) {
  test(`record rules: ${name}: ${expected ?? "allowed"}`, () => {
    const core = new RecordCore();
    for (const earlier of before) {
      const result = earlier(core);
      assert.ok(result === undefined || !("rule" in result), `set-up allowed: ${name}`);
    }
    const result = event(core);
    const rule = result !== undefined && "rule" in result ? result.rule : undefined;
    assert.equal(rule, expected);
    if (result !== undefined && "rule" in result) {
      assert.ok(describeRefusal(result).length > 0);
    }
  });
}

test("a refused event changes nothing", () => {
  const core = new RecordCore();
  core.add(record());
  core.useStep(A, 5, AT);
  core.consume(A, AT);
  const before = JSON.stringify(core.index.list());
  assert.equal(core.consume(A, "2031-01-01T00:00:00.000Z")?.rule, "consumed-twice");
  assert.equal(core.useStep(A, 5, "2031-01-01T00:00:00.000Z")?.rule, "step-not-above");
  assert.equal(core.claim(GHOST, claim)?.rule, "unknown");
  assert.equal(JSON.stringify(core.index.list()), before);
});

test("a void lease is never claimable again, and a lease counts as claimable until then", () => {
  const core = new RecordCore();
  core.add(record());
  assert.equal(core.countClaimable("otp"), 1);
  assert.equal(core.lease(A), undefined);
  assert.equal(core.countClaimable("otp"), 1, "leased: still claimable (by the lease)");
  assert.equal(core.voidLeases(), 1);
  assert.equal(core.countClaimable("otp"), 0);
  assert.equal(core.claimOldest("otp", claim), undefined);
  assert.equal(core.lease(A)?.rule, "not-leasable");
  assert.equal(core.release(A)?.rule, "not-leased");
});

test("a live store answers a refusal: E_NOT_FOUND for an unknown record, false for a repeat, true when allowed", () => {
  assert.equal(liveAnswer(undefined), true);
  assert.equal(liveAnswer({ rule: "consumed-twice", id: A }), false);
  assert.equal(liveAnswer({ rule: "step-not-above", id: A, step: 1, last: 2 }), false);
  assert.throws(
    () => liveAnswer({ rule: "unknown", id: GHOST, event: "consumes" }),
    (error) => error instanceof DkeygenError && error.code === ErrorCodes.NOT_FOUND,
  );
  assert.throws(() => liveAnswer({ rule: "claimed-twice", id: A }), /unexpected refusal/);
});
