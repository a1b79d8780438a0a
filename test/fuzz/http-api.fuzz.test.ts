/**
 * Property-based fuzzing of the distribution HTTP API (fast-check): for every route and every
 * field, requests that pass a naive shape check but are wrong — wrong types, numbers as strings,
 * off-by-one lengths and ranges, extra and missing fields, control characters, ANSI escapes and
 * bidirectional controls in values and in field names, huge numbers, nested junk, `__proto__` —
 * with credential, request-id and content-type variants. Properties, for every case:
 *
 * - the answer is one of the route's documented statuses (PROTOCOL.md §12.2, §12.3), never a 500,
 *   and an error answer has the documented body with a stable code that belongs to its status;
 * - every answer to an authenticated request carries a MAC that verifies (§12.8), but a
 *   delivery's 200 answer, which its envelope authenticates;
 * - the server keeps serving an honest client between cases;
 * - no log line, JSON or pretty, holds a raw control character the input chose.
 *
 * The bulk runs through `app.inject()` on an app built over a real server's parts (store,
 * registry, pool, key generation server); a smaller run goes over a real socket to the listening
 * server. `npm test` runs a quick seed; `npm run fuzz` runs FUZZ_RUNS (100,000) per route.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import fc from "fast-check";
import type { FastifyInstance } from "fastify";
import { toBase32 } from "../../src/derive/otpauth.js";
import { ErrorCodes } from "../../src/errors.js";
import { hasUnprintable } from "../../src/printable.js";
import { answerMacMatches, deriveResponseKey } from "../../src/protocol/answer-auth.js";
import { parseRoundEntry } from "../../src/protocol/log-entry.js";
import { buildDistributionApp } from "../../src/server/distribution/app.js";
import { MemoryAttemptLimiter } from "../../src/server/distribution/attempts.js";
import { OtpPool } from "../../src/server/distribution/otp-pool.js";
import { RequesterRegistry } from "../../src/server/requesters.js";
import { encodeStoredSecret } from "../../src/server/stored-secret.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { registerTestRequester, type TestRequester } from "../helpers/distribution.js";
import { fuzzParameters, fuzzRuns, reportFuzz } from "../helpers/fuzz.js";
import { captureBothFormats } from "../helpers/log-capture.js";

let server: TestServer;
let honest: TestRequester;
let responseKey: Buffer;
let app: FastifyInstance;
let logs: ReturnType<typeof captureBothFormats>;
let totpId: string;
/** A multisig set split for honest-app alone: its key is honest-app's, its derivation secret nobody's. */
let splitId: string;
/** The round ids the log holds, for inclusion proofs by round. */
let loggedRounds: string[] = [];

