/**
 * Threshold-key sessions in the transparency log (PROTOCOL §15.1, §16): every DKG and refresh
 * the server coordinates, completed or aborted, is an entry the auditor checks from the log alone
 * — the session id is the hash of the entry's parameters, the certificate holds every holder's
 * confirmation — and no entry carries the group key, its output key or its address.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { auditLog } from "../../src/audit/log-audit.js";
import { auditRecord, THRESHOLD_AUDIT_STEPS } from "../../src/audit/record-audit.js";
import { THRESHOLD_AUDIT_STATEMENT } from "../../src/audit/threshold-record-audit.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { readReceipts, Witness } from "../../src/client/witness.js";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { canonicalJson } from "../../src/crypto/canonical-json.js";
import { isDkeygenError } from "../../src/errors.js";
import type { JsonObject } from "../../src/json.js";
import {
  type DkgEntry,
  encodeDkgEntry,
  isDkgEntryLeaf,
  parseDkgEntry,
} from "../../src/protocol/dkg-log-entry.js";
import type { MessageOf } from "../../src/protocol/messages.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { contributorIdOf } from "../../src/server/enrollment.js";
import { TransparencyLog } from "../../src/server/transparency-log.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import { signedCheckpoint } from "../helpers/audit-log.js";
import {
  captureLogger,
  enrolledRawPeer,
  type RawPeer,
  startContributors,
  startTestServer,
  type TestContributor,
  type TestServer,
  tempDir,
  waitFor,
} from "../helpers/ceremony.js";
import { runCli } from "../helpers/cli.js";
import { registerTestRequester, type TestRequester } from "../helpers/distribution.js";

type Key = MessageOf<"admin.threshold.key">["key"];

let server: TestServer;
let contributors: TestContributor[];
let silent: RawPeer;
let silentId: string;
let wallet: TestRequester;
let key: Key;
let refreshed: Key;
let leaves: Uint8Array[];
let identity: ReturnType<TestServer["server"]["log"]["identity"]>;

before(async () => {
  server = await startTestServer();
  contributors = await startContributors(server, 3);
  wallet = await registerTestRequester(server, "wallet");
  const admin = await server.admin();
  try {
    key = await admin.thresholdKeygen({ suite: "secp256k1-tr", t: 2, n: 3, owner: "wallet" });
    await Promise.all(
      contributors.map((c) =>
        waitFor(() => c.events.some((e) => e.type === "dkg.completed" && e.keyId === key.id), 5000),
      ),
    );
    refreshed = await admin.thresholdRefresh(key.id);
    // A fourth contributor that is drawn into a 4-of-4 DKG and leaves once invited: it aborts,
    // naming it.
    silent = await enrolledRawPeer(server);
    silentId = contributorIdOf(silent.contributorIdentity);
    const pending = admin.thresholdKeygen({ suite: "ed25519", t: 3, n: 4 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    await silent.next("dkg.open", 10_000);
    silent.close();
    const aborted = await pending;
    assert.ok(isDkeygenError(aborted, "E_ROUND_ABORTED"), String(aborted));
  } finally {
    admin.close();
  }
  const log = server.server.log;
  await waitFor(() => log.size === 3, 5000);
  identity = log.identity();
  leaves = await log.entries(0, 3);
});

after(async () => {
  silent?.close();
  await server?.cleanup();
});

const audit = (lv: readonly Uint8Array[], checkpoint = signedCheckpoint(server, lv)) =>
  auditLog({ identity, checkpoint, leaves: () => [lv], threads: 0 });

test("a DKG, its refresh and an aborted DKG are each logged, and the audit verifies all three", async () => {
  const entries = leaves.map((leaf) => {
    assert.ok(isDkgEntryLeaf(leaf));
    return parseDkgEntry(leaf);
  });
  const [dkg, refresh, aborted] = entries as [DkgEntry, DkgEntry, DkgEntry];
  assert.equal(dkg.session, "keygen");
  assert.equal(dkg.outcome, "completed");
  assert.equal(dkg.sessionId, key.sessionId);
  assert.equal(dkg.roundId, toBase64url(fromBase64url(key.sessionId, "s", 32).subarray(0, 16)));
  assert.deepEqual(
    dkg.holders.map((h) => h.contributorId),
    key.holders,
    "the holders in index order, as the key lists them",
  );
  assert.equal(dkg.certificate!.length, 3);
  assert.equal(refresh.session, "refresh");
  assert.equal(refresh.outcome, "completed");
  assert.equal(refresh.keyId, key.id);
  assert.equal(refresh.sessionId, refreshed.sessionId);
  assert.deepEqual(refresh.dealers, [1, 2]);
  assert.equal(aborted.outcome, "aborted");
  assert.equal(aborted.fault, "missing");
  assert.equal(aborted.culprit, silentId);
  assert.equal(aborted.transcript, undefined);
  // The log is public: the key's public key, output key and address are in no entry.
  const text = Buffer.concat(leaves).toString("latin1");
  const forms = [key.groupPublicKey, key.outputKey!].flatMap((hex) => [
    hex,
    toBase64url(Buffer.from(hex, "hex")),
    Buffer.from(hex, "hex").toString("base64"),
  ]);
  for (const form of [...forms, key.address!]) {
    assert.equal(text.includes(form), false, `${form} is in the log`);
  }
  const report = await audit(leaves, await server.server.log.checkpoint());
  assert.deepEqual(report.failures, []);
  assert.ok(report.ok);
  assert.equal(report.verified, 3);
  assert.deepEqual(report.sessions, { completed: 2, aborted: 1 });
  assert.deepEqual(report.outcomes, { completed: 0, aborted: 0, failed: 0 });
  const blamed = report.contributors.find((c) => c.id === silentId)!;
  assert.deepEqual([blamed.rounds, blamed.aborts], [1, 1]);
  const holder = report.contributors.find((c) => c.id === contributors[0]!.id)!;
  assert.deepEqual([holder.rounds, holder.aborts], [3, 0]);
  assert.deepEqual(
    report.servers.map((s) => [s.rounds, s.aborted]),
    [[3, 1]],
  );
});

/** The entry at `index` changed by `change`, re-encoded canonically (what a lying server logs). */
function tampered(index: number, change: (entry: JsonObject) => void): Uint8Array[] {
  const entry = JSON.parse(Buffer.from(leaves[index]!).toString("utf8")) as JsonObject;
  change(entry);
  const out = [...leaves];
  out[index] = new TextEncoder().encode(canonicalJson(entry));
  return out;
}

