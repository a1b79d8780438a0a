/**
 * A distribution server shutting down answers what reaches it in the API's error shape: 503
 * E_UNAVAILABLE with Retry-After and Connection: close, never a bare framework error.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import { ErrorCodes } from "../../src/errors.js";
import { startTestServer } from "../helpers/ceremony.js";
import { rawConnection, registerTestRequester } from "../helpers/distribution.js";

test("a request that arrives while the server shuts down gets 503 E_UNAVAILABLE with Retry-After and Connection: close", async () => {
  const server = await startTestServer({ quorum: 2 });
  try {
    const alice = await registerTestRequester(server, "alice-app");
    const { port } = new URL(server.httpUrl!);
    const { socket, answer, closed } = await rawConnection(server);
    // Request A is under way (headers sent, body not yet) when the shutdown starts, so its
    // connection is not idle and stays open.
    const body = JSON.stringify({ subject: "someone" });
    socket.write(
      `POST /v1/otp/unlock HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.credential}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stopping = server.stop();
    await new Promise((resolve) => setTimeout(resolve, 100));
    // A's body, then request B, which reaches the server after the shutdown began.
    socket.write(`${body.slice(5)}GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n`);
    await closed;
    await stopping;

    const responses = answer().split(/(?=HTTP\/1\.1 )/);
    assert.equal(responses.length, 2, answer());
    assert.match(responses[0]!, /^HTTP\/1\.1 200 /, "the request under way is answered");
    const b = responses[1]!;
    assert.match(b, /^HTTP\/1\.1 503 /);
    assert.match(b, /\r\nretry-after: 1\r\n/i);
    assert.match(b, /\r\nconnection: close\r\n/i);
    const error = JSON.parse(b.slice(b.indexOf("\r\n\r\n") + 4)) as {
      error: { code: string; retryAfter: number };
    };
    assert.equal(error.error.code, ErrorCodes.UNAVAILABLE);
    assert.equal(error.error.retryAfter, 1);
    // And nobody new gets in.
    await assert.rejects(
      new Promise((resolve, reject) => {
        const late = connect(Number(port), "127.0.0.1");
        late.once("connect", () => {
          late.destroy();
          resolve(undefined);
        });
        late.once("error", reject);
      }),
      /ECONNREFUSED/,
    );
  } finally {
    await server.cleanup();
  }
});
