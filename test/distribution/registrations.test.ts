/**
 * Records belong to a registration, not a name: a name removed and registered again is a
 * stranger to the old registration's TOTP secrets, keys and claimed OTPs; `--replace` is the
 * operator's explicit transfer and keeps them. Registrations from before ids and response keys.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadOrCreateRequesterKeys } from "../../src/client/requester-state.js";
import { fromBase32 } from "../../src/derive/otpauth.js";
import { totpCode } from "../../src/derive/totp.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import {
  addRequester,
  listRequesters,
  REGISTRATION_ID,
  removeRequester,
} from "../../src/server/requesters.js";
import {
  startContributors,
  startTestServer,
  type TestServer,
  tempDir,
} from "../helpers/ceremony.js";
import { http, registerTestRequester, type TestRequester } from "../helpers/distribution.js";

let server: TestServer;

before(async () => {
  server = await startTestServer({ quorum: 2 }, { otpPool: 20 });
  await startContributors(server, 2);
  await server.pool!.refill();
});
after(() => server.cleanup());

const notFound = (e: unknown) => isDkeygenError(e, ErrorCodes.NOT_FOUND);

/** What one registration leaves behind: a TOTP enrollment, a key, and an OTP claimed, unused. */
async function leaveRecords(owner: TestRequester) {
  const enrollment = await owner.client.enrollTotp({ issuer: "ACME", account: "ursula" });
  const key = await server.server.runRound({
    purpose: "ecc",
    params: { curve: "p256" },
    owner: owner.id,
  });
  const otp = await owner.client.requestOtp({ subject: "victor" });
  return { enrollment, key, otp };
}

test("a name removed and registered again sees none of the old registration's TOTP secrets, keys or claimed OTPs", async () => {
  const first = await registerTestRequester(server, "shop");
  assert.match(first.id, REGISTRATION_ID);
  const left = await leaveRecords(first);
  const removed = await removeRequester(server.dataDir, "shop");
  assert.equal(removed.id, first.id);

  // An unrelated newcomer under the same name, with its own key.
  const newcomer = await registerTestRequester(server, "shop", { folder: "new" });
  assert.match(newcomer.id, REGISTRATION_ID);
  assert.notEqual(newcomer.id, first.id, "a new registration, not the old one revived");

  await assert.rejects(newcomer.client.fetchKey(left.key.id), notFound);
  await assert.rejects(newcomer.client.fetchKey(left.enrollment.recordId), notFound);
  await assert.rejects(newcomer.client.getKey(left.enrollment.recordId), notFound);
  await assert.rejects(newcomer.client.getKey(left.otp.otpId), notFound);
  // The old enrollment does not exist for it: the right code does not verify.
  const code = totpCode(fromBase32(left.enrollment.secret), Math.floor(Date.now() / 1000));
  await assert.rejects(newcomer.client.verifyTotp("ursula", code), notFound);
  // Nor does the old registration's OTP, and trying does not use it up.
  const tried = await newcomer.client.verifyOtp("victor", left.otp.code);
  assert.equal(tried.valid, false);
  assert.equal((await server.store.get(left.otp.otpId))?.consumedAt, undefined);
  // The key's public part is still anyone's to read, but not as the newcomer's.
  assert.equal((await newcomer.client.getKey(left.key.id)).owner, undefined);

  const list = await listRequesters(server.dataDir);
  assert.deepEqual(
    list.removed.map((t) => [t.name, t.id]),
    [["shop", first.id]],
    "the removed registration is remembered by a tombstone",
  );
});

test("requester add --replace keeps a live registration's id, so its records go with it to the new key", async () => {
  const first = await registerTestRequester(server, "kiosk");
  const left = await leaveRecords(first);
  const replaced = await registerTestRequester(server, "kiosk", {
    folder: "new",
    replace: true,
  });
  assert.equal(replaced.id, first.id);
  assert.notEqual(replaced.fingerprint, first.fingerprint);

  const fetched = await replaced.client.fetchKey(left.key.id);
  assert.match(String(fetched.secret.pkcs8), /BEGIN PRIVATE KEY/);
  assert.equal((await replaced.client.getKey(left.key.id)).owner, "kiosk");
  const code = totpCode(fromBase32(left.enrollment.secret), Math.floor(Date.now() / 1000));
  assert.equal((await replaced.client.verifyTotp("ursula", code)).valid, true);
  assert.deepEqual(await replaced.client.verifyOtp("victor", left.otp.code), {
    valid: true,
    otpId: left.otp.otpId,
  });
});

