/**
 * TLS on both listeners (docs/PROTOCOL.md §3, §12), with a throwaway CA made by `openssl`: rounds
 * over wss://, the distribution API over https://, the TLS versions served, and every way a client
 * can fail to trust or reach a TLS server — each refused at once with a clear error, never a hang.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFile, readFile, stat } from "node:fs/promises";
import { createServer as createHttpsServer } from "node:https";
import { type AddressInfo, connect as netConnect } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { AdminClient } from "../../src/client/admin-client.js";
import { Contributor } from "../../src/client/contributor.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { EntropyPool } from "../../src/client/entropy.js";
import { createHttpCall } from "../../src/client/http-call.js";
import { PinStore } from "../../src/client/pins.js";
import { isDkeygenError } from "../../src/errors.js";
import { issueEnrollmentToken } from "../../src/server/enrollment.js";
import { ADMIN_TOKEN_FILE, loadOrCreateKeyFile, startServer } from "../../src/server/runtime.js";
import { loadTlsCredentials } from "../../src/server/tls-credentials.js";
import { isLoopbackHost, tlsServerSettings } from "../../src/transport/tls.js";
import { dialWs, listenWs } from "../../src/transport/ws.js";
import {
  captureLogger,
  startContributors,
  startTestServer,
  type TestServer,
  tempDir,
} from "../helpers/ceremony.js";
import { registerTestRequester } from "../helpers/distribution.js";
import { makeTestPki, skipWithoutOpenssl as skip, type TestPki } from "../helpers/tls.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
let pki: TestPki;
let server: TestServer;

before(async () => {
  if (skip) return;
  dir = await tempDir();
  pki = makeTestPki(dir.path);
  server = await startTestServer(
    { quorum: 2 },
    { tls: { certFile: pki.certFile, keyFile: pki.keyFile, ca: await pki.ca() } },
  );
  await startContributors(server, 2);
});

after(async () => {
  if (skip) return;
  await server.cleanup();
  await dir.remove();
});

/** Rejects unless `promise` fails with a DkeygenError of `code` whose message matches. */
async function refused(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<Error> {
  const error = await promise.then(
    () => assert.fail("it was accepted"),
    (e: unknown) => e as Error,
  );
  assert.ok(isDkeygenError(error, code as "E_TLS"), `${code} expected, got ${String(error)}`);
  assert.match(error.message, pattern);
  return error;
}

const portOf = (url: string) => Number(new URL(url).port);

/** The TLS version a raw TLS client with these settings agrees on with 127.0.0.1:port. */
function handshake(
  port: number,
  options: { ca?: string; minVersion?: "TLSv1" | "TLSv1.2"; maxVersion?: "TLSv1.1" | "TLSv1.2" },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ...options }, () => {
      resolve(socket.getProtocol() ?? "none");
      socket.end();
    });
    socket.on("error", reject);
  });
}

test("a round completes over wss:// with contributors and an admin that trust the server's CA, and its key is fetched over https://", {
  skip,
}, async () => {
  assert.match(server.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
  assert.match(server.httpUrl!, /^https:\/\/127\.0\.0\.1:\d+$/);
  const info = JSON.parse(await readFile(join(server.dataDir, "server.json"), "utf8"));
  assert.equal(info.url, server.url);
  assert.equal(info.httpUrl, server.httpUrl);
  assert.equal(server.server.connectedContributors.length, 2);

  const owner = await registerTestRequester(server, "webapp");
  const admin = await server.admin();
  try {
    const record = await admin.generate("ecc", { curve: "p256" }, "webapp");
    assert.equal(record.participants.length, 2);
    const fetched = await owner.client.fetchKey(record.id);
    assert.equal(fetched.record.id, record.id);
    assert.match(String(fetched.secret.pkcs8), /BEGIN PRIVATE KEY/);
  } finally {
    admin.close();
  }
});

test("both listeners negotiate TLS 1.3, still serve a TLS 1.2 client, and refuse TLS 1.1", {
  skip,
}, async () => {
  const ca = await pki.ca();
  for (const url of [server.url, server.httpUrl!]) {
    const port = portOf(url);
    assert.equal(await handshake(port, { ca }), "TLSv1.3", url);
    assert.equal(await handshake(port, { ca, maxVersion: "TLSv1.2" }), "TLSv1.2", url);
    await assert.rejects(handshake(port, { ca, minVersion: "TLSv1", maxVersion: "TLSv1.1" }), url);
  }
});

test("a request that is not a WebSocket upgrade gets 426 from the wss:// listener, as from a plain one", {
  skip,
}, async () => {
  const call = createHttpCall({ ca: await pki.ca() });
  const answer = await call(server.url.replace(/^wss:/, "https:"), { method: "GET" });
  assert.equal(answer.status, 426);
  assert.equal(answer.body.toString(), "Upgrade Required");
  const plain = await listenWs({ host: "127.0.0.1", port: 0, heartbeatMs: 15_000 });
  try {
    const plainAnswer = await call(plain.url.replace(/^ws:/, "http:"), { method: "GET" });
    assert.equal(plainAnswer.status, 426);
  } finally {
    await plain.close();
  }
});

test("a connection that never starts its TLS handshake is dropped after the request timeout", {
  skip,
}, async () => {
  const quick = await startTestServer(
    {},
    {
      http: { requestTimeoutMs: 400 },
      tls: { certFile: pki.certFile, keyFile: pki.keyFile, ca: await pki.ca() },
    },
  );
  try {
    const started = Date.now();
    const socket = netConnect(portOf(quick.httpUrl!), "127.0.0.1");
    await new Promise<void>((resolve) => socket.on("close", () => resolve()));
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 350 && elapsed < 2000, `dropped after ${elapsed} ms`);
  } finally {
    await quick.cleanup();
  }
});