before(async () => {
  // The inject app shares the listening server's store and key generation server (so valid
  // enrollments run real rounds) but has no pool of its own and does not wait: an OTP request
  // finding none ready is answered 503 at once.
  server = await startTestServer(
    { quorum: 2 },
    { otpPool: 20, http: { rateLimitPerAddress: 0, otpPerMinutePerRequester: 0 } },
  );
  honest = await registerTestRequester(server, "honest-app");
  const [, name, secret] = /^dkr_([^.]+)\.(.+)$/.exec(honest.credential)!;
  responseKey = deriveResponseKey(name!, secret!);
  const seed = new Uint8Array(20).fill(7);
  const record = await server.store.put({
    purpose: "totp",
    roundId: "AAAAAAAAAAAAAAAAAAAAAA",
    participants: [],
    algorithm: "totp/v1",
    owner: honest.id,
    subject: "alice",
    public: {
      type: "totp",
      issuer: "ACME",
      account: "alice",
      algorithm: "SHA1",
      digits: 6,
      period: 30,
    },
    secret: encodeStoredSecret({
      v: 1,
      derivationSecret: "00".repeat(64),
      batch: { index: 0, size: 1 },
      params: {},
      output: { secret: toBase32(seed), uri: "otpauth://totp/ACME:alice" },
    }),
  });
  totpId = record.id;
  logs = captureBothFormats();
  app = await buildDistributionApp(
    {
      store: server.store,
      requesters: await RequesterRegistry.load(server.dataDir),
      pool: new OtpPool({
        store: server.store,
        rounds: server.server,
        size: 0,
        digits: 6,
        logger: logs.logger,
      }),
      rounds: server.server,
      limiter: new MemoryAttemptLimiter({ maxFailures: 5, lockMs: 60_000 }),
      logger: logs.logger,
      log: server.server.log,
    },
    {
      otpWaitMs: 0,
      rateLimitPerAddress: 0,
      rateLimitPerCredential: 0,
      otpPerMinutePerRequester: 0,
    },
  );
  await startContributors(server, 2);
  await server.pool!.refill();
  // A few more rounds, so that the log's proofs have a few levels.
  const admin = await server.admin();
  for (let i = 0; i < 4; i++) await admin.generate("nonce", {});
  splitId = (await admin.generate("multisig", { m: 1 }, undefined, ["honest-app"])).id;
  admin.close();
  const log = server.server.log;
  await log.ready();
  loggedRounds = (await log.entries(0, log.size)).map((leaf) => parseRoundEntry(leaf).roundId);
  assert.ok(loggedRounds.length > 0, "the refill's rounds are in the log");
});
after(async () => {
  await app?.close();
  await server?.cleanup();
});

// ---- Values ---------------------------------------------------------------------------------

/** Characters a log line must never carry raw: C0, DEL, C1, line separators, bidi controls. */
const NASTY = [
  "\u0000",
  "\u0007",
  "\b",
  "\t",
  "\n",
  "\r",
  "\u001b[31m",
  "\u001b]0;title\u0007",
  "\u007f",
  "\u0085",
  "\u009b",
  "\u2028",
  "\u2029",
  "\u202e",
  "\u2066",
  "\u2069",
  "\\",
  '"',
];
const nastyString = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc
    .tuple(fc.string({ maxLength: 8 }), fc.constantFrom(...NASTY), fc.string({ maxLength: 8 }))
    .map(([a, b, c]) => a + b + c),
  fc.constantFrom("", " ", "__proto__", "constructor", "toString", "null", "0", "-1", "1e309"),
);
const junk: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    nastyString,
    fc.integer(),
    fc.constantFrom(
      0,
      -0,
      1e308,
      -1e308,
      2 ** 53,
      2 ** 53 + 2,
      0.5,
      true,
      false,
      null,
      Number.MAX_SAFE_INTEGER,
    ),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(nastyString, tie("value"), { maxKeys: 3 }),
  ),
})).value;

const SUBJECT_CHARS = "abcXYZ019._@+:-";
const subjectOf = (length: number) =>
  fc
    .array(fc.constantFrom(...SUBJECT_CHARS), { minLength: length - 1, maxLength: length - 1 })
    .map((rest) => `a${rest.join("")}`);
/** A subject: valid, at the 128-character boundary either side, or wrong. */
const subject = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("alice", "bob@example.com", "u:1") },
  { weight: 1, arbitrary: subjectOf(128) },
  { weight: 1, arbitrary: subjectOf(129) },
  { weight: 1, arbitrary: fc.constantFrom("-lead", ".x", "a b", "", "é", "a\u202eb") },
  { weight: 2, arbitrary: junk },
);
const digitsString = (n: number) =>
  fc.array(fc.constantFrom(..."0123456789"), { minLength: n, maxLength: n }).map((d) => d.join(""));
const code = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 6, max: 10 }).chain(digitsString) },
  { weight: 1, arbitrary: fc.constantFrom(5, 11).chain(digitsString) },
  { weight: 1, arbitrary: fc.constantFrom(123456, "12345a", " 123456", "١٢٣٤٥٦") },
  { weight: 2, arbitrary: junk },
);
const intAround = (values: number[]) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...values) },
    { weight: 1, arbitrary: fc.constantFrom(...values.map(String)) },
    { weight: 1, arbitrary: fc.constantFrom(...values.map((v) => v + 0.5)) },
    { weight: 1, arbitrary: junk },
  );
