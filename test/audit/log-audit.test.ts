/**
 * The log auditor (src/audit/log-audit.ts) on a log a real server made: two completed rounds and
 * one that a contributor aborted by withholding its reveal. The honest log passes every check
 * (on threads and on the caller's), with the right counts and abort rates; each lie a server can
 * tell is caught and named — an identity that does not check, a checkpoint under another key,
 * missing cosignatures, a changed entry (by its signatures and by the tree), a repeated round id,
 * a fork and a removed round against an earlier checkpoint, a rolled-back log, a consistency proof
 * that does not verify, too few or too many entries. The export file round-trips.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type AuditOptions, auditLog, verifyLogIdentity } from "../../src/audit/log-audit.js";
import { ExportWriter, openExport } from "../../src/audit/log-export.js";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { serverSign } from "../../src/crypto/server-signature.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { contributorIdOf } from "../../src/server/enrollment.js";
import { logIdentitySignedData } from "../../src/server/transparency-log.js";
import { signCheckpoint } from "../../src/tlog/checkpoint.js";
import { cosignatureSigner, cosignNote } from "../../src/tlog/cosignature.js";
import { hashLeaf, rootOf } from "../../src/tlog/merkle.js";
import { ed25519NoteSigner } from "../../src/tlog/note-keys.js";
import {
  abortedRound,
  changedLeaf,
  completedRound,
  logOf,
  signedCheckpoint,
} from "../helpers/audit-log.js";
import {
  enrolledRawPeer,
  type RawPeer,
  startContributors,
  startTestServer,
  type TestServer,
  tempDir,
} from "../helpers/ceremony.js";

let server: TestServer;
let peer: RawPeer;
let peerId: string;
let log: Awaited<ReturnType<typeof logOf>>;
/** The real checkpoints at sizes 2 and 3. */
let checkpoint2: string;

before(async () => {
  server = await startTestServer({ quorum: 2, roundTimeoutMs: 1500 });
  await startContributors(server, 2);
  peer = await enrolledRawPeer(server);
  peerId = contributorIdOf(peer.contributorIdentity);
  await completedRound(server, peer);
  await abortedRound(server, peer);
  checkpoint2 = await server.server.log.checkpoint();
  await completedRound(server, peer);
  log = await logOf(server);
});
after(async () => {
  peer?.close();
  await server?.cleanup();
});

const audit = (options: Partial<AuditOptions> = {}) =>
  auditLog({
    identity: log.identity,
    checkpoint: log.checkpoint,
    leaves: () => [log.leaves],
    threads: 2,
    ...options,
  });

/** The failures of a report as "check@index: message" lines, for assertions and messages. */
const lines = (report: Awaited<ReturnType<typeof auditLog>>) =>
  report.failures.map(
    (f) => `${f.check}${f.index === undefined ? "" : `@${f.index}`}: ${f.message}`,
  );

test("the honest log passes every check, with its rounds and abort rates, on threads or not", async () => {
  assert.equal(log.leaves.length, 3);
  for (const threads of [2, 1, 0]) {
    const report = await audit({ threads, serverFingerprint: server.fingerprint });
    assert.deepEqual(lines(report), [], `threads ${threads}`);
    assert.equal(report.ok, true);
    assert.equal(report.entries, 3);
    assert.equal(report.verified, 3);
    assert.deepEqual(report.outcomes, { completed: 2, aborted: 1, failed: 0 });
    assert.deepEqual(report.servers, [
      { fingerprint: server.fingerprint, rounds: 3, aborted: 1, abortRate: 1 / 3 },
    ]);
    assert.equal(report.contributors.length, 3);
    const mine = report.contributors.find((c) => c.id === peerId);
    assert.deepEqual(mine, { id: peerId, rounds: 3, aborts: 1, abortRate: 1 / 3 });
    for (const c of report.contributors.filter((c) => c.id !== peerId)) {
      assert.deepEqual([c.rounds, c.aborts, c.abortRate], [3, 0, 0]);
    }
    assert.equal(report.identity?.pinned, true);
    assert.equal(report.checkpoint?.size, 3);
    assert.ok(report.checkpoint?.storeHead, "the checkpoint carries the store head");
  }
  // Leaves in batches of any size give the same result.
  const one = await audit({ leaves: () => log.leaves.map((leaf) => [leaf]) });
  assert.equal(one.ok, true);
});

