/**
 * `dkeygen audit log` through the real CLI against a real server's log routes, with a contributor
 * (a raw peer) that once withheld its reveal. An honest log passes (exit 0) and reports that
 * contributor's abort rate; the saved checkpoint and the export audit again offline. Each lie is
 * caught with exit 1 and a message naming it, served by a small proxy in front of the real server
 * or signed with the server's real log key: a tampered entry, a forked checkpoint, a repeated
 * round id, a round removed from a re-signed tree, missing cosignatures, another server than
 * pinned, and a key store rolled back to an older copy (restarted with acceptStoreRollback).
 * Over HTTPS it takes --ca as the other HTTP commands do.
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AdminClient } from "../../src/client/admin-client.js";
import { contributorIdOf } from "../../src/server/enrollment.js";
import {
  ADMIN_TOKEN_FILE,
  KEY_STORE_FILE,
  KEY_STORE_HEAD_FILE,
  loadOrCreateKeyFile,
  startServer,
} from "../../src/server/runtime.js";
import { cosignatureSigner, cosignNote } from "../../src/tlog/cosignature.js";
import {
  abortedRound,
  changedLeaf,
  completedRound,
  logOf,
  logProxy,
  signedCheckpoint,
} from "../helpers/audit-log.js";
import {
  captureLogger,
  enrolledRawPeer,
  type RawPeer,
  startContributors,
  startTestServer,
  type TestServer,
  tempDir,
} from "../helpers/ceremony.js";
import { type CliResult, runCli } from "../helpers/cli.js";
import { makeTestPki, skipWithoutOpenssl } from "../helpers/tls.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
let server: TestServer;
let peer: RawPeer;
let peerId: string;
const D = (name: string) => join(dir.path, name);

before(async () => {
  dir = await tempDir();
  server = await startTestServer({ quorum: 2, roundTimeoutMs: 1500 }, { dataDir: dir.path });
  await startContributors(server, 2);
  peer = await enrolledRawPeer(server);
  peerId = contributorIdOf(peer.contributorIdentity);
  await completedRound(server, peer);
  await abortedRound(server, peer);
  await completedRound(server, peer);
});
after(async () => {
  peer?.close();
  await server?.stop();
  await dir?.remove();
});

const audit = (url: string, ...rest: string[]) =>
  runCli(["audit", "log", "--server", url, ...rest], { timeoutMs: 60_000 });

/**
 * The checkpoint the distribution server serves now, once it serves one (a checkpoint is served
 * once witnesses cosigned it: contributors do when they connect and after each round).
 */
