/**
 * Requester registrations changing under a running server (added, replaced, removed), what a
 * requester may see of others' records, OTPs made on demand with no pool, records an admin
 * generated never handed out by the pool, and idle connections closed.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { loadOrCreateRequesterKeys } from "../../src/client/requester-state.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { ADMIN_OWNER } from "../../src/server/keygen-server.js";
import { addRequester, removeRequester } from "../../src/server/requesters.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import {
  http,
  rawConnection,
  registerTestRequester,
  type TestRequester,
} from "../helpers/distribution.js";

let server: TestServer;
let alice: TestRequester;
let bob: TestRequester;

before(async () => {
  // No pool: every OTP request runs a round on demand.
  server = await startTestServer(
    { quorum: 2 },
    { otpPool: 0, http: { otpWaitMs: 10_000, keepAliveTimeoutMs: 300 } },
  );
  await startContributors(server, 2);
  alice = await registerTestRequester(server, "alice-app");
  bob = await registerTestRequester(server, "bob-app");
});
after(() => server.cleanup());

const status = async (credential: string) =>
  (await http(server, "POST", "/v1/otp/request", { credential, body: {} })).status;

/** Polls until `check` holds, for changes the server notices within a second. */
async function eventually(check: () => Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail("the change did not take effect in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("with a pool of size 0 a request runs a round on demand; concurrent ones each get their own", async () => {
  const otps = await Promise.all(
    Array.from({ length: 5 }, (_, i) => alice.client.requestOtp({ subject: `od${i}` })),
  );
  assert.equal(new Set(otps.map((o) => o.otpId)).size, 5);
  for (const otp of otps) assert.match(otp.code, /^\d{6}$/);
});

test("an OTP the admin generated (and may have seen) is never handed out by the pool", async () => {
  const admin = await server.admin();
  const generated = await admin.generateRevealed("otp", {});
  admin.close();
  assert.equal(generated.record.owner, ADMIN_OWNER);
  const unclaimed = await server.store.countUnclaimed("otp");
  assert.equal(unclaimed, 0, "an admin's OTP is not in the pool");
  const otp = await alice.client.requestOtp({ subject: "pool-check" });
  assert.notEqual(otp.otpId, generated.record.id);
  assert.notEqual(otp.code, undefined);
  // Nor can any requester fetch it.
  await assert.rejects(alice.client.fetchKey(generated.record.id), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.NOT_FOUND),
  );
});

test("a replaced credential stops working and the new one works at once; a removed one stops", async () => {
  const carol = await registerTestRequester(server, "carol-app");
  assert.equal(await status(carol.credential), 200);
  const keys = await loadOrCreateRequesterKeys(carol.dataDir);
  const { credential: fresh } = await addRequester(
    server.dataDir,
    "carol-app",
    keys.publicKey.export({ type: "spki", format: "pem" }) as string,
    { replace: true },
  );
  assert.equal(await status(fresh), 200, "the new credential works at once");
  await eventually(async () => (await status(carol.credential)) === 401);

  await removeRequester(server.dataDir, "carol-app");
  await eventually(async () => (await status(fresh)) === 401);
  await assert.rejects(removeRequester(server.dataDir, "carol-app"), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.NOT_FOUND),
  );
});

test("a key's owner is shown to its owner only; two-factor records exist only for theirs", async () => {
  // What `generate --for alice-app` makes: a round whose record the registration owns.
  const key = await server.server.runRound({
    purpose: "ecc",
    params: { curve: "p256" },
    owner: alice.id,
  });
  assert.equal((await alice.client.getKey(key.id)).owner, "alice-app");
  const seenByBob = await bob.client.getKey(key.id);
  assert.equal(seenByBob.id, key.id);
  assert.equal(seenByBob.owner, undefined, "bob does not learn whose key it is");
  assert.deepEqual(seenByBob.public, key.public);

  const enrollment = await alice.client.enrollTotp({ issuer: "ACME", account: "frank" });
  assert.equal((await alice.client.getKey(enrollment.recordId)).purpose, "totp");
  await assert.rejects(bob.client.getKey(enrollment.recordId), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.NOT_FOUND),
  );
  const otp = await alice.client.requestOtp({ subject: "grace" });
  assert.equal((await alice.client.getKey(otp.otpId)).purpose, "otp");
  const raw = await http(server, "GET", `/v1/keys/${otp.otpId}`, { credential: bob.credential });
  assert.equal(raw.status, 404);
  assert.equal(JSON.stringify(raw.body).includes("grace"), false);
});

test("an idle keep-alive connection is closed after keepAliveTimeout", async () => {
  const { socket, closed } = await rawConnection(server);
  const start = Date.now();
  socket.write("GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
  await closed;
  const elapsed = Date.now() - start;
  assert.ok(elapsed < 2500, `closed after ${elapsed} ms, not kept for Node's default`);
});

test("a client's chosen request id is bound into the delivery; a replayed answer is refused", async () => {
  const chosen = "3f1c2a4e-8b7d-4c6a-9e2f-0123456789ab";
  const first = await http(server, "POST", "/v1/otp/request", {
    credential: alice.credential,
    body: { subject: "henry" },
    headers: { "x-request-id": chosen },
  });
  assert.equal(first.status, 200);
  assert.equal(first.body.requestId, chosen);
  // Anything but a UUID is ignored (the server picks its own id): logs hold nothing else.
  const odd = await http(server, "POST", "/v1/otp/request", {
    credential: alice.credential,
    body: { subject: "henry" },
    headers: { "x-request-id": 'not-a-uuid; {"admin":true}' },
  });
  assert.equal(odd.status, 200);
  assert.match(String(odd.body.requestId), /^[0-9a-f-]{36}$/);

  // A network attacker answering a new request with the recorded first answer gets nowhere: a
  // delivery is authenticated by its envelope (no answer MAC), and the envelope's associated data
  // and the answer name the request id the first request chose, not the new one.
  assert.equal(first.headers.get("x-dkeygen-mac"), null);
  const { createServer } = await import("node:http");
  const replayer = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(first.text);
  });
  await new Promise<void>((resolve) => replayer.listen(0, "127.0.0.1", resolve));
  try {
    const { RequesterClient } = await import("../../src/client/requester.js");
    const { Secret } = await import("../../src/crypto/secret.js");
    const keys = await loadOrCreateRequesterKeys(alice.dataDir);
    const fooled = new RequesterClient({
      server: `http://127.0.0.1:${(replayer.address() as { port: number }).port}`,
      credential: new Secret(new Uint8Array(Buffer.from(alice.credential))),
      privateKey: keys.privateKey,
      fingerprint: keys.fingerprint,
    });
    await assert.rejects(fooled.requestOtp({ subject: "henry" }), (e: unknown) =>
      isDkeygenError(e, ErrorCodes.MALFORMED_MESSAGE),
    );
  } finally {
    replayer.close();
  }
});