test("the tree-only audit checks the hashes and the root, nothing of the entries", async () => {
  const report = await audit({ checks: "tree" });
  assert.equal(report.ok, true);
  assert.equal(report.verified, 0);
  const changed = log.leaves.map((leaf, i) =>
    i === 1 ? changedLeaf(leaf, (e) => (e.closedAt = "2000-01-01T00:00:00.000Z")) : leaf,
  );
  assert.deepEqual(
    lines(await audit({ checks: "tree", leaves: () => [changed] })).map((l) => l.split(":")[0]),
    ["tree"],
  );
});

test("the tree in chunks of any size: every earlier size's root is the one the leaves give there", async () => {
  const leaves = Array.from({ length: 33 }, (_, i) => new Uint8Array([i, i * 7, 1]));
  for (const n of [1, 2, 3, 5, 8, 13, 16, 17, 33]) {
    const mine = leaves.slice(0, n);
    const checkpoint = signedCheckpoint(server, mine);
    // Every earlier size for the small trees; for the larger, the sizes around the chunks' ends.
    const sizes =
      n <= 8 ? [...Array(n + 1).keys()] : [0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, n - 1, n];
    for (const m of sizes.filter((m) => m <= n)) {
      const expected = Buffer.from(rootOf(mine.slice(0, m).map(hashLeaf))).toString("base64");
      const since = signedCheckpoint(server, mine.slice(0, m));
      for (const chunkLeaves of [1, 3, 8]) {
        const options = {
          checks: "tree" as const,
          checkpoint,
          leaves: () => [mine],
          chunkLeaves,
          threads: chunkLeaves === 3 && m === n ? 2 : 0,
        };
        const report = await audit({ ...options, since });
        const where = `size ${n}, since ${m}, chunks of ${chunkLeaves}`;
        assert.deepEqual(lines(report), [], where);
        assert.equal(report.entries, n, where);
        assert.equal(report.since?.computedRoot, expected, where);
      }
    }
    const forked = await audit({
      checks: "tree",
      checkpoint,
      leaves: () => [mine],
      chunkLeaves: 3,
      since: signedCheckpoint(server, mine.slice(0, n - 1), { root: new Uint8Array(32) }),
    });
    assert.deepEqual(
      lines(forked).map((l) => l.split(":")[0]),
      ["since"],
      `fork at ${n - 1}`,
    );
  }
});