async function servedCheckpoint(url = server.httpUrl!): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const answer = await fetch(`${url}/v1/log/checkpoint`);
    if (answer.status === 200) return answer.text();
    if (Date.now() > deadline) throw new Error(`no checkpoint served: ${await answer.text()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The report of a --json run. */
const reportOf = (result: CliResult) => JSON.parse(result.stdout);

/** Exit 1, the report's failures of `check` naming `pattern`, and the reason on stderr. */
function assertCaught(result: CliResult, check: string, pattern: RegExp, index?: number) {
  assert.equal(result.status, 1, `${result.stdout}\n${result.stderr}`);
  const report = reportOf(result);
  assert.equal(report.ok, false);
  const found = report.failures.find(
    (f: { check: string; index?: number; message: string }) =>
      f.check === check && pattern.test(f.message) && (index === undefined || f.index === index),
  );
  assert.ok(found, `no ${check} failure matching ${pattern}: ${result.stdout}`);
  assert.match(result.stderr, /^dkeygen: The log audit failed/);
}

/** A proxy in front of the server's log routes for the time of `run`. */
async function throughProxy<T>(
  view: Parameters<typeof logProxy>[1],
  run: (url: string) => Promise<T>,
): Promise<T> {
  const proxy = await logProxy(server.httpUrl!, view);
  try {
    return await run(proxy.url);
  } finally {
    await proxy.close();
  }
}

test("an honest log passes: the text says which fingerprint to pin; --json reports the abort rate of the contributor that withheld its reveal", async () => {
  const text = await audit(server.httpUrl!);
  assert.equal(text.status, 0, text.stderr);
  assert.match(
    text.stdout,
    new RegExp(
      `not pinned: check it, then pin it with --server-fingerprint ${server.fingerprint.replace(/[+/]/g, "\\$&")}`,
    ),
  );
  assert.match(text.stdout, /3 read, 3 verified: 2 completed, 1 aborted, 0 failed rounds/);
  assert.match(text.stdout, /every check passed/);
  assert.match(
    text.stdout,
    new RegExp(`${peerId.replace(/[+/]/g, "\\$&")}  3 rounds  1 aborts  33\\.3%`),
  );

  const json = await audit(
    server.httpUrl!,
    "--server-fingerprint",
    server.fingerprint,
    "--save",
    D("seen-3.checkpoint"),
    "--export",
    D("log-3.json"),
    "--json",
  );
  assert.equal(json.status, 0, json.stderr);
  const report = reportOf(json);
  assert.equal(report.ok, true);
  assert.equal(report.identity.serverFingerprint, server.fingerprint);
  assert.equal(report.identity.pinned, true);
  assert.equal(report.checkpoint.size, 3);
  assert.equal(report.entries, 3);
  assert.deepEqual(report.outcomes, { completed: 2, aborted: 1, failed: 0 });
  assert.deepEqual(report.failures, []);
  assert.equal(report.failureCount, 0);
  const withheld = report.contributors.find((c: { id: string }) => c.id === peerId);
  assert.deepEqual(withheld, { id: peerId, rounds: 3, aborts: 1, abortRate: 1 / 3 });
  for (const c of report.contributors.filter((c: { id: string }) => c.id !== peerId)) {
    assert.equal(c.abortRate, 0);
  }
  assert.deepEqual(report.servers, [
    { fingerprint: server.fingerprint, rounds: 3, aborted: 1, abortRate: 1 / 3 },
  ]);
  assert.equal(report.saved, D("seen-3.checkpoint"));

  // The saved checkpoint is the one served (with its cosignatures), public (0644); the export
  // audits the same offline.
  // (Compared without the signature lines: a witness may add its cosignature in between.)
  const saved = await readFile(D("seen-3.checkpoint"), "utf8");
  assert.equal(saved.split("\n\n")[0], (await servedCheckpoint()).split("\n\n")[0]);
  assert.ok(saved.includes(`\n— ${report.identity.origin} `), saved);
  assert.equal((await stat(D("seen-3.checkpoint"))).mode & 0o777, 0o644);
  const offline = await runCli([
    "audit",
    "log",
    "--file",
    D("log-3.json"),
    "--since",
    D("seen-3.checkpoint"),
    "--server-fingerprint",
    server.fingerprint,
    "--json",
  ]);
  assert.equal(offline.status, 0, offline.stderr);
  assert.deepEqual(reportOf(offline).contributors, report.contributors);
});

test("another server than pinned: exit 1, naming both fingerprints", async () => {
  const other = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  const result = await audit(server.httpUrl!, "--server-fingerprint", other, "--json");
  assertCaught(
    result,
    "identity",
    new RegExp(`${server.fingerprint.replace(/[+/]/g, "\\$&")}, not ${other}`),
  );
});

test("a tampered entry (one field of one leaf changed on the way) is caught at its index and by the tree", async () => {
  const result = await throughProxy(
    {
      rewrite: (path, body) => {
        if (path !== "/v1/log/entries") return body;
        const answer = JSON.parse(body);
        for (const e of answer.entries) {
          if (e.index !== 1) continue;
          const leaf = changedLeaf(Buffer.from(e.leaf, "base64"), (entry) => {
            entry.accepted = (entry.accepted as number) + 1;
          });
          e.leaf = Buffer.from(leaf).toString("base64");
          e.entry = JSON.parse(Buffer.from(leaf).toString());
        }
        return JSON.stringify(answer);
      },
    },
    (url) => audit(url, "--json"),
  );
  assertCaught(result, "entry", /closing does not verify/, 1);
  assertCaught(result, "tree", /do not hash to the checkpoint's root/);
  // In text, the failure is listed with its entry.
  const text = await throughProxy(
    {
      rewrite: (path, body) =>
        path === "/v1/log/entries"
          ? body.replace(/"leaf":"([^"]+)"/, (_, leaf: string) => {
              const changed = changedLeaf(Buffer.from(leaf, "base64"), (e) => {
                e.seed = "A".repeat(43);
              });
              return `"leaf":"${Buffer.from(changed).toString("base64")}"`;
            })
          : body,
    },
    (url) => audit(url),
  );
  assert.equal(text.status, 1);
  assert.match(
    text.stdout,
    /entry 0: The server's signature of the round's invitation does not verify/,
  );
  assert.match(text.stdout, /FAILED: 2 failures/);
});

test("a forked checkpoint: the same size with another root, signed by the log key", async () => {
  const { leaves } = await logOf(server);
  const forked = signedCheckpoint(server, leaves, { root: new Uint8Array(32).fill(1) });
  await writeFile(D("forked.checkpoint"), forked);
  // Seen before (--since), it contradicts the checkpoint served now: both roots are named.
  const result = await audit(server.httpUrl!, "--since", D("forked.checkpoint"), "--json");
  const real = (await logOf(server)).checkpoint.split("\n")[2]!;
  assertCaught(result, "since", /The log forked: two checkpoints of size 3 with different roots/);
  const message = reportOf(result).failures[0].message as string;
  assert.ok(
    message.includes(Buffer.alloc(32, 1).toString("base64")) && message.includes(real),
    message,
  );
  // Served now, it does not match the entries.
  const served = await throughProxy({ checkpoint: forked }, (url) => audit(url, "--json"));
  assertCaught(served, "tree", /do not hash to the checkpoint's root/);
});

test("a round logged twice (a rerun), in a tree recomputed and re-signed with the log key", async () => {
  const { leaves } = await logOf(server);
  const rerun = [...leaves, leaves[1]!];
  const result = await throughProxy(
    { leaves: rerun, checkpoint: signedCheckpoint(server, rerun) },
    (url) => audit(url, "--json"),
  );
  assertCaught(result, "round-id", /logged again: entry 1 has the same round id/, 3);
  assert.equal(reportOf(result).failures.length, 1);
});

test("cosignatures: the witnesses given must have cosigned, at least --min-cosignatures of them", async () => {
  const { checkpoint } = await logOf(server);
  const witness = cosignatureSigner(
    "witness.example/w",
    new Uint8Array(32).fill(3),
    () => 1_800_000_000,
  );
  const stranger = cosignatureSigner(
    "witness.example/x",
    new Uint8Array(32).fill(4),
    () => 1_800_000_000,
  );
  const cosigned = cosignNote(checkpoint, witness);
  const args = (key: string) => ["--witness", key, "--min-cosignatures", "1", "--json"];
  const good = await throughProxy({ checkpoint: cosigned }, (url) =>
    audit(url, ...args(witness.verifierKey)),
  );
  assert.equal(good.status, 0, good.stdout);
  assert.equal(reportOf(good).checkpoint.cosignatures[0].name, "witness.example/w");
  const short = await throughProxy({ checkpoint: cosigned }, (url) =>
    audit(url, ...args(stranger.verifierKey)),
  );
  assertCaught(short, "cosignatures", /0 verified cosignature\(s\).*at least 1/);
});

/** Starts the server again on its data folder (new ports), as startTestServer does. */
async function restart(acceptStoreRollback = false): Promise<void> {
  await server.stop();
  const log = captureLogger();
  const running = await startServer({
    dataDir: join(dir.path, "server"),
    port: 0,
    logger: log.logger,
    config: { roundTimeoutMs: 1500, quorum: 2 },
    http: { port: 0 },
    otpPool: { size: 0 },
    ...(acceptStoreRollback ? { acceptStoreRollback: true } : {}),
  });
  server = {
    ...running,
    root: dir.path,
    log,
    contributors: [],
    admin: async () =>
      AdminClient.connect({
        url: running.url,
        token: await loadOrCreateKeyFile(join(running.dataDir, ADMIN_TOKEN_FILE)),
        expectedFingerprint: running.fingerprint,
      }),
    cleanup: () => running.stop(),
  };
}

test("a round removed and the tree re-signed: the checkpoint saved before disagrees (a fork); an honest later log is consistent with it", async () => {
  // The server goes on: an older copy of its store is kept for the next test, and a round more.
  await server.stop();
  const store = join(dir.path, "server");
  await copyFile(join(store, KEY_STORE_FILE), D("key_store.old"));
  await copyFile(join(store, KEY_STORE_HEAD_FILE), D("key_store.head.old"));
  await restart();
  peer.close();
  await startContributors(server, 2, "d");
  peer = await enrolledRawPeer(server);
  await completedRound(server, peer);
  const { leaves } = await logOf(server);
  assert.equal(leaves.length, 4);
  assert.match(await servedCheckpoint(), /\n4\n/);

  // Honest: the log of 4 extends the checkpoint of 3 seen before, and the server proves it.
  const honest = await audit(
    server.httpUrl!,
    "--since",
    D("seen-3.checkpoint"),
    "--save",
    D("seen-4.checkpoint"),
    "--json",
  );
  assert.equal(honest.status, 0, honest.stdout);
  assert.equal(reportOf(honest).since.consistencyProof, "verified");

  // Entry 1 (the aborted round) removed, the tree recomputed and signed with the log key.
  const missing = leaves.filter((_, i) => i !== 1);
  const result = await throughProxy(
    { leaves: missing, checkpoint: signedCheckpoint(server, missing) },
    (url) => audit(url, "--since", D("seen-3.checkpoint"), "--json"),
  );
  assertCaught(result, "since", /The log forked: two checkpoints of size 3 with different roots/);
  // The proxy's consistency proof (the real server's, from 3 to 4) cannot save it either.
  const later = await throughProxy(
    { leaves: missing, checkpoint: signedCheckpoint(server, missing) },
    (url) => audit(url, "--since", D("seen-4.checkpoint"), "--json"),
  );
  assertCaught(later, "since", /The log is shorter than a checkpoint you saw/);
});

test("a key store rolled back to an older copy: the log is shorter than the checkpoint seen", async () => {
  await server.stop();
  const store = join(dir.path, "server");
  await copyFile(D("key_store.old"), join(store, KEY_STORE_FILE));
  await copyFile(D("key_store.head.old"), join(store, KEY_STORE_HEAD_FILE));
  await restart(true);
  // Contributors that never saw the later log witness the rolled-back one.
  await startContributors(server, 2, "e");
  await servedCheckpoint();
  const result = await audit(server.httpUrl!, "--since", D("seen-4.checkpoint"), "--json");
  assertCaught(result, "since", /The log is shorter than a checkpoint you saw/);
  assert.equal(reportOf(result).checkpoint.size, 3);
  // What the rolled-back log holds is itself intact: only the earlier checkpoint shows the loss.
  const alone = await audit(server.httpUrl!, "--json");
  assert.equal(alone.status, 0, alone.stdout);
  // --save is refused for a failing audit: the checkpoint seen stays the later one.
  const kept = await audit(
    server.httpUrl!,
    "--since",
    D("seen-4.checkpoint"),
    "--save",
    D("seen-4.checkpoint"),
  );
  assert.equal(kept.status, 1);
  assert.match(kept.stdout, /not saved/);
  assert.match(await readFile(D("seen-4.checkpoint"), "utf8"), /\n4\n/);
});

test("operational failures exit 1 with one line: no log there, an export that is not one", async () => {
  const none = await runCli(["audit", "log", "--file", D("nothing.json")]);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /^dkeygen: --file .*nothing\.json: there is no such file/);
  await writeFile(D("not-export.json"), "{}");
  const bad = await runCli(["audit", "log", "--file", D("not-export.json"), "--json"]);
  assert.equal(bad.status, 1);
  assert.equal(JSON.parse(bad.stdout).error.code, "E_INVALID_INPUT");
  const unreachable = await audit("http://127.0.0.1:9");
  assert.equal(unreachable.status, 1);
  assert.match(unreachable.stderr, /^dkeygen: Cannot reach http:\/\/127\.0\.0\.1:9/);
});

test("over HTTPS: --ca trusts the server's private CA; without it the certificate is refused (E_TLS)", {
  skip: skipWithoutOpenssl,
}, async () => {
  await mkdir(D("pki"));
  const pki = makeTestPki(D("pki"));
  const tls = await startTestServer(
    {},
    { tls: { certFile: pki.certFile, keyFile: pki.keyFile, ca: await pki.ca() } },
  );
  try {
    assert.match(tls.httpUrl!, /^https:/);
    await startContributors(tls, 1); // a witness, so that a checkpoint is served
    const deadline = Date.now() + 15_000;
    let trusted = await audit(tls.httpUrl!, "--ca", pki.caFile, "--json");
    while (trusted.status !== 0 && /E_UNAVAILABLE/.test(trusted.stdout) && Date.now() < deadline) {
      trusted = await audit(tls.httpUrl!, "--ca", pki.caFile, "--json");
    }
    assert.equal(trusted.status, 0, trusted.stdout + trusted.stderr);
    assert.equal(reportOf(trusted).checkpoint.size, 0);
    const untrusted = await audit(tls.httpUrl!, "--json");
    assert.equal(untrusted.status, 1);
    assert.equal(JSON.parse(untrusted.stdout).error.code, "E_TLS");
  } finally {
    await tls.cleanup();
  }
});
