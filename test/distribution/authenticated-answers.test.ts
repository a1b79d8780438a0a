/**
 * Answers are authenticated (PROTOCOL.md §12.8): an attacker on the client's network path — a
 * real HTTP server on loopback that forwards to the real distribution server and changes what
 * comes back — cannot make the requesting client accept a verification result, a delivery or an
 * error the server did not send for that very request. TOTP parameters travel sealed.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { after, before, test } from "node:test";
import { DeliveryOpener } from "../../src/client/delivery-opener.js";
import { RequesterClient } from "../../src/client/requester.js";
import { loadOrCreateRequesterKeys } from "../../src/client/requester-state.js";
import { toBase64url } from "../../src/crypto/base64url.js";
import { aesGcmSeal, ENVELOPE_ALG, rsaOaepEncrypt } from "../../src/crypto/envelope.js";
import { Secret } from "../../src/crypto/secret.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { answerMac, deliveryKeyMac, deriveResponseKey } from "../../src/protocol/answer-auth.js";
import { deliveryAad, deliveryKeyLabel } from "../../src/protocol/signed-data.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import {
  registerTestRequester,
  responseKeyOf,
  type TestRequester,
} from "../helpers/distribution.js";

let server: TestServer;
let alice: TestRequester;
let mallory: Server;
let malloryUrl: string;

/** What the attacker does to each answer before the client sees it. */
interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
  request: { method: string; path: string; requestId: string; body: string };
}
let tamper: (answer: Answer) => Answer | Promise<Answer> = (a) => a;
/** The last genuine answer the attacker saw (for replays). */
let recorded: Answer | undefined;

async function readBody(request: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of request) text += chunk;
  return text;
}

before(async () => {
  server = await startTestServer({ quorum: 2 }, { otpPool: 20 });
  await startContributors(server, 2);
  await server.pool!.refill();
  alice = await registerTestRequester(server, "alice-app");
  mallory = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
      delete headers.host;
      delete headers["content-length"];
      const real = await fetch(`${server.httpUrl}${req.url}`, {
        method: req.method!,
        headers,
        ...(body === "" ? {} : { body }),
      });
      const answer: Answer = {
        status: real.status,
        headers: Object.fromEntries(
          [...real.headers].filter(([k]) => k === "content-type" || k.startsWith("x-")),
        ),
        body: await real.text(),
        request: {
          method: req.method!,
          path: req.url!,
          requestId: String(req.headers["x-request-id"]),
          body,
        },
      };
      const sent = await tamper(answer);
      recorded = answer;
      res.writeHead(sent.status, sent.headers);
      res.end(sent.body);
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => mallory.listen(0, "127.0.0.1", resolve));
  malloryUrl = `http://127.0.0.1:${(mallory.address() as { port: number }).port}`;
});
after(async () => {
  mallory.close();
  await server.cleanup();
});

/** Alice's client, talking through the attacker. */
async function aliceViaMallory(): Promise<RequesterClient> {
  const keys = await loadOrCreateRequesterKeys(alice.dataDir);
  return new RequesterClient({
    server: malloryUrl,
    credential: new Secret(new Uint8Array(Buffer.from(alice.credential))),
    privateKey: keys.privateKey,
    fingerprint: keys.fingerprint,
  });
}

const notAuthentic = (e: unknown) => isDkeygenError(e, ErrorCodes.ANSWER_NOT_AUTHENTIC);

test("answers passed through unchanged are accepted", async () => {
  tamper = (a) => a;
  const client = await aliceViaMallory();
  const otp = await client.requestOtp({ subject: "wendy" });
  assert.deepEqual(await client.verifyOtp("wendy", otp.code), { valid: true, otpId: otp.otpId });
  // Error answers are authenticated too, and so taken for what they say.
  await assert.rejects(client.fetchKey("01ARZ3NDEKTSV4RRFFQ69G5FAV"), (e: unknown) =>
    isDkeygenError(e, ErrorCodes.NOT_FOUND),
  );
});

