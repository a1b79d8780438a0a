/**
 * The transparency log over the distribution server's HTTP API (PROTOCOL §15.3), on a real server
 * whose rounds fill the log: to anyone, without a credential. The checkpoint opens with the key
 * the API serves, and the server key's certificate of that key verifies; entries carry their exact
 * leaf bytes and their parse; every inclusion and consistency proof the API gives verifies against
 * the roots of the checkpoints it served as the log grew. Every boundary of the parameters: the
 * empty log, start = size and size + 1, the 1000-entry cap (on a log of 1001 entries), index =
 * size − 1 and size, from = 0, an unknown round, index and roundId together and neither.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { fingerprintOfSpki } from "../../src/crypto/fingerprint.js";
import { rsaServerKey, serverVerify } from "../../src/crypto/server-signature.js";
import { createLogger } from "../../src/logging.js";
import { encodeRoundEntry, parseRoundEntry } from "../../src/protocol/log-entry.js";
import { buildDistributionApp } from "../../src/server/distribution/app.js";
import { MemoryAttemptLimiter } from "../../src/server/distribution/attempts.js";
import { OtpPool } from "../../src/server/distribution/otp-pool.js";
import { RequesterRegistry } from "../../src/server/requesters.js";
import {
  type LogIdentity,
  logIdentitySignedData,
  MAX_ENTRIES_PER_READ,
  TransparencyLog,
} from "../../src/server/transparency-log.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import { type Checkpoint, openCheckpoint } from "../../src/tlog/checkpoint.js";
import { hashLeaf, verifyConsistency, verifyInclusion } from "../../src/tlog/merkle.js";
import { ed25519NoteVerifier } from "../../src/tlog/note-keys.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { http } from "../helpers/distribution.js";

const IMMUTABLE = "public, max-age=31536000, immutable";
let server: TestServer;
/** The checkpoints the API served, by tree size, opened with the key it serves. */
const checkpoints = new Map<number, Checkpoint>();
const ROUNDS = 3;

before(async () => {
  // The checkpoint served as signed (witnessed checkpoints: test/ceremony/witness.test.ts).
  server = await startTestServer({ quorum: 2, minCosignatures: 0 });
  await startContributors(server, 2);
});
after(() => server?.cleanup());

const get = (path: string) => http(server, "GET", path);
/** Standard base64 with padding, refused in any other form (base64url, unpadded, …). */
function b64(text: string): Uint8Array {
  const bytes = new Uint8Array(Buffer.from(text, "base64"));
  assert.equal(Buffer.from(bytes).toString("base64"), text, `canonical padded base64: ${text}`);
  return bytes;
}

async function openServedCheckpoint(): Promise<Checkpoint> {
  const key = await get("/v1/log/key");
  const identity = (await get("/v1/log/identity")).body as unknown as LogIdentity;
  const note = await get("/v1/log/checkpoint");
  const verifier = ed25519NoteVerifier(key.text.slice(0, -1));
  return openCheckpoint(note.text, identity.origin, verifier).checkpoint;
}

async function assertRefused(path: string, status = 400, code = "E_INVALID_INPUT") {
  const answer = await get(path);
  assert.equal(answer.status, status, `${path}: ${answer.text}`);
  assert.deepEqual(Object.keys(answer.body), ["error"], path);
  assert.equal((answer.body.error as { code: string }).code, code, `${path}: ${answer.text}`);
}

test("an empty log: a checkpoint of size 0, no entries, no proof", async () => {
  const checkpoint = await openServedCheckpoint();
  assert.equal(checkpoint.size, 0);
  checkpoints.set(0, checkpoint);
  for (const range of ["start=0&end=0", "start=0&end=5"]) {
    const answer = await get(`/v1/log/entries?${range}`);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { size: 0, entries: [] });
  }
  await assertRefused("/v1/log/entries?start=1&end=1");
  await assertRefused("/v1/log/proof/inclusion?index=0");
  await assertRefused("/v1/log/proof/inclusion?index=0&size=0");
  await assertRefused("/v1/log/proof/consistency?from=1");
});