test("an identity that does not check stops the audit, naming what is wrong", async () => {
  const other = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  const pinned = await audit({ serverFingerprint: other });
  assert.deepEqual(
    pinned.failures.map((f) => f.check),
    ["identity"],
  );
  assert.match(pinned.failures[0]!.message, new RegExp(`not ${other}`));
  assert.equal(pinned.entries, 0, "nothing after a failed identity is checked");

  const id = log.identity;
  const certified = (change: { origin?: string; verifierKey?: string }) => {
    const changed = { ...id, ...change };
    const signed = logIdentitySignedData(id.serverFingerprint, changed.origin, changed.verifierKey);
    return {
      ...changed,
      signature: toBase64url(serverSign(server.server.c.identity.privateKey, signed)),
    };
  };
  const signature = fromBase64url(id.signature, "signature");
  signature[10]! ^= 1;
  const cases: [string, unknown, RegExp][] = [
    ["another fingerprint", { ...id, serverFingerprint: other }, /serverKey's fingerprint/],
    ["a forged certificate", { ...id, signature: toBase64url(signature) }, /does not verify/],
    ["another origin, unsigned", { ...id, origin: "dkeygen/0000000000000000" }, /not verify/],
    // What the server key itself certifies must still be this log's origin and key name.
    ["another origin, signed", certified({ origin: "dkeygen/0000000000000000" }), /origin is/],
    [
      "a log key named otherwise, signed",
      certified({
        verifierKey: ed25519NoteSigner("elsewhere", new Uint8Array(randomBytes(32))).verifierKey,
      }),
      /named "elsewhere"/,
    ],
    [
      "another log key",
      {
        ...id,
        verifierKey: ed25519NoteSigner(id.origin, new Uint8Array(randomBytes(32))).verifierKey,
      },
      /does not verify/,
    ],
    ["not an identity", { origin: id.origin }, /no "verifierKey"/],
  ];
  for (const [name, identity, message] of cases) {
    const report = await audit({ identity });
    assert.deepEqual(
      report.failures.map((f) => f.check),
      ["identity"],
      name,
    );
    assert.match(report.failures[0]!.message, message, name);
    assert.throws(() => verifyLogIdentity(identity), isDkeygenError, name);
  }
});

test("a checkpoint not signed by the log key, or of another log, is refused", async () => {
  const [text] = log.checkpoint.split("\n\n");
  const stranger = ed25519NoteSigner(log.identity.origin, new Uint8Array(randomBytes(32)));
  const forged = `${text}\n\n— ${log.identity.origin} ${Buffer.from([
    ...randomBytes(4),
    ...randomBytes(64),
  ]).toString("base64")}\n`;
  for (const note of [
    signCheckpoint(
      { origin: log.identity.origin, size: 3, rootHash: new Uint8Array(32), extensions: [] },
      stranger,
    ),
    forged,
    "not a note",
  ]) {
    const report = await audit({ checkpoint: note });
    assert.deepEqual(
      report.failures.map((f) => f.check),
      ["checkpoint"],
    );
    assert.equal(report.entries, 0);
  }
});

test("cosignatures: counted per witness key given; fewer than asked is a failure; a bad one refuses the note", async () => {
  const witness = cosignatureSigner(
    "witness.example/w1",
    new Uint8Array(randomBytes(32)),
    () => 1_700_000_000,
  );
  const absent = cosignatureSigner(
    "witness.example/w2",
    new Uint8Array(randomBytes(32)),
    () => 1_700_000_000,
  );
  const cosigned = cosignNote(log.checkpoint, witness);
  const ok = await audit({
    checkpoint: cosigned,
    witnesses: [witness.verifierKey],
    minCosignatures: 1,
  });
  assert.deepEqual(lines(ok), []);
  assert.deepEqual(
    ok.checkpoint?.cosignatures.map((c) => [c.name, c.timestamp]),
    [["witness.example/w1", 1_700_000_000]],
  );
  const short = await audit({
    checkpoint: cosigned,
    witnesses: [witness.verifierKey, absent.verifierKey],
    minCosignatures: 2,
  });
  assert.deepEqual(
    lines(short).map((l) => l.split(":")[0]),
    ["cosignatures"],
  );
  assert.match(short.failures[0]!.message, /1 verified cosignature.*at least 2/);
  assert.equal(short.verified, 3, "the entries are still checked");
  // A cosignature line by a witness given that does not verify: the note is refused.
  const lastLine = cosigned.trimEnd().split("\n").at(-1)!;
  const sig = Buffer.from(lastLine.split(" ").at(-1)!, "base64");
  sig[sig.length - 1]! ^= 1;
  const broken = cosigned.replace(
    lastLine,
    `${lastLine.split(" ").slice(0, -1).join(" ")} ${sig.toString("base64")}`,
  );
  const bad = await audit({ checkpoint: broken, witnesses: [witness.verifierKey] });
  assert.deepEqual(
    lines(bad).map((l) => l.split(":")[0]),
    ["checkpoint"],
  );
});

test("a changed entry is caught by its signatures, at its index, and by the tree", async () => {
  const changes: [string, (e: Record<string, unknown>) => void, RegExp][] = [
    ["seed", (e) => (e.seed = toBase64url(new Uint8Array(32))), /invitation does not verify/],
    ["outcome", (e) => (e.accepted = 1), /closing does not verify/],
    ["server", (e) => (e.server = peerId), /not this log's server/],
    ["not JSON", () => {}, /Malformed log entry/],
  ];
  for (const [name, change, message] of changes) {
    const leaves = log.leaves.map((leaf, i) =>
      i !== 1 ? leaf : name === "not JSON" ? new Uint8Array([0x7b]) : changedLeaf(leaf, change),
    );
    const report = await audit({ leaves: () => [leaves] });
    assert.deepEqual(
      report.failures.map((f) => [f.check, f.index]),
      [
        ["entry", 1],
        ["tree", undefined],
      ],
      name,
    );
    assert.match(report.failures[0]!.message, message, name);
    assert.match(report.failures[1]!.message, /do not hash to the checkpoint's root/, name);
    assert.equal(report.verified, 2, name);
  }
  // Leaves that do not hash to the checkpoint's root say nothing of an earlier checkpoint: the
  // changed entry and the tree are the failures, not a fork.
  const changed = log.leaves.map((leaf, i) =>
    i === 0 ? changedLeaf(leaf, (e) => (e.accepted = 9)) : leaf,
  );
  const withSince = await audit({ leaves: () => [changed], since: checkpoint2 });
  assert.deepEqual(
    withSince.failures.map((f) => f.check),
    ["entry", "tree"],
  );
  assert.equal(withSince.since?.computedRoot, undefined);
  // A field no signature covers (the results hash) is still fixed by the tree.
  const leaves = log.leaves.map((leaf, i) =>
    i === 0
      ? changedLeaf(leaf, (e) => {
          (e.results as { hash: string }).hash = toBase64url(new Uint8Array(32));
        })
      : leaf,
  );
  assert.deepEqual(
    lines(await audit({ leaves: () => [leaves] })).map((l) => l.split(":")[0]),
    ["tree"],
  );
});

test("a round logged twice (a rerun) is a failure naming both entries, even in a re-signed tree", async () => {
  const leaves = [...log.leaves, log.leaves[0]!];
  const report = await audit({
    checkpoint: signedCheckpoint(server, leaves),
    leaves: () => [leaves],
  });
  assert.deepEqual(
    report.failures.map((f) => [f.check, f.index]),
    [["round-id", 3]],
  );
  assert.match(report.failures[0]!.message, /entry 0 has the same round id/);
});

test("a fork: an earlier checkpoint of the same size with another root, both signed by the log key", async () => {
  const forked = signedCheckpoint(server, log.leaves, { root: new Uint8Array(32).fill(7) });
  const report = await audit({ since: forked });
  assert.deepEqual(
    lines(report).map((l) => l.split(":")[0]),
    ["since"],
  );
  const message = report.failures[0]!.message;
  assert.match(message, /forked: two checkpoints of size 3/);
  assert.ok(message.includes(Buffer.alloc(32, 7).toString("base64")), message);
  assert.ok(message.includes(log.checkpoint.split("\n")[2]!), message);
  // The checkpoint it saw before, the same: consistent.
  assert.deepEqual(lines(await audit({ since: log.checkpoint })), []);
});

test("a round removed, the tree recomputed and re-signed: the earlier checkpoint disagrees", async () => {
  const leaves = [log.leaves[0]!, log.leaves[2]!];
  const report = await audit({
    checkpoint: signedCheckpoint(server, leaves),
    leaves: () => [leaves],
    since: checkpoint2,
  });
  assert.deepEqual(
    lines(report).map((l) => l.split(":")[0]),
    ["since"],
  );
  assert.match(report.failures[0]!.message, /forked/);
  // Or moved after a later one: the tree of 3 is re-signed, its first 2 are not the 2 seen.
  const moved = [log.leaves[0]!, log.leaves[2]!, log.leaves[1]!];
  const reordered = await audit({
    checkpoint: signedCheckpoint(server, moved),
    leaves: () => [moved],
    since: checkpoint2,
  });
  assert.deepEqual(
    lines(reordered).map((l) => l.split(":")[0]),
    ["since"],
  );
  assert.match(reordered.failures[0]!.message, /forked: the earlier checkpoint .* at size 2/);
  // Without the earlier checkpoint, nothing in the re-signed log itself shows it.
  assert.deepEqual(
    lines(await audit({ checkpoint: signedCheckpoint(server, leaves), leaves: () => [leaves] })),
    [],
  );
});

test("a log shorter than a checkpoint seen before was rolled back", async () => {
  const report = await audit({
    checkpoint: checkpoint2,
    leaves: () => [log.leaves.slice(0, 2)],
    since: log.checkpoint,
  });
  assert.deepEqual(
    lines(report).map((l) => l.split(":")[0]),
    ["since"],
  );
  assert.match(report.failures[0]!.message, /The log is shorter than a checkpoint you saw/);
});

test("an earlier checkpoint under another key is refused", async () => {
  const stranger = ed25519NoteSigner(log.identity.origin, new Uint8Array(randomBytes(32)));
  const note = signCheckpoint(
    { origin: log.identity.origin, size: 2, rootHash: new Uint8Array(32), extensions: [] },
    stranger,
  );
  const report = await audit({ since: note });
  assert.deepEqual(
    lines(report).map((l) => l.split(":")[0]),
    ["since"],
  );
  assert.match(report.failures[0]!.message, /does not open under this log's key/);
});

test("the server's consistency proof from the earlier checkpoint must verify", async () => {
  const real = server.server.log.consistencyProof(2, 3);
  const good = await audit({ since: checkpoint2, consistencyProof: async () => real });
  assert.deepEqual(lines(good), []);
  assert.equal(good.since?.consistencyProof, "verified");
  const bent = real.map((h) => Uint8Array.from(h, (b, i) => (i === 0 ? b ^ 1 : b)));
  const bad = await audit({ since: checkpoint2, consistencyProof: async () => bent });
  assert.deepEqual(
    lines(bad).map((l) => l.split(":")[0]),
    ["consistency"],
  );
  const none = await audit({
    since: checkpoint2,
    consistencyProof: async () => {
      throw new Error("GET /v1/log/proof/consistency answered 500");
    },
  });
  assert.deepEqual(
    lines(none).map((l) => l.split(":")[0]),
    ["consistency"],
  );
});

test("too few or too many entries for the checkpoint", async () => {
  const few = await audit({ leaves: () => [log.leaves.slice(0, 2)] });
  assert.deepEqual(
    lines(few).map((l) => l.split(":")[0]),
    ["entries"],
  );
  assert.match(few.failures[0]!.message, /gave 2 entries; its checkpoint covers 3/);
  const many = await audit({ leaves: () => [[...log.leaves, log.leaves[0]!]] });
  assert.deepEqual(
    lines(many).map((l) => l.split(":")[0]),
    ["entries"],
  );
  const broken = await audit({
    // biome-ignore lint/correctness/useYield: a source that fails before its first batch
    leaves: async function* () {
      throw new Error("connection reset");
    },
  });
  assert.deepEqual(
    lines(broken).map((l) => l.split(":")[0]),
    ["entries"],
  );
  assert.match(broken.failures[0]!.message, /connection reset/);
});

test("an export written and read back gives the same audit; a malformed export is refused", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, "log.json");
    const writer = await ExportWriter.create(path, log.identity, log.checkpoint);
    await writer.add(log.leaves.slice(0, 1));
    await writer.add(log.leaves.slice(1));
    await writer.close();
    const opened = await openExport(path);
    const leaves: Uint8Array[] = [];
    for await (const batch of opened.entries()) leaves.push(...batch);
    await opened.close();
    assert.deepEqual(
      leaves.map((l) => Buffer.from(l).toString("hex")),
      log.leaves.map((l) => Buffer.from(l).toString("hex")),
    );
    assert.deepEqual(opened.identity, log.identity);
    assert.equal(opened.checkpoint, log.checkpoint);

    const b64 = log.leaves.map((l) => Buffer.from(l).toString("base64"));
    const bad: [string, string][] = [
      ["no v", JSON.stringify({ identity: log.identity, checkpoint: "x", entries: [] })],
      [
        "entries first",
        JSON.stringify({ v: 1, entries: b64, identity: log.identity, checkpoint: "x" }),
      ],
      [
        "unpadded leaf",
        JSON.stringify({
          v: 1,
          identity: {},
          checkpoint: "x",
          entries: [b64[0]!.replace(/=+$/, "")],
        }),
      ],
      ["a number leaf", JSON.stringify({ v: 1, identity: {}, checkpoint: "x", entries: [1] })],
      [
        "cut short",
        JSON.stringify({ v: 1, identity: {}, checkpoint: "x", entries: b64 }).slice(0, -10),
      ],
      ["trailing", `${JSON.stringify({ v: 1, identity: {}, checkpoint: "x", entries: [] })}x`],
      [
        "unknown member",
        JSON.stringify({ v: 1, identity: {}, checkpoint: "x", more: 1, entries: [] }),
      ],
    ];
    for (const [name, text] of bad) {
      await writeFile(path, text);
      await assert.rejects(
        async () => {
          const o = await openExport(path);
          try {
            for await (const _ of o.entries()) {
              // read to the end
            }
          } finally {
            await o.close();
          }
        },
        (error: unknown) => isDkeygenError(error, ErrorCodes.INVALID_INPUT),
        name,
      );
    }
    // Whitespace and escapes are JSON's own: a pretty-printed export reads the same.
    await writeFile(
      path,
      JSON.stringify(
        { v: 1, identity: log.identity, checkpoint: log.checkpoint, entries: b64 },
        null,
        2,
      ),
    );
    const pretty = await openExport(path);
    const again: Uint8Array[] = [];
    for await (const batch of pretty.entries()) again.push(...batch);
    await pretty.close();
    assert.equal(again.length, 3);
    assert.equal(pretty.checkpoint, log.checkpoint);
  } finally {
    await dir.remove();
  }
});