test("a verification answer whose body was edited to say valid is refused", async () => {
  const client = await aliceViaMallory();
  const otp = await alice.client.requestOtp({ subject: "xavier" });
  tamper = (a) => ({ ...a, body: JSON.stringify({ valid: true, otpId: otp.otpId }) });
  try {
    await assert.rejects(client.verifyOtp("xavier", "000000"), notAuthentic);
    await assert.rejects(client.verifyTotp("nobody", "000000"), notAuthentic);
  } finally {
    tamper = (a) => a;
  }
});

test("an answer with a wrong or missing MAC is refused, error answers too", async () => {
  const client = await aliceViaMallory();
  const flip = (mac: string) => (mac[0] === "A" ? "B" : "A") + mac.slice(1);
  tamper = (a) => {
    const mac = a.headers["x-dkeygen-mac"];
    return mac ? { ...a, headers: { ...a.headers, "x-dkeygen-mac": flip(mac) } } : a;
  };
  try {
    await assert.rejects(client.verifyOtp("yara", "123456"), notAuthentic);
    await assert.rejects(client.fetchKey("01ARZ3NDEKTSV4RRFFQ69G5FAV"), notAuthentic);
    tamper = (a) => {
      const { "x-dkeygen-mac": _dropped, ...headers } = a.headers;
      return { ...a, headers };
    };
    await assert.rejects(client.verifyOtp("yara", "123456"), notAuthentic);
    // A delivery's 200 answer carries no MAC: its delivery key's MAC (km) is what authenticates
    // it, and a changed km is refused before the envelope is opened.
    tamper = (a) => {
      if (a.status !== 200 || a.headers["x-dkeygen-mac"]) return a;
      const body = JSON.parse(a.body);
      body.envelope.km = flip(body.envelope.km);
      return { ...a, body: JSON.stringify(body) };
    };
    await assert.rejects(client.requestOtp({ subject: "yara" }), notAuthentic);
    // A made-up "locked" answer would make a relying service turn its user away.
    tamper = (a) => ({
      status: 423,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ error: { code: "E_LOCKED", message: "locked", retryAfter: 900 } }),
      request: a.request,
    });
    await assert.rejects(client.verifyOtp("yara", "123456"), notAuthentic);
  } finally {
    tamper = (a) => a;
  }
});

test("an answer whose status was changed is refused", async () => {
  const client = await aliceViaMallory();
  tamper = (a) => ({ ...a, status: a.status === 200 ? 201 : 200 });
  try {
    await assert.rejects(client.verifyOtp("zoe", "000000"), notAuthentic);
    // The genuine 404 of an unknown key, passed off as a 200, is not taken either.
    await assert.rejects(client.fetchKey("01ARZ3NDEKTSV4RRFFQ69G5FAV"), notAuthentic);
  } finally {
    tamper = (a) => a;
  }
});

test("the genuine answer, MAC and all, to another request is refused", async () => {
  const client = await aliceViaMallory();
  tamper = (a) => a;
  await client.verifyOtp("amos", "000000");
  const earlier = recorded!;
  // The same call again, answered with what the server said the first time.
  tamper = () => earlier;
  try {
    await assert.rejects(client.verifyOtp("amos", "000000"), notAuthentic);
  } finally {
    tamper = (a) => a;
  }
});

