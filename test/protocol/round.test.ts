import assert from "node:assert/strict";
import { test } from "node:test";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { RoundMachine } from "../../src/protocol/round.js";

const make = (quorum = 2) =>
  new RoundMachine({
    roundId: "r1",
    purpose: "otp",
    invited: ["a", "b", "c"],
    quorum,
    deadline: 1000,
  });
const phrase = (n: number) => () => new Uint8Array(64).fill(n);

function rejectedWith(verdict: ReturnType<RoundMachine["contribute"]>, code: string) {
  assert.equal(verdict.kind, "rejected");
  if (verdict.kind === "rejected") assert.equal(verdict.error.code, code);
}

test("a round with every invited contributor answering completes with all of them", () => {
  const round = make();
  for (const [i, id] of ["a", "b", "c"].entries()) {
    assert.equal(round.contribute(id, 10, phrase(i)).kind, "accepted");
  }
  assert.equal(round.settled, true);
  const outcome = round.close();
  assert.equal(outcome.status, "completed");
  if (outcome.status === "completed") assert.equal(outcome.accepted.length, 3);
  assert.equal(round.status, "completed");
});

test("a round below its quorum fails with QUORUM_NOT_MET and keeps nothing", () => {
  const round = make(2);
  round.contribute("a", 10, phrase(1));
  const outcome = round.close();
  assert.equal(outcome.status, "failed");
  if (outcome.status === "failed") {
    assert.equal(outcome.error.code, ErrorCodes.QUORUM_NOT_MET);
    assert.match(outcome.error.message, /1 of 3 .* quorum is 2/);
  }
  assert.equal(round.status, "failed");
});

test("a duplicate, a stranger and a late contribution are each rejected with their own code", () => {
  const round = make();
  round.contribute("a", 10, phrase(1));
  rejectedWith(round.contribute("a", 11, phrase(1)), ErrorCodes.DUPLICATE_CONTRIBUTION);
  rejectedWith(round.contribute("mallory", 12, phrase(1)), ErrorCodes.WRONG_ROUND);
  rejectedWith(round.contribute("b", 1001, phrase(1)), ErrorCodes.LATE_CONTRIBUTION);
  round.contribute("c", 13, phrase(3));
  round.close();
  rejectedWith(round.contribute("b", 14, phrase(2)), ErrorCodes.LATE_CONTRIBUTION);
});

test("cheap checks run before the cryptographic check, which runs once per accepted sender", () => {
  const round = make();
  let opened = 0;
  const open = () => {
    opened++;
    return new Uint8Array(64);
  };
  round.contribute("a", 10, open);
  round.contribute("a", 10, open);
  round.contribute("zed", 10, open);
  round.contribute("b", 2000, open);
  assert.equal(opened, 1);
});

test("a contribution whose check fails is rejected with that error and the sender may still answer", () => {
  const round = make();
  const verdict = round.contribute("a", 10, () => {
    throw new DkeygenError(ErrorCodes.BAD_SIGNATURE, "bad");
  });
  rejectedWith(verdict, ErrorCodes.BAD_SIGNATURE);
  if (verdict.kind === "rejected") assert.equal(verdict.error.culprit, "a");
  assert.equal(round.contribute("a", 11, phrase(1)).kind, "accepted");
});

test("a participant that leaves no longer holds the round open", () => {
  const round = make();
  round.contribute("a", 10, phrase(1));
  round.contribute("b", 10, phrase(2));
  assert.equal(round.settled, false);
  round.participantLeft("c");
  assert.equal(round.settled, true);
  assert.equal(round.close().status, "completed");
});

test("a closed round cannot be closed again", () => {
  const round = make();
  round.close();
  assert.throws(() => round.close(), /illegal transition/);
});
