/**
 * The one place the distribution server maps errors to answers: a DkeygenError to its stable code
 * and status (src/errors.ts), fastify's validation, body-size and parse errors to theirs, anything
 * else to a 500 that shows no internals; and Node's HTTP parser errors, answered in the same shape
 * before any request exists. Every body is `{"error":{"code","message","retryAfter"?}}`.
 */
import type { Duplex } from "node:stream";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import {
  DkeygenError,
  describeError,
  ErrorCodes,
  httpStatusFor,
  isDkeygenError,
} from "../../errors.js";
import type { Logger } from "../../logging.js";
import { printableShort } from "../../printable.js";

/** Maps any error to the API's error body; returns the status. */
export function errorBody(error: FastifyError | DkeygenError | Error): {
  status: number;
  body: { error: { code: string; message: string; retryAfter?: number } };
} {
  if (isDkeygenError(error)) {
    const status = httpStatusFor(error);
    // A 503 always says when to come back (RFC 9110 §15.6.4): a round that missed its quorum or
    // timed out may well succeed once contributors reconnect.
    const retryAfter =
      error.retryAfterSeconds ?? (status === 503 ? DEFAULT_RETRY_AFTER_SECONDS : undefined);
    return {
      status,
      body: {
        error: {
          code: error.code,
          message: error.answer ?? error.message,
          ...(retryAfter === undefined ? {} : { retryAfter }),
        },
      },
    };
  }
  const fe = error as FastifyError;
  if (fe.validation) {
    return {
      status: 400,
      body: {
        error: { code: ErrorCodes.INVALID_INPUT, message: `Invalid request: ${fe.message}.` },
      },
    };
  }
  if (fe.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
    return {
      status: 413,
      body: {
        error: { code: ErrorCodes.PAYLOAD_TOO_LARGE, message: "The request body is too large." },
      },
    };
  }
  if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Malformed JSON, unsupported media type, empty body and the like.
    return {
      status: fe.statusCode,
      body: {
        error: {
          code: ErrorCodes.MALFORMED_MESSAGE,
          message: `The request is malformed: ${fe.message}`,
        },
      },
    };
  }
  return {
    status: 500,
    body: {
      error: { code: ErrorCodes.OPERATIONAL, message: "The server could not handle the request." },
    },
  };
}

/** Retry-After of a 503 whose cause did not name one. */
const DEFAULT_RETRY_AFTER_SECONDS = 5;

/** The error body, serialized, for answers written before fastify routes a request. */
function rawErrorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/**
 * Errors Node's HTTP parser reports before any request exists (fastify's clientErrorHandler):
 * a request not received whole in time, headers too large, or bytes that are not HTTP. Answered
 * in the API's error shape, then the connection is closed.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [status, reason, code, message] =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [408, "Request Timeout", ErrorCodes.TIMEOUT, "The request did not arrive in time."]
      : error.code === "HPE_HEADER_OVERFLOW"
        ? [
            431,
            "Request Header Fields Too Large",
            ErrorCodes.PAYLOAD_TOO_LARGE,
            "The request headers are too large.",
          ]
        : [400, "Bad Request", ErrorCodes.MALFORMED_MESSAGE, "The request is not valid HTTP."];
  if (socket.writable) {
    const body = rawErrorBody(code, message);
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * Errors fastify meets before routing (its frameworkErrors): a path that is not valid URL
 * encoding, or a path parameter over maxParamLength.
 */
export function frameworkErrorHandler(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const tooLong = error.code === "FST_ERR_MAX_PARAM_LENGTH";
  void reply
    .header("x-request-id", request.id)
    .code(tooLong ? 414 : 400)
    .send({
      error: tooLong
        ? { code: ErrorCodes.INVALID_INPUT, message: "A path parameter is too long." }
        : { code: ErrorCodes.MALFORMED_MESSAGE, message: "The request path is malformed." },
    });
}

/** Every error a route or hook throws, and every unknown route, answered and logged here. */
export function setErrorHandlers(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((error: FastifyError | DkeygenError, request, reply) => {
    const { status, body } = errorBody(error);
    const fields = {
      reqId: request.id,
      route: request.routeOptions.url,
      status,
      code: body.error.code,
      requester: request.requester?.name,
      ip: request.ip,
    };
    if (status >= 500 && !isDkeygenError(error))
      logger.error({ ...fields, err: describeError(error) }, "internal error");
    else if (isDkeygenError(error) && error.answer !== undefined)
      // What the client was not told (a database's address and error) is the operator's.
      logger.warn(fields, `request refused: ${error.message}`);
    else logger.info(fields, `request refused: ${body.error.message}`);
    if (body.error.retryAfter !== undefined)
      reply.header("retry-after", String(body.error.retryAfter));
    void reply.status(status).send(body);
  });
  // Unreachable while the onRequest hook refuses every unrouted request (app.ts), but fastify's
  // own 404 answer must never be the one sent.
  app.setNotFoundHandler((request, reply) => {
    const { status, body } = errorBody(noRoute(request));
    void reply.status(status).send(body);
  });
}

/**
 * The refusal of a request no route takes (an unknown path, or a known path with another method).
 * Fastify's not-found route reads and parses the body like any other, so without this refusal in
 * onRequest an unrouted request's malformed body would be answered 400 (or 413, 415) instead of
 * 404, and a stranger could make us parse it.
 */
export function noRoute(request: FastifyRequest): DkeygenError {
  return new DkeygenError(
    ErrorCodes.NOT_FOUND,
    // The path is the caller's: escaped and cut, like anything a peer chose that we repeat.
    `No route ${printableShort(request.method, 16)} ${printableShort(request.url.split("?")[0]!, 128)}.`,
  );
}
