/**
 * What each route answers: every status it can really return, with what the status means there,
 * its body's schema and the headers it carries. The result is the route's fastify response schema
 * (so every body is serialized from it) and, through @fastify/swagger, the responses of its
 * OpenAPI operation. test/distribution/openapi-contract.test.ts drives every route through each
 * of these answers on a real server and fails on any status or body not documented here.
 *
 * Some answers come from the app's hooks rather than the route: the per-address rate limit (429)
 * and a server that is shutting down (503) on every route; authentication (401) and the
 * per-requester limit (429) on protected ones; body parsing (400, 413, 415) on routes with a body;
 * the path parameter's checks (400, 414) on routes with one; the query string's checks (400) on
 * routes that take query parameters.
 */
import { type TSchema, Type } from "@sinclair/typebox";
import { ErrorBody } from "./schemas.js";

type Status = 200 | 400 | 401 | 403 | 404 | 409 | 413 | 414 | 415 | 423 | 429 | 500 | 503;

export interface RouteAnswers {
  /** The 200 answer: its body and what it is. */
  ok: [TSchema, string];
  /** Protected by a requester credential: answers carry the answer MAC (PROTOCOL §12.8). */
  authenticated?: boolean;
  /** The 200 answer is a delivery, authenticated by its envelope instead of a MAC. */
  sealed?: boolean;
  /** Takes a JSON body. */
  body?: boolean;
  /** Takes a path parameter. */
  params?: boolean;
  /** Takes query parameters (the route's querystring schema; unknown ones are ignored). */
  query?: boolean;
  /** The 200 answer is UTF-8 text (text/plain), not JSON; its schema is a string's. */
  text?: boolean;
  /** What the 200 answer's Cache-Control header says, on routes that send one. */
  cache?: string;
  /** The route's own answers: status → what it means here (added to the common meaning). */
  errors?: Partial<Record<Status, string>>;
  /** A body other than ErrorBody for an error status. */
  bodies?: Partial<Record<Status, TSchema>>;
}

const header = (description: string, format?: string) => ({
  type: "string",
  description,
  ...(format === undefined ? {} : { format }),
});

const REQUEST_ID = header(
  "This request's id: the X-Request-Id the client sent if it is a UUID (lowercased), else a UUID v4 the server drew. Deliveries bind it (PROTOCOL §12.4); the server's log lines name it.",
  "uuid",
);
const MAC = header(
  "The answer's MAC under the requester's response key, base64url (PROTOCOL §12.8): on every answer to an authenticated request, errors included, except a delivery's 200 answer. A client checks it before it reads anything of the answer.",
);
const RETRY_AFTER = header("Seconds before a retry may succeed; the body's retryAfter.");
const WWW_AUTHENTICATE = header('Bearer realm="dkeygen"');

const COMMON: Partial<Record<Status, string>> = {
  429: "Over the rate limit of this address (E_RATE_LIMITED)",
  500: "The server could not handle the request (E_OPERATIONAL, E_STORE_CORRUPT); never the client's own mistake",
  503: "The server is shutting down (E_UNAVAILABLE, retryAfter 1, Connection: close)",
};

/** The response schemas of a route (see the module header). */
export function answers(spec: RouteAnswers): Record<number, TSchema> {
  const meaning = new Map<Status, string[]>();
  const add = (status: Status, text: string) =>
    meaning.set(status, [...(meaning.get(status) ?? []), text]);
  for (const [status, text] of Object.entries(COMMON)) add(Number(status) as Status, text);
  if (spec.authenticated) {
    add(
      401,
      "No valid requester credential (E_UNAUTHORIZED), or a registration that predates authenticated answers",
    );
    add(429, "or over this requester's rate limit");
  }
  if (spec.body) {
    add(
      400,
      "A body that is not JSON (E_MALFORMED_MESSAGE) or does not match the schema (E_INVALID_INPUT)",
    );
    add(413, "The body is over the size limit (E_PAYLOAD_TOO_LARGE)");
    add(415, "A Content-Type other than application/json (E_MALFORMED_MESSAGE)");
  }
  if (spec.params) {
    add(
      400,
      "A path parameter that does not match its pattern (E_INVALID_INPUT), or a path that is not valid percent-encoding (E_MALFORMED_MESSAGE)",
    );
    add(414, "A path parameter over 64 characters (E_INVALID_INPUT)");
  }
  if (spec.query) {
    add(400, "A query parameter missing, repeated or not matching its pattern (E_INVALID_INPUT)");
  }
  for (const [status, text] of Object.entries(spec.errors ?? {})) {
    add(Number(status) as Status, text);
  }
  const result: Record<number, TSchema> = {
    200: withHeaders(spec.ok[0], spec.ok[1], 200, spec),
  };
  for (const [status, texts] of [...meaning].sort(([a], [b]) => a - b)) {
    const body = spec.bodies?.[status] ?? ErrorBody;
    result[status] = withHeaders(body, `${texts.join("; ")}.`, status, spec);
  }
  return result;
}

function withHeaders(
  body: TSchema,
  description: string,
  status: Status,
  spec: RouteAnswers,
): TSchema {
  // Never on a 401 or 414: those requests were not authenticated (a 414 is answered before).
  const mac =
    spec.authenticated && status !== 401 && status !== 414 && !(spec.sealed && status === 200);
  // Each status gets its own copy; an $id would name them all alike.
  const { $id: _id, ...schema } = body;
  const headers = {
    "X-Request-Id": REQUEST_ID,
    ...(mac ? { "X-Dkeygen-Mac": MAC } : {}),
    ...(status === 401 ? { "WWW-Authenticate": WWW_AUTHENTICATE } : {}),
    ...(status === 423 || status === 429 || status === 503 ? { "Retry-After": RETRY_AFTER } : {}),
    ...(status === 200 && spec.cache !== undefined ? { "Cache-Control": header(spec.cache) } : {}),
  };
  // A text answer names its media type; fastify then leaves the string it is sent as it is.
  if (status === 200 && spec.text) {
    return {
      description,
      headers,
      content: { "text/plain": { schema } },
    } as unknown as TSchema;
  }
  return { ...schema, description, headers };
}

/**
 * A route's schema as the OpenAPI document shows it: with the optional X-Request-Id request
 * header, which the server reads itself (it is not validated: anything but a UUID is ignored).
 */
export function withRequestIdHeader<S extends { headers?: unknown } | undefined>(schema: S): S {
  if (schema === undefined || schema.headers !== undefined) return schema;
  return {
    ...schema,
    headers: Type.Object({
      "X-Request-Id": Type.Optional(
        Type.String({
          format: "uuid",
          description:
            "This request's id, fresh for each request: the server lowercases it, logs it, binds it into a delivery (PROTOCOL §12.4) and answers it as requestId and X-Request-Id. Anything but a UUID is ignored and the server draws one.",
        }),
      ),
    }),
  };
}

/** A status whose body is the route's own or, from the app's hooks, an ErrorBody. */
export const orErrorBody = (body: TSchema): TSchema => {
  const { $id: _id, ...error } = ErrorBody;
  return Type.Union([body, error]);
};