test("rounds fill the log; each checkpoint served on the way opens with the served key", async () => {
  const admin = await server.admin();
  try {
    for (let i = 1; i <= ROUNDS; i++) {
      await admin.generate("nonce", {});
      const checkpoint = await openServedCheckpoint();
      assert.equal(checkpoint.size, i);
      checkpoints.set(i, checkpoint);
    }
  } finally {
    admin.close();
  }
});

test("checkpoint and key: text/plain, exactly the log's, no credential, no MAC, no-cache; HEAD too", async () => {
  const log = server.server.log;
  const note = await get("/v1/log/checkpoint");
  assert.equal(note.status, 200);
  assert.equal(note.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(note.headers.get("cache-control"), "no-cache");
  assert.equal(note.headers.get("x-dkeygen-mac"), null);
  assert.equal(note.text, await log.checkpoint());
  const key = await get("/v1/log/key");
  assert.equal(key.status, 200);
  assert.match(key.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(key.text, `${log.verifierKey}\n`);
  const head = await fetch(`${server.httpUrl}/v1/log/checkpoint`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-type"), "text/plain; charset=utf-8");
});

test("identity: the server key certifies the log key and origin", async () => {
  const answer = await get("/v1/log/identity");
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get("x-dkeygen-mac"), null);
  const identity = answer.body as unknown as LogIdentity;
  assert.deepEqual(identity, server.server.log.identity());
  assert.equal(identity.verifierKey, (await get("/v1/log/key")).text.trim());
  assert.equal(identity.serverFingerprint, server.fingerprint);
  const spki = fromBase64url(identity.serverKey, "serverKey");
  assert.equal(fingerprintOfSpki(spki), server.fingerprint);
  const key = rsaServerKey(spki);
  assert.ok(key);
  const signed = logIdentitySignedData(
    identity.serverFingerprint,
    identity.origin,
    identity.verifierKey,
  );
  const signature = fromBase64url(identity.signature, "signature");
  assert.equal(serverVerify(key, signed, signature), true);
  // It binds the key: another verifier key under the same signature does not verify.
  const other = logIdentitySignedData(identity.serverFingerprint, identity.origin, "x+00000000+AQ");
  assert.equal(serverVerify(key, other, signature), false);
});

test("entries: exact leaf bytes (padded base64) and their parse; start = size is empty, size + 1 refused", async () => {
  const stored = await server.server.log.entries(0, ROUNDS);
  const all = await get(`/v1/log/entries?start=0&end=${ROUNDS}`);
  assert.equal(all.status, 200);
  assert.equal(all.headers.get("cache-control"), "no-cache");
  const body = all.body as {
    size: number;
    entries: { index: number; leaf: string; entry: unknown }[];
  };
  assert.equal(body.size, ROUNDS);
  assert.deepEqual(
    body.entries.map((e) => e.index),
    [0, 1, 2],
  );
  for (const [i, e] of body.entries.entries()) {
    const bytes = b64(e.leaf);
    assert.deepEqual(bytes, stored[i]);
    assert.deepEqual(parseRoundEntry(bytes), e.entry);
  }
  // Ranges: clipped at the size, empty at it, refused past it or reversed.
  const indexes = async (query: string) => {
    const answer = await get(`/v1/log/entries?${query}`);
    assert.equal(answer.status, 200, `${query}: ${answer.text}`);
    assert.equal(answer.body.size, ROUNDS);
    return (answer.body.entries as { index: number }[]).map((e) => e.index);
  };
  assert.deepEqual(await indexes("start=1&end=2"), [1]);
  assert.deepEqual(await indexes("start=1&end=1"), []);
  assert.deepEqual(await indexes(`start=2&end=${2 ** 53 - 1}`), [2]);
  assert.deepEqual(await indexes(`start=${ROUNDS}&end=${ROUNDS}`), []);
  assert.deepEqual(await indexes(`start=${ROUNDS}&end=100`), []);
  assert.deepEqual(await indexes("start=0&end=3&extra=ignored"), [0, 1, 2]);
  await assertRefused(`/v1/log/entries?start=${ROUNDS + 1}&end=100`);
  await assertRefused("/v1/log/entries?start=2&end=1");
  for (const bad of [
    "start=0",
    "end=3",
    "",
    "start=01&end=3",
    "start=-1&end=3",
    "start=%2B1&end=3",
    "start=1.0&end=3",
    "start=0x1&end=3",
    "start=&end=3",
    "start=0&start=1&end=3",
    `start=0&end=${2 ** 53}`,
    "start=0&end=12345678901234567",
  ]) {
    await assertRefused(`/v1/log/entries?${bad}`);
  }
});

test("inclusion proofs verify against the served checkpoints' roots, for every index and size", async () => {
  const leaves = await server.server.log.entries(0, ROUNDS);
  for (let size = 1; size <= ROUNDS; size++) {
    for (let index = 0; index < size; index++) {
      const answer = await get(`/v1/log/proof/inclusion?index=${index}&size=${size}`);
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers.get("cache-control"), IMMUTABLE);
      const { leafHash, proof, ...rest } = answer.body as {
        leafHash: string;
        proof: string[];
        index: number;
        size: number;
      };
      assert.deepEqual(rest, { index, size });
      assert.deepEqual(b64(leafHash), hashLeaf(leaves[index]!));
      const root = checkpoints.get(size)!.rootHash;
      verifyInclusion(index, size, b64(leafHash), proof.map(b64), root);
      if (proof.length > 0) {
        const broken = proof.map(b64);
        broken[0]![0]! ^= 1;
        assert.throws(() => verifyInclusion(index, size, b64(leafHash), broken, root));
      }
    }
  }
  // By round id, at the current size: the same proof as by index, not cacheable for good.
  for (const [index, leaf] of leaves.entries()) {
    const { roundId } = parseRoundEntry(leaf);
    const byRound = await get(`/v1/log/proof/inclusion?roundId=${roundId}`);
    const byIndex = await get(`/v1/log/proof/inclusion?index=${index}`);
    assert.equal(byRound.status, 200, byRound.text);
    assert.deepEqual(byRound.body, byIndex.body);
    assert.equal(byRound.body.index, index);
    assert.equal(byRound.body.size, ROUNDS);
    assert.equal(byRound.headers.get("cache-control"), "no-cache");
    const fixed = await get(`/v1/log/proof/inclusion?roundId=${roundId}&size=${ROUNDS}`);
    assert.equal(fixed.headers.get("cache-control"), IMMUTABLE);
    if (index > 0) await assertRefused(`/v1/log/proof/inclusion?roundId=${roundId}&size=${index}`);
  }
  // Boundaries.
  const last = await get(`/v1/log/proof/inclusion?index=${ROUNDS - 1}&size=${ROUNDS}`);
  assert.equal(last.status, 200);
  await assertRefused(`/v1/log/proof/inclusion?index=${ROUNDS}&size=${ROUNDS}`);
  await assertRefused(`/v1/log/proof/inclusion?index=${ROUNDS}`);
  await assertRefused("/v1/log/proof/inclusion?index=0&size=0");
  await assertRefused(`/v1/log/proof/inclusion?index=0&size=${ROUNDS + 1}`);
  const { roundId } = parseRoundEntry(leaves[0]!);
  await assertRefused(`/v1/log/proof/inclusion?index=0&roundId=${roundId}`);
  await assertRefused("/v1/log/proof/inclusion");
  await assertRefused(`/v1/log/proof/inclusion?size=${ROUNDS}`);
  const unknown = toBase64url(new Uint8Array(16).fill(0xa5));
  await assertRefused(`/v1/log/proof/inclusion?roundId=${unknown}`, 404, "E_NOT_FOUND");
  await assertRefused(`/v1/log/proof/inclusion?roundId=${roundId.slice(0, -1)}`);
  await assertRefused(`/v1/log/proof/inclusion?roundId=${roundId}x`);
});

test("consistency proofs verify between every pair of served checkpoints", async () => {
  for (let to = 1; to <= ROUNDS; to++) {
    for (let from = 1; from <= to; from++) {
      const answer = await get(`/v1/log/proof/consistency?from=${from}&to=${to}`);
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers.get("cache-control"), IMMUTABLE);
      const { proof, ...rest } = answer.body as { proof: string[]; from: number; to: number };
      assert.deepEqual(rest, { from, to });
      const [a, b] = [checkpoints.get(from)!.rootHash, checkpoints.get(to)!.rootHash];
      verifyConsistency(from, to, a, b, proof.map(b64));
      if (from < to) {
        assert.throws(() => verifyConsistency(from, to, b, b, proof.map(b64)));
      }
    }
  }
  const current = await get("/v1/log/proof/consistency?from=1");
  assert.equal(current.status, 200);
  assert.equal(current.body.to, ROUNDS);
  assert.equal(current.headers.get("cache-control"), "no-cache");
  const same = await get(`/v1/log/proof/consistency?from=${ROUNDS}`);
  assert.deepEqual(same.body, { from: ROUNDS, to: ROUNDS, proof: [] });
  await assertRefused("/v1/log/proof/consistency?from=0");
  await assertRefused("/v1/log/proof/consistency?from=0&to=1");
  await assertRefused("/v1/log/proof/consistency?from=3&to=2");
  await assertRefused(`/v1/log/proof/consistency?from=${ROUNDS + 1}`);
  await assertRefused(`/v1/log/proof/consistency?from=1&to=${ROUNDS + 1}`);
  await assertRefused("/v1/log/proof/consistency?to=2");
  await assertRefused("/v1/log/proof/consistency?from=1&from=2");
});

