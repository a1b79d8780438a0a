/**
 * The OpenAPI document at /v1/openapi.json is a valid OpenAPI 3.0 document, and it is the contract
 * the server keeps: every route is driven on real servers through its success and its error
 * answers, and every answer's status must be documented for its operation, its body must validate
 * (ajv) against the schema documented for that status, and the headers it carries (X-Request-Id,
 * X-Dkeygen-Mac, Retry-After, WWW-Authenticate) must be documented for it. The other way round,
 * every documented status but 500 must have been seen, so the document promises nothing the
 * server does not do.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import { fromBase32 } from "../../src/derive/otpauth.js";
import { totpCode } from "../../src/derive/totp.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import {
  http,
  rawConnection,
  registerTestRequester,
  type TestRequester,
} from "../helpers/distribution.js";

interface Operation {
  security?: unknown[];
  responses: Record<
    string,
    {
      description: string;
      headers?: Record<string, unknown>;
      content?: Record<string, { schema: object }>;
    }
  >;
}
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>> };

let server: TestServer;
let limited: TestServer;
let credentialLimited: TestServer;
let contributors: Awaited<ReturnType<typeof startContributors>>;
let doc: Doc;
const requesters: Record<string, TestRequester> = {};
const ajv = new Ajv({ strict: false, allErrors: true });
(addFormats as unknown as (a: Ajv) => void)(ajv);
const validators = new Map<object, ValidateFunction>();
/** "METHOD path status" of every answer seen. */
const seen = new Set<string>();

before(async () => {
  server = await startTestServer(
    { quorum: 2 },
    {
      otpPool: 2,
      lockout: { maxFailures: 2 },
      http: {
        bodyLimit: 4096,
        otpWaitMs: 1000,
        otpPerMinutePerRequester: 2,
      },
    },
  );
  contributors = await startContributors(server, 2);
  await server.pool!.refill();
  for (const name of ["alice", "quota", "drain1", "drain2"]) {
    requesters[name] = await registerTestRequester(server, name);
  }
  limited = await startTestServer({ quorum: 2 }, { http: { rateLimitPerAddress: 1 } });
  credentialLimited = await startTestServer({ quorum: 2 }, { http: { rateLimitPerCredential: 1 } });
  requesters.flood = await registerTestRequester(credentialLimited, "flood");
  doc = (await http(server, "GET", "/v1/openapi.json")).body as unknown as Doc;
});
after(async () => {
  await limited?.cleanup();
  await credentialLimited?.cleanup();
  await server?.cleanup();
});

/** Checks one answer of operation `method path` against the document, and records it. */
function check(
  method: string,
  path: string,
  status: number,
  headers: Headers | Map<string, string>,
  text: string,
): void {
  const operation = doc.paths[path]?.[method.toLowerCase()];
  assert.ok(operation, `${method} ${path} is documented`);
  const documented = operation.responses[String(status)];
  assert.ok(documented, `${method} ${path} answered ${status}, which is not documented: ${text}`);
  seen.add(`${method} ${path} ${status}`);
  // A text answer (the log's checkpoint and key) is documented as text/plain, the rest as JSON.
  const plain = documented.content?.["text/plain"]?.schema;
  const schema = plain ?? documented.content?.["application/json"]?.schema;
  assert.ok(schema, `${method} ${path} ${status} documents its body`);
  const type = headers.get("content-type") ?? "";
  assert.match(
    type,
    plain ? /^text\/plain\b/ : /^application\/json\b/,
    `${method} ${path} ${status}`,
  );
  let validate = validators.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    validators.set(schema, validate);
  }
  assert.ok(
    validate(plain ? text : JSON.parse(text)),
    `${method} ${path} ${status}: ${text} does not match its schema: ${ajv.errorsText(validate.errors)}`,
  );
  const names = new Set(Object.keys(documented.headers ?? {}).map((h) => h.toLowerCase()));
  assert.match(headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/, "X-Request-Id is answered");
  const documentedHeaders = [
    "x-request-id",
    "x-dkeygen-mac",
    "retry-after",
    "www-authenticate",
    "cache-control",
  ];
  for (const name of documentedHeaders) {
    if (headers.get(name) !== null && headers.get(name) !== undefined) {
      assert.ok(names.has(name), `${method} ${path} ${status} carries ${name}, not documented`);
    }
  }
}