const issuer = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("ACME", "a".repeat(64)) },
  { weight: 1, arbitrary: fc.constantFrom("", "a".repeat(65), "AC:ME", "AC\u001bME") },
  { weight: 1, arbitrary: junk },
);

type Fields = Record<string, fc.Arbitrary<unknown>>;

/** A body built from valid fields, then broken in one of the ways a careless client would. */
function bodyFor(required: Fields, optional: Fields): fc.Arbitrary<string> {
  const keys = [...Object.keys(required), ...Object.keys(optional)];
  const object = fc.record(
    { ...required, ...optional },
    { requiredKeys: Object.keys(required) as never[] },
  );
  const broken = fc.tuple(object, fc.nat(), nastyString, junk).map(([o, pick, name, value]) => {
    const copy: Record<string, unknown> = { ...(o as object) };
    const field = keys[pick % keys.length]!;
    switch (pick % 4) {
      case 0:
        delete copy[field];
        break;
      case 1:
        copy[field] = value;
        break;
      default:
        // An extra field, its name chosen by the peer (JSON.parse makes __proto__ an own key).
        Object.assign(
          copy,
          JSON.parse(`{${JSON.stringify(name)}:${JSON.stringify(value) ?? "null"}}`),
        );
    }
    return JSON.stringify(copy);
  });
  return fc.oneof(
    { weight: 3, arbitrary: object.map((o) => JSON.stringify(o)) },
    { weight: 4, arbitrary: broken },
    { weight: 1, arbitrary: junk.map((j) => JSON.stringify(j) ?? "") },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.string({ maxLength: 40 }),
        // Not JSON, with something a log line must not carry where a parser would quote it.
        fc.tuple(fc.constantFrom("{", '{"a":', "[", ""), nastyString).map(([a, b]) => a + b),
        object.map((o) => JSON.stringify(o).slice(0, -1)),
        fc.constantFrom(
          "",
          "{",
          "{}}",
          '{"__proto__":{"polluted":1}}',
          '{"constructor":{"prototype":{}}}',
        ),
      ),
    },
  );
}

const RECORD_IDS = [
  "01ARZ3NDEKTSV4RRFFQ69G5FAV",
  "01arz3ndektsv4rrffq69g5fav",
  "01ARZ3NDEKTSV4RRFFQ69G5FA",
];
/** A record id, with the placeholders for the records made in before() put in. */
const placed = (id: string) => (id === "@TOTP" ? totpId : id === "@SPLIT" ? splitId : id);
const recordId = fc.oneof(
  fc.constantFrom(...RECORD_IDS),
  fc.constant("@TOTP"),
  fc.constant("@SPLIT"),
  fc.string({ maxLength: 30 }).map(encodeURIComponent),
  fc.constantFrom("%", "%zz", "a%2Fb", "x".repeat(65), "x".repeat(64), "%E2%80%AE", "%1B%5B31m"),
  // Dot segments, which a client resolves before sending: mostly a path no route takes.
  fc.constantFrom(".", "..", "x/..", "%2E"),
);

