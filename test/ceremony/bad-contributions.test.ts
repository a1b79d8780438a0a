/**
 * Forged, replayed, duplicate, late and garbage contributions over real loopback sockets: each is
 * rejected with its own error, to its sender only, and the round completes with the honest ones.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { toBase64url } from "../../src/crypto/base64url.js";
import { ErrorCodes } from "../../src/errors.js";
import { contributorIdOf } from "../../src/server/enrollment.js";
import {
  buildContribution,
  enrolledRawPeer,
  signContribution,
  startContributors,
  startTestServer,
  type TestServer,
} from "../helpers/ceremony.js";

let server: TestServer;
const contributorOf = (peer: { contributorIdentity: Uint8Array }) =>
  contributorIdOf(peer.contributorIdentity);

before(async () => {
  server = await startTestServer({ quorum: 2, roundTimeoutMs: 3000 });
  await startContributors(server, 2);
});
after(() => server.cleanup());

/** Runs a round in which `peer` does `act` after the seed phrase arrives. */
async function roundWith(
  peer: Awaited<ReturnType<typeof enrolledRawPeer>>,
  act: (open: { roundId: string }) => Promise<void>,
) {
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

test("a contribution replayed into another round is rejected while that round completes", async () => {
  const peer = await enrolledRawPeer(server);
  let first: ReturnType<typeof buildContribution> | undefined;
  const one = await roundWith(peer, async (open) => {
    first = buildContribution(peer, open);
    peer.send(first);
    await peer.next("round.ack");
  });
  assert.equal(one.participants.length, 3);

  const two = await roundWith(peer, async (open) => {
    // The same message again: its round is over.
    peer.send(first);
    assert.equal((await peer.next("error")).code, ErrorCodes.LATE_CONTRIBUTION);
    // Moved to the new round: the signature covers the round id.
    peer.send({ ...first!, roundId: open.roundId });
    assert.equal((await peer.next("error")).code, ErrorCodes.BAD_SIGNATURE);
    // Moved and re-signed by its own author: the envelope is bound to the old round.
    peer.send(signContribution(peer, { ...first!, roundId: open.roundId } as never));
    const error = await peer.next("error");
    assert.equal(error.code, ErrorCodes.DECRYPTION_FAILED);
    assert.equal(error.roundId, open.roundId);
  });
  assert.equal(two.participants.length, 2, "the round completed with the two honest contributors");
  assert.ok(!two.participants.includes(first!.contributorId));
  peer.close();
});

test("a duplicate contribution is rejected and the first one counts", async () => {
  const peer = await enrolledRawPeer(server);
  // A second raw peer that stays silent keeps the round open while the duplicates arrive.
  const holder = await enrolledRawPeer(server);
  const record = await roundWith(peer, async (open) => {
    const contribution = buildContribution(peer, open);
    peer.send(contribution);
    await peer.next("round.ack");
    peer.send(contribution);
    assert.equal((await peer.next("error")).code, ErrorCodes.DUPLICATE_CONTRIBUTION);
    peer.send(buildContribution(peer, open));
    assert.equal((await peer.next("error")).code, ErrorCodes.DUPLICATE_CONTRIBUTION);
    holder.close();
  });
  assert.equal(record.participants.length, 3);
  assert.ok(record.participants.includes(contributorOf(peer)));
  peer.close();
});

test("a bad signature is rejected while the round completes", async () => {
  const peer = await enrolledRawPeer(server);
  const record = await roundWith(peer, async (open) => {
    const contribution = buildContribution(peer, open);
    const signature = Buffer.from(contribution.signature, "base64url");
    signature[10]! ^= 0x40;
    peer.send({ ...contribution, signature: toBase64url(signature) });
    const error = await peer.next("error");
    assert.equal(error.code, ErrorCodes.BAD_SIGNATURE);
    assert.equal(error.fatal, false);
  });
  assert.equal(record.participants.length, 2);
  peer.close();
});

test("a contribution in another contributor's name is rejected", async () => {
  const peer = await enrolledRawPeer(server);
  const other = await enrolledRawPeer(server);
  const record = await roundWith(peer, async (open) => {
    await other.next("round.open");
    // `peer` sends a contribution that `other` built and signed.
    peer.send(buildContribution(other, open));
    assert.equal((await peer.next("error")).code, ErrorCodes.UNAUTHORIZED);
    other.close();
  });
  assert.equal(record.participants.length, 2);
  peer.close();
});

test("every garbage ciphertext fails the same way, whatever part is broken", async () => {
  const peer = await enrolledRawPeer(server);
  const seen: { code: string; message: string }[] = [];
  await roundWith(peer, async (open) => {
    const good = buildContribution(peer, open);
    const variants = [
      { ...good.envelope, ek: toBase64url(randomBytes(384)) },
      { ...good.envelope, ek: toBase64url(randomBytes(17)) },
      { ...good.envelope, ct: toBase64url(randomBytes(64)) },
      { ...good.envelope, ct: toBase64url(randomBytes(3)) },
      { ...good.envelope, tag: toBase64url(randomBytes(16)) },
      { ...good.envelope, iv: toBase64url(randomBytes(12)) },
    ];
    for (const envelope of variants) {
      peer.send(
        signContribution(peer, {
          roundId: open.roundId,
          contributorId: good.contributorId,
          envelope,
        }),
      );
      const error = await peer.next("error");
      seen.push({ code: error.code, message: error.message });
    }
    // A well-formed phrase of the wrong length decrypts but is refused the same way.
    peer.send(buildContribution(peer, open, { phrase: randomBytes(32) }));
    const error = await peer.next("error");
    seen.push({ code: error.code, message: error.message });
  });
  assert.equal(seen.length, 7);
  assert.equal(new Set(seen.map((s) => `${s.code} ${s.message}`)).size, 1, JSON.stringify(seen));
  assert.equal(seen[0]!.code, ErrorCodes.DECRYPTION_FAILED);
  peer.close();
});

test("a contribution for a round that does not exist is rejected", async () => {
  const peer = await enrolledRawPeer(server);
  peer.send(buildContribution(peer, { roundId: toBase64url(randomBytes(16)) }));
  assert.equal((await peer.next("error")).code, ErrorCodes.WRONG_ROUND);
  peer.close();
});