/** A call to operation `method path` at `url` (the path with its parameter filled in). */
async function call(
  method: string,
  path: string,
  options: {
    as?: string;
    url?: string;
    body?: string | object;
    headers?: Record<string, string>;
    on?: TestServer;
  } = {},
) {
  const credential = options.as === undefined ? undefined : requesters[options.as]!.credential;
  const result = await http(options.on ?? server, method, options.url ?? path, {
    ...(credential === undefined ? {} : { credential }),
    ...(options.body === undefined ? {} : { body: options.body }),
    ...(options.headers === undefined ? {} : { headers: options.headers }),
  });
  check(method, path, result.status, result.headers, result.text);
  return result;
}

const ID = "01M86MVCHH2S3Y5K1BD73BT3PB";
const BODY_ROUTES = [
  ["/v1/otp/request", { subject: "s-request" }],
  ["/v1/otp/verify", { subject: "s-verify", code: "000000" }],
  ["/v1/otp/unlock", { subject: "s-verify" }],
  ["/v1/totp/enroll", { issuer: "ACME", account: "a-error" }],
  ["/v1/totp/verify", { account: "a-error", code: "000000" }],
  ["/v1/totp/unlock", { subject: "a-error" }],
  ["/v1/recovery/verify", { account: "a-error", code: "aaaaa-aaaaa" }],
  [`/v1/keys/{id}/derivation-secret`, {}],
  [`/v1/keys/{id}/opening`, {}],
  [`/v1/keys/{id}/sign`, { message: "AQ" }],
] as const;
const urlOf = (path: string) => path.replace("{id}", ID);

test("the document is valid OpenAPI 3.0, describes every answer and the X-Request-Id header", async () => {
  const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
  assert.ok(result.valid, JSON.stringify(result.errors));
  assert.equal(doc.openapi, "3.0.3");
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      for (const [status, response] of Object.entries(operation.responses)) {
        assert.notEqual(response.description, "Default Response", `${method} ${path} ${status}`);
        assert.ok(response.headers?.["X-Request-Id"], `${method} ${path} ${status} X-Request-Id`);
      }
      const parameters = (operation as { parameters?: { in: string; name: string }[] }).parameters;
      assert.ok(
        parameters?.some((p) => p.in === "header" && p.name === "X-Request-Id"),
        `${method} ${path} documents the X-Request-Id request header`,
      );
    }
  }
  const enroll = doc.paths["/v1/totp/enroll"]!.post as unknown as {
    requestBody: {
      content: {
        "application/json": { schema: { properties: Record<string, { description: string }> } };
      };
    };
  };
  const account = enroll.requestBody.content["application/json"].schema.properties.account!;
  assert.match(account.description, /account/);
  assert.doesNotMatch(account.description, /OTP is for/);
});

