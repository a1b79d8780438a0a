/**
 * HOTP verification (RFC 4226 §7.2, §7.4; PROTOCOL §12.6) over real HTTP on loopback, on
 * enrollments with the RFC's own secret: the look-ahead window and the auto-resynchronisation
 * window pinned at their exact edges, the counter moving only forward, and both windows
 * configurable.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { hotpCode } from "../../src/derive/hotp.js";
import { toBase32 } from "../../src/derive/otpauth.js";
import {
  checkHotp,
  DEFAULT_HOTP_WINDOWS,
  HotpResync,
} from "../../src/server/distribution/hotp-check.js";
import { encodeStoredSecret } from "../../src/server/stored-secret.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import type { KeyRecord } from "../../src/store/types.js";
import { startTestServer, type TestServer } from "../helpers/ceremony.js";
import { registerTestRequester, type TestRequester } from "../helpers/distribution.js";
import { readVector } from "../helpers/paths.js";

const RFC_SECRET = new Uint8Array(Buffer.from("12345678901234567890", "ascii"));
const code = (counter: number) => hotpCode(RFC_SECRET, counter);

let defaults: TestServer;
let narrow: TestServer;
let alice: TestRequester;
let carl: TestRequester;
const clock = { ms: 0 };

before(async () => {
  defaults = await startTestServer({}, { clockOffset: clock, lockout: { maxFailures: 50 } });
  narrow = await startTestServer(
    {},
    {
      http: { hotpWindow: 3, hotpResyncWindow: 20, hotpResyncMs: 60_000 },
      lockout: { maxFailures: 50 },
    },
  );
  alice = await registerTestRequester(defaults, "alice-app");
  carl = await registerTestRequester(narrow, "carl-app");
});
after(async () => {
  await defaults.cleanup();
  await narrow.cleanup();
});

/** Stores an HOTP enrollment with the RFC 4226 secret, as an enrollment round would. */
async function storeHotp(server: TestServer, owner: string, account: string, counter = 0) {
  const uri = `otpauth://hotp/RFC:${account}?secret=${toBase32(RFC_SECRET)}&issuer=RFC&algorithm=SHA1&digits=6&counter=${counter}`;
  return server.store.put({
    purpose: "hotp",
    roundId: "AAAAAAAAAAAAAAAAAAAAAA",
    participants: [],
    algorithm: "hotp/v1",
    owner,
    subject: account,
    public: { type: "hotp", issuer: "RFC", account, algorithm: "SHA1", digits: 6, counter },
    secret: encodeStoredSecret({
      v: 1,
      derivationSecret: "00".repeat(64),
      batch: { index: 0, size: 1 },
      params: {},
      output: { secret: toBase32(RFC_SECRET), uri },
    }),
  });
}

test("the RFC 4226 Appendix D values verify in order, each once", async () => {
  const { hotp } = readVector<{ hotp: { vectors: { counter: number; hotp: string }[] } }>(
    "rfc4226-rfc6238/rfc4226_rfc6238_vectors.json",
  );
  await storeHotp(defaults, alice.id, "rfc");
  for (const row of hotp.vectors) {
    assert.equal(code(row.counter), row.hotp);
    assert.deepEqual(
      await alice.client.verifyTotp("rfc", row.hotp),
      { valid: true },
      `${row.counter}`,
    );
    assert.equal((await alice.client.verifyTotp("rfc", row.hotp)).reason, "replayed");
  }
});

test("the look-ahead window is 10 by default: counter + 10 is accepted, counter + 11 is not", async () => {
  await storeHotp(defaults, alice.id, "edge", 100);
  assert.equal((await alice.client.verifyTotp("edge", code(111))).reason, "invalid");
  assert.deepEqual(await alice.client.verifyTotp("edge", code(110)), { valid: true });
  // The counter moved to 111: everything up to 110 is spent, 111 + 10 is the new edge.
  assert.equal((await alice.client.verifyTotp("edge", code(105))).reason, "invalid");
  assert.equal((await alice.client.verifyTotp("edge", code(122))).reason, "invalid");
  assert.deepEqual(await alice.client.verifyTotp("edge", code(121)), { valid: true });
  const record = (
    await defaults.store.list({ purpose: "hotp", subject: "edge", owner: alice.id })
  )[0];
  assert.equal(record?.lastStep, 121);
});