const failuresOf = async (lv: Uint8Array[]) => {
  const report = await audit(lv);
  assert.equal(report.ok, false);
  return report.failures.map((f) => `${f.check}@${f.index}: ${f.message}`);
};

test("an entry whose certificate is not every holder's confirmation fails the audit, naming the holder", async () => {
  const swapped = tampered(0, (e) => {
    const c = e.certificate as string[];
    [c[0], c[1]] = [c[1]!, c[0]!];
  });
  assert.deepEqual(await failuresOf(swapped), [
    "entry@0: Holder 1's confirmation in the certificate does not verify (it did not sign this transcript and public package).",
  ]);
  const otherKey = tampered(1, (e) => {
    e.publicHash = toBase64url(new Uint8Array(32).fill(7));
  });
  assert.match((await failuresOf(otherKey))[0]!, /^entry@1: Holder 1's confirmation/);
});

test("an entry whose parameters are not the ones the holders bound into the session id fails the audit", async () => {
  const message =
    "entry@0: The session id is not the hash of the entry's parameters (suite, t, n, server, nonce, holders).";
  assert.deepEqual(await failuresOf(tampered(0, (e) => (e.t = 3))), [message]);
  assert.deepEqual(
    await failuresOf(
      tampered(0, (e) => {
        const h = e.holders as JsonObject[];
        [h[0], h[1]] = [h[1]!, h[0]!];
      }),
    ),
    [message],
  );
  // A refresh entry whose key id is another's.
  assert.deepEqual(await failuresOf(tampered(1, (e) => (e.keyId = refreshed.id))), [
    message.replace("entry@0", "entry@1"),
  ]);
  // Holders listed under each other's ids.
  assert.deepEqual(
    await failuresOf(
      tampered(2, (e) => {
        const h = e.holders as JsonObject[];
        const first = (h[0] as JsonObject).contributorId!;
        h[0] = { ...h[0]!, contributorId: (h[1] as JsonObject).contributorId! };
        h[1] = { ...h[1]!, contributorId: first };
      }),
    ),
    ["entry@2: Holder 1's identity key is not the one its id names."],
  );
});

test("the entry parser takes one byte form and only the fields of the entry's kind and outcome", () => {
  const dkg = parseDkgEntry(leaves[0]!);
  const refuses = (change: (e: Record<string, unknown>) => void, why: RegExp) => {
    const e = JSON.parse(JSON.stringify(dkg)) as Record<string, unknown>;
    change(e);
    assert.throws(
      () => parseDkgEntry(encodeDkgEntry(e as unknown as DkgEntry)),
      (error: unknown) => isDkeygenError(error, "E_INVALID_INPUT") && why.test(error.message),
    );
  };
  refuses((e) => (e.keyId = key.id), /"keyId" is only for a refresh/);
  refuses((e) => (e.fault = "share"), /a completed session names no fault/);
  refuses((e) => delete e.certificate, /"certificate" is missing from a completed session/);
  refuses((e) => (e.certificate = (e.certificate as string[]).slice(1)), /n signatures/);
  refuses((e) => (e.n = 65), /"n" is not an integer from 2 to 64/);
  refuses((e) => (e.t = 1), /"t" is not an integer from 2 to n/);
  refuses((e) => (e.t = 4), /"t" is not an integer from 2 to n/);
  refuses((e) => (e.roundId = toBase64url(new Uint8Array(16))), /first 16 bytes/);
  refuses((e) => (e.suite = "secp256k1"), /"suite"/);
  refuses((e) => (e.extra = 1), /unknown field/);
  const aborted = parseDkgEntry(leaves[2]!);
  const e = { ...aborted, culprit: server.fingerprint };
  assert.throws(() => parseDkgEntry(encodeDkgEntry(e)), /"culprit" is not one of the holders/);
  const refresh = parseDkgEntry(leaves[1]!);
  assert.throws(
    () => parseDkgEntry(encodeDkgEntry({ ...refresh, dealers: [2, 1] })),
    /t ascending holder indices/,
  );
  // Not canonical: the same entry with a space.
  const text = Buffer.from(leaves[0]!).toString("utf8").replace('{"', '{ "');
  assert.throws(() => parseDkgEntry(new TextEncoder().encode(text)), /canonical JSON/);
  // t = n and n = 64 are in range (the boundaries, not just inside them).
  const widest = { ...dkg, t: 3 };
  assert.equal(parseDkgEntry(encodeDkgEntry(widest)).t, 3);
});

test("GET /v1/log/entries serves threshold sessions' entries parsed, beside their leaves", async () => {
  const response = await fetch(`${server.httpUrl}/v1/log/entries?start=0&end=10`);
  assert.equal(response.status, 200);
  const body = (await response.json()) as {
    size: number;
    entries: { index: number; leaf: string; entry: unknown }[];
  };
  assert.equal(body.size, 3);
  body.entries.forEach((e, i) => {
    assert.equal(e.index, i);
    assert.deepEqual(Buffer.from(e.leaf, "base64"), Buffer.from(leaves[i]!));
    assert.deepEqual(e.entry, parseDkgEntry(leaves[i]!), "every field, none dropped");
  });
});

test("audit record on a threshold key: through the CLI, the key and its refresh are the packages all holders confirmed in logged sessions", async () => {
  for (const k of [key, refreshed]) {
    const run = await runCli(["audit", "record", k.id, "--data-dir", wallet.dataDir, "--json"]);
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.purpose, "threshold-key");
    assert.deepEqual(
      report.steps.map((s: { step: string; status: string }) => `${s.step}:${s.status}`),
      THRESHOLD_AUDIT_STEPS.map((s) => `${s}:passed`),
    );
    assert.equal(report.statement, THRESHOLD_AUDIT_STATEMENT);
    assert.deepEqual(report.contributors, key.holders);
    assert.equal(report.entryIndex, k === key ? 0 : 1);
  }
});

