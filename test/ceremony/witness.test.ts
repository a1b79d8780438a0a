/**
 * Contributors witness the transparency log (PROTOCOL §15.5), over real sockets: each cosigns the
 * checkpoints that cover its rounds once it has checked them, records a receipt per round, and
 * `contributor audit` re-checks the receipts later; the server serves the newest checkpoint with
 * K cosignatures and hands a round's result out only once one covers it. A bad cosignature is
 * refused with a stable code and does not count; K = 0 turns witnessing off.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ANSWERED_FILE, readAnsweredRounds } from "../../src/client/answered-rounds.js";
import { auditContributor, LOGGED_WITHIN_MS } from "../../src/client/contributor-audit.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { createHttpCall } from "../../src/client/http-call.js";
import { readReceipts, readWitnessState, witnessIdentity } from "../../src/client/witness.js";
import { toBase64url } from "../../src/crypto/base64url.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { contributorIdOf } from "../../src/protocol/identity.js";
import type { MessageOf } from "../../src/protocol/messages.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { witnessKeyName } from "../../src/protocol/witness.js";
import { witnessVerifierKey } from "../../src/server/witnessing.js";
import { openCheckpoint } from "../../src/tlog/checkpoint.js";
import {
  cosignatureSigner,
  cosignaturesOf,
  cosignatureVerifier,
} from "../../src/tlog/cosignature.js";
import { parseNote } from "../../src/tlog/note.js";
import { ed25519NoteVerifier } from "../../src/tlog/note-keys.js";
import {
  commitAndReveal,
  enrolledRawPeer,
  type RawPeer,
  startContributors,
  startTestServer,
  type TestServer,
  waitFor,
} from "../helpers/ceremony.js";
import { runCli } from "../helpers/cli.js";
import { http } from "../helpers/distribution.js";

async function served(server: TestServer) {
  const answer = await http(server, "GET", "/v1/log/checkpoint");
  return answer;
}

function openServed(server: TestServer, note: string, vkeys: string[]) {
  const log = server.server.log;
  const verifiers = vkeys.map(cosignatureVerifier);
  const opened = openCheckpoint(note, log.origin, ed25519NoteVerifier(log.verifierKey), verifiers);
  return { ...opened, cosignatures: cosignaturesOf(opened.note.verified, verifiers) };
}

test("contributors cosign the checkpoint covering their round; the served one carries the cosignatures; receipts are recorded", async () => {
  const server = await startTestServer({ quorum: 2, roundTimeoutMs: 3000, minCosignatures: 2 });
  try {
    const contributors = await startContributors(server, 2);
    const vkeys = await Promise.all(
      contributors.map(
        async (c) => witnessIdentity(await loadOrCreateContributorState(c.dataDir)).verifierKey,
      ),
    );
    const admin = await server.admin();
    const record = await admin.generate("otp", {});
    admin.close();
    const answer = await served(server);
    assert.equal(answer.status, 200, answer.text);
    const { checkpoint, cosignatures } = openServed(server, answer.text, vkeys);
    assert.ok(checkpoint.size >= 1);
    assert.equal(cosignatures.length, 2);
    assert.deepEqual(
      cosignatures.map((c) => c.name).sort(),
      contributors.map((c) => witnessKeyName(c.id)).sort(),
    );
    for (const c of contributors) {
      const witness = await readWitnessState(c.dataDir);
      assert.ok(witness);
      assert.equal(witness.origin, server.server.log.origin);
      assert.ok(witness.size >= 1);
      const receipts = await readReceipts(c.dataDir);
      assert.equal(receipts.length, 1);
      assert.equal(receipts[0]!.roundId, record.roundId);
      assert.equal(receipts[0]!.index, server.server.log.indexOf(record.roundId));
    }

    // `contributor audit` re-checks the receipts against the served log: ok, exit 0 …
    const dataDir = contributors[0]!.dataDir;
    const audit = () =>
      runCli([
        "contributor",
        "audit",
        "--server",
        server.httpUrl!,
        "--data-dir",
        dataDir,
        "--json",
      ]);
    const passed = await audit();
    assert.equal(passed.status, 0, passed.stderr + passed.stdout);
    const report = JSON.parse(passed.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.receipts, 1);
    // … and a receipt the log does not hold (its leaf hash changed) fails it: exit 1, named.
    const file = join(dataDir, "log-receipts.jsonl");
    const receipt = JSON.parse(await readFile(file, "utf8"));
    await writeFile(
      file,
      `${JSON.stringify({ ...receipt, leafHash: Buffer.alloc(32, 7).toString("base64") })}\n`,
    );
    const failed = await audit();
    assert.equal(failed.status, 1, failed.stderr + failed.stdout);
    const bad = JSON.parse(failed.stdout);
    assert.equal(bad.ok, false);
    assert.equal(bad.failures[0].roundId, record.roundId);
    assert.match(bad.failures[0].message, /not the one this contributor checked/);

    // A pool refill (no owner): stored held, released once witnessed, before the round resolves.
    const refill = await server.server.runBatchRound({ purpose: "otp", count: 3 });
    assert.ok(refill.every((r) => r.held === undefined));
    const store = server.server.c.store;
    for (const r of refill) assert.equal((await store.get(r.id))?.held, undefined);
    assert.equal(await store.countUnclaimed("otp"), 3);
  } finally {
    await server.cleanup();
  }
});

test("a cosignature that does not verify is refused with E_BAD_SIGNATURE and does not count; a valid one does", async () => {
  const server = await startTestServer({ quorum: 2, minCosignatures: 1 });
  try {
    const peer = await enrolledRawPeer(server);
    const sent = await peer.next("log.checkpoint");
    assert.equal(sent.old, 0);
    const log = server.server.log;
    const size = Number(sent.checkpoint.split("\n")[1]);
    assert.equal((await served(server)).status, 503, "no checkpoint has a cosignature yet");
    const id = contributorIdOf(peer.contributorIdentity);
    const signer = cosignatureSigner(
      witnessKeyName(id),
      new Uint8Array(
        Buffer.from(peer.identity.privateKey.export({ format: "jwk" }).d!, "base64url"),
      ),
      () => 1_795_000_000,
    );
    const cosignature = (text: string) => {
      const out = new Uint8Array(76);
      new DataView(out.buffer).setUint32(0, signer.keyId);
      out.set(signer.sign(new TextEncoder().encode(text)), 4);
      return toBase64url(out);
    };
    const text = parseNote(sent.checkpoint).text;
    const refused = async (frame: object, code: string) => {
      peer.send({ type: "log.cosign", v: PROTOCOL_VERSION, ...frame });
      const error = await peer.next("error");
      assert.equal(error.code, code, error.message);
      assert.equal(error.fatal, false);
      assert.equal(log.cosignatureCount(size), 0);
    };
    await refused({ size, cosignature: toBase64url(randomBytes(76)) }, ErrorCodes.BAD_SIGNATURE);
    await refused({ size, cosignature: cosignature(`${text}x\n`) }, ErrorCodes.BAD_SIGNATURE);
    await refused({ size: size + 5, cosignature: cosignature(text) }, ErrorCodes.NOT_FOUND);
    peer.send({ type: "log.cosign", v: PROTOCOL_VERSION, size, cosignature: cosignature(text) });
    await waitFor(() => log.cosignatureCount(size) === 1 || undefined, 5000, "the cosignature");
    const answer = await served(server);
    assert.equal(answer.status, 200);
    const vkey = witnessVerifierKey(id, peer.contributorIdentity);
    assert.equal(openServed(server, answer.text, [vkey]).cosignatures.length, 1);
  } finally {
    await server.cleanup();
  }
});

test("with K = 2 and one witness a round is not witnessed: it fails E_UNAVAILABLE, its records are consumed, and the pool hands none out", async () => {
  const server = await startTestServer(
    { quorum: 1, minCosignatures: 2, roundTimeoutMs: 1000 },
    { allowQuorumOfOne: true, otpPool: 3 },
  );
  try {
    const [witness] = await startContributors(server, 1);
    const admin = await server.admin();
    await assert.rejects(admin.generate("totp", {}), (error: unknown) => {
      assert.ok(isDkeygenError(error, ErrorCodes.UNAVAILABLE), String(error));
      assert.match((error as Error).message, /not witnessed/);
      return true;
    });
    admin.close();
    const store = server.server.c.store;
    // The pool's refill rounds fail the same way; none of their records can be claimed.
    await waitFor(
      () => server.log.text().includes("OTP pool refill failed") || undefined,
      10_000,
      "a failed refill",
    );
    const otps = await store.list({ purpose: "otp" });
    assert.ok(otps.length >= 3, "the refill stored its records");
    assert.ok(otps.every((r) => r.consumedAt !== undefined && r.claim === undefined));
    assert.ok(
      otps.every((r) => r.held === true),
      "a refill's records were stored held and never released",
    );
    assert.equal(await store.countUnclaimed("otp"), 0);
    const totp = await store.list({ purpose: "totp" });
    assert.ok(totp.every((r) => r.consumedAt !== undefined));
    // The witness did cosign: one cosignature, not two.
    const log = server.server.log;
    assert.ok(witness && log.cosignatureCount(log.size) <= 1);
    assert.equal((await served(server)).status, 503);
  } finally {
    await server.cleanup();
  }
});

test("with K = 0 there is no witnessing: no log.checkpoint is sent, rounds complete, the latest checkpoint is served as signed", async () => {
  const server = await startTestServer({ quorum: 2, minCosignatures: 0, roundTimeoutMs: 2000 });
  try {
    const peers = [await enrolledRawPeer(server), await enrolledRawPeer(server)];
    const admin = await server.admin();
    const pending = admin.generate("otp", {});
    await Promise.all(peers.map(async (p) => commitAndReveal(p, await p.next("round.open"))));
    const record = await pending;
    admin.close();
    await peers[0]!.next("round.closed");
    assert.ok(peers.every((p) => !p.received.some((m) => m.type === "log.checkpoint")));
    const answer = await served(server);
    assert.equal(answer.status, 200);
    const { checkpoint, note } = openServed(server, answer.text, []);
    assert.equal(checkpoint.size, server.server.log.indexOf(record.roundId)! + 1);
    assert.equal(note.verified.length, 1);
    assert.equal(note.unverified.length, 0);
    // A cosignature is not asked for, so it is not expected.
    peers[0]!.send({
      type: "log.cosign",
      v: PROTOCOL_VERSION,
      size: 1,
      cosignature: toBase64url(randomBytes(76)),
    });
    assert.equal((await peers[0]!.next("error")).code, ErrorCodes.UNEXPECTED_MESSAGE);
    // A pool refill is released at once: its entry is durable, nothing is waited for.
    const batch = server.server.runBatchRound({ purpose: "otp", count: 2 });
    await Promise.all(peers.map(async (p) => commitAndReveal(p, await p.next("round.open"))));
    const refill = await batch;
    assert.equal(await server.server.c.store.countUnclaimed("otp"), 2);
    assert.ok(refill.every((r) => r.held === undefined));
  } finally {
    await server.cleanup();
  }
});

test("`contributor audit` asks the log for every round the contributor committed to: one the server never logged fails it, named; a logged one without a receipt passes", async () => {
  const server = await startTestServer({ quorum: 2, roundTimeoutMs: 3000, minCosignatures: 1 });
  try {
    const contributors = await startContributors(server, 2);
    const admin = await server.admin();
    const record = await admin.generate("otp", {});
    admin.close();
    const dataDir = contributors[0]!.dataDir;
    await waitFor(async () => (await readAnsweredRounds(dataDir)).some((r) => r.outcome));
    const answered = await readAnsweredRounds(dataDir);
    assert.equal(answered.length, 1);
    assert.equal(answered[0]!.roundId, record.roundId);
    assert.equal(answered[0]!.outcome, "completed");

    // A round the server invited it to, it committed to, and the server aborted without an
    // entry: only the contributor's own journal remembers it.
    const hidden = toBase64url(randomBytes(16));
    const past = new Date(Date.now() - 60 * 60 * 1000).toISOString();
    await appendFile(
      join(dataDir, ANSWERED_FILE),
      `${JSON.stringify({ roundId: hidden, committedAt: past, revealDeadline: past, commitment: toBase64url(randomBytes(32)) })}\n`,
    );
    const cli = await runCli([
      "contributor",
      "audit",
      "--server",
      server.httpUrl!,
      "--data-dir",
      dataDir,
      "--json",
    ]);
    assert.equal(cli.status, 1, cli.stderr + cli.stdout);
    const report = JSON.parse(cli.stdout);
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.failures.map((f: { roundId?: string }) => f.roundId),
      [hidden],
    );
    assert.match(report.failures[0].message, /holds no entry for it/);
    assert.deepEqual(report.answered, { rounds: 2, found: 1, pending: 0, excluded: 0 });

    // Without its receipt, the real round is looked up in the log once its deadline is past:
    // found (inclusion proof, leaf and round id checked), so only the hidden round fails.
    await writeFile(join(dataDir, "log-receipts.jsonl"), "");
    const call = createHttpCall({ maxResponseBytes: 4 * 1024 * 1024 });
    const soon = await auditContributor(dataDir, server.httpUrl!, call);
    assert.deepEqual(soon.answered, { rounds: 2, found: 0, pending: 1, excluded: 0 });
    const later = await auditContributor(
      dataDir,
      server.httpUrl!,
      call,
      () => Date.now() + LOGGED_WITHIN_MS + 60_000,
    );
    assert.deepEqual(later.answered, { rounds: 2, found: 1, pending: 0, excluded: 0 });
    assert.deepEqual(
      later.failures.map((f) => f.roundId),
      [hidden],
    );
  } finally {
    await server.cleanup();
  }
});

test("witnesses at different sizes each get a checkpoint with the proof from their own size, though one message is shared", async () => {
  const server = await startTestServer({ quorum: 2, roundTimeoutMs: 3000, minCosignatures: 1 });
  try {
    const peers = [await enrolledRawPeer(server), await enrolledRawPeer(server)] as const;
    const [a, b] = peers;
    const cosign = (peer: RawPeer, sent: MessageOf<"log.checkpoint">) => {
      const id = contributorIdOf(peer.contributorIdentity);
      const signer = cosignatureSigner(
        witnessKeyName(id),
        new Uint8Array(
          Buffer.from(peer.identity.privateKey.export({ format: "jwk" }).d!, "base64url"),
        ),
        () => Math.floor(Date.now() / 1000),
      );
      const out = new Uint8Array(76);
      new DataView(out.buffer).setUint32(0, signer.keyId);
      out.set(signer.sign(new TextEncoder().encode(parseNote(sent.checkpoint).text)), 4);
      peer.send({
        type: "log.cosign",
        v: PROTOCOL_VERSION,
        size: Number(sent.checkpoint.split("\n")[1]),
        cosignature: toBase64url(out),
      });
    };
    // A round of both; only a cosigns (it witnesses the round), b stays where it was.
    const round = async () => {
      const done = server.server.runRound({ purpose: "otp", params: {} });
      const opens = await Promise.all(peers.map((p) => p.next("round.open")));
      await Promise.all(peers.map((p, i) => commitAndReveal(p, opens[i]!)));
      let forA: MessageOf<"log.checkpoint">;
      do {
        forA = await a.next("log.checkpoint");
        cosign(a, forA);
      } while (forA.rounds.length === 0);
      await done;
      return { a: forA, b: await b.next("log.checkpoint") };
    };
    for (const p of peers) await p.next("log.checkpoint");
    const first = await round();
    assert.equal(first.a.old, 0);
    assert.equal(first.b.old, 0);
    const cosigned = Number(first.a.checkpoint.split("\n")[1]);
    assert.ok(cosigned > 0);
    const second = await round();
    assert.equal(second.a.old, cosigned, "a's proof starts from the size it cosigned");
    assert.ok(second.a.consistency.length > 0);
    assert.equal(second.b.old, 0, "b never cosigned: its proof starts from nothing");
    assert.equal(second.b.consistency.length, 0);
    assert.deepEqual(second.b.rounds, second.a.rounds, "the round's leaf and proof, shared");
  } finally {
    await server.cleanup();
  }
});