test("a client that does not trust the server's certificate is refused at once with E_TLS, on both listeners", {
  skip,
}, async () => {
  const started = Date.now();
  const untrusted = /TLS: .* presented a certificate this client does not trust .*--ca FILE/;
  // No CA: the system's public CAs do not know ours. Another CA: not the one that issued it.
  await refused(dialWs(server.url), "E_TLS", untrusted);
  await refused(dialWs(server.url, { ca: await pki.otherCa() }), "E_TLS", untrusted);
  const token = await loadOrCreateKeyFile(join(server.dataDir, ADMIN_TOKEN_FILE));
  await refused(AdminClient.connect({ url: server.url, token }), "E_TLS", untrusted);
  const call = createHttpCall({ ca: await pki.otherCa() });
  await refused(call(`${server.httpUrl}/v1/health`, { method: "GET" }), "E_TLS", untrusted);
  const requester = await registerTestRequester(
    { ...server, ca: undefined } as TestServer,
    "untrusting",
  );
  await refused(requester.client.getKey("0".repeat(26)), "E_TLS", untrusted);
  assert.ok(Date.now() - started < 5000, "refused promptly, not after a timeout");
});

test("a contributor that does not trust the server's certificate stops with E_TLS instead of retrying", {
  skip,
}, async () => {
  const dataDir = join(server.root, "untrusting-contributor");
  const { token } = await issueEnrollmentToken(server.dataDir, { name: "untrusting" });
  const contributor = new Contributor({
    serverUrl: server.url,
    state: await loadOrCreateContributorState(dataDir),
    entropy: new EntropyPool(new Uint8Array(0), "os"),
    pins: new PinStore(dataDir),
    token,
    // Reconnecting is on: a TLS refusal must stop it anyway.
    reconnect: { initialMs: 50, maxMs: 100 },
    ca: await pki.otherCa(),
  });
  const events: string[] = [];
  contributor.onEvent((e) => events.push(e.type));
  try {
    // A contributor that retried instead would never settle start(): give up after 10 s.
    const retrying = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("still retrying after 10 s")), 10_000).unref(),
    );
    await refused(Promise.race([contributor.start(), retrying]), "E_TLS", /TLS: .* does not trust/);
    const fatal = await contributor.done;
    assert.ok(isDkeygenError(fatal, "E_TLS"));
    assert.deepEqual(events, ["stopped"], "it never retried");
  } finally {
    await contributor.stop();
  }
});

test("a certificate for another name is refused, naming the address", { skip }, async () => {
  const credentials = await loadTlsCredentials({
    certFile: pki.otherNameCertFile,
    keyFile: pki.otherNameKeyFile,
  });
  const listener = await listenWs({
    host: "127.0.0.1",
    port: 0,
    heartbeatMs: 15_000,
    tls: credentials,
  });
  const https = createHttpsServer(tlsServerSettings(credentials), (_q, r) => r.end("{}"));
  await new Promise<void>((resolve) => https.listen(0, "127.0.0.1", resolve));
  try {
    const ca = await pki.ca();
    const wrongName = /TLS: the certificate of .*127\.0\.0\.1.* is not for that address/;
    await refused(dialWs(listener.url, { ca }), "E_TLS", wrongName);
    const port = (https.address() as AddressInfo).port;
    await refused(
      createHttpCall({ ca })(`https://127.0.0.1:${port}/`, { method: "GET" }),
      "E_TLS",
      wrongName,
    );
  } finally {
    await listener.close();
    https.close();
  }
});

