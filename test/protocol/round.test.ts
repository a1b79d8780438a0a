/** The round state machine, commit then reveal (protocol/round.ts), without sockets or crypto. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { RoundMachine, type Verdict } from "../../src/protocol/round.js";

const COMMIT_DEADLINE = 1000;
const REVEAL_DEADLINE = 2000;
const make = (quorum = 2, invited = ["a", "b", "c"]) =>
  new RoundMachine({
    roundId: "r1",
    purpose: "otp",
    invited,
    quorum,
    commitDeadline: COMMIT_DEADLINE,
    revealDeadline: REVEAL_DEADLINE,
  });
const commitment = (n: number) => () => new Uint8Array(32).fill(n);
const phrase = (n: number) => () => new Uint8Array(64).fill(n);
const throwing = (code: DkeygenError["code"]) => () => {
  throw new DkeygenError(code, "no");
};

function rejectedWith(verdict: Verdict, code: string) {
  assert.equal(verdict.kind, "rejected", JSON.stringify(verdict));
  if (verdict.kind === "rejected") assert.equal(verdict.error.code, code);
}

/** A round where `ids` committed (commitment i+1 each), moved to its reveal phase. */
function revealing(ids = ["a", "b", "c"], quorum = 2) {
  const round = make(quorum);
  for (const [i, id] of ids.entries()) {
    assert.equal(round.commit(id, 10, commitment(i + 1)).kind, "accepted");
  }
  const closed = round.closeCommits();
  assert.equal(closed.status, "revealing");
  return round;
}

test("every invited contributor commits then reveals: the round completes with all of them", () => {
  const round = make();
  for (const [i, id] of ["c", "a", "b"].entries()) {
    assert.equal(round.commit(id, 10, commitment(i)).kind, "accepted");
  }
  assert.equal(round.settled, true);
  const closed = round.closeCommits();
  assert.equal(closed.status, "revealing");
  if (closed.status === "revealing") {
    assert.deepEqual(
      closed.commits.map((c) => c.contributorId),
      ["a", "b", "c"],
      "the commit set is sorted by contributor id",
    );
    assert.deepEqual(
      closed.commits[2]!.commitment,
      new Uint8Array(32).fill(0),
      "c's own commitment",
    );
  }
  assert.equal(round.settled, false, "the reveal phase waits for the three reveals");
  for (const [i, id] of ["a", "b", "c"].entries()) {
    assert.equal(round.reveal(id, 1500, phrase(i)).kind, "accepted");
  }
  assert.equal(round.settled, true);
  const outcome = round.close();
  assert.equal(outcome.status, "completed");
  if (outcome.status === "completed") assert.equal(outcome.accepted.length, 3);
  assert.equal(round.status, "completed");
});

test("reveal's check is given the sender's own commitment", () => {
  const round = revealing(["a", "b"]);
  const seen: number[] = [];
  round.reveal("b", 1500, (c) => {
    seen.push(c[0]!);
    return new Uint8Array(64);
  });
  round.reveal("a", 1500, (c) => {
    seen.push(c[0]!);
    return new Uint8Array(64);
  });
  assert.deepEqual(seen, [2, 1]);
});

test("fewer commitments than the quorum fail the round before anything is revealed", () => {
  const round = make(2);
  round.commit("a", 10, commitment(1));
  const closed = round.closeCommits();
  assert.equal(closed.status, "failed");
  if (closed.status === "failed") {
    assert.equal(closed.error.code, ErrorCodes.QUORUM_NOT_MET);
    assert.match(closed.error.message, /1 of 3 invited contributors committed; the quorum is 2/);
  }
  assert.equal(round.status, "failed");
  rejectedWith(round.reveal("a", 1500, phrase(1)), ErrorCodes.LATE_CONTRIBUTION);
});

