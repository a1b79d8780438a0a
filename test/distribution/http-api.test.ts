/**
 * The distribution API's edges over real HTTP: authentication, malformed and oversized input,
 * rate limits, slow clients, health, readiness and the OpenAPI document.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ErrorCodes } from "../../src/errors.js";
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
  server = await startTestServer(
    { quorum: 2 },
    { otpPool: 20, http: { requestTimeoutMs: 1000, bodyLimit: 4096, rateLimitPerCredential: 40 } },
  );
  await startContributors(server, 2);
  await server.pool!.refill();
  alice = await registerTestRequester(server, "alice-app");
  bob = await registerTestRequester(server, "bob-app");
});
after(() => server.cleanup());

const code = (result: { body: Record<string, unknown> }) =>
  (result.body.error as { code?: string } | undefined)?.code;

test("unauthenticated and forged requests get 401, all alike, and learn nothing about who exists", async () => {
  const [name, secret] = alice.credential.slice(4).split(".") as [string, string];
  const otherSecret = bob.credential.split(".")[1]!;
  const attempts: (string | undefined)[] = [
    undefined,
    "garbage",
    `Basic ${Buffer.from("alice:pw").toString("base64")}`,
    `Bearer ${alice.credential}x`,
    `Bearer dkr_${name}.${otherSecret}`,
    `Bearer dkr_nobody.${secret}`,
    `Bearer dkr_${name}.${"A".repeat(43)}`,
  ];
  const bodies = new Set<string>();
  for (const authorization of attempts) {
    const result = await http(server, "POST", "/v1/otp/request", {
      body: {},
      ...(authorization === undefined ? {} : { headers: { authorization } }),
    });
    assert.equal(result.status, 401, String(authorization));
    assert.equal(code(result), ErrorCodes.UNAUTHORIZED);
    assert.match(result.headers.get("www-authenticate") ?? "", /^Bearer/);
    bodies.add(JSON.stringify(result.body));
  }
  assert.equal(bodies.size, 1);
  for (const [method, path] of [
    ["POST", "/v1/otp/verify"],
    ["POST", "/v1/totp/enroll"],
    ["GET", "/v1/keys/01M86MVCHH2S3Y5K1BD73BT3PB"],
  ] as const) {
    assert.equal(
      (await http(server, method, path, method === "POST" ? { body: {} } : {})).status,
      401,
      path,
    );
  }
});

test("oversized and malformed bodies get 4xx with a stable error code, never 500", async () => {
  const auth = { credential: alice.credential };
  const cases: {
    body?: string | object;
    headers?: Record<string, string>;
    status: number;
    code: string;
  }[] = [
    { body: "x".repeat(5000), status: 413, code: ErrorCodes.PAYLOAD_TOO_LARGE },
    { body: `{"subject":"${"a".repeat(5000)}"}`, status: 413, code: ErrorCodes.PAYLOAD_TOO_LARGE },
    { body: "{not json", status: 400, code: ErrorCodes.MALFORMED_MESSAGE },
    { body: "[]", status: 400, code: ErrorCodes.INVALID_INPUT },
    { body: '{"subject":5}', status: 400, code: ErrorCodes.INVALID_INPUT },
    { body: '{"subject":"a b"}', status: 400, code: ErrorCodes.INVALID_INPUT },
    { body: '{"ttlSeconds":1}', status: 400, code: ErrorCodes.INVALID_INPUT },
    { body: '{"smuggled":true}', status: 400, code: ErrorCodes.INVALID_INPUT },
    // Refused by the JSON parser itself (prototype poisoning), before validation.
    { body: '{"__proto__":{"x":1}}', status: 400, code: ErrorCodes.MALFORMED_MESSAGE },
    {
      body: "subject=a",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      status: 415,
      code: ErrorCodes.MALFORMED_MESSAGE,
    },
  ];
  for (const c of cases) {
    const result = await http(server, "POST", "/v1/otp/request", {
      ...auth,
      body: c.body,
      ...(c.headers ? { headers: c.headers } : {}),
    });
    assert.equal(
      result.status,
      c.status,
      `${String(c.body).slice(0, 40)} → ${JSON.stringify(result.body)}`,
    );
    assert.equal(code(result), c.code);
  }
  const verify = await http(server, "POST", "/v1/otp/verify", {
    ...auth,
    body: { subject: "x", code: "12ab56" },
  });
  assert.equal(verify.status, 400);
  assert.equal(code(verify), ErrorCodes.INVALID_INPUT);
  const badId = await http(server, "GET", "/v1/keys/not-a-ulid", auth);
  assert.equal(badId.status, 400);
  const noRoute = await http(server, "GET", "/v1/nothing-here", auth);
  assert.equal(noRoute.status, 404);
  assert.equal(code(noRoute), ErrorCodes.NOT_FOUND);
  const wrongMethod = await http(server, "GET", "/v1/otp/request", auth);
  assert.equal(wrongMethod.status, 404);
  // And the server is fine afterwards.
  assert.match((await alice.client.requestOtp()).code, /^\d{6}$/);
});

test("a request no route takes is refused 404 before its body is read, whatever the body", async () => {
  const auth = { credential: alice.credential };
  const bodies: [string, Record<string, string>][] = [
    ["{", {}],
    ["not json", { "content-type": "text/plain" }],
    ["{}", { "content-type": "application/xml" }],
    [`{"a":"${"x".repeat(5000)}"}`, {}],
  ];
  // fetch, like every HTTP client, resolves dot segments: these arrive as /v1/keys/opening,
  // /v1/keys/sign, /v1/keys/derivation-secret and /v1/keys/, which no route takes.
  for (const path of [
    "/v1/nothing-here",
    "/v1/keys/./opening",
    "/v1/keys/./sign",
    "/v1/keys/./derivation-secret",
    "/v1/keys/.",
    "/v1/keys/x/../../opening",
  ]) {
    for (const [body, headers] of bodies) {
      for (const credential of [auth, {}]) {
        const result = await http(server, "POST", path, { ...credential, body, headers });
        const where = `POST ${path} ${body.slice(0, 12)} ${JSON.stringify(headers)}`;
        assert.equal(result.status, 404, where);
        assert.equal(code(result), ErrorCodes.NOT_FOUND, where);
        assert.match(
          String(result.body.error && (result.body.error as { message: string }).message),
          /^No route POST \/v1\//,
          where,
        );
        // Refused before authentication: nothing to authenticate it with.
        assert.equal(result.headers.get("x-dkeygen-mac"), null, where);
      }
    }
  }
  // GET /v1/keys/. and /v1/keys/./secret arrive as /v1/keys/ and /v1/keys/secret: the record
  // route, with the id "" and "secret", which is authenticated and then fails its pattern.
  for (const path of ["/v1/keys/.", "/v1/keys/./secret"]) {
    const result = await http(server, "GET", path, auth);
    assert.equal(result.status, 400, path);
    assert.equal(code(result), ErrorCodes.INVALID_INPUT, path);
    assert.match(result.headers.get("x-dkeygen-mac") ?? "", /^[A-Za-z0-9_-]{43}$/, path);
  }
});

test("a dot segment sent as is reaches its route as the parameter, and is authenticated and refused there", async () => {
  for (const [method, path] of [
    ["POST", "/v1/keys/./opening"],
    ["POST", "/v1/keys/./sign"],
    ["POST", "/v1/keys/./derivation-secret"],
    ["GET", "/v1/keys/./secret"],
    ["GET", "/v1/keys/.."],
  ] as const) {
    const { socket, answer, closed } = await rawConnection(server);
    socket.write(
      `${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.credential}\r\n` +
        (method === "POST"
          ? "Content-Type: application/json\r\nContent-Length: 1\r\nConnection: close\r\n\r\n{"
          : "Connection: close\r\n\r\n"),
    );
    await closed;
    const text = answer();
    // Authentication ran (the answer carries its MAC), then the id "." failed its pattern before
    // the body was validated.
    assert.match(text, /^HTTP\/1\.1 400 /, `${method} ${path}: ${text}`);
    assert.match(text, /\r\nx-dkeygen-mac: [A-Za-z0-9_-]{43}\r\n/i, `${method} ${path}`);
  }
});

test("a credential over its rate limit gets 429 with Retry-After; others are not affected", async () => {
  let limited: Awaited<ReturnType<typeof http>> | undefined;
  for (let i = 0; i < 60 && !limited; i++) {
    const result = await http(server, "GET", "/v1/keys/01M86MVCHH2S3Y5K1BD73BT3PB", {
      credential: bob.credential,
    });
    if (result.status === 429) limited = result;
    else assert.equal(result.status, 404);
  }
  assert.ok(limited, "the limit of 40 a minute was reached");
  assert.equal(code(limited), ErrorCodes.RATE_LIMITED);
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  assert.equal(
    (
      await http(server, "GET", "/v1/keys/01M86MVCHH2S3Y5K1BD73BT3PB", {
        credential: alice.credential,
      })
    ).status,
    404,
  );
});

test("a client that sends its request too slowly is cut off", async () => {
  const { socket, answer, closed } = await rawConnection(server);
  // Authenticated, so the server waits for the body — which never comes.
  socket.write(
    `POST /v1/otp/request HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.credential}\r\n` +
      "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
  );
  const started = Date.now();
  await closed;
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 4000, `held for ${elapsed} ms`);
  assert.match(answer(), /^HTTP\/1\.1 408 /);
  assert.equal(errorCodeOf(answer()), ErrorCodes.TIMEOUT);
});

/** Sends raw bytes on a fresh connection; resolves with everything the server wrote before closing. */
async function rawExchange(bytes: string): Promise<string> {
  const { socket, answer, closed } = await rawConnection(server);
  socket.write(bytes);
  await closed;
  return answer();
}

