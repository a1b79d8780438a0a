/**
 * Safe two-factor enrollment over real HTTP on loopback, with real rounds: an enrolled account is
 * not silently re-enrolled (409 unless replace), recovery codes come sealed in the enrollment, are
 * used up once each and share the account's lockout, HOTP enrollments exist, and nothing secret
 * reaches the disk in the clear.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { hotpCode } from "../../src/derive/hotp.js";
import { fromBase32, parseOtpauthUri } from "../../src/derive/otpauth.js";
import { totpCode } from "../../src/derive/totp.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { http, registerTestRequester, type TestRequester } from "../helpers/distribution.js";

let server: TestServer;
let alice: TestRequester;
let bob: TestRequester;

before(async () => {
  server = await startTestServer({ quorum: 2 }, { lockout: { maxFailures: 3, lockMs: 60_000 } });
  await startContributors(server, 2);
  alice = await registerTestRequester(server, "alice-app");
  bob = await registerTestRequester(server, "bob-app");
});
after(() => server.cleanup());

const is = (code: string) => (e: unknown) => isDkeygenError(e, code as never);
const now = () => Math.floor(Date.now() / 1000);
const CODE = /^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/;

test("enrolling an enrolled account again is refused with 409 E_ALREADY_ENROLLED; replace makes the old secret and codes stop verifying", async () => {
  const first = await alice.client.enrollTotp({ issuer: "ACME", account: "amy", recoveryCodes: 2 });
  const raw = await http(server, "POST", "/v1/totp/enroll", {
    credential: alice.credential,
    body: { issuer: "ACME", account: "amy" },
  });
  assert.equal(raw.status, 409);
  const error = raw.body.error as { code: string; message: string };
  assert.equal(error.code, "E_ALREADY_ENROLLED");
  assert.match(error.message, new RegExp(`record ${first.recordId}`));
  assert.match(error.message, /--replace/);
  await assert.rejects(
    alice.client.enrollTotp({ issuer: "ACME", account: "amy", replace: false }),
    is(ErrorCodes.ALREADY_ENROLLED),
  );
  // Another requester's account of the same name is its own.
  await bob.client.enrollTotp({ issuer: "ACME", account: "amy", recoveryCodes: 0 });

  const second = await alice.client.enrollTotp({
    issuer: "ACME",
    account: "amy",
    replace: true,
    recoveryCodes: 2,
  });
  assert.equal(second.replaced, first.recordId);
  assert.notEqual(second.secret, first.secret);
  const old = await alice.client.verifyTotp("amy", totpCode(fromBase32(first.secret), now()));
  assert.equal(old.reason, "invalid");
  assert.equal(
    (await alice.client.verifyTotp("amy", totpCode(fromBase32(second.secret), now()))).valid,
    true,
  );
  const oldCode = await alice.client.verifyRecoveryCode("amy", first.recoveryCodes[0]!);
  assert.equal(oldCode.reason, "invalid");
  assert.deepEqual(await alice.client.verifyRecoveryCode("amy", second.recoveryCodes[0]!), {
    valid: true,
    recoveryCodesLeft: 1,
  });
});

test("two enrollments of one account at once: one is made, the other is refused", async () => {
  const tries = await Promise.allSettled([
    alice.client.enrollTotp({ issuer: "ACME", account: "ann", recoveryCodes: 0 }),
    alice.client.enrollTotp({ issuer: "ACME", account: "ann", recoveryCodes: 0 }),
  ]);
  assert.deepEqual(tries.map((t) => t.status).sort(), ["fulfilled", "rejected"]);
  const refused = tries.find((t) => t.status === "rejected") as PromiseRejectedResult;
  assert.ok(is(ErrorCodes.ALREADY_ENROLLED)(refused.reason));
  const records = await server.store.list({ purpose: "totp", owner: alice.id, subject: "ann" });
  assert.equal(records.length, 1);
});

test("recovery codes come sealed in the enrollment (10 by default, 0 to 20), each accepted once, counting down", async () => {
  const enrollment = await alice.client.enrollTotp({ issuer: "ACME", account: "bea" });
  assert.equal(enrollment.recoveryCodes.length, 10);
  for (const code of enrollment.recoveryCodes) assert.match(code, CODE);
  assert.equal(new Set(enrollment.recoveryCodes).size, 10);
  const [c0, c1] = enrollment.recoveryCodes as [string, string];
  assert.deepEqual(await alice.client.verifyRecoveryCode("bea", c0), {
    valid: true,
    recoveryCodesLeft: 9,
  });
  const again = await alice.client.verifyRecoveryCode("bea", c0);
  assert.deepEqual(again, {
    valid: false,
    reason: "used",
    attemptsLeft: 2,
    recoveryCodesLeft: 9,
  });
  // Typed loosely: upper case, no hyphen.
  const loose = c1.replace("-", "").toUpperCase();
  assert.equal((await alice.client.verifyRecoveryCode("bea", loose)).recoveryCodesLeft, 8);

  const none = await alice.client.enrollTotp({ issuer: "ACME", account: "cid", recoveryCodes: 0 });
  assert.deepEqual(none.recoveryCodes, []);
  assert.equal((await alice.client.verifyRecoveryCode("cid", c0)).reason, "invalid");
  const most = await alice.client.enrollTotp({ issuer: "ACME", account: "dee", recoveryCodes: 20 });
  assert.equal(most.recoveryCodes.length, 20);
  const tooMany = await http(server, "POST", "/v1/totp/enroll", {
    credential: alice.credential,
    body: { issuer: "ACME", account: "eve", recoveryCodes: 21 },
  });
  assert.equal(tooMany.status, 400);
  assert.equal((tooMany.body.error as { code: string }).code, "E_INVALID_INPUT");
  // The clear answer only counts them; the codes travel inside the envelope.
  const clear = await http(server, "POST", "/v1/totp/enroll", {
    credential: alice.credential,
    body: { issuer: "ACME", account: "eve", recoveryCodes: 3 },
  });
  assert.equal(clear.status, 200);
  assert.equal(clear.body.recoveryCodes, 3);
  await alice.client.unlockTotp("bea");
  await alice.client.unlockTotp("cid");
});

test("concurrent verifications of one recovery code: exactly one is accepted", async () => {
  const enrollment = await alice.client.enrollTotp({
    issuer: "ACME",
    account: "fay",
    recoveryCodes: 2,
  });
  const code = enrollment.recoveryCodes[0]!;
  const answers = await Promise.all([
    alice.client.verifyRecoveryCode("fay", code),
    alice.client.verifyRecoveryCode("fay", code),
  ]);
  assert.deepEqual(answers.map((a) => a.valid).sort(), [false, true]);
  assert.equal(answers.find((a) => !a.valid)?.reason, "used");
  assert.ok(answers.every((a) => a.recoveryCodesLeft === 1));
  await alice.client.unlockTotp("fay");
});

test("wrong recovery codes count on the account's lock with TOTP codes; an unlock lifts both", async () => {
  const enrollment = await alice.client.enrollTotp({
    issuer: "ACME",
    account: "gil",
    recoveryCodes: 1,
  });
  const first = await alice.client.verifyRecoveryCode("gil", "aaaaa-aaaaa");
  assert.equal(first.attemptsLeft, 2);
  assert.equal((await alice.client.verifyTotp("gil", "000000")).attemptsLeft, 1);
  const third = await alice.client.verifyRecoveryCode("gil", "bbbbb-bbbbb");
  assert.equal(third.attemptsLeft, 0);
  assert.ok(third.lockedUntil);
  const right = enrollment.recoveryCodes[0]!;
  await assert.rejects(alice.client.verifyRecoveryCode("gil", right), is(ErrorCodes.LOCKED));
  const totpNow = totpCode(fromBase32(enrollment.secret), now());
  await assert.rejects(alice.client.verifyTotp("gil", totpNow), is(ErrorCodes.LOCKED));
  await alice.client.unlockTotp("gil");
  assert.deepEqual(await alice.client.verifyRecoveryCode("gil", right), {
    valid: true,
    recoveryCodesLeft: 0,
  });
  // An account without enrollment: a 404, counted like a wrong code.
  await assert.rejects(alice.client.verifyRecoveryCode("nobody", right), is(ErrorCodes.NOT_FOUND));
  await assert.rejects(bob.client.verifyRecoveryCode("gil", right), is(ErrorCodes.NOT_FOUND));
});

test("a recovery code's record is its owner's to see, and nobody's to fetch", async () => {
  await alice.client.enrollTotp({ issuer: "ACME", account: "hal", recoveryCodes: 1 });
  const [record] = await server.store.list({
    purpose: "recovery",
    owner: alice.id,
    subject: "hal",
  });
  assert.ok(record);
  assert.equal((await alice.client.getKey(record.id)).purpose, "recovery");
  await assert.rejects(bob.client.getKey(record.id), is(ErrorCodes.NOT_FOUND));
  await assert.rejects(alice.client.fetchKey(record.id), is(ErrorCodes.NOT_FOUND));
});

test("an HOTP enrollment: otpauth://hotp with its counter, codes verified from that counter, once", async () => {
  const enrollment = await alice.client.enrollTotp({
    issuer: "ACME",
    account: "ida",
    type: "hotp",
    counter: 5,
    digits: 8,
    recoveryCodes: 1,
  });
  assert.equal(enrollment.type, "hotp");
  assert.equal(enrollment.counter, 5);
  assert.equal(enrollment.period, undefined);
  const parsed = parseOtpauthUri(enrollment.uri);
  assert.equal(parsed.type, "hotp");
  assert.equal(parsed.counter, 5);
  assert.match(
    enrollment.uri,
    /^otpauth:\/\/hotp\/ACME:ida\?secret=[A-Z2-7]+&issuer=ACME&algorithm=SHA1&digits=8&counter=5$/,
  );
  const secret = fromBase32(enrollment.secret);
  const code = (counter: number) => hotpCode(secret, counter, { digits: 8 });
  if (hasOathtool()) {
    const theirs = execFileSync(
      "oathtool",
      ["--hotp", "-b", "-d", "8", "-c", "5", "-w", "2", enrollment.secret],
      {
        encoding: "utf8",
      },
    );
    assert.deepEqual(theirs.trim().split("\n"), [code(5), code(6), code(7)]);
  }
  assert.equal(
    (await alice.client.verifyTotp("ida", code(4))).reason,
    "invalid",
    "before the counter",
  );
  assert.deepEqual(await alice.client.verifyTotp("ida", code(6)), { valid: true });
  assert.equal((await alice.client.verifyTotp("ida", code(6))).reason, "replayed");
  assert.equal((await alice.client.verifyTotp("ida", code(5))).reason, "invalid", "skipped");
  assert.deepEqual(await alice.client.verifyTotp("ida", code(7)), { valid: true });
  assert.equal((await server.store.get(enrollment.recordId))?.lastStep, 7);
  // An HOTP enrollment has recovery codes too, and replaces like a TOTP one.
  assert.equal(
    (await alice.client.verifyRecoveryCode("ida", enrollment.recoveryCodes[0]!)).valid,
    true,
  );
  await assert.rejects(
    alice.client.enrollTotp({ issuer: "ACME", account: "ida" }),
    is(ErrorCodes.ALREADY_ENROLLED),
  );
  for (const [body, what] of [
    [{ issuer: "ACME", account: "joe", type: "hotp", period: 30 }, "no period"],
    [{ issuer: "ACME", account: "joe", counter: 3 }, "no counter"],
  ] as const) {
    const refused = await http(server, "POST", "/v1/totp/enroll", {
      credential: alice.credential,
      body,
    });
    assert.equal(refused.status, 400, what);
    assert.match((refused.body.error as { message: string }).message, new RegExp(what));
  }
  await alice.client.unlockTotp("ida");
});

test("nothing secret reaches the server's disk in the clear: not the TOTP secret, not a recovery code", async () => {
  const enrollment = await alice.client.enrollTotp({
    issuer: "ACME",
    account: "kim",
    recoveryCodes: 20,
  });
  const secretHex = Buffer.from(fromBase32(enrollment.secret)).toString("hex");
  const needles = [
    enrollment.secret,
    secretHex,
    ...enrollment.recoveryCodes,
    ...enrollment.recoveryCodes.map((c) => c.replace("-", "")),
  ];
  const files = await allFiles(server.dataDir);
  assert.ok(
    files.some((f) => f.endsWith("key_store")),
    "the key store was read",
  );
  for (const file of files) {
    const text = (await readFile(file)).toString("latin1");
    for (const needle of needles) {
      assert.equal(text.includes(needle), false, `${needle} in ${file}`);
    }
  }
});

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await allFiles(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

function hasOathtool(): boolean {
  try {
    execFileSync("oathtool", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
