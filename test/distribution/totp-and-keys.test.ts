/**
 * TOTP enrollment and verification (RFC 6238) and key fetching, over real HTTP on loopback.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { hotpCode, type OtpAlgorithm } from "../../src/derive/hotp.js";
import { fromBase32, parseOtpauthUri, toBase32 } from "../../src/derive/otpauth.js";
import { totpCode } from "../../src/derive/totp.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { encodeStoredSecret } from "../../src/server/stored-secret.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { http, registerTestRequester, type TestRequester } from "../helpers/distribution.js";
import { readVector } from "../helpers/paths.js";

let server: TestServer;
let alice: TestRequester;
let bob: TestRequester;
const clock = { ms: 0 };
const at = (unixSeconds: number) => {
  clock.ms = unixSeconds * 1000 - Date.now();
};

before(async () => {
  server = await startTestServer(
    { quorum: 2 },
    { clockOffset: clock, lockout: { maxFailures: 3, lockMs: 60_000 } },
  );
  await startContributors(server, 2);
  alice = await registerTestRequester(server, "alice-app");
  bob = await registerTestRequester(server, "bob-app");
});
after(() => server.cleanup());

interface TotpVectors {
  totp: {
    seeds: Record<string, { ascii: string }>;
    vectors: { unixTime: number; mode: OtpAlgorithm; totp: string }[];
  };
}

/** Stores a TOTP enrollment with a known secret for `owner`, as an enrollment round would. */
async function storeTotp(
  owner: string,
  account: string,
  secret: Uint8Array,
  algorithm: OtpAlgorithm,
) {
  const uri = `otpauth://totp/RFC:${account}?secret=${toBase32(secret)}&issuer=RFC&algorithm=${algorithm}&digits=8&period=30`;
  return server.store.put({
    purpose: "totp",
    roundId: "AAAAAAAAAAAAAAAAAAAAAA",
    participants: [],
    algorithm: "totp/v1",
    owner,
    subject: account,
    public: { type: "totp", issuer: "RFC", account, algorithm, digits: 8, period: 30 },
    secret: encodeStoredSecret({
      v: 1,
      derivationSecret: "00".repeat(64),
      batch: { index: 0, size: 1 },
      params: {},
      output: { secret: toBase32(secret), uri },
    }),
  });
}

test("TOTP verification accepts every RFC 6238 Appendix B code at its time and refuses replays", async () => {
  const { totp } = readVector<TotpVectors>("rfc4226-rfc6238/rfc4226_rfc6238_vectors.json");
  try {
    for (const algorithm of ["SHA1", "SHA256", "SHA512"] as const) {
      const account = `rfc-${algorithm.toLowerCase()}`;
      await storeTotp(
        alice.id,
        account,
        new Uint8Array(Buffer.from(totp.seeds[algorithm]!.ascii, "ascii")),
        algorithm,
      );
      const rows = totp.vectors
        .filter((v) => v.mode === algorithm)
        .sort((a, b) => a.unixTime - b.unixTime);
      assert.equal(rows.length, 6);
      for (const row of rows) {
        at(row.unixTime);
        assert.deepEqual(
          await alice.client.verifyTotp(account, row.totp),
          { valid: true },
          `${algorithm} at ${row.unixTime}`,
        );
        const replay = await alice.client.verifyTotp(account, row.totp);
        assert.equal(replay.valid, false);
        assert.equal(replay.reason, "replayed");
        await alice.client.unlockTotp(account); // replays count as failures; start each row afresh
      }
    }
  } finally {
    clock.ms = 0;
  }
});

