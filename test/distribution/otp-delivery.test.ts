/**
 * OTP delivery and verification over real HTTP on loopback: claims are atomic, deliveries open
 * only for their requester, codes work once and before expiry, subjects lock after failures.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { DeliveryOpener } from "../../src/client/delivery-opener.js";
import { loadOrCreateRequesterKeys } from "../../src/client/requester-state.js";
import { DkeygenError, ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import {
  http,
  registerTestRequester,
  responseKeyOf,
  type TestRequester,
} from "../helpers/distribution.js";

let server: TestServer;
let alice: TestRequester;
let bob: TestRequester;
const clock = { ms: 0 };

before(async () => {
  server = await startTestServer(
    { quorum: 2 },
    { otpPool: 300, clockOffset: clock, lockout: { maxFailures: 5, lockMs: 60_000 } },
  );
  await startContributors(server, 2);
  await server.pool!.refill();
  alice = await registerTestRequester(server, "alice-app");
  bob = await registerTestRequester(server, "bob-app");
});
after(() => server.cleanup());

test("200 concurrent requests get 200 distinct OTPs, none handed out twice", async () => {
  await server.pool!.refill();
  assert.ok((await server.pool!.available()) >= 200);
  const otps = await Promise.all(
    Array.from({ length: 200 }, (_, i) => alice.client.requestOtp({ subject: `user${i}` })),
  );
  assert.equal(new Set(otps.map((o) => o.otpId)).size, 200);
  for (const otp of otps) assert.match(otp.code, /^\d{6}$/);
  const claimed = await server.store.list({ purpose: "otp", claimed: true });
  const byId = new Map(claimed.map((r) => [r.id, r]));
  for (const [i, otp] of otps.entries()) {
    const record = byId.get(otp.otpId);
    assert.equal(record?.claim?.requester, alice.id, "claims name the registration, not the name");
    assert.equal(record?.claim?.subject, `user${i}`);
    assert.equal(record?.claim?.requestId, otp.requestId);
  }
});

test("a code verifies once; the second verification of the same code fails", async () => {
  const otp = await alice.client.requestOtp({ subject: "carol" });
  assert.deepEqual(await alice.client.verifyOtp("carol", otp.code), {
    valid: true,
    otpId: otp.otpId,
  });
  const again = await alice.client.verifyOtp("carol", otp.code);
  assert.equal(again.valid, false);
  assert.equal(again.reason, "used");
});

test("only a subject's 16 latest OTPs verify, so guesses never face more live codes; another requester's OTPs for the same subject do not push them out", async () => {
  const otps = [];
  for (let i = 0; i < 18; i++) otps.push(await alice.client.requestOtp({ subject: "erin" }));
  // Another service asking for the same subject, in between: its OTPs are its own window.
  await Promise.all(Array.from({ length: 20 }, () => bob.client.requestOtp({ subject: "erin" })));
  const oldest = await alice.client.verifyOtp("erin", otps[0]!.code);
  assert.notEqual(
    oldest.valid && oldest.otpId,
    otps[0]!.otpId,
    "a 17th-latest code never verifies",
  );
  assert.equal((await server.store.get(otps[0]!.otpId))?.consumedAt, undefined);
  assert.deepEqual(await alice.client.verifyOtp("erin", otps[2]!.code), {
    valid: true,
    otpId: otps[2]!.otpId,
  });
  assert.deepEqual(await alice.client.verifyOtp("erin", otps[17]!.code), {
    valid: true,
    otpId: otps[17]!.otpId,
  });
});

test("an expired code fails", async () => {
  const otp = await alice.client.requestOtp({ subject: "dave", ttlSeconds: 30 });
  clock.ms = 31_000;
  try {
    const outcome = await alice.client.verifyOtp("dave", otp.code);
    assert.equal(outcome.valid, false);
    assert.equal(outcome.reason, "expired");
  } finally {
    clock.ms = 0;
  }
});

test("a subject is locked after five failures, only that subject, until unlocked", async () => {
  const otp = await alice.client.requestOtp({ subject: "erin" });
  const other = await alice.client.requestOtp({ subject: "frank" });
  const wrong = otp.code === "000000" ? "000001" : "000000";
  for (let i = 4; i >= 0; i--) {
    const outcome = await alice.client.verifyOtp("erin", wrong);
    assert.equal(outcome.valid, false);
    assert.equal(outcome.attemptsLeft, i);
  }
  // Locked: even the right code is refused now, with a Retry-After.
  const locked = await http(server, "POST", "/v1/otp/verify", {
    credential: alice.credential,
    body: { subject: "erin", code: otp.code },
  });
  assert.equal(locked.status, 423);
  assert.equal((locked.body.error as { code: string }).code, ErrorCodes.LOCKED);
  assert.ok(Number(locked.headers.get("retry-after")) > 0);
  // Another subject of the same service is not affected, nor the same subject at another service.
  assert.equal((await alice.client.verifyOtp("frank", other.code)).valid, true);
  const bobs = await bob.client.requestOtp({ subject: "erin" });
  assert.equal((await bob.client.verifyOtp("erin", bobs.code)).valid, true);
  await alice.client.unlockOtp("erin");
  assert.equal((await alice.client.verifyOtp("erin", otp.code)).valid, true);
});

test("a requester can neither verify nor open another requester's OTP", async () => {
  const otp = await alice.client.requestOtp({ subject: "grace" });
  const outcome = await bob.client.verifyOtp("grace", otp.code);
  assert.equal(outcome.valid, false);
  assert.equal(outcome.reason, "invalid");
  // Bob gets hold of the raw delivery meant for alice: it does not open with bob's key.
  const raw = await http(server, "POST", "/v1/otp/request", {
    credential: alice.credential,
    body: { subject: "grace" },
  });
  assert.equal(raw.status, 200);
  const bobKeys = await loadOrCreateRequesterKeys(bob.dataDir);
  // Its delivery key is authenticated for alice only (km): bob refuses it as not the server's.
  const asBob = new DeliveryOpener(
    bobKeys.privateKey,
    bob.fingerprint,
    responseKeyOf(bob.credential),
  );
  assert.throws(
    () =>
      asBob.open(
        "otp",
        String(raw.body.requestId),
        String(raw.body.otpId),
        raw.body.envelope as never,
      ),
    (e: unknown) => isDkeygenError(e, ErrorCodes.ANSWER_NOT_AUTHENTIC),
  );
  // Bob cannot claim to be alice either: alice's fingerprint and response key with bob's private
  // key still fail, at the RSA unwrap.
  const bobAsAlice = new DeliveryOpener(
    bobKeys.privateKey,
    alice.fingerprint,
    responseKeyOf(alice.credential),
  );
  assert.throws(() =>
    bobAsAlice.open(
      "otp",
      String(raw.body.requestId),
      String(raw.body.otpId),
      raw.body.envelope as never,
    ),
  );
  // Nor does it open for alice as the answer to another request, or as another kind.
  const aliceKeys = await loadOrCreateRequesterKeys(alice.dataDir);
  const asAlice = new DeliveryOpener(
    aliceKeys.privateKey,
    alice.fingerprint,
    responseKeyOf(alice.credential),
  );
  assert.equal(
    asAlice.open(
      "otp",
      String(raw.body.requestId),
      String(raw.body.otpId),
      raw.body.envelope as never,
    ).subject,
    "grace",
  );
  assert.throws(
    () =>
      asAlice.open("otp", "another-request", String(raw.body.otpId), raw.body.envelope as never),
    (e: unknown) => isDkeygenError(e, ErrorCodes.DECRYPTION_FAILED),
  );
  assert.throws(() =>
    asAlice.open(
      "key",
      String(raw.body.requestId),
      String(raw.body.otpId),
      raw.body.envelope as never,
    ),
  );
});

test("a request with an empty pool and no contributors gets 503 with Retry-After", async () => {
  const lonely = await startTestServer({ quorum: 2 }, { otpPool: 5, http: { otpWaitMs: 300 } });
  try {
    const client = await registerTestRequester(lonely, "lonely");
    const started = Date.now();
    const reply = await http(lonely, "POST", "/v1/otp/request", {
      credential: client.credential,
      body: {},
    });
    assert.equal(reply.status, 503);
    assert.equal((reply.body.error as { code: string }).code, ErrorCodes.UNAVAILABLE);
    assert.ok(Number(reply.headers.get("retry-after")) >= 1);
    assert.ok(Date.now() - started < 3000);
    const ready = await http(lonely, "GET", "/v1/ready");
    assert.equal(ready.status, 503);
    assert.equal(ready.body.status, "degraded");
    // A TOTP enrollment needs a round now; with no contributors it fails the same way.
    const enroll = await http(lonely, "POST", "/v1/totp/enroll", {
      credential: client.credential,
      body: { issuer: "ACME", account: "nobody" },
    });
    assert.equal(enroll.status, 503, JSON.stringify(enroll.body));
    assert.ok(Number(enroll.headers.get("retry-after")) >= 1);
    assert.equal(
      (enroll.body.error as { retryAfter: number }).retryAfter,
      Number(enroll.headers.get("retry-after")),
    );

    // Contributors arrive: the pool refills by itself (its timer retries a failed refill), and
    // requests are served again. (Waiting for readiness rather than for one 300 ms wait keeps
    // this independent of how fast a round runs on a loaded machine.)
    await startContributors(lonely, 2);
    const deadline = Date.now() + 20_000;
    while ((await http(lonely, "GET", "/v1/ready")).status !== 200) {
      assert.ok(Date.now() < deadline, "the pool did not refill once contributors arrived");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const otp = await client.client.requestOtp();
    assert.match(otp.code, /^\d{6}$/);
  } finally {
    await lonely.cleanup();
  }
});

test("no OTP and no credential reach the server's log", async () => {
  const otp = await alice.client.requestOtp({ subject: "heidi" });
  await alice.client.verifyOtp("heidi", otp.code);
  const log = server.log.text();
  assert.ok(!log.includes(alice.credential.split(".")[1]!));
  assert.ok(!log.includes(`"${otp.code}"`));
});

test("errors from the client library carry the server's stable codes", async () => {
  await assert.rejects(alice.client.verifyOtp("x", "12"), (e: unknown) => {
    assert.ok(e instanceof DkeygenError);
    assert.equal(e.code, ErrorCodes.INVALID_INPUT);
    return true;
  });
});