test("two consecutive codes up to counter + 100 resynchronise; from counter + 101 they do not", async () => {
  await storeHotp(defaults, alice.id, "sync");
  assert.equal((await alice.client.verifyTotp("sync", code(100))).reason, "invalid");
  assert.deepEqual(await alice.client.verifyTotp("sync", code(101)), { valid: true });
  assert.equal((await alice.client.verifyTotp("sync", code(101))).reason, "replayed");
  assert.equal((await alice.client.verifyTotp("sync", code(100))).reason, "invalid");
  assert.deepEqual(
    await alice.client.verifyTotp("sync", code(103)),
    { valid: true },
    "window again",
  );

  await storeHotp(defaults, alice.id, "far");
  assert.equal((await alice.client.verifyTotp("far", code(101))).reason, "invalid");
  assert.equal((await alice.client.verifyTotp("far", code(102))).reason, "invalid");
  assert.deepEqual(await alice.client.verifyTotp("far", code(10)), { valid: true }, "unmoved");
});

test("resynchronisation needs the very next code; a gap starts it again from the later code", async () => {
  await storeHotp(defaults, alice.id, "gap");
  assert.equal((await alice.client.verifyTotp("gap", code(50))).reason, "invalid");
  assert.equal((await alice.client.verifyTotp("gap", code(52))).reason, "invalid");
  assert.deepEqual(await alice.client.verifyTotp("gap", code(53)), { valid: true });
  // A wrong code between the two breaks the pair too.
  await storeHotp(defaults, alice.id, "between");
  assert.equal((await alice.client.verifyTotp("between", code(60))).reason, "invalid");
  assert.equal((await alice.client.verifyTotp("between", "000000")).reason, "invalid");
  assert.equal((await alice.client.verifyTotp("between", code(61))).reason, "invalid");
});

test("a first resynchronisation code waits 5 minutes for its successor", async () => {
  try {
    await storeHotp(defaults, alice.id, "late");
    assert.equal((await alice.client.verifyTotp("late", code(40))).reason, "invalid");
    clock.ms = 300_000;
    assert.equal((await alice.client.verifyTotp("late", code(41))).reason, "invalid");
  } finally {
    clock.ms = 0;
  }
});

test("the resynchronisation wait is pinned to the millisecond (resyncMs)", async () => {
  const store = new MemoryKeyStore();
  await store.open();
  const put = (account: string) =>
    store.put({
      purpose: "hotp",
      roundId: "AAAAAAAAAAAAAAAAAAAAAA",
      participants: [],
      algorithm: "hotp/v1",
      owner: "r",
      subject: account,
      public: { type: "hotp", account, algorithm: "SHA1", digits: 6, counter: 0 },
      secret: new Uint8Array([1]),
    });
  const resync = new HotpResync();
  const check = async (record: KeyRecord, counter: number, now: number) =>
    checkHotp(store, (await store.get(record.id))!, RFC_SECRET, code(counter), {
      key: record.subject!,
      now,
      windows: DEFAULT_HOTP_WINDOWS,
      resync,
    });
  assert.equal(DEFAULT_HOTP_WINDOWS.resyncMs, 300_000);
  const late = await put("late");
  assert.equal(await check(late, 40, 1_000), "invalid");
  assert.equal(await check(late, 41, 301_000), "invalid");
  const prompt = await put("prompt");
  assert.equal(await check(prompt, 40, 1_000), "invalid");
  assert.equal(await check(prompt, 41, 300_999), "valid");
  assert.equal((await store.get(prompt.id))?.lastStep, 41);
});

test("both windows are configurable: window 3 and resync window 20, pinned at their edges", async () => {
  await storeHotp(narrow, carl.id, "n");
  assert.equal((await carl.client.verifyTotp("n", code(4))).reason, "invalid");
  assert.deepEqual(await carl.client.verifyTotp("n", code(3)), { valid: true });
  // Next is 4: resync codes may start at 4 + 20 = 24, not 25.
  assert.equal((await carl.client.verifyTotp("n", code(25))).reason, "invalid");
  assert.equal((await carl.client.verifyTotp("n", code(26))).reason, "invalid");
  assert.equal((await carl.client.verifyTotp("n", code(24))).reason, "invalid");
  assert.deepEqual(await carl.client.verifyTotp("n", code(25)), { valid: true });
});

test("concurrent verifications of one HOTP code: exactly one is accepted", async () => {
  await storeHotp(defaults, alice.id, "race");
  const answers = await Promise.all([1, 2, 3].map(() => alice.client.verifyTotp("race", code(2))));
  assert.equal(answers.filter((a) => a.valid).length, 1);
  assert.equal(answers.filter((a) => a.reason === "replayed").length, 2);
});