test(`entries: at most ${MAX_ENTRIES_PER_READ} in one answer (a log of 1001 entries); no log, no routes`, async () => {
  assert.equal(MAX_ENTRIES_PER_READ, 1000);
  const [model] = (await server.server.log.entries(0, 1)).map(parseRoundEntry);
  const store = new MemoryKeyStore();
  await store.open();
  const count = MAX_ENTRIES_PER_READ + 1;
  for (let i = 0; i < count; i++) {
    const id = new Uint8Array(16);
    new DataView(id.buffer).setUint32(12, i);
    await store.appendLogEntry(encodeRoundEntry({ ...model!, roundId: toBase64url(id) }));
  }
  const log = new TransparencyLog(store, server.server.c.identity);
  const parts = {
    store: server.store,
    requesters: await RequesterRegistry.load(server.dataDir),
    pool: new OtpPool({
      store: server.store,
      rounds: server.server,
      size: 0,
      digits: 6,
      logger: createLogger({ level: "silent" }),
    }),
    rounds: server.server,
    limiter: new MemoryAttemptLimiter({ maxFailures: 5, lockMs: 60_000 }),
    logger: createLogger({ level: "silent" }),
  };
  const app = await buildDistributionApp({ ...parts, log });
  const bare = await buildDistributionApp(parts);
  try {
    const indexes = async (query: string) => {
      const answer = await app.inject({ method: "GET", url: `/v1/log/entries?${query}` });
      assert.equal(answer.statusCode, 200, answer.body);
      const body = answer.json() as { size: number; entries: { index: number }[] };
      assert.equal(body.size, count);
      const got = body.entries.map((e) => e.index);
      return [got.length, got[0], got.at(-1)];
    };
    assert.deepEqual(await indexes(`start=0&end=${count}`), [1000, 0, 999]);
    assert.deepEqual(await indexes("start=0&end=1000"), [1000, 0, 999]);
    assert.deepEqual(await indexes("start=0&end=999"), [999, 0, 998]);
    assert.deepEqual(await indexes("start=1&end=5000"), [1000, 1, 1000]);
    assert.deepEqual(await indexes("start=1000&end=5000"), [1, 1000, 1000]);
    assert.deepEqual(await indexes(`start=${count}&end=5000`), [0, undefined, undefined]);
    for (const path of ["/v1/log/checkpoint", "/v1/log/entries?start=0&end=1"]) {
      const answer = await bare.inject({ method: "GET", url: path });
      assert.equal(answer.statusCode, 404);
      assert.equal((answer.json() as { error: { code: string } }).error.code, "E_NOT_FOUND");
    }
  } finally {
    await app.close();
    await bare.close();
    await store.close();
  }
});
