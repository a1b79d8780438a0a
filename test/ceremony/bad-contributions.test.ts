/**
 * Forged, replayed, duplicate, late, withheld and garbage commits and reveals over real loopback
 * sockets: each is refused with its own error, to its sender only; a round completes with the
 * honest contributors when the misbehaving one never got into the commit set, and aborts, naming
 * it, when a committed contributor does not reveal a valid contribution — it is never completed
 * with fewer.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { toBase64url } from "../../src/crypto/base64url.js";
import { lengthPrefixed } from "../../src/crypto/canonical.js";
import { signMessage } from "../../src/crypto/signature.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { parseRoundEntry } from "../../src/protocol/log-entry.js";
import type { MessageOf } from "../../src/protocol/messages.js";
import { contributionCommitment } from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { contributorIdOf } from "../../src/server/enrollment.js";
import {
  buildContribution,
  buildReveal,
  commitAndReveal,
  enrolledRawPeer,
  type RawPeer,
  setHashOf,
  signCommit,
  startContributors,
  startTestServer,
  type TestServer,
} from "../helpers/ceremony.js";

let server: TestServer;
const contributorOf = (peer: { contributorIdentity: Uint8Array }) =>
  contributorIdOf(peer.contributorIdentity);

before(async () => {
  server = await startTestServer({ quorum: 2, roundTimeoutMs: 1500 });
  await startContributors(server, 2);
});
after(() => server.cleanup());

/** Runs a round in which `peer` does `act` after the invitation arrives; the round's result. */
async function roundWith(peer: RawPeer, act: (open: MessageOf<"round.open">) => Promise<void>) {
  const admin = await server.admin();
  const pending = admin.generate("otp", {});
  pending.catch(() => {}); // awaited below; a failure in `act` must not leave it unhandled
  try {
    const open = await peer.next("round.open");
    await act(open);
    return await pending;
  } finally {
    admin.close();
  }
}

async function errorCode(peer: RawPeer): Promise<string> {
  return (await peer.next("error")).code;
}

test("an honest raw peer commits, reveals against the signed set and gets a receipt", async () => {
  const peer = await enrolledRawPeer(server);
  let receipt: MessageOf<"round.receipt"> | undefined;
  const record = await roundWith(peer, async (open) => {
    assert.ok(open.invited.includes(contributorOf(peer)));
    receipt = await commitAndReveal(peer, open);
  });
  assert.equal(record.participants.length, 3);
  assert.equal(receipt!.contributorId, contributorOf(peer));
  const closed = await peer.next("round.closed");
  assert.equal(closed.outcome, "completed");
  assert.equal(closed.accepted, 3);
  peer.close();
});

test("a commitment replayed into another round, moved or re-signed, gets no reveal in", async () => {
  const peer = await enrolledRawPeer(server);
  let first: ReturnType<typeof buildContribution> | undefined;
  await roundWith(peer, async (open) => {
    first = buildContribution(peer, open);
    await commitAndReveal(peer, open);
  });
  const two = await roundWith(peer, async (open) => {
    peer.send(first!.commit); // its round is over
    assert.equal(await errorCode(peer), ErrorCodes.LATE_CONTRIBUTION);
    peer.send({ ...first!.commit, roundId: open.roundId }); // the signature covers the round id
    assert.equal(await errorCode(peer), ErrorCodes.BAD_SIGNATURE);
  });
  assert.equal(two.participants.length, 2, "completed with the two honest contributors");
  assert.ok(!two.participants.includes(contributorOf(peer)));
  peer.close();
});

test("a duplicate commit is refused and the first one counts", async () => {
  const peer = await enrolledRawPeer(server);
  const record = await roundWith(peer, async (open) => {
    const contribution = buildContribution(peer, open);
    peer.send(contribution.commit);
    peer.send(buildContribution(peer, open).commit);
    assert.equal(await errorCode(peer), ErrorCodes.DUPLICATE_CONTRIBUTION);
    const commits = await peer.next("round.commits");
    const own = commits.commits.find((c) => c.contributorId === contribution.contributorId);
    assert.equal(own?.commitment, toBase64url(contribution.commitment));
    peer.send(buildReveal(peer, { ...contribution, setHash: setHashOf(peer, commits) }));
    await peer.next("round.receipt");
  });
  assert.ok(record.participants.includes(contributorOf(peer)));
  peer.close();
});

test("a commit with a bad signature, or in another contributor's name, is refused", async () => {
  const peer = await enrolledRawPeer(server);
  const other = await enrolledRawPeer(server);
  const record = await roundWith(peer, async (open) => {
    await other.next("round.open");
    const contribution = buildContribution(peer, open);
    const signature = Buffer.from(contribution.commit.signature, "base64url");
    signature[10]! ^= 0x40;
    peer.send({ ...contribution.commit, signature: toBase64url(signature) });
    const error = await peer.next("error");
    assert.equal(error.code, ErrorCodes.BAD_SIGNATURE);
    assert.equal(error.fatal, false);
    peer.send(buildContribution(other, open).commit); // built and signed by `other`
    assert.equal(await errorCode(peer), ErrorCodes.UNAUTHORIZED);
    other.close();
  });
  assert.equal(record.participants.length, 2);
  peer.close();
});