/** A tree size or leaf index: around the log's size now, at 2^53, or no decimal at all. */
const logSize = () => server.server.log.size;
const sizeParam = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: -1, max: 1 }).map((d) => String(logSize() + d)) },
  { weight: 4, arbitrary: fc.nat().map((n) => String(n % (logSize() + 2))) },
  { weight: 2, arbitrary: fc.constantFrom("0", "1", "2", "999", "1000", "1001") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "9007199254740991",
      "9007199254740992",
      "99999999999999999",
      "01",
      "00",
      "-1",
      "+1",
      "-0",
      "1.0",
      "1e3",
      "0x1",
      " 1",
      "1 ",
      "",
      "١",
      "Infinity",
      "NaN",
    ),
  },
  { weight: 1, arbitrary: fc.nat().map(String) },
  { weight: 1, arbitrary: nastyString },
);
/** A message to sign: canonical base64url of 1 to 16 KiB (and just over), or not base64url. */
const signMessage = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .uint8Array({ minLength: 1, maxLength: 64 })
      .map((b) => Buffer.from(b).toString("base64url")),
  },
  { weight: 1, arbitrary: fc.constantFrom("", "A", "AB=", "A".repeat(21846), "A".repeat(21848)) },
  { weight: 1, arbitrary: nastyString },
);
/** A round id: one the log holds, one it does not, a non-canonical or wrong-length one. */
const roundIdParam = fc.oneof(
  { weight: 3, arbitrary: fc.nat().map((i) => loggedRounds[i % loggedRounds.length]!) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "AAAAAAAAAAAAAAAAAAAAAA",
      "____________________-w",
      "AAAAAAAAAAAAAAAAAAAAAB",
      "A".repeat(21),
      "A".repeat(23),
      "AAAAAAAAAAAAAAAAAAAAA=",
      "AAAAAAAAAAAAAAAAAAAA+/",
    ),
  },
  { weight: 1, arbitrary: nastyString },
);
/** Query-string pieces no encoder would write: bad percent-encoding, empty names, brackets. */
const RAW_QUERY = fc.constantFrom(
  "",
  "&",
  "&&",
  "=",
  "==",
  "start",
  "start=",
  "=1",
  "%",
  "%zz",
  "start=%zz",
  "index=%2B1",
  "%00=1",
  "start=1&start=2",
  "start[]=1",
  "index[0]=1",
  "__proto__[size]=1",
  "constructor[prototype][x]=1",
  ";from=1",
  "from=1;to=2",
  "roundId=%41%41",
);

/**
 * A path with a query string for `params`: usually the required ones and some optional ones,
 * sometimes any subset; then maybe a parameter repeated or an unknown one (a hostile name), and
 * a raw piece. Values and names are percent-encoded as a client would.
 */