test("a delivery sealed by someone holding only the requester's public key is refused", async () => {
  const keys = await loadOrCreateRequesterKeys(alice.dataDir);
  const otpId = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  const forgeDelivery = (a: Answer): Answer => {
    // Everything in the delivery's associated data is public: the attacker can seal a code of
    // its choosing that opens with the requester's private key.
    const kid = toBase64url(randomBytes(16));
    const k = randomBytes(32);
    const ek = rsaOaepEncrypt(keys.publicKey, k, deliveryKeyLabel(alice.fingerprint, kid));
    const iv = randomBytes(12);
    const expiresAt = new Date(Date.now() + 300_000).toISOString();
    const payload = { otpId, code: "424242", subject: "bella", expiresAt };
    const aad = deliveryAad("otp", a.request.requestId, alice.fingerprint, otpId);
    const { ciphertext, tag } = aesGcmSeal(k, iv, Buffer.from(JSON.stringify(payload)), aad);
    // What the attacker cannot make: the delivery key's MAC under alice's response key.
    const envelope = {
      alg: ENVELOPE_ALG as "RSA-OAEP-256/A256GCM",
      kid,
      ek: toBase64url(ek),
      km: toBase64url(randomBytes(32)),
      iv: toBase64url(iv),
      ct: toBase64url(ciphertext),
      tag: toBase64url(tag),
    };
    // Everything else checks: with the right km (which only the server and alice can make) this
    // forgery would open and match its clear fields.
    const withKm = {
      ...envelope,
      km: toBase64url(
        deliveryKeyMac(responseKeyOf(alice.credential), alice.fingerprint, kid, envelope.ek),
      ),
    };
    const opened = new DeliveryOpener(
      keys.privateKey,
      alice.fingerprint,
      responseKeyOf(alice.credential),
    ).open("otp", a.request.requestId, otpId, withKm);
    assert.equal(opened.code, "424242");
    const body = {
      requestId: a.request.requestId,
      otpId,
      subject: "bella",
      digits: 6,
      expiresAt,
      envelope,
    };
    return {
      status: 200,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      request: a.request,
    };
  };
  tamper = forgeDelivery;
  try {
    const client = await aliceViaMallory();
    await assert.rejects(client.requestOtp({ subject: "bella" }), notAuthentic);
  } finally {
    tamper = (a) => a;
  }
});

test("a TOTP enrollment's parameters are sealed: clear ones changed on the way are refused", async () => {
  const genuine = await alice.client.enrollTotp({ issuer: "ACME", account: "cora", digits: 8 });
  assert.equal(genuine.digits, 8);
  assert.match(genuine.uri, /digits=8/);
  // Even someone able to MAC answers to alice (a leaked requesters.json on her network path)
  // cannot make her client use other clear parameters than the sealed ones.
  const [, name, secret] = /^dkr_([^.]+)\.(.+)$/.exec(alice.credential)!;
  const key = deriveResponseKey(name!, secret!);
  for (const [field, value] of [
    ["digits", 6],
    ["period", 60],
    ["algorithm", "SHA256"],
    ["issuer", "EVIL"],
    ["type", "hotp"],
    ["recoveryCodes", 1],
  ] as const) {
    tamper = (a) => {
      if (a.status !== 200) return a;
      const body = JSON.stringify({ ...JSON.parse(a.body), [field]: value });
      const mac = answerMac(key, a.request.requestId, "POST", a.request.path, 200, body);
      return { ...a, body, headers: { ...a.headers, "x-dkeygen-mac": mac } };
    };
    try {
      const client = await aliceViaMallory();
      await assert.rejects(
        // Each try enrolls (the server saw nothing wrong), so each is another account.
        client.enrollTotp({ issuer: "ACME", account: `dora-${field}`, digits: 8 }),
        (e: unknown) => isDkeygenError(e, ErrorCodes.DECRYPTION_FAILED),
        field,
      );
    } finally {
      tamper = (a) => a;
    }
  }
  // The record fetched as a key carries the same parameters inside its sealed part.
  const fetched = await alice.client.fetchKey(genuine.recordId);
  assert.deepEqual(
    {
      issuer: fetched.secret.issuer,
      account: fetched.secret.account,
      algorithm: fetched.secret.algorithm,
      digits: fetched.secret.digits,
      period: fetched.secret.period,
    },
    { issuer: "ACME", account: "cora", algorithm: "SHA1", digits: 8, period: 30 },
  );
});