test("a plain client at a TLS listener is told to use wss:// or https://; a TLS client at a plain one that the server does not speak TLS", {
  skip,
}, async () => {
  const plainWs = server.url.replace(/^wss:/, "ws:");
  const error = await dialWs(plainWs).then(
    () => assert.fail("a plain client was served"),
    (e: Error) => e,
  );
  assert.match(error.message, /connect with wss:\/\//);
  await refused(
    createHttpCall()(`${server.httpUrl!.replace(/^https:/, "http:")}/v1/health`, { method: "GET" }),
    "E_UNAVAILABLE",
    /connect with https:\/\//,
  );

  const plain = await listenWs({ host: "127.0.0.1", port: 0, heartbeatMs: 15_000 });
  try {
    const notTls = /TLS handshake with .* failed: .*does not speak TLS there/;
    await refused(
      dialWs(plain.url.replace(/^ws:/, "wss:"), { ca: await pki.ca() }),
      "E_TLS",
      notTls,
    );
    await refused(
      createHttpCall()(`${plain.url.replace(/^ws:/, "https:")}/`, { method: "GET" }),
      "E_TLS",
      notTls,
    );
  } finally {
    await plain.close();
  }
});

test("a certificate and key that cannot serve are refused at start, each naming its file", {
  skip,
}, async () => {
  const at = (name: string) => join(dir.path, name);
  const load = (certFile: string, keyFile: string) => loadTlsCredentials({ certFile, keyFile });
  await refused(
    load(at("nowhere.pem"), pki.keyFile),
    "E_OPERATIONAL",
    /Cannot read the TLS certificate file .*nowhere\.pem/,
  );
  await refused(
    load(pki.certFile, at("nowhere.key")),
    "E_OPERATIONAL",
    /Cannot read the TLS key file .*nowhere\.key/,
  );
  // A key file others may read: refused like every secret file.
  await copyFile(pki.keyFile, at("open.key"));
  execFileSync("chmod", ["644", at("open.key")]);
  await refused(
    load(pki.certFile, at("open.key")),
    "E_OPERATIONAL",
    /open\.key is accessible by others \(mode 644\).*chmod 600/,
  );
  await refused(
    load(pki.certFile, pki.strayKeyFile),
    "E_INVALID_INPUT",
    /certificate .*server\.pem does not match the key .*stray\.key/,
  );
  await refused(
    load(pki.keyFile, pki.keyFile),
    "E_INVALID_INPUT",
    /certificate file .*server\.key does not hold a PEM certificate/,
  );
  await copyFile(pki.certFile, at("cert-as-key.pem"));
  execFileSync("chmod", ["600", at("cert-as-key.pem")]);
  await refused(
    load(pki.certFile, at("cert-as-key.pem")),
    "E_INVALID_INPUT",
    /key file .*cert-as-key\.pem does not hold a PEM private key/,
  );
  execFileSync("openssl", [
    "pkey",
    "-in",
    pki.keyFile,
    "-aes256",
    "-passout",
    "pass:secret",
    "-out",
    at("encrypted.key"),
  ]);
  execFileSync("chmod", ["600", at("encrypted.key")]);
  await refused(
    load(pki.certFile, at("encrypted.key")),
    "E_INVALID_INPUT",
    /encrypted.key is encrypted/,
  );

  // The server refuses to start before it opens anything.
  const dataDir = at("never-started");
  await refused(
    startServer({
      dataDir,
      port: 0,
      logger: captureLogger().logger,
      http: { port: 0 },
      otpPool: { size: 0 },
      tls: { certFile: pki.certFile, keyFile: pki.strayKeyFile },
    }),
    "E_INVALID_INPUT",
    /does not match/,
  );
  await assert.rejects(stat(dataDir), { code: "ENOENT" });
});

test("a plain listener off loopback is logged as a warning; plain on loopback and TLS anywhere are not", {
  skip,
}, async () => {
  for (const host of ["127.0.0.1", "127.9.8.7", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"])
    assert.equal(isLoopbackHost(host), true, host);
  for (const host of ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "192.168.1.127", "example.com"])
    assert.equal(isLoopbackHost(host), false, host);

  const warnings = async (tls: boolean) => {
    const log = captureLogger();
    const running = await startServer({
      dataDir: join(dir.path, `warn-${tls}`),
      host: "0.0.0.0",
      port: 0,
      logger: log.logger,
      http: { host: "127.0.0.1", port: 0 },
      otpPool: { size: 0 },
      ...(tls ? { tls: { certFile: pki.certFile, keyFile: pki.keyFile } } : {}),
    });
    await running.stop();
    return log
      .lines()
      .map((line) => JSON.parse(line))
      .filter((entry) => entry.level === "warn" || entry.level === 40);
  };
  const plain = await warnings(false);
  assert.equal(plain.length, 1, JSON.stringify(plain));
  assert.equal(plain[0].listener, "websocket");
  assert.match(plain[0].msg, /WITHOUT TLS on a non-loopback address: enrollment tokens/);
  assert.deepEqual(await warnings(true), []);
});
