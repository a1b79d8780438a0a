/**
 * The requesting client's HTTP/1.1 calls (RFC 9110, RFC 9112) on node:http and node:https. Node
 * 20's global fetch takes no CA, and a distribution server with a private CA's certificate needs
 * one (`--ca`), so the client makes its requests here: one deadline for the whole call (connect,
 * TLS, request, answer), an answer of at most `maxResponseBytes`, and the answer as status,
 * headers and the body's bytes exactly as received. Connections are kept alive between calls, as
 * fetch does; an idle one does not keep the process running.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { plainToTlsHint, tlsClientSettings, tlsFailure } from "../transport/tls.js";
import { unreachableHint } from "./unreachable.js";

export interface HttpCallOptions {
  /** https:// only: trust only these CA certificates (PEM) instead of the system's. */
  ca?: string;
  /** The whole call's deadline (default 30 s). */
  timeoutMs?: number;
  /** The largest answer body accepted (default 1 MiB). */
  maxResponseBytes?: number;
}

export interface HttpRequest {
  method: "GET" | "HEAD" | "POST" | "PUT" | "DELETE";
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body's bytes, as they came (a MAC over them can be checked). */
  body: Buffer;
}

export type HttpCall = (url: string, request: HttpRequest) => Promise<HttpResponse>;

export const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * A function that makes HTTP(S) calls with these options. Every failure is a DkeygenError:
 * E_TLS for a TLS handshake that failed, E_UNAVAILABLE for a server that cannot be reached or did
 * not answer in time, E_MALFORMED_MESSAGE for an answer too large or cut short.
 */
export function createHttpCall(options: HttpCallOptions = {}): HttpCall {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const plainAgent = new HttpAgent({ keepAlive: true });
  const tlsAgent = new HttpsAgent({ keepAlive: true, ...tlsClientSettings(options.ca) });

  return (url, request) =>
    new Promise<HttpResponse>((resolve, reject) => {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        target = new URL("invalid:");
      }
      if (target.protocol !== "http:" && target.protocol !== "https:") {
        reject(
          new DkeygenError(ErrorCodes.INVALID_INPUT, `${url} is not an http:// or https:// URL.`),
        );
        return;
      }
      const origin = target.origin;
      const secure = target.protocol === "https:";
      const body =
        request.body === undefined
          ? undefined
          : typeof request.body === "string"
            ? Buffer.from(request.body, "utf8")
            : Buffer.from(request.body);
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        outcome();
      };
      const fail = (error: Error) =>
        settle(() => {
          req.destroy();
          reject(error);
        });
      const unreachable = (cause: Error) =>
        tlsFailure(cause, origin) ??
        new DkeygenError(
          ErrorCodes.UNAVAILABLE,
          `Cannot reach ${origin}: ${
            unreachableHint(cause, origin, "distribution") ??
            (plainToTlsHint(cause, url) ?? cause).message
          }`,
          { cause },
        );

      let req: ReturnType<typeof httpRequest>;
      /** One try; `mayRetry`: the first, which may be sent again once (below). */
      const send = (mayRetry: boolean): void => {
        let answered = false;
        req = (secure ? httpsRequest : httpRequest)(
          target,
          {
            method: request.method,
            headers: {
              ...request.headers,
              ...(body === undefined ? {} : { "content-length": String(body.length) }),
            },
            // The retry gets a connection of its own: the agent's next kept-alive one may be
            // just as stale (a server's idle timeout closes several at once).
            ...(mayRetry
              ? { agent: secure ? tlsAgent : plainAgent }
              : { agent: false, ...(secure ? tlsClientSettings(options.ca) : {}) }),
          },
          (response) => {
            answered = true;
            const chunks: Buffer[] = [];
            let size = 0;
            response.on("data", (chunk: Buffer) => {
              size += chunk.length;
              if (size > maxBytes) {
                fail(
                  new DkeygenError(
                    ErrorCodes.MALFORMED_MESSAGE,
                    `The answer from ${origin} is larger than ${maxBytes} bytes; it was not read.`,
                  ),
                );
                return;
              }
              chunks.push(chunk);
            });
            response.on("end", () =>
              settle(() =>
                resolve({
                  status: response.statusCode ?? 0,
                  headers: response.headers,
                  body: Buffer.concat(chunks, size),
                }),
              ),
            );
            // Once the answer has begun, a lost connection means an answer cut short.
            const cutShort = () =>
              fail(
                new DkeygenError(
                  ErrorCodes.MALFORMED_MESSAGE,
                  `The answer from ${origin} was cut short.`,
                ),
              );
            response.on("close", () => {
              if (!response.complete) cutShort();
            });
            response.on("error", cutShort);
          },
        );
        req.on("error", (error: NodeJS.ErrnoException) => {
          // A kept-alive connection the server closed (idle) just as this request went out on it:
          // nothing was answered, so the request is sent once more on a new connection (what
          // Node's documentation advises for `reusedSocket`). Any other failure is the caller's.
          if (mayRetry && !answered && req.reusedSocket && error.code === "ECONNRESET") send(false);
          else fail(unreachable(error));
        });
        req.end(body);
      };
      const timer = setTimeout(
        () =>
          fail(
            new DkeygenError(
              ErrorCodes.UNAVAILABLE,
              `${origin} did not answer within ${timeoutMs} ms.`,
            ),
          ),
        timeoutMs,
      );
      send(true);
    });
}