test("audit record on a threshold key fails, naming what, when the record is not what the holders confirmed", async () => {
  const client = wallet.client;
  const json = async (path: string) => JSON.parse((await client.logGet(path)).toString("utf8"));
  const record = await client.getKey(key.id);
  const checkpoint = (await client.logGet("/v1/log/checkpoint")).toString("utf8");
  const size = Number(checkpoint.split("\n")[1]);
  const audit = async (pub: Record<string, unknown>, index = 0) => {
    const proof = await json(`/v1/log/proof/inclusion?index=${index}&size=${size}`);
    const report = await auditRecord({
      record: { ...record, public: pub as JsonObject },
      opening: undefined,
      identity: await json("/v1/log/identity"),
      checkpoint,
      proof,
      leaf: leaves[index]!,
    });
    const failed = report.steps.filter((s) => s.status !== "passed");
    return failed.map((s) => `${s.step}: ${s.message}`);
  };
  const pub = record.public as Record<string, unknown>;
  assert.deepEqual(await audit(pub), []);
  const holders = pub.holders as Record<string, unknown>[];
  const otherShare = holders[1]!.verifyingShare;
  assert.deepEqual(
    await audit({
      ...pub,
      holders: holders.map((h, i) => (i === 0 ? { ...h, verifyingShare: otherShare } : h)),
    }),
    [
      "certificate: the record's public package (group commitment, verifying shares) is not the one every holder confirmed",
    ],
  );
  const bip86 =
    "certificate: the record's group key, output key or address is not the confirmed package's (BIP 86)";
  // Another last character (replacing it with "q" changed nothing when it already was one).
  const address = refreshed.address!;
  const otherAddress = address.slice(0, -1) + (address.endsWith("q") ? "p" : "q");
  assert.deepEqual(await audit({ ...pub, address: otherAddress }), [bip86]);
  assert.deepEqual(await audit({ ...pub, groupPublicKey: key.outputKey }), [bip86]);
  assert.deepEqual(await audit({ ...pub, transcript: "00".repeat(32) }), [
    "certificate: the record's transcript is not the one the holders confirmed",
  ]);
  // The refresh's entry is not this key's session.
  assert.deepEqual(await audit(pub, 1), [
    `entry: the entry is of session ${leaves[1] && parseDkgEntry(leaves[1]).roundId}…, not the record's ${record.roundId}…`,
    "certificate: needs the entry step",
  ]);
  // The aborted session's entry: no key came of it.
  assert.deepEqual((await audit(pub, 2))[0], "entry: the entry's session did not complete");
});

