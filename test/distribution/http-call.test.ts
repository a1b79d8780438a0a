/**
 * The requesting client's HTTP calls (src/client/http-call.ts) against bare node:http servers that
 * misbehave on purpose: the body comes back byte for byte, and an answer too large, too late or
 * cut short is refused with a stable code instead of being waited on or read whole.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createHttpCall, DEFAULT_MAX_RESPONSE_BYTES } from "../../src/client/http-call.js";
import { isDkeygenError } from "../../src/errors.js";

async function withServer(
  handler: (request: IncomingMessage, response: ServerResponse) => void,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await body(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function refusedWith(promise: Promise<unknown>, code: string, pattern: RegExp) {
  const error = await promise.then(
    () => assert.fail("it was accepted"),
    (e: unknown) => e as Error,
  );
  assert.ok(isDkeygenError(error, code as "E_TIMEOUT"), `${code} expected, got ${String(error)}`);
  assert.match(error.message, pattern);
}

test("a call sends its method, headers and body, and returns status, headers and the body's exact bytes", async () => {
  const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x7b, 0x0a]);
  await withServer(
    (request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (c: Buffer) => chunks.push(c));
      request.on("end", () => {
        response.writeHead(201, {
          "x-seen": `${request.method} ${request.url} ${request.headers["x-test"]} ${Buffer.concat(chunks).toString()}`,
        });
        response.end(bytes);
      });
    },
    async (url) => {
      const call = createHttpCall();
      const answer = await call(`${url}/v1/x`, {
        method: "POST",
        headers: { "x-test": "yes" },
        body: '{"a":1}',
      });
      assert.equal(answer.status, 201);
      assert.equal(answer.headers["x-seen"], 'POST /v1/x yes {"a":1}');
      assert.deepEqual(answer.body, bytes);
    },
  );
});

test("an answer over the size limit is refused (the limit itself is read), and so is one cut short", async () => {
  assert.equal(DEFAULT_MAX_RESPONSE_BYTES, 1024 * 1024);
  await withServer(
    (request, response) => {
      if (request.url === "/short") {
        response.writeHead(200, { "content-length": "100" });
        response.write("only ten b");
        setTimeout(() => response.socket?.destroy(), 20);
        return;
      }
      response.end("x".repeat(Number(request.url!.slice(1))));
    },
    async (url) => {
      const call = createHttpCall({ maxResponseBytes: 1000 });
      assert.equal((await call(`${url}/1000`, { method: "GET" })).body.length, 1000);
      await refusedWith(
        call(`${url}/1001`, { method: "GET" }),
        "E_MALFORMED_MESSAGE",
        /larger than 1000 bytes/,
      );
      await refusedWith(
        call(`${url}/short`, { method: "GET" }),
        "E_MALFORMED_MESSAGE",
        /cut short/,
      );
    },
  );
});

test("a server that does not answer within the deadline is given up on, with E_UNAVAILABLE naming the time", async () => {
  await withServer(
    () => {},
    async (url) => {
      const started = Date.now();
      await refusedWith(
        createHttpCall({ timeoutMs: 300 })(`${url}/`, { method: "GET" }),
        "E_UNAVAILABLE",
        /did not answer within 300 ms/,
      );
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 290 && elapsed < 2000, `${elapsed} ms`);
    },
  );
});

test("a server that is not there is E_UNAVAILABLE, and a URL that is not http(s) is refused before any connection", async () => {
  let port = 0;
  await withServer(
    () => {},
    async (url) => {
      port = Number(new URL(url).port);
    },
  );
  await refusedWith(
    createHttpCall()(`http://127.0.0.1:${port}/`, { method: "GET" }),
    "E_UNAVAILABLE",
    /Cannot reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/,
  );
  await refusedWith(
    createHttpCall()("ftp://127.0.0.1/", { method: "GET" }),
    "E_INVALID_INPUT",
    /not an http:\/\/ or https:\/\/ URL/,
  );
});

test("a kept-alive connection reset as the next request goes out on it is sent once more on a new one; a reset on a new connection is not", async () => {
  let served = 0;
  await withServer(
    (request, response) => {
      served += 1;
      if (served === 2) {
        // The second request arrives on the first one's kept-alive connection: reset it unanswered.
        request.socket.resetAndDestroy();
        return;
      }
      response.end(`answer ${served}`);
    },
    async (url) => {
      const call = createHttpCall({ timeoutMs: 5000 });
      assert.equal((await call(url, { method: "GET", headers: {} })).body.toString(), "answer 1");
      const second = await call(url, { method: "POST", headers: {}, body: "x" });
      assert.equal(second.body.toString(), "answer 3");
      assert.equal(served, 3);
    },
  );
  served = 1; // the next request is the "second": reset on a connection never used before
  await withServer(
    (request, response) => {
      served += 1;
      if (served === 2) request.socket.resetAndDestroy();
      else response.end("late");
    },
    async (url) => {
      const call = createHttpCall({ timeoutMs: 5000 });
      await refusedWith(call(url, { method: "GET", headers: {} }), "E_UNAVAILABLE", /ECONNRESET/);
      assert.equal(served, 2, "not sent again");
    },
  );
});

test("when every kept-alive connection was reset at once (the server's idle timeout closed them together), the one retry goes out on a new connection, not on the next stale one", async () => {
  const old = new Set<unknown>();
  let phase: "fill" | "stale" = "fill";
  const waiting: ServerResponse[] = [];
  let resets = 0;
  await withServer(
    (request, response) => {
      if (phase === "fill") {
        // Three calls at once: the client's agent opens three connections and keeps them.
        old.add(request.socket);
        waiting.push(response);
        if (waiting.length === 3) for (const r of waiting) r.end("filled");
        return;
      }
      if (old.has(request.socket)) {
        resets += 1;
        request.socket.resetAndDestroy();
        return;
      }
      response.end("fresh");
    },
    async (url) => {
      const call = createHttpCall({ timeoutMs: 5000 });
      await Promise.all([1, 2, 3].map(() => call(url, { method: "GET", headers: {} })));
      assert.equal(old.size, 3, "three kept-alive connections");
      phase = "stale";
      const answer = await call(url, { method: "POST", headers: {}, body: "x" });
      assert.equal(answer.body.toString(), "fresh");
      assert.equal(resets, 1, "one stale connection tried, then a new one");
    },
  );
});