/** The error code in a raw HTTP answer's JSON body. */
function errorCodeOf(answer: string): string | undefined {
  const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
  return (JSON.parse(body) as { error: { code: string } }).error.code;
}

test("answers written before routing (not HTTP, headers too large, path too long) keep the error shape", async () => {
  const garbage = await rawExchange("\x16\x03\x01 this is not HTTP\r\n\r\n");
  assert.match(garbage, /^HTTP\/1\.1 400 /);
  assert.equal(errorCodeOf(garbage), ErrorCodes.MALFORMED_MESSAGE);

  const huge = await rawExchange(
    `GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Filler: ${"a".repeat(20_000)}\r\n\r\n`,
  );
  assert.match(huge, /^HTTP\/1\.1 431 /);
  assert.equal(errorCodeOf(huge), ErrorCodes.PAYLOAD_TOO_LARGE);

  const longId = "0".repeat(100);
  const tooLong = await http(server, "GET", `/v1/keys/${longId}`, {
    credential: alice.credential,
  });
  assert.equal(tooLong.status, 414);
  assert.equal(code(tooLong), ErrorCodes.INVALID_INPUT);
  assert.ok(!JSON.stringify(tooLong.body).includes(longId), "the path is not echoed");

  const badEncoding = await http(server, "GET", "/v1/keys/%E0%A4%A", {
    credential: alice.credential,
  });
  assert.equal(badEncoding.status, 400);
  assert.equal(code(badEncoding), ErrorCodes.MALFORMED_MESSAGE);
  // The server is fine afterwards.
  assert.equal((await http(server, "GET", "/v1/health")).status, 200);
});

