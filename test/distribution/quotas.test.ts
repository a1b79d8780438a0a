/**
 * Quotas, each pinned at its boundary (N allowed, N+1 refused with 429 E_RATE_LIMITED and a
 * Retry-After): TOTP enrollment rounds running at once per requester and server-wide, held open
 * by real protocol peers that answer when the test says; OTPs per requester per minute.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  buildContribution,
  commitAndReveal,
  enrolledRawPeer,
  type RawPeer,
  startContributors,
  startTestServer,
  type TestServer,
  waitFor,
} from "../helpers/ceremony.js";
import { http, registerTestRequester, type TestRequester } from "../helpers/distribution.js";

let server: TestServer;
let alice: TestRequester;
let bob: TestRequester;
let peers: RawPeer[];
/** A second server, with a pool and ordinary contributors, for the OTP quota. */
let otpServer: TestServer;
const clock = { ms: 0 };

before(async () => {
  // No pool here: every round the raw peers see is an enrollment's.
  // Raw peers, which do not witness the log: no cosignatures asked for.
  server = await startTestServer(
    { quorum: 2, minCosignatures: 0 },
    { http: { enrollmentsAtOnce: 3, enrollmentsAtOncePerRequester: 2 } },
  );
  peers = [await enrolledRawPeer(server), await enrolledRawPeer(server)];
  alice = await registerTestRequester(server, "alice-app");
  bob = await registerTestRequester(server, "bob-app");
  otpServer = await startTestServer(
    { quorum: 2 },
    { otpPool: 20, clockOffset: clock, http: { otpPerMinutePerRequester: 4 } },
  );
  await startContributors(otpServer, 2);
  await otpServer.pool!.refill();
});
after(async () => {
  for (const peer of peers) peer.close();
  await server.cleanup();
  await otpServer.cleanup();
});

const enroll = (who: TestRequester, account: string) =>
  http(server, "POST", "/v1/totp/enroll", {
    credential: who.credential,
    body: { issuer: "ACME", account },
  });

/** Resolves once `count` rounds are open (and not yet answered) at the first peer. */
const opened = (count: number) =>
  waitFor(
    () => peers[0]!.received.filter((m) => m.type === "round.open").length >= count || undefined,
    5000,
    `${count} rounds open`,
  );

/** Both peers contribute to the next `rounds` rounds opened to them. */
async function contribute(rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await Promise.all(
      peers.map(async (peer) => commitAndReveal(peer, await peer.next("round.open"))),
    );
  }
}

test("a requester may have 2 enrollment rounds running at once, the server 3: the next is refused at once with 429 and Retry-After", async () => {
  // Rounds stay open until the peers contribute: these hold their slots.
  const a1 = enroll(alice, "a1");
  const a2 = enroll(alice, "a2");
  await opened(2);
  const a3 = await enroll(alice, "a3");
  assert.equal(a3.status, 429);
  assert.equal((a3.body.error as { code: string }).code, "E_RATE_LIMITED");
  assert.equal(a3.headers.get("retry-after"), "1");

  // Bob has his own cap, but the server's is 3: his first fits, his second does not.
  const b1 = enroll(bob, "b1");
  await opened(3);
  const b2 = await enroll(bob, "b2");
  assert.equal(b2.status, 429);
  assert.match((b2.body.error as { message: string }).message, /running at once/);

  await contribute(3);
  for (const answer of await Promise.all([a1, a2, b1])) assert.equal(answer.status, 200);
  // The slots came back when the rounds ended.
  const again = enroll(alice, "a4");
  await contribute(1);
  assert.equal((await again).status, 200);
});

test("a slot is given back when the enrollment's round fails", async () => {
  const doomed = enroll(alice, "late");
  // One peer answers, the other never does: the round misses its quorum at the deadline.
  const open = await peers[0]!.next("round.open");
  peers[0]!.send(buildContribution(peers[0]!, open).commit);
  await peers[1]!.next("round.open");
  assert.equal((await doomed).status, 503);
  const next = [enroll(alice, "x1"), enroll(alice, "x2")];
  await contribute(2);
  for (const answer of await Promise.all(next)) assert.equal(answer.status, 200);
});

test("a requester may request 4 OTPs a minute: the 5th is refused until the next minute, others are not", async () => {
  const carol = await registerTestRequester(otpServer, "carol-app");
  const dave = await registerTestRequester(otpServer, "dave-app");
  // Place the server clock 1 s after a minute starts, so all requests fall in one window.
  const now = Date.now();
  clock.ms = Math.ceil(now / 60_000) * 60_000 + 1_000 - now;
  try {
    const request = (who: TestRequester) =>
      http(otpServer, "POST", "/v1/otp/request", { credential: who.credential, body: {} });
    for (let i = 0; i < 4; i++) assert.equal((await request(carol)).status, 200, `request ${i}`);
    const fifth = await request(carol);
    assert.equal(fifth.status, 429);
    assert.equal((fifth.body.error as { code: string }).code, "E_RATE_LIMITED");
    assert.equal((fifth.body.error as { retryAfter: number }).retryAfter, 59);
    assert.equal(fifth.headers.get("retry-after"), "59");
    assert.equal((await request(dave)).status, 200, "the quota is per requester");
    clock.ms += 60_000;
    assert.equal((await request(carol)).status, 200, "a new minute, a new quota");
  } finally {
    clock.ms = 0;
  }
});