test("reveals: before the set, against another set, of another envelope, signed the version-3 way — each refused; then the right one counts", async () => {
  const peer = await enrolledRawPeer(server);
  const record = await roundWith(peer, async (open) => {
    const contribution = buildContribution(peer, open);
    peer.send(buildReveal(peer, { ...contribution, setHash: new Uint8Array(32) }));
    assert.equal(await errorCode(peer), ErrorCodes.WRONG_PHASE, "the commit phase is still on");
    peer.send(contribution.commit);
    const commits = await peer.next("round.commits");
    const setHash = setHashOf(peer, commits);
    peer.send(buildReveal(peer, { ...contribution, setHash: randomBytes(32) }));
    assert.equal(await errorCode(peer), ErrorCodes.COMMITMENT_MISMATCH, "another set");
    const other = buildContribution(peer, open);
    peer.send(buildReveal(peer, { ...other, setHash }));
    assert.equal(await errorCode(peer), ErrorCodes.COMMITMENT_MISMATCH, "another envelope");
    const forged = buildReveal(peer, { ...contribution, setHash });
    peer.send({ ...forged, signature: toBase64url(randomBytes(64)) });
    assert.equal(await errorCode(peer), ErrorCodes.BAD_SIGNATURE);
    // Signed as in version 3: over the envelope's fields instead of its commitment (§5). With this
    // version's V only the layout differs, so a server still checking that layout fails here;
    // with V = "3", as a version-3 contributor signed it.
    const e = contribution.envelope;
    for (const version of [String(PROTOCOL_VERSION), "3"]) {
      const envelopeFields = lengthPrefixed(
        "dkeygen/v1/contribution-reveal",
        version,
        open.roundId,
        contribution.contributorId,
        peer.hello.server.fingerprint,
        setHash,
        e.alg,
        e.ek,
        e.iv,
        e.ct,
        e.tag,
      );
      const signature = signMessage(peer.identity.privateKey, envelopeFields);
      peer.send({ ...forged, signature: toBase64url(signature) });
      assert.equal(
        await errorCode(peer),
        ErrorCodes.BAD_SIGNATURE,
        `envelope fields, V ${version}`,
      );
    }
    peer.send(buildReveal(peer, { ...contribution, setHash }));
    const receipt = await peer.next("round.receipt");
    assert.equal(receipt.commitment, toBase64url(contribution.commitment));
  });
  assert.equal(record.participants.length, 3);
  peer.close();
});

test("a committed contributor that withholds its reveal aborts the round, named; no record is stored, only the abort's log entry", async () => {
  const peer = await enrolledRawPeer(server);
  const before = (await server.admin().then((a) => a.status().finally(() => a.close()))).store;
  let open: MessageOf<"round.open"> | undefined;
  let outcome: unknown;
  try {
    await roundWith(peer, async (opened) => {
      open = opened;
      peer.send(buildContribution(peer, opened).commit);
      await peer.next("round.commits"); // … and says nothing more
    });
  } catch (error) {
    outcome = error;
  }
  assert.ok(isDkeygenError(outcome, ErrorCodes.ROUND_ABORTED), String(outcome));
  assert.match(
    (outcome as Error).message,
    new RegExp(contributorOf(peer).replace(/[+/]/g, "\\$&")),
  );
  const closed = await peer.next("round.closed");
  assert.equal(closed.outcome, "aborted");
  assert.deepEqual(closed.missing, [contributorOf(peer)]);
  const after = (await server.admin().then((a) => a.status().finally(() => a.close()))).store;
  // One line more: the abort's entry in the transparency log; no record.
  assert.equal(after.lines, (before.lines ?? 0) + 1, "only the log entry was stored");
  const index = server.server.log.indexOf(open!.roundId);
  assert.equal(index, server.server.log.size - 1, "the abort is the log's latest entry");
  const [leaf] = await server.server.log.entries(index!, index! + 1);
  assert.deepEqual(parseRoundEntry(leaf!).missing, [contributorOf(peer)]);
  peer.close();
});

test("a committed envelope that does not decrypt aborts the round; every broken part fails the same way", async () => {
  const peer = await enrolledRawPeer(server);
  const seen: string[] = [];
  const breakers = [
    (e: Record<string, string>) => ({ ...e, ek: toBase64url(randomBytes(384)) }),
    (e: Record<string, string>) => ({ ...e, ek: toBase64url(randomBytes(17)) }),
    (e: Record<string, string>) => ({ ...e, ct: toBase64url(randomBytes(64)) }),
    (e: Record<string, string>) => ({ ...e, tag: toBase64url(randomBytes(16)) }),
    (e: Record<string, string>) => ({ ...e, iv: toBase64url(randomBytes(12)) }),
    null, // a well-formed phrase of the wrong length
  ];
  for (const breaker of breakers) {
    const result = roundWith(peer, async (open) => {
      const good = buildContribution(peer, open, breaker ? {} : { phrase: randomBytes(32) });
      const envelope = (
        breaker ? breaker({ ...good.envelope }) : good.envelope
      ) as typeof good.envelope;
      const contribution = { ...good, envelope };
      const commitment = contributionCommitment(
        open.roundId,
        good.contributorId,
        peer.hello.server.fingerprint,
        envelope,
      );
      peer.send(signCommit(peer, { ...good, commitment }));
      const commits = await peer.next("round.commits");
      peer.send(buildReveal(peer, { ...contribution, setHash: setHashOf(peer, commits) }));
      const error = await peer.next("error");
      seen.push(`${error.code} ${error.message}`);
    });
    await assert.rejects(result, (e) => isDkeygenError(e, ErrorCodes.ROUND_ABORTED));
    assert.equal((await peer.next("round.closed")).outcome, "aborted");
  }
  assert.equal(seen.length, breakers.length);
  assert.equal(new Set(seen).size, 1, JSON.stringify(seen));
  assert.match(seen[0]!, /^E_DECRYPTION_FAILED /);
  peer.close();
});

test("a commit for a round that does not exist is refused", async () => {
  const peer = await enrolledRawPeer(server);
  peer.send(buildContribution(peer, { roundId: toBase64url(randomBytes(16)) }).commit);
  assert.equal(await errorCode(peer), ErrorCodes.WRONG_ROUND);
  peer.close();
});