test("a committed contributor that does not reveal aborts the round, named; it is never completed with fewer", () => {
  const round = revealing(["a", "b", "c"]);
  round.reveal("a", 1500, phrase(1));
  round.reveal("c", 1500, phrase(3));
  const outcome = round.close();
  assert.equal(outcome.status, "aborted");
  if (outcome.status === "aborted") {
    assert.deepEqual(outcome.missing, ["b"]);
    assert.equal(outcome.revealed, 2);
    assert.equal(outcome.error.code, ErrorCodes.ROUND_ABORTED);
    assert.equal(outcome.error.culprit, "b");
    assert.match(outcome.error.message, /1 of 3 committed contributor did not reveal \(b\)/);
  }
  assert.equal(round.status, "aborted");
});

test("an aborted round wipes the phrases it had", () => {
  const round = revealing(["a", "b"]);
  const kept = new Uint8Array(64).fill(9);
  round.reveal("a", 1500, () => kept);
  round.close();
  assert.ok(kept.every((b) => b === 0));
});

test("a committed contributor that leaves dooms the round at once; one that had not committed does not", () => {
  const round = make(2);
  round.commit("a", 10, commitment(1));
  round.commit("b", 10, commitment(2));
  round.participantLeft("c");
  assert.equal(round.settled, true, "nobody left to commit");
  round.closeCommits();
  assert.equal(round.doomed, false);
  round.participantLeft("b");
  assert.equal(round.doomed, true);
  rejectedWith(round.reveal("b", 1500, phrase(2)), ErrorCodes.LATE_CONTRIBUTION);
  assert.equal(round.reveal("a", 1500, phrase(1)).kind, "accepted");
  assert.equal(round.settled, true);
  const outcome = round.close();
  assert.equal(outcome.status, "aborted");
  if (outcome.status === "aborted") assert.deepEqual(outcome.missing, ["b"]);
});

test("a reveal that does not decrypt is final: the round is doomed and the sender cannot try again", () => {
  const round = revealing(["a", "b"]);
  const verdict = round.reveal("a", 1500, throwing(ErrorCodes.DECRYPTION_FAILED));
  rejectedWith(verdict, ErrorCodes.DECRYPTION_FAILED);
  assert.equal(verdict.kind === "rejected" && verdict.final, true);
  assert.equal(round.doomed, true);
  rejectedWith(round.reveal("a", 1501, phrase(1)), ErrorCodes.LATE_CONTRIBUTION);
});

test("a reveal with a bad signature or another commitment is refused but the sender may still reveal", () => {
  const round = revealing(["a", "b"]);
  for (const code of [ErrorCodes.BAD_SIGNATURE, ErrorCodes.COMMITMENT_MISMATCH]) {
    const verdict = round.reveal("a", 1500, throwing(code));
    rejectedWith(verdict, code);
    assert.equal(verdict.kind === "rejected" && verdict.final, undefined);
    assert.equal(round.doomed, false);
  }
  assert.equal(round.reveal("a", 1500, phrase(1)).kind, "accepted");
});

test("commit checks: phase, deadline (exact), invitation, duplicate, then signature", () => {
  const round = make();
  rejectedWith(round.commit("a", COMMIT_DEADLINE + 1, commitment(1)), ErrorCodes.LATE_CONTRIBUTION);
  assert.equal(
    round.commit("a", COMMIT_DEADLINE, commitment(1)).kind,
    "accepted",
    "at the deadline",
  );
  rejectedWith(round.commit("a", 10, commitment(1)), ErrorCodes.DUPLICATE_CONTRIBUTION);
  rejectedWith(round.commit("mallory", 10, commitment(1)), ErrorCodes.WRONG_ROUND);
  const bad = round.commit("b", 10, throwing(ErrorCodes.BAD_SIGNATURE));
  rejectedWith(bad, ErrorCodes.BAD_SIGNATURE);
  if (bad.kind === "rejected") assert.equal(bad.error.culprit, "b");
  assert.equal(round.commit("b", 10, commitment(2)).kind, "accepted", "b may still commit");
  rejectedWith(round.reveal("a", 10, phrase(1)), ErrorCodes.WRONG_PHASE);
  round.closeCommits();
  rejectedWith(round.commit("c", 10, commitment(3)), ErrorCodes.WRONG_PHASE);
  round.close();
  rejectedWith(round.commit("c", 10, commitment(3)), ErrorCodes.LATE_CONTRIBUTION);
});