test("every route's success and error answers are documented, with their bodies and headers", async () => {
  // Health, readiness.
  await call("GET", "/v1/health");
  await call("GET", "/v1/ready");

  // Every route with a body: the body's own refusals, and authentication.
  for (const [path, body] of BODY_ROUTES) {
    const url = urlOf(path);
    await call("POST", path, { url, body });
    await call("POST", path, { url, as: "alice", body: "{not json" });
    await call("POST", path, { url, as: "alice", body: { smuggled: true } });
    await call("POST", path, { url, as: "alice", body: `{"x":"${"a".repeat(5000)}"}` });
    await call("POST", path, {
      url,
      as: "alice",
      body: "subject=a",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
  }
  // Routes with a path parameter: a bad id, a too long one, a path that is not percent-encoding.
  for (const [method, path] of [
    ["GET", "/v1/keys/{id}"],
    ["GET", "/v1/keys/{id}/secret"],
    ["POST", "/v1/keys/{id}/derivation-secret"],
    ["POST", "/v1/keys/{id}/opening"],
    ["POST", "/v1/keys/{id}/sign"],
  ] as const) {
    const body = method === "POST" ? (path.endsWith("/sign") ? { message: "AQ" } : {}) : undefined;
    const at = (id: string) => path.replace("{id}", id);
    await call(method, path, { url: at(ID), ...(body ? { body } : {}) });
    await call(method, path, { url: at("not-a-ulid"), as: "alice", ...(body ? { body } : {}) });
    await call(method, path, { url: at("A".repeat(80)), as: "alice", ...(body ? { body } : {}) });
    await call(method, path, { url: at("%E0%A4%A"), as: "alice", ...(body ? { body } : {}) });
    await call(method, path, { url: at(ID), as: "alice", ...(body ? { body } : {}) });
  }

  // OTPs: delivered, verified once, then used; wrong codes lock the subject; the quota.
  const requestId = randomUUID();
  const delivered = await call("POST", "/v1/otp/request", {
    as: "alice",
    body: { subject: "s1" },
    headers: { "x-request-id": requestId },
  });
  assert.equal(delivered.headers.get("x-request-id"), requestId);
  const otp = await requesters.alice!.client.requestOtp({ subject: "s1" });
  for (let i = 0; i < 2; i++) {
    await call("POST", "/v1/otp/verify", { as: "alice", body: { subject: "s1", code: otp.code } });
  }
  for (let i = 0; i < 3; i++) {
    await call("POST", "/v1/otp/verify", { as: "alice", body: { subject: "s2", code: "123456" } });
  }
  assert.ok(seen.has("POST /v1/otp/verify 423"));
  await call("POST", "/v1/otp/unlock", { as: "alice", body: { subject: "s2" } });
  for (let i = 0; i < 3; i++) {
    await call("POST", "/v1/otp/request", { as: "quota", body: { subject: "q" } });
  }
  assert.ok(seen.has("POST /v1/otp/request 429"));

  // TOTP: enrolled, verified, replayed, unknown account, locked, unlocked; a refused issuer.
  const enrolled = await call("POST", "/v1/totp/enroll", {
    as: "alice",
    body: { issuer: "ACME", account: "bob" },
  });
  await call("POST", "/v1/totp/enroll", {
    as: "alice",
    body: { issuer: "AC:ME", account: "bob" },
  });
  const { secret } = await requesters.alice!.client.fetchKey(String(enrolled.body.recordId));
  const code = totpCode(fromBase32(String(secret.secret)), Math.floor(Date.now() / 1000));
  for (let i = 0; i < 2; i++) {
    await call("POST", "/v1/totp/verify", { as: "alice", body: { account: "bob", code } });
  }
  await call("POST", "/v1/totp/verify", { as: "alice", body: { account: "nobody", code } });
  // Recovery codes: a wrong one (a 200 that says no), an account with no enrollment.
  await call("POST", "/v1/recovery/verify", {
    as: "alice",
    body: { account: "bob", code: "aaaaa-aaaaa" },
  });
  await call("POST", "/v1/recovery/verify", {
    as: "alice",
    body: { account: "nobody", code: "aaaaa-aaaaa" },
  });
  for (let i = 0; i < 3; i++) {
    await call("POST", "/v1/totp/verify", {
      as: "alice",
      body: { account: "bob", code: code === "000000" ? "000001" : "000000" },
    });
  }
  await call("POST", "/v1/recovery/verify", {
    as: "alice",
    body: { account: "bob", code: "aaaaa-aaaaa" },
  });
  assert.ok(seen.has("POST /v1/recovery/verify 423"));
  await call("POST", "/v1/totp/unlock", { as: "alice", body: { subject: "bob" } });

  // Who the caller is registered as; without a credential.
  await call("GET", "/v1/requester", { as: "alice" });
  await call("GET", "/v1/requester");

  // Keys made for alice: public part, secret part, derivation secret; a nonce record's refused.
  const admin = await server.admin();
  const ecc = await admin.generate("ecc", {}, "alice");
  const nonce = await admin.generate("nonce", {}, "alice");
  // A multisig set split between alice and drain1: alice sees the holders and gets her own key;
  // its derivation secret and opening are refused to her (403), as a nonce record's.
  const split = await admin.generate("multisig", { m: "1" }, undefined, ["alice", "drain1"]);
  admin.close();
  await call("GET", "/v1/keys/{id}", { url: `/v1/keys/${ecc.id}`, as: "alice" });
  await call("GET", "/v1/keys/{id}/secret", { url: `/v1/keys/${ecc.id}/secret`, as: "alice" });
  await call("GET", "/v1/keys/{id}", { url: `/v1/keys/${split.id}`, as: "alice" });
  await call("GET", "/v1/keys/{id}/secret", { url: `/v1/keys/${split.id}/secret`, as: "alice" });
  for (const id of [ecc.id, nonce.id, split.id]) {
    for (const route of ["derivation-secret", "opening"]) {
      await call("POST", `/v1/keys/{id}/${route}`, {
        url: `/v1/keys/${id}/${route}`,
        as: "alice",
        body: {},
      });
    }
  }

  // A threshold key made for alice: signed by its two holders; an ecc key does not sign (403);
  // with a holder's share gone, fewer than t holders answer (503).
  const keygen = await server.admin();
  const threshold = await keygen.thresholdKeygen({ suite: "ed25519", t: 2, n: 2, owner: "alice" });
  keygen.close();
  const sign = (id: string) =>
    call("POST", "/v1/keys/{id}/sign", {
      url: `/v1/keys/${id}/sign`,
      as: "alice",
      body: { message: "aGVsbG8" },
    });
  await sign(threshold.id);
  await sign(ecc.id);
  await rm(join(contributors[0]!.dataDir, "threshold", `${threshold.id}.json`));
  await sign(threshold.id);
  assert.ok(seen.has("POST /v1/keys/{id}/sign 503"));

  // The transparency log, to anyone: checkpoint, key, identity; entries and both proofs, with
  // the parameters' refusals and a round the log does not hold.
  for (const path of ["/v1/log/checkpoint", "/v1/log/key", "/v1/log/identity"]) {
    await call("GET", path);
  }
  const log = (query: string, path: string) => call("GET", path, { url: `${path}?${query}` });
  for (const query of ["start=0&end=2", "start=0", "start=01&end=2", "start=99999&end=99999"]) {
    await log(query, "/v1/log/entries");
  }
  const unknownRound = "AAAAAAAAAAAAAAAAAAAAAA";
  for (const query of ["index=0", "index=0&size=1", "index=0&size=0", `roundId=${unknownRound}`]) {
    await log(query, "/v1/log/proof/inclusion");
  }
  assert.ok(seen.has("GET /v1/log/proof/inclusion 404"));
  for (const query of ["from=1", "from=1&to=1", "from=0", "from=1&to=x"]) {
    await log(query, "/v1/log/proof/consistency");
  }

  // This requester's own rate limit.
  for (let i = 0; i < 3; i++) {
    await call("POST", "/v1/otp/unlock", {
      as: "flood",
      on: credentialLimited,
      body: { subject: "x" },
    });
  }
  assert.ok(seen.has("POST /v1/otp/unlock 429"));

  // Without contributors: not ready, no OTP can be made, no enrollment round can run.
  for (const c of contributors) await c.contributor.stop();
  for (const name of ["drain1", "drain2"]) {
    for (let i = 0; i < 2 && !seen.has("POST /v1/otp/request 503"); i++) {
      await call("POST", "/v1/otp/request", { as: name, body: { subject: "d" } });
    }
  }
  assert.ok(seen.has("POST /v1/otp/request 503"));
  await call("GET", "/v1/ready");
  await call("POST", "/v1/totp/enroll", { as: "alice", body: { issuer: "ACME", account: "c" } });

  // Every route over the per-address rate limit, on a server that allows one request a minute.
  const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((method) => [method.toUpperCase(), path] as const),
  );
  for (const [method, path] of operations) {
    for (let i = 0; i < 3 && !seen.has(`${method} ${path} 429`); i++) {
      await call(method, path, {
        on: limited,
        url: urlOf(path),
        ...(method === "POST" ? { body: {} } : {}),
      });
    }
  }

  // Every route while the server shuts down: a request under way keeps its connection open, and
  // the next request on it gets the 503.
  const connections = await Promise.all(
    operations.map(async ([method, path]) => {
      const connection = await rawConnection(server);
      const first = JSON.stringify({ subject: "someone" });
      connection.socket.write(
        `POST /v1/otp/unlock HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${requesters.alice!.credential}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${first.length}\r\n\r\n${first.slice(0, 5)}`,
      );
      return { connection, method, path, first };
    }),
  );
  // Time for the server to read every request's headers: a connection it has not yet seen a
  // request on is idle, and closed at once when the shutdown starts.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const stopping = server.stop();
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (const { connection, method, path, first } of connections) {
    const body = method === "POST" ? "{}" : "";
    connection.socket.write(
      `${first.slice(5)}${method} ${urlOf(path)} HTTP/1.1\r\nHost: x\r\n` +
        `Authorization: Bearer ${requesters.alice!.credential}\r\n` +
        (body ? `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n` : "") +
        `\r\n${body}`,
    );
  }
  for (const { connection, method, path } of connections) {
    await connection.closed;
    const second = connection.answer().split(/(?=HTTP\/1\.1 )/)[1] ?? "";
    const [head, text] = [
      second.slice(0, second.indexOf("\r\n\r\n")),
      second.slice(second.indexOf("\r\n\r\n") + 4),
    ];
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
    assert.ok(status > 0, `${method} ${path} while shutting down: ${connection.answer()}`);
    const headers = new Map(
      head
        .split("\r\n")
        .slice(1)
        .map((line) => [
          line.slice(0, line.indexOf(":")).toLowerCase(),
          line.slice(line.indexOf(":") + 1).trim(),
        ]),
    );
    check(method, path, status, headers, text);
  }
  await stopping;

  // And nothing documented was left unseen, but the 500 of a failure inside the server.
  const missing = operations.flatMap(([method, path]) =>
    Object.keys(doc.paths[path]![method.toLowerCase()]!.responses)
      .filter((status) => status !== "500" && !seen.has(`${method} ${path} ${status}`))
      .map((status) => `${method} ${path} ${status}`),
  );
  assert.deepEqual(missing, []);
});