test("the library entry exports what an outside verifier needs: threshold signing and its checks, the log and record audits", async () => {
  const lib = await import("../../src/index.js");
  for (const name of [
    "verifyThresholdSignature",
    "aggregateSignature",
    "bip86OutputKey",
    "p2trAddress",
    "repairShare",
    "auditLog",
    "auditRecord",
    "verifyDkgEntry",
    "parseDkgEntry",
  ] as const) {
    assert.equal(typeof lib[name], "function", name);
  }
  // The entry the library parses and checks is the one the log holds.
  const entry = lib.parseDkgEntry(leaves[0]!);
  lib.verifyDkgEntry(entry, server.fingerprint);
  assert.equal(entry.sessionId, key.sessionId);
});

test("holders witness their sessions' entries: each keeps a receipt of the DKG and the refresh it held", async () => {
  const keyRound = dkgRoundIds();
  for (const c of contributors) {
    const deadline = Date.now() + 10_000;
    let ids = new Set<string>();
    while (!keyRound.every((id) => ids.has(id)) && Date.now() < deadline) {
      ids = new Set((await readReceipts(c.dataDir)).map((r) => r.roundId));
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(
      keyRound.every((id) => ids.has(id)),
      `${c.id} has receipts of ${[...ids].join(", ") || "nothing"}, not of ${keyRound.join(", ")}`,
    );
  }
});

/** The round ids (first 16 bytes of the session id) of the completed DKG and refresh. */
function dkgRoundIds(): string[] {
  return [key, refreshed].map((k) =>
    toBase64url(fromBase64url(k.sessionId, "sessionId", 32).subarray(0, 16)),
  );
}

test("a witness refuses a session entry that does not check or does not list it, and cosigns one that does", async () => {
  const temp = await tempDir();
  try {
    const identity = server.server.c.identity;
    const pinned = { key: identity.publicKey, fingerprint: identity.fingerprint };
    /** A witness with `state`'s keys and a fresh folder, shown one checkpoint over `leaf`. */
    const show = async (
      state: Awaited<ReturnType<typeof loadOrCreateContributorState>>,
      leaf: Uint8Array,
      name: string,
    ) => {
      const store = new MemoryKeyStore();
      await store.open();
      const log = new TransparencyLog(store, identity);
      const roundId = parseDkgEntry(leaf).roundId;
      const index = await log.append(leaf, roundId);
      const captured = captureLogger();
      const witness = new Witness({
        dataDir: `${temp.path}/${name}`,
        contributorId: state.contributorId,
        privateKey: state.privateKey,
        publicKey: state.publicKey,
        rounds: { answered: () => undefined },
        logger: captured.logger,
      });
      const { mkdir } = await import("node:fs/promises");
      await mkdir(`${temp.path}/${name}`, { recursive: true });
      const id = log.identity();
      const answer = await witness.handle(pinned, {
        type: "log.checkpoint",
        v: PROTOCOL_VERSION,
        checkpoint: log.checkpointAt(1)!,
        old: 0,
        consistency: [],
        rounds: [{ roundId, index, leaf: toBase64url(leaf), proof: [] }],
        identity: { origin: id.origin, verifierKey: id.verifierKey, signature: id.signature },
      });
      return { answer, text: captured.text() };
    };
    const holder = await loadOrCreateContributorState(contributors[0]!.dataDir);
    const good = await show(holder, leaves[0]!, "good");
    assert.equal(good.answer?.type, "log.cosign", good.text);
    const outsider = await loadOrCreateContributorState(`${temp.path}/outsider-state`);
    const left = await show(outsider, leaves[0]!, "outsider");
    assert.equal(left.answer, undefined);
    assert.match(left.text, /the entry's holders leave us out/);
    const swapped = tampered(0, (e) => {
      const c = e.certificate as string[];
      [c[0], c[1]] = [c[1]!, c[0]!];
    })[0]!;
    const bad = await show(holder, swapped, "bad");
    assert.equal(bad.answer, undefined);
    assert.match(bad.text, /confirmation in the certificate does not verify/);
  } finally {
    await temp.remove();
  }
});

test("a key whose entry is not witnessed in time is withdrawn: its record consumed, no holder keeps a share, and the log holds its one completed entry", async () => {
  const lone = await startTestServer({ minCosignatures: 4, revealTimeoutMs: 1_000 });
  try {
    const holders = await startContributors(lone, 3);
    const admin = await lone.admin();
    const failed = await admin.thresholdKeygen({ suite: "ed25519", t: 2, n: 3 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    admin.close();
    assert.ok(isDkeygenError(failed, "E_ROUND_ABORTED"), String(failed));
    assert.match((failed as Error).message, /could not be handed out: .*not witnessed/);
    const records = await lone.server.c.store.list({ purpose: "threshold-key" });
    assert.equal(records.length, 1);
    assert.ok(records[0]!.consumedAt, "the withdrawn key's record is consumed");
    // An abort's entry is appended after the admin hears of it: give one the time to appear.
    await new Promise((r) => setTimeout(r, 500));
    const leavesNow = await lone.server.log.entries(0, lone.server.log.size);
    assert.deepEqual(
      leavesNow.map((l) => parseDkgEntry(l).outcome),
      ["completed"],
      "no second entry for the session",
    );
    for (const h of holders) {
      const { readdir } = await import("node:fs/promises");
      const files = await readdir(`${h.dataDir}/threshold`).catch(() => [] as string[]);
      assert.deepEqual(
        files.filter((f) => f.endsWith(".json")),
        [],
        `${h.id} kept a share file`,
      );
    }
  } finally {
    await lone.cleanup();
  }
});