test("reveal checks: deadline (exact), invitation, commit set, duplicate", () => {
  const round = revealing(["a", "b"]);
  rejectedWith(round.reveal("a", REVEAL_DEADLINE + 1, phrase(1)), ErrorCodes.LATE_CONTRIBUTION);
  assert.equal(round.reveal("a", REVEAL_DEADLINE, phrase(1)).kind, "accepted", "at the deadline");
  rejectedWith(round.reveal("a", 1500, phrase(1)), ErrorCodes.DUPLICATE_CONTRIBUTION);
  rejectedWith(round.reveal("mallory", 1500, phrase(1)), ErrorCodes.WRONG_ROUND);
  const stranger = round.reveal("c", 1500, phrase(3));
  rejectedWith(stranger, ErrorCodes.WRONG_ROUND);
  if (stranger.kind === "rejected")
    assert.match(stranger.error.message, /not in round r1's commit set/);
});

test("cheap checks run before the cryptographic ones, which run once per accepted message", () => {
  const round = make();
  let checked = 0;
  const check = () => {
    checked++;
    return new Uint8Array(32);
  };
  round.commit("a", 10, check);
  round.commit("a", 10, check);
  round.commit("zed", 10, check);
  round.commit("b", 5000, check);
  assert.equal(checked, 1);
  round.commit("b", 10, check);
  round.closeCommits();
  let opened = 0;
  const open = () => {
    opened++;
    return new Uint8Array(64);
  };
  round.reveal("a", 1500, open);
  round.reveal("a", 1500, open);
  round.reveal("c", 1500, open);
  round.reveal("b", 5000, open);
  assert.equal(opened, 1);
});

test("a check that throws something other than a DkeygenError is a bug and propagates", () => {
  const round = make();
  assert.throws(() =>
    round.commit("a", 10, () => {
      throw new TypeError("bug");
    }),
  );
});

test("property: whatever the order of commits, reveals and departures, the round completes only with every commitment revealed", () => {
  const ids = ["a", "b", "c", "d"];
  const action = fc.oneof(
    fc.record({ kind: fc.constant("commit" as const), id: fc.constantFrom(...ids, "x") }),
    fc.record({ kind: fc.constant("reveal" as const), id: fc.constantFrom(...ids, "x") }),
    fc.record({ kind: fc.constant("leave" as const), id: fc.constantFrom(...ids) }),
    fc.record({ kind: fc.constant("end-commits" as const) }),
  );
  fc.assert(
    fc.property(
      fc.array(action, { maxLength: 30 }),
      fc.integer({ min: 1, max: 4 }),
      (actions, quorum) => {
        const round = make(quorum, ids);
        const committed = new Set<string>();
        const revealed = new Set<string>();
        for (const a of actions) {
          if (a.kind === "commit") {
            if (round.commit(a.id, 10, commitment(1)).kind === "accepted") committed.add(a.id);
          } else if (a.kind === "reveal") {
            if (round.reveal(a.id, 1500, phrase(1)).kind === "accepted") revealed.add(a.id);
          } else if (a.kind === "leave") {
            round.participantLeft(a.id);
          } else if (round.status === "committing") {
            round.closeCommits();
          }
        }
        for (const id of revealed)
          assert.ok(committed.has(id), "only committed contributors reveal");
        const outcome = round.close();
        if (outcome.status === "completed") {
          assert.ok(committed.size >= quorum);
          assert.deepEqual(new Set(outcome.accepted.map((p) => p.contributorId)), committed);
        } else if (outcome.status === "aborted") {
          assert.deepEqual(
            new Set(outcome.missing),
            new Set([...committed].filter((id) => !revealed.has(id))),
          );
          assert.ok(outcome.missing.length > 0);
        } else {
          assert.ok(committed.size < quorum);
        }
      },
    ),
    { numRuns: 2000 },
  );
});