test("a live name is refused without --replace, and ids are never reused", async () => {
  const keys = await loadOrCreateRequesterKeys(join(server.root, "requester-dup"));
  const pem = keys.publicKey.export({ type: "spki", format: "pem" }) as string;
  const a = await addRequester(server.dataDir, "dup", pem);
  await assert.rejects(addRequester(server.dataDir, "dup", pem), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.USAGE),
  );
  const ids = new Set([a.id]);
  for (let i = 0; i < 3; i++) {
    await removeRequester(server.dataDir, "dup");
    const again = await addRequester(server.dataDir, "dup", pem);
    assert.equal(ids.has(again.id), false);
    assert.deepEqual(again.removedBefore, [...ids]);
    ids.add(again.id);
  }
  // Replacing the live one keeps it and speaks of no earlier registration.
  const kept = await addRequester(server.dataDir, "dup", pem, { replace: true });
  assert.equal(kept.keptRegistration, true);
  assert.deepEqual(kept.removedBefore, []);
});

test("a registration from before ids and response keys keeps its records by name, is refused until re-credentialed, and the server says which at start", async () => {
  const dir = await tempDir();
  let legacy: TestServer | undefined;
  try {
    const dataDir = join(dir.path, "server");
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const keys = await loadOrCreateRequesterKeys(join(dir.path, "requester-old"));
    const pem = keys.publicKey.export({ type: "spki", format: "pem" }) as string;
    // requesters.json as written before this change: no id, no responseKey, no tombstones.
    const made = await addRequester(dataDir, "old-app", pem);
    const file = JSON.parse(await readFile(join(dataDir, "requesters.json"), "utf8"));
    const { id: _id, responseKey: _k, ...line } = file.requesters[0];
    await writeFile(join(dataDir, "requesters.json"), JSON.stringify({ requesters: [line] }), {
      mode: 0o600,
    });

    legacy = await startTestServer({ quorum: 2 }, { dataDir: dir.path });
    assert.match(
      legacy.log.text(),
      /"requesters":\["old-app"\].*requester add NAME --replace/,
      "the server names the registrations to re-credential",
    );
    assert.equal((await listRequesters(dataDir)).requesters[0]!.id, "old-app");
    await startContributors(legacy, 2);
    // A key made for it before the change: owner is the name, which is its id.
    const key = await legacy.server.runRound({
      purpose: "ecc",
      params: { curve: "p256" },
      owner: "old-app",
    });

    const raw = await http(legacy, "GET", `/v1/keys/${key.id}`, { credential: made.credential });
    assert.equal(raw.status, 401);
    assert.match(String((raw.body.error as { message: string }).message), /--replace/);
    const { RequesterClient } = await import("../../src/client/requester.js");
    const { Secret } = await import("../../src/crypto/secret.js");
    const client = (credential: string) =>
      new RequesterClient({
        server: legacy!.httpUrl!,
        credential: new Secret(new Uint8Array(Buffer.from(credential))),
        privateKey: keys.privateKey,
        fingerprint: keys.fingerprint,
      });
    await assert.rejects(
      client(made.credential).getKey(key.id),
      (e: unknown) =>
        isDkeygenError(e, ErrorCodes.ANSWER_NOT_AUTHENTIC) && /--replace/.test(e.message),
      "the client says what to do",
    );

    const replaced = await addRequester(dataDir, "old-app", pem, { replace: true });
    assert.equal(replaced.id, "old-app", "re-credentialing keeps the legacy id, and its records");
    assert.equal(replaced.keptRegistration, true);
    const fetched = await client(replaced.credential).fetchKey(key.id);
    assert.equal(fetched.record.owner, "old-app");
  } finally {
    await legacy?.cleanup();
    await dir.remove();
  }
});
