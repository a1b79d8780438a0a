/**
 * Heap per live record (issue 17): the index's record objects must stay V8 fast-mode objects
 * through every change a pooled OTP goes through. A property deleted from one (Node 26's V8 14
 * after any delete, Node 20's V8 11 after deleting anything but the last property added) turns it
 * into a dictionary of ≈450 B, which doubled the heap per record on Node 26. Checked with V8's
 * %HasFastProperties, enabled at run time for this file only.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { RecordIndex } from "../../src/store/record-index.js";
import type { Claim, KeyRecord } from "../../src/store/types.js";

setFlagsFromString("--allow-natives-syntax");
const hasFastProperties = new Function("o", "return %HasFastProperties(o)") as (
  o: object,
) => boolean;

const T0 = "2030-01-01T00:00:00.000Z";

function otp(n: number, held: boolean): KeyRecord {
  const record: KeyRecord = {
    id: `01J${String(n).padStart(23, "0")}`,
    purpose: "otp",
    createdAt: T0,
    roundId: "round-1",
    participants: ["contributor-1", "contributor-2"],
    algorithm: "otp/v1",
    public: { digits: 6 },
  };
  if (held) record.held = true;
  return record;
}

const claim = (n: number): Claim => ({
  requester: "requester-1",
  subject: "subject-1",
  requestId: `request-${n}`,
  claimedAt: T0,
  expiresAt: "2030-01-01T00:05:00.000Z",
});

test("the check itself tells a dictionary-mode object from a fast one", () => {
  const object: Record<string, unknown> = { a: 1, b: 2 };
  assert.equal(hasFastProperties(object), true);
  delete object.a;
  assert.equal(hasFastProperties(object), false);
});

test("an OTP's record in the index stays a fast object when put held, released, reserved, claimed, consumed, stepped and each undone", () => {
  const index = new RecordIndex();
  for (let n = 0; n < 4; n++) index.add(otp(n, true), "sealed");
  const fast = (what: string) => {
    for (const record of index.list()) {
      assert.equal(hasFastProperties(record), true, `${record.id} after ${what}`);
    }
  };
  fast("add held");
  index.releaseRound("round-1");
  fast("release");
  const [reserved] = index.reserve("otp", 1);
  index.unreserve(reserved!);
  fast("reserve and unreserve");
  const claimed = index.claimOldest("otp", claim(1))!;
  index.setConsumed(claimed.id, T0);
  fast("claim and consume");
  const other = index.list()[1]!.id;
  index.setClaim(other, claim(2));
  index.clearClaim(other);
  index.setConsumed(other, T0);
  index.clearConsumed(other);
  fast("a claim and a consumption undone");
  const previous = index.setStep(other, 5, T0);
  index.restoreStep(other, previous);
  fast("a step undone");
  index.remove(claimed.id);
  fast("a retirement");
});