test("TOTP enrollment runs a round and delivers an otpauth URI that verifies within ±1 step, once", async () => {
  const enrollment = await alice.client.enrollTotp({
    issuer: "ACME",
    account: "carol@example.com",
  });
  assert.equal(enrollment.issuer, "ACME");
  const parsed = parseOtpauthUri(enrollment.uri);
  assert.equal(parsed.account, "carol@example.com");
  assert.equal(toBase32(parsed.secret), enrollment.secret);
  const record = await server.store.get(enrollment.recordId);
  assert.equal(record?.owner, alice.id, "the registration owns it, not the name");
  assert.equal(record?.participants.length, 2);

  const secret = fromBase32(enrollment.secret);
  const now = Math.floor(Date.now() / 1000);
  // The previous step's code is still accepted (clock drift), once.
  const previous = totpCode(secret, now - 30);
  assert.equal((await alice.client.verifyTotp("carol@example.com", previous)).valid, true);
  // The current step is later, so it is still fine...
  assert.equal(
    (await alice.client.verifyTotp("carol@example.com", totpCode(secret, now))).valid,
    true,
  );
  // ...but going back to the previous step now is a replay.
  const back = await alice.client.verifyTotp("carol@example.com", previous);
  assert.equal(back.reason, "replayed");
  // Two steps away is simply wrong.
  const far = hotpCode(secret, Math.floor(now / 30) + 3);
  assert.equal((await alice.client.verifyTotp("carol@example.com", far)).reason, "invalid");
  await alice.client.unlockTotp("carol@example.com");
});

test("TOTP verification locks the account after the failure limit", async () => {
  await alice.client.enrollTotp({ issuer: "ACME", account: "dan" });
  for (let i = 0; i < 3; i++)
    assert.equal((await alice.client.verifyTotp("dan", "000000")).valid, false);
  await assert.rejects(alice.client.verifyTotp("dan", "000000"), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.LOCKED),
  );
  await alice.client.unlockTotp("dan");
  assert.equal((await alice.client.verifyTotp("dan", "000000")).attemptsLeft, 2);
});

test("a verification of an account with no enrollment counts as a failure: the 3rd locks the account, not the 2nd", async () => {
  for (let i = 1; i <= 3; i++) {
    await assert.rejects(
      alice.client.verifyTotp("ghost", "123456"),
      (e: unknown) => isDkeygenError(e, ErrorCodes.NOT_FOUND),
      `verification ${i} is still answered 404`,
    );
  }
  await assert.rejects(alice.client.verifyTotp("ghost", "123456"), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.LOCKED),
  );
  // Locked for this requester only: another one's probe of the same name starts from zero.
  await assert.rejects(bob.client.verifyTotp("ghost", "123456"), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.NOT_FOUND),
  );
  await alice.client.unlockTotp("ghost");
});

test("another requester cannot verify against, or even see, an account it did not enroll", async () => {
  await alice.client.enrollTotp({ issuer: "ACME", account: "erin" });
  await assert.rejects(bob.client.verifyTotp("erin", "123456"), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.NOT_FOUND),
  );
});

test("a key made for a requester is fetched by it, decrypted with its key, and by nobody else", async () => {
  // What `generate --for alice-app` makes: a round whose record the registration owns.
  const record = await server.server.runRound({
    purpose: "ecc",
    params: { curve: "secp256k1" },
    owner: alice.id,
  });
  const fetched = await alice.client.fetchKey(record.id);
  assert.equal(fetched.record.id, record.id);
  assert.match(String(fetched.secret.pkcs8), /BEGIN PRIVATE KEY/);

  // Bob may read the public part but not the secret part, which "does not exist" for him.
  assert.equal((await bob.client.getKey(record.id)).id, record.id);
  await assert.rejects(bob.client.fetchKey(record.id), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.NOT_FOUND),
  );
  const raw = await http(server, "GET", `/v1/keys/${record.id}/secret`, {
    credential: bob.credential,
  });
  assert.equal(raw.status, 404);
  assert.equal(
    JSON.stringify(raw.body).includes("alice"),
    false,
    "the answer does not say whose key it is",
  );
  // A record without an owner (a pooled OTP, say) is nobody's to fetch.
  const admin2 = await server.admin();
  const unowned = await admin2.generate("otp", {});
  admin2.close();
  await assert.rejects(alice.client.fetchKey(unowned.id), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.NOT_FOUND),
  );
});

test("generate --for refuses a requester that is not registered", async () => {
  const admin = await server.admin();
  try {
    await assert.rejects(admin.generate("ecc", {}, "nobody"), (e: unknown) =>
      isDkeygenError(e, ErrorCodes.INVALID_INPUT),
    );
  } finally {
    admin.close();
  }
});