function queryFor(
  path: string,
  params: Record<string, fc.Arbitrary<string>>,
  required: string[],
): fc.Arbitrary<string> {
  const names = Object.keys(params);
  const given = fc.oneof(
    { weight: 3, arbitrary: fc.record(params, { requiredKeys: required as never[] }) },
    { weight: 1, arbitrary: fc.record(params, { requiredKeys: [] }) },
  );
  const extra = fc.oneof(
    { weight: 3, arbitrary: fc.constant([]) },
    {
      weight: 1,
      arbitrary: fc.array(
        fc.tuple(
          fc.oneof(fc.constantFrom(...names, "__proto__", "constructor", "x"), nastyString),
          fc.oneof(sizeParam, nastyString),
        ),
        { minLength: 1, maxLength: 2 },
      ),
    },
  );
  const raw = fc.oneof(
    { weight: 3, arbitrary: fc.constant("") },
    { weight: 1, arbitrary: RAW_QUERY },
  );
  return fc.tuple(given, extra, raw).map(([chosen, more, raw]) => {
    const pairs = [...Object.entries(chosen as Record<string, string>), ...more].map(
      ([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`,
    );
    if (raw !== "") pairs.push(raw);
    return pairs.length === 0 ? path : `${path}?${pairs.join("&")}`;
  });
}

interface Route {
  method: "GET" | "POST";
  path: string | fc.Arbitrary<string>;
  auth: boolean;
  body?: fc.Arbitrary<string>;
  statuses: number[];
}

const ROUTES: Record<string, Route> = {
  "otp/request": {
    method: "POST",
    path: "/v1/otp/request",
    auth: true,
    body: bodyFor({}, { subject, ttlSeconds: intAround([29, 30, 300, 3600, 3601]) }),
    statuses: [200, 400, 401, 413, 415, 429, 503],
  },
  "otp/verify": {
    method: "POST",
    path: "/v1/otp/verify",
    auth: true,
    body: bodyFor({ subject, code }, {}),
    statuses: [200, 400, 401, 413, 415, 423, 429],
  },
  "otp/unlock": {
    method: "POST",
    path: "/v1/otp/unlock",
    auth: true,
    body: bodyFor({ subject }, {}),
    statuses: [200, 400, 401, 413, 415, 429],
  },
  "totp/enroll": {
    method: "POST",
    path: "/v1/totp/enroll",
    auth: true,
    body: bodyFor(
      { issuer, account: subject },
      {
        algorithm: fc.oneof(
          fc.constantFrom("SHA1", "SHA256", "SHA512", "sha1", "MD5", "SHA1 "),
          junk,
        ),
        digits: intAround([5, 6, 7, 8, 9]),
        period: intAround([14, 15, 300, 301]),
        type: fc.oneof(fc.constantFrom("totp", "hotp", "HOTP", "otp"), junk),
        counter: intAround([-1, 0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1]),
        replace: fc.oneof(fc.boolean(), junk),
        recoveryCodes: intAround([-1, 0, 1, 20, 21]),
      },
    ),
    statuses: [200, 400, 401, 409, 413, 415, 429, 503],
  },
  "totp/verify": {
    method: "POST",
    path: "/v1/totp/verify",
    auth: true,
    body: bodyFor({ account: subject, code }, {}),
    statuses: [200, 400, 401, 404, 413, 415, 423, 429],
  },
  "recovery/verify": {
    method: "POST",
    path: "/v1/recovery/verify",
    auth: true,
    body: bodyFor(
      {
        account: subject,
        code: fc.oneof(
          fc.constantFrom("abcde-fghjk", "ABCDEFGHJK", "abcde fghjk", "abcd-efghjk", "uuuuu-uuuuu"),
          fc.stringMatching(/^[0-9a-z]{5}-[0-9a-z]{5}$/),
          junk,
        ),
      },
      {},
    ),
    statuses: [200, 400, 401, 404, 413, 415, 423, 429],
  },
  "totp/unlock": {
    method: "POST",
    path: "/v1/totp/unlock",
    auth: true,
    body: bodyFor({ subject }, {}),
    statuses: [200, 400, 401, 413, 415, 429],
  },
  "keys/{id}": {
    method: "GET",
    path: recordId.map((id) => `/v1/keys/${placed(id)}`),
    auth: true,
    statuses: [200, 400, 401, 404, 414, 429],
  },
  "keys/{id}/secret": {
    method: "GET",
    path: recordId.map((id) => `/v1/keys/${placed(id)}/secret`),
    auth: true,
    statuses: [200, 400, 401, 404, 414, 429],
  },
  "keys/{id}/derivation-secret": {
    method: "POST",
    path: recordId.map((id) => `/v1/keys/${placed(id)}/derivation-secret`),
    auth: true,
    body: bodyFor({}, {}),
    statuses: [200, 400, 401, 403, 404, 413, 414, 415, 429],
  },
  "keys/{id}/opening": {
    method: "POST",
    path: recordId.map((id) => `/v1/keys/${placed(id)}/opening`),
    auth: true,
    body: bodyFor({}, {}),
    statuses: [200, 400, 401, 403, 404, 413, 414, 415, 429],
  },
  "keys/{id}/sign": {
    method: "POST",
    path: recordId.map((id) => `/v1/keys/${placed(id)}/sign`),
    auth: true,
    body: bodyFor({ message: signMessage }, {}),
    // No threshold key in this store: a record of another purpose is 403, another's is 404.
    statuses: [400, 401, 403, 404, 413, 414, 415, 429],
  },
  requester: { method: "GET", path: "/v1/requester", auth: true, statuses: [200, 401, 429] },
  health: { method: "GET", path: "/v1/health", auth: false, statuses: [200, 429] },
  "log/checkpoint": {
    method: "GET",
    path: queryFor("/v1/log/checkpoint", { start: sizeParam }, []),
    auth: false,
    statuses: [200, 429],
  },
  "log/key": { method: "GET", path: "/v1/log/key", auth: false, statuses: [200, 429] },
  "log/identity": { method: "GET", path: "/v1/log/identity", auth: false, statuses: [200, 429] },
  "log/entries": {
    method: "GET",
    path: queryFor("/v1/log/entries", { start: sizeParam, end: sizeParam }, ["start", "end"]),
    auth: false,
    statuses: [200, 400, 429],
  },
  "log/proof/inclusion": {
    method: "GET",
    path: fc.oneof(
      queryFor("/v1/log/proof/inclusion", { index: sizeParam, size: sizeParam }, ["index"]),
      queryFor("/v1/log/proof/inclusion", { roundId: roundIdParam, size: sizeParam }, ["roundId"]),
      queryFor(
        "/v1/log/proof/inclusion",
        { index: sizeParam, roundId: roundIdParam, size: sizeParam },
        [],
      ),
    ),
    auth: false,
    statuses: [200, 400, 404, 429],
  },
  "log/proof/consistency": {
    method: "GET",
    path: queryFor("/v1/log/proof/consistency", { from: sizeParam, to: sizeParam }, ["from"]),
    auth: false,
    statuses: [200, 400, 429],
  },
  ready: { method: "GET", path: "/v1/ready", auth: false, statuses: [200, 429, 503] },
};

/** Which codes each error status may carry (PROTOCOL.md §12.2). */
const CODES_BY_STATUS: Record<number, string[]> = {
  400: [ErrorCodes.INVALID_INPUT, ErrorCodes.MALFORMED_MESSAGE],
  401: [ErrorCodes.UNAUTHORIZED],
  403: [ErrorCodes.FORBIDDEN],
  404: [ErrorCodes.NOT_FOUND],
  413: [ErrorCodes.PAYLOAD_TOO_LARGE],
  414: [ErrorCodes.INVALID_INPUT],
  415: [ErrorCodes.MALFORMED_MESSAGE],
  409: [ErrorCodes.ALREADY_ENROLLED],
  423: [ErrorCodes.LOCKED],
  429: [ErrorCodes.RATE_LIMITED],
  503: [ErrorCodes.UNAVAILABLE, ErrorCodes.QUORUM_NOT_MET],
};

const UUID = "3f1c2a4e-8b7d-4c6a-9e2f-0123456789ab";
const UUID_PATTERN =
  /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** Header variants. `honest` stands for the honest credential, filled in at run time. */
const authorization = fc.oneof(
  { weight: 6, arbitrary: fc.constant("honest") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "none",
      "Basic aGk6aGk=",
      "Bearer",
      "Bearer ",
      "bearer HONEST",
      "Bearer  HONEST",
      "Bearer HONEST ",
      "Bearer dkr_honest-app.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "Bearer dkr_nobody.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "Bearer dkr_honest-app.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      `Bearer dkr_${"a".repeat(65)}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`,
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 80 }).map((s) => `Bearer ${s}`) },
);
const requestId = fc.oneof(
  fc.constantFrom(undefined, UUID, UUID.toUpperCase(), `${UUID}0`, UUID.slice(1), "", "1", "{}"),
  fc.string({ maxLength: 40 }),
);
const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant("application/json") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      undefined,
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "application/json; charset=latin1",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/jsonx",
      "",
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
);

interface Case {
  path: string;
  authorization: string;
  requestId: string | undefined;
  contentType: string | undefined;
  body: string | undefined;
}

function caseFor(route: Route): fc.Arbitrary<Case> {
  return fc.record({
    path: typeof route.path === "string" ? fc.constant(route.path) : route.path,
    authorization,
    requestId,
    contentType,
    body: route.body ?? fc.constant(undefined),
  });
}

function headersOf(c: Case): Record<string, string> {
  const credential = honest.credential;
  const headers: Record<string, string> = {};
  if (c.authorization === "honest") headers.authorization = `Bearer ${credential}`;
  else if (c.authorization !== "none")
    headers.authorization = c.authorization.replace("HONEST", credential);
  if (c.requestId !== undefined) headers["x-request-id"] = c.requestId;
  if (c.contentType !== undefined && c.body !== undefined) headers["content-type"] = c.contentType;
  return headers;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Uint8Array;
}

/** Checks one answer against the properties; `authenticated` when the honest credential was sent. */
function checkAnswer(
  route: Route,
  c: Case,
  answer: Answer,
  authenticated: boolean,
  /** Over a socket header values arrive without surrounding whitespace; through inject, as given. */
  trimmed = false,
): void {
  const where = `${route.method} ${c.path} -> ${answer.status}`;
  assert.ok(route.statuses.includes(answer.status), `undocumented status: ${where}`);
  const text = Buffer.from(answer.body).toString("utf8");
  if (answer.status >= 400) {
    const body = JSON.parse(text) as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(body).sort(), ["error"], `error body shape: ${where}`);
    const { code: errorCode, message, retryAfter, ...rest } = body.error;
    assert.deepEqual(rest, {}, `error fields: ${where}`);
    assert.ok(
      CODES_BY_STATUS[answer.status]?.includes(errorCode as string),
      `code ${errorCode}: ${where}`,
    );
    assert.equal(typeof message, "string");
    assert.equal(
      answer.headers["retry-after"] === undefined,
      retryAfter === undefined,
      `Retry-After header iff retryAfter: ${where}`,
    );
    if (retryAfter !== undefined)
      assert.ok(Number.isSafeInteger(retryAfter) && (retryAfter as number) >= 1);
  }
  const macHeader = answer.headers["x-dkeygen-mac"];
  // A path that cannot be routed (bad percent-encoding, a parameter too long, no such route, as
  // "/v1/keys/." is) is refused before authentication, so its answer cannot be authenticated.
  // "/v1/keys/./derivation-secret" leaves the client as "/v1/keys/derivation-secret": no route.
  const unroutable =
    answer.status === 414 ||
    (answer.status === 400 && text.includes("The request path is malformed")) ||
    (answer.status === 404 && text.includes('"message":"No route '));
  // A delivery's 200 answer is authenticated by its envelope (km, AAD, sealed payload) instead.
  const sealedDelivery =
    answer.status === 200 &&
    /^\/v1\/(?:otp\/request|totp\/enroll|keys\/[^/]+\/(?:secret|derivation-secret|opening))(?:\?|$)/.test(
      c.path,
    );
  if (sealedDelivery) {
    assert.equal(macHeader, undefined, `a delivery carries no answer MAC: ${where}`);
  } else if (authenticated && answer.status !== 401 && !unroutable) {
    // Only a client that chose the request's id (a UUID) can check the MAC; otherwise the server
    // drew the id, and the MAC must still be there.
    const sentId = trimmed ? c.requestId?.trim() : c.requestId;
    const chosen =
      sentId !== undefined && UUID_PATTERN.test(sentId) ? sentId.toLowerCase() : undefined;
    if (chosen === undefined) {
      assert.match(String(macHeader), /^[A-Za-z0-9_-]{43}$/, `answer MAC present: ${where}`);
    } else {
      assert.ok(
        answerMacMatches(
          typeof macHeader === "string" ? macHeader : undefined,
          responseKey,
          chosen,
          route.method,
          // The path as it leaves an HTTP client, dot segments resolved ("/v1/keys/." is
          // "/v1/keys/"), as the reference client computes it.
          new URL(c.path, "http://localhost").pathname,
          answer.status,
          answer.body,
        ),
        `answer MAC: ${where}`,
      );
    }
  } else {
    assert.equal(macHeader, undefined, `no MAC without authentication: ${where}`);
  }
}

function checkLogs(lines: string[]): void {
  for (const line of lines) {
    assert.equal(
      hasUnprintable(line),
      false,
      `raw control character in a log line: ${JSON.stringify(line)}`,
    );
  }
}

/** The honest client is still served, and its answer authenticated. */
async function honestStillServed(): Promise<void> {
  const answer = await app.inject({
    method: "POST",
    url: "/v1/otp/unlock",
    headers: {
      authorization: `Bearer ${honest.credential}`,
      "content-type": "application/json",
      "x-request-id": UUID,
    },
    payload: '{"subject":"alice"}',
  });
  assert.equal(answer.statusCode, 200);
  assert.ok(
    answerMacMatches(
      answer.headers["x-dkeygen-mac"] as string,
      responseKey,
      UUID,
      "POST",
      "/v1/otp/unlock",
      200,
      answer.rawPayload,
    ),
  );
}

/** Whether `case` was sent with the honest credential exactly. */
const isHonest = (c: Case) => c.authorization === "honest";

for (const [name, route] of Object.entries(ROUTES)) {
  test(`${route.method} /v1/${name}: every fuzzed request gets a documented answer, authenticated when it should be, and leaves no raw control character in the logs`, async () => {
    const started = performance.now();
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(caseFor(route), async (c) => {
        cases++;
        const answer = await app.inject({
          method: route.method,
          url: c.path,
          headers: headersOf(c),
          ...(c.body === undefined ? {} : { payload: c.body }),
        });
        checkAnswer(
          route,
          c,
          { status: answer.statusCode, headers: answer.headers, body: answer.rawPayload },
          route.auth && isHonest(c),
        );
        await honestStillServed();
        checkLogs(logs.take());
      }),
      fuzzParameters(40),
    );
    reportFuzz(`inject ${route.method} /v1/${name}`, cases, started);
  });
}

test("over a real socket, fuzzed requests to every route get documented answers and the server keeps serving", async () => {
  const started = performance.now();
  let cases = 0;
  const names = Object.keys(ROUTES);
  const arbitrary = fc
    .constantFrom(...names)
    .chain((name) => caseFor(ROUTES[name]!).map((c) => ({ name, c })));
  let seen = server.log.lines().length;
  await fc.assert(
    fc.asyncProperty(arbitrary, async ({ name, c }) => {
      const route = ROUTES[name]!;
      let response: Response;
      try {
        response = await fetch(`${server.httpUrl}${c.path}`, {
          method: route.method,
          headers: headersOf(c),
          ...(c.body === undefined ? {} : { body: c.body }),
        });
      } catch (error) {
        // Headers no HTTP client may send (fetch refuses them before the wire): nothing to test.
        if (error instanceof TypeError) return;
        throw error;
      }
      cases++;
      const body = new Uint8Array(await response.arrayBuffer());
      const headers = Object.fromEntries(response.headers);
      // On the wire, header values lose surrounding whitespace (RFC 9110 §5.5), so a credential
      // with a trailing space is the honest one there.
      const sent = headersOf(c).authorization?.trim();
      const authenticated = route.auth && sent === `Bearer ${honest.credential}`;
      checkAnswer(route, c, { status: response.status, headers, body }, authenticated, true);
      const ok = await honest.client.verifyOtp("alice", "000000");
      assert.equal(ok.valid, false);
      await honest.client.unlockOtp("alice");
      const lines = server.log.lines();
      checkLogs(lines.slice(seen));
      seen = lines.length;
    }),
    // A fiftieth of the inject run's count per route (each case here is a round trip or three).
    { ...fuzzParameters(20), numRuns: Math.max(20, Math.floor(fuzzRuns(20) / 50)) },
  );
  reportFuzz("socket, all routes", cases, started);
});