test("health, readiness and the OpenAPI document are served without credentials", async () => {
  const health = await http(server, "GET", "/v1/health");
  assert.deepEqual([health.status, health.body], [200, { status: "ok" }]);
  const ready = await http(server, "GET", "/v1/ready");
  assert.equal(ready.status, 200);
  assert.equal(ready.body.status, "ready");
  assert.equal(ready.body.contributors, 2);
  const doc = await http(server, "GET", "/v1/openapi.json");
  assert.equal(doc.status, 200);
  assert.equal((doc.body.info as { title: string }).title, "dkeygen key distribution API");
  const paths = doc.body.paths as Record<
    string,
    Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>
  >;
  for (const path of [
    "/v1/otp/request",
    "/v1/otp/verify",
    "/v1/otp/unlock",
    "/v1/totp/enroll",
    "/v1/totp/verify",
    "/v1/totp/unlock",
    "/v1/keys/{id}",
    "/v1/keys/{id}/secret",
    "/v1/health",
    "/v1/ready",
  ]) {
    assert.ok(paths[path], `${path} is documented`);
    for (const operation of Object.values(paths[path]!)) {
      assert.ok(operation.responses["200"], `${path} documents its 200 answer`);
    }
  }
  assert.ok(paths["/v1/otp/request"]!.post!.requestBody, "request bodies are documented");
});
