/**
 * The server under hostile and unlucky conditions, over real loopback sockets: malformed frames,
 * contributors that drop or go silent mid-round, too few contributors, strangers, wrong admin
 * tokens, restarts, and a torn key_store line.
 */
import assert from "node:assert/strict";
import { appendFile, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { AdminClient } from "../../src/client/admin-client.js";
import { Secret } from "../../src/crypto/secret.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { issueEnrollmentToken } from "../../src/server/enrollment.js";
import { decodeStoredSecret } from "../../src/server/stored-secret.js";
import {
  buildContribution,
  commitAndReveal,
  enrolledRawPeer,
  RawPeer,
  startContributors,
  startTestServer,
  waitFor,
} from "../helpers/ceremony.js";

test("malformed, oversized and out-of-order frames do not crash the server", async () => {
  const server = await startTestServer({ quorum: 2 });
  try {
    await startContributors(server, 2);
    // Before joining: anything but join/admin.auth is refused and the peer is cut off.
    const stranger = await RawPeer.connect(server.url);
    stranger.send("this is not json");
    assert.equal((await stranger.next("error")).code, ErrorCodes.MALFORMED_MESSAGE);
    await waitFor(() => stranger.closed, 3000, "the stranger to be disconnected");

    const peer = await enrolledRawPeer(server);
    const garbage: unknown[] = [
      "{",
      "[]",
      "null",
      "\u0000\u0001\u0002",
      `{"type":"nope","v":${PROTOCOL_VERSION}}`,
      '{"type":"commit"}',
      `{"type":"join","v":${PROTOCOL_VERSION}}`,
      { type: "admin.generate", v: PROTOCOL_VERSION, requestId: "x", purpose: "otp", params: {} },
      { type: "round.open", v: PROTOCOL_VERSION },
      { type: "reveal", v: PROTOCOL_VERSION, roundId: 5 },
    ];
    for (const frame of garbage) peer.send(frame);
    for (let i = 0; i < garbage.length; i++) {
      const error = await peer.next("error");
      assert.ok(
        [ErrorCodes.MALFORMED_MESSAGE, ErrorCodes.UNEXPECTED_MESSAGE].includes(error.code as never),
        error.code,
      );
    }
    assert.equal(peer.closed, undefined, "a joined peer is not cut off for a few mistakes");

    // Another protocol version ends the conversation.
    const old = await enrolledRawPeer(server);
    old.send({ type: "commit", v: PROTOCOL_VERSION - 1 });
    const versionError = await old.next("error");
    assert.equal(versionError.code, ErrorCodes.VERSION_MISMATCH);
    assert.equal(versionError.fatal, true);

    // An oversized frame is cut off by the transport before it is buffered whole.
    const big = await enrolledRawPeer(server);
    big.send("x".repeat(MAX_FRAME_BYTES + 10));
    await waitFor(() => big.closed, 3000, "the oversized sender to be disconnected");
    assert.equal(big.closed?.code, 1009);

    // A peer that keeps erring is eventually disconnected.
    const noisy = await enrolledRawPeer(server);
    for (let i = 0; i < 20; i++) noisy.send("{");
    await waitFor(() => noisy.closed, 3000, "the noisy peer to be disconnected");

    // The server still works.
    peer.close();
    const admin = await server.admin();
    const record = await admin.generate("otp", {});
    admin.close();
    assert.equal(record.participants.length, 2);
    assert.match(server.log.text(), /rejected: /);
  } finally {
    await server.cleanup();
  }
});

test("a contributor dropping mid-round does not hold the round until its deadline", async () => {
  const server = await startTestServer({ quorum: 2, roundTimeoutMs: 20_000 });
  try {
    await startContributors(server, 2);
    const peer = await enrolledRawPeer(server);
    const admin = await server.admin();
    const started = Date.now();
    const pending = admin.generate("otp", {});
    await peer.next("round.open");
    peer.close();
    const record = await pending;
    admin.close();
    assert.equal(record.participants.length, 2);
    assert.ok(Date.now() - started < 10_000, "the round closed once nobody else could answer");
  } finally {
    await server.cleanup();
  }
});

test("a silent contributor cannot stall a round past its deadline", async () => {
  const server = await startTestServer({ quorum: 2, roundTimeoutMs: 1500 });
  try {
    await startContributors(server, 2);
    const silent = await enrolledRawPeer(server);
    const admin = await server.admin();
    const started = Date.now();
    const record = await admin.generate("otp", {});
    const elapsed = Date.now() - started;
    admin.close();
    assert.equal(record.participants.length, 2);
    assert.ok(elapsed >= 1400 && elapsed < 5000, `round took ${elapsed} ms`);
    // Its late answer is refused as late.
    const open = await silent.next("round.open");
    silent.send(buildContribution(silent, open).commit);
    assert.equal((await silent.next("error")).code, ErrorCodes.LATE_CONTRIBUTION);
  } finally {
    await server.cleanup();
  }
});

test("a round without its quorum fails with a clear reason and stores nothing", async () => {
  const server = await startTestServer({ quorum: 2, roundTimeoutMs: 1000 });
  try {
    const admin = await server.admin();
    // Nobody connected.
    await assert.rejects(admin.generate("otp", {}), (e: unknown) => {
      assert.ok(isDkeygenError(e, ErrorCodes.QUORUM_NOT_MET));
      assert.match(e.message, /Only 0 contributors are connected; a round needs at least 2/);
      return true;
    });
    // Two invited, one answers.
    await startContributors(server, 1);
    await enrolledRawPeer(server);
    await assert.rejects(admin.generate("otp", {}), (e: unknown) => {
      assert.ok(isDkeygenError(e, ErrorCodes.QUORUM_NOT_MET));
      assert.match(e.message, /1 of 2 invited contributors committed; the quorum is 2/);
      return true;
    });
    admin.close();
    assert.equal((await server.store.list()).length, 0);
  } finally {
    await server.cleanup();
  }
});

test("strangers, spent tokens and forged joins are refused", async () => {
  const server = await startTestServer();
  try {
    const refusedWith = async (peer: RawPeer, code: string) => {
      const error = await peer.next("error");
      assert.equal(error.code, code);
      assert.equal(error.fatal, true);
      await waitFor(() => peer.closed, 3000, "the peer to be disconnected");
    };
    const unknown = await RawPeer.connect(server.url);
    unknown.join();
    await refusedWith(unknown, ErrorCodes.NOT_ENROLLED);

    const bogus = await RawPeer.connect(server.url);
    bogus.join(`dkt_AAAAAAAAAAAAAAAA.${"A".repeat(43)}`);
    await refusedWith(bogus, ErrorCodes.NOT_ENROLLED);

    const { token } = await issueEnrollmentToken(server.dataDir);
    const first = await RawPeer.connect(server.url);
    first.join(token);
    await first.next("welcome");
    const second = await RawPeer.connect(server.url);
    second.join(token);
    await refusedWith(second, ErrorCodes.NOT_ENROLLED);

    // The enrolled identity, but a signature over another challenge.
    const replayer = await RawPeer.connect(server.url, first.identity);
    replayer.hello = { ...replayer.hello, challenge: first.hello.challenge };
    replayer.join();
    await refusedWith(replayer, ErrorCodes.BAD_SIGNATURE);

    const expired = await issueEnrollmentToken(server.dataDir, {
      ttlMs: 1,
      now: new Date(Date.now() - 1000),
    });
    const late = await RawPeer.connect(server.url);
    late.join(expired.token);
    await refusedWith(late, ErrorCodes.NOT_ENROLLED);
  } finally {
    await server.cleanup();
  }
});

test("an admin with the wrong token is refused", async () => {
  const server = await startTestServer();
  try {
    await assert.rejects(
      AdminClient.connect({
        url: server.url,
        token: new Secret(new Uint8Array(32).fill(7)),
        expectedFingerprint: server.fingerprint,
      }),
      (e: unknown) => isDkeygenError(e, ErrorCodes.UNAUTHORIZED),
    );
  } finally {
    await server.cleanup();
  }
});

test("no secret reaches the server's log, and no stored secret is in the key_store file in the clear", async () => {
  const server = await startTestServer({ quorum: 2 });
  try {
    await startContributors(server, 2);
    const { token } = await issueEnrollmentToken(server.dataDir);
    const peer = await RawPeer.connect(server.url);
    peer.join(token);
    await peer.next("welcome");
    const admin = await server.admin();
    const pending = admin.generate("otp", {});
    const open = await peer.next("round.open");
    await commitAndReveal(peer, open);
    const record = await pending;
    admin.close();

    const secret = decodeStoredSecret(await server.store.readSecret(record.id));
    const roundSecret = Buffer.from(secret.derivationSecret, "hex");
    assert.equal(roundSecret.length, 64);
    assert.match(String(secret.output.code), /^\d{6}$/);
    const encodings = (bytes: Buffer) => [
      bytes.toString("hex"),
      bytes.toString("base64"),
      bytes.toString("base64url"),
      bytes.subarray(0, 16).toString("hex"),
      bytes.subarray(24, 40).toString("base64url"),
    ];
    const logText = server.log.text();
    const storeText = await readFile(join(server.dataDir, "key_store"), "utf8");
    const tokenSecret = token.split(".")[1]!;
    for (const needle of [...encodings(roundSecret), tokenSecret, open.seed]) {
      assert.ok(!logText.includes(needle), "a secret reached the log");
      assert.ok(!storeText.includes(needle), "a secret is in key_store in the clear");
    }
    assert.ok(!storeText.includes(`"code":"${secret.output.code}"`));
  } finally {
    await server.cleanup();
  }
});

test("the server comes back after a torn key_store line with every acknowledged record", async () => {
  const first = await startTestServer({ quorum: 2 });
  let second: Awaited<ReturnType<typeof startTestServer>> | undefined;
  try {
    const contributors = await startContributors(first, 2);
    const admin = await first.admin();
    const one = await admin.generate("otp", {});
    admin.close();
    await first.stop();
    // A crash in the middle of an append leaves half a line behind.
    await appendFile(join(first.dataDir, "key_store"), '{"mac":"0123abc","body":{"t":"rec');

    for (const c of contributors) await c.contributor.stop();
    second = await startTestServer({ quorum: 2 }, { dataDir: first.root });
    assert.equal(second.fingerprint, first.fingerprint, "same key after restart");
    const records = await second.store.list();
    assert.deepEqual(
      records.map((r) => r.id),
      [one.id],
      "the acknowledged record survived; the torn line was not merged",
    );
    const files = await readdir(second.dataDir);
    assert.ok(
      files.some((f) => f.startsWith("key_store.torn-")),
      "the torn bytes were kept aside",
    );
    await startContributors(second, 2, "again");
    const admin2 = await second.admin();
    const two = await admin2.generate("otp", {});
    admin2.close();
    assert.equal((await second.store.list()).length, 2);
    assert.notEqual(two.id, one.id);
  } finally {
    await second?.cleanup();
    await first.cleanup();
  }
});

test("a contributor reconnects with backoff when the server goes away and comes back", async () => {
  const first = await startTestServer({ quorum: 2 });
  const port = Number(new URL(first.url).port);
  let second: Awaited<ReturnType<typeof startTestServer>> | undefined;
  try {
    const [a, b] = await startContributors(first, 2, "r", {
      reconnect: { initialMs: 50, maxMs: 400 },
    });
    await first.stop();
    await waitFor(() => a!.events.some((e) => e.type === "disconnected"), 5000, "a disconnect");
    second = await startTestServer({ quorum: 2 }, { dataDir: first.root, port });
    const joinedTwice = (c: typeof a) => c!.events.filter((e) => e.type === "joined").length >= 2;
    await waitFor(() => joinedTwice(a) && joinedTwice(b), 10_000, "both contributors to rejoin");
    const admin = await second.admin();
    const record = await admin.generate("otp", {});
    admin.close();
    assert.deepEqual([...record.participants].sort(), [a!.id, b!.id].sort());
    await a!.contributor.stop();
    await b!.contributor.stop();
  } finally {
    await second?.cleanup();
    await first.cleanup();
  }
});
