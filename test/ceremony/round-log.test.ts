/**
 * Every round that reaches a commit set is appended to the transparency log before anyone hears
 * of it: completed and aborted rounds alike, over real sockets. Each entry verifies from the log
 * alone against the server key; its result commitment opens with the record's derivation secret;
 * the checkpoint is signed by the log key and covers the entries; a restart rebuilds the same
 * tree; and an entry altered in any part the server signed or a contributor signed is refused.
 */
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { after, before, test } from "node:test";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import type { JsonObject } from "../../src/json.js";
import {
  encodeRoundEntry,
  parseRoundEntry,
  type RoundEntry,
  resultCommitment,
  resultSalt,
  resultsHash,
  verifyRoundEntry,
} from "../../src/protocol/log-entry.js";
import type { MessageOf } from "../../src/protocol/messages.js";
import { contributorIdOf } from "../../src/server/enrollment.js";
import { readStoredSecret } from "../../src/server/stored-secret.js";
import { STORE_HEAD_EXTENSION } from "../../src/server/transparency-log.js";
import { openCheckpoint } from "../../src/tlog/checkpoint.js";
import { hashLeaf, verifyInclusion } from "../../src/tlog/merkle.js";
import { ed25519NoteVerifier } from "../../src/tlog/note-keys.js";
import {
  buildContribution,
  commitAndReveal,
  enrolledRawPeer,
  type RawPeer,
  startContributors,
  startTestServer,
  type TestServer,
} from "../helpers/ceremony.js";

let server: TestServer;

before(async () => {
  server = await startTestServer({ quorum: 2, roundTimeoutMs: 1500 });
  await startContributors(server, 2);
});
after(() => server.cleanup());

async function roundWith(peer: RawPeer, act: (open: MessageOf<"round.open">) => Promise<void>) {
  const admin = await server.admin();
  const pending = admin.generate("totp", {});
  pending.catch(() => {});
  try {
    const open = await peer.next("round.open");
    await act(open);
    return await pending;
  } finally {
    admin.close();
  }
}

const serverKey = () =>
  createPublicKey({ key: Buffer.from(server.server.c.identity.spki), format: "der", type: "spki" });

async function entries(): Promise<RoundEntry[]> {
  const log = server.server.log;
  await log.ready();
  return (await log.entries(0, log.size)).map(parseRoundEntry);
}

test("a completed and an aborted round are each logged, verify against the server key, and the checkpoint covers them", async () => {
  const peer = await enrolledRawPeer(server);
  const record = await roundWith(peer, async (open) => {
    await commitAndReveal(peer, open);
  });
  let aborted: unknown;
  try {
    await roundWith(peer, async (open) => {
      peer.send(buildContribution(peer, open).commit);
      await peer.next("round.commits"); // … and withholds its reveal
    });
  } catch (error) {
    aborted = error;
  }
  assert.ok(isDkeygenError(aborted, ErrorCodes.ROUND_ABORTED));
  peer.close();

  const log = server.server.log;
  const [done, abort] = await entries();
  assert.equal(log.size, 2);
  assert.equal(log.indexOf(record.roundId), 0);

  // The completed round: every contributor committed and countersigned; one result.
  assert.equal(done!.roundId, record.roundId);
  assert.equal(done!.outcome, "completed");
  assert.equal(done!.commits.length, 3);
  assert.ok(done!.commits.every((c) => c.reveal !== undefined));
  assert.deepEqual(
    done!.commits.map((c) => c.contributorId),
    [...record.participants].sort(),
  );
  verifyRoundEntry(done!, serverKey());
  // Its result commitment opens with the record's derivation secret, and only with it.
  const stored = await readStoredSecret(server.store, record.id);
  const salt = resultSalt(Buffer.from(stored.derivationSecret, "hex"));
  const commitment = resultCommitment(
    record.id,
    record.algorithm,
    record.public as JsonObject,
    salt,
  );
  assert.equal(
    done!.results!.hash,
    toBase64url(resultsHash(record.roundId, [{ recordId: record.id, commitment }])),
  );
  assert.equal(done!.results!.count, 1);
  const wrongSalt = resultCommitment(
    record.id,
    record.algorithm,
    record.public as JsonObject,
    new Uint8Array(32),
  );
  assert.notEqual(
    done!.results!.hash,
    toBase64url(resultsHash(record.roundId, [{ recordId: record.id, commitment: wrongSalt }])),
  );
  // Nothing secret in the log: not the TOTP secret, not the derivation secret.
  const leafText = Buffer.from(encodeRoundEntry(done!)).toString();
  assert.ok(!leafText.includes(stored.derivationSecret));
  assert.ok(!leafText.includes(toBase64url(Buffer.from(stored.derivationSecret, "hex"))));
  const output = JSON.stringify(stored.output);
  for (const value of Object.values(stored.output)) {
    if (typeof value === "string" && value.length > 8) assert.ok(!leafText.includes(value), output);
  }

  // The aborted round names the withholding peer, and so does its signed closing.
  assert.equal(abort!.outcome, "aborted");
  const peerId = contributorIdOf(peer.contributorIdentity);
  assert.deepEqual(abort!.missing, [peerId]);
  assert.equal(abort!.results, undefined);
  assert.equal(abort!.commits.find((c) => c.contributorId === peerId)!.reveal, undefined);
  verifyRoundEntry(abort!, serverKey());

  // The checkpoint: signed by the log key, carries the store's chain head, covers both entries.
  const note = await log.checkpoint();
  const { checkpoint } = openCheckpoint(note, log.origin, ed25519NoteVerifier(log.verifierKey));
  assert.equal(checkpoint.size, 2);
  assert.match(
    checkpoint.extensions[0]!,
    new RegExp(`^${STORE_HEAD_EXTENSION} \\d+ [0-9a-f]{64}$`),
  );
  const leaves = await log.entries(0, 2);
  for (const [index, leaf] of leaves.entries()) {
    verifyInclusion(index, 2, hashLeaf(leaf), log.inclusionProof(index, 2), checkpoint.rootHash);
  }
});

test("an entry changed in any signed part, or in a rule that ties the parts together, is refused", async () => {
  const [done, abort] = await entries();
  assert.ok(done && abort, "the test above logged two rounds");
  const key = serverKey();
  const flip = (b64: string) => {
    const bytes = fromBase64url(b64, "field");
    bytes[0]! ^= 1;
    return toBase64url(bytes);
  };
  const other = done.commits[1]!;
  const cases: [string, RoundEntry][] = [
    ["seed", { ...done, seed: flip(done.seed) }],
    ["params hash", { ...done, paramsHash: flip(done.paramsHash) }],
    ["server commitment", { ...done, serverCommitment: flip(done.serverCommitment) }],
    ["invited", { ...done, invited: [...done.invited].reverse() }],
    ["purpose", { ...done, purpose: "otp" }],
    [
      "a commitment",
      {
        ...done,
        commits: done.commits.map((c, i) =>
          i === 0 ? { ...c, commitment: flip(c.commitment) } : c,
        ),
      },
    ],
    [
      "a countersignature",
      {
        ...done,
        commits: done.commits.map((c, i) => (i === 0 ? { ...c, reveal: flip(c.reveal!) } : c)),
      },
    ],
    [
      "a reveal dropped",
      {
        ...done,
        commits: done.commits
          .map((c, i) => (i === 0 ? { ...c, reveal: undefined } : c))
          .map((c) => JSON.parse(JSON.stringify(c))),
      },
    ],
    ["a contributor dropped from the set", { ...done, commits: done.commits.slice(1) }],
    [
      "another identity",
      {
        ...done,
        commits: done.commits.map((c, i) => (i === 0 ? { ...c, identity: other.identity } : c)),
      },
    ],
    ["outcome", { ...done, outcome: "aborted", missing: [done.commits[0]!.contributorId] }],
    ["accepted", { ...done, accepted: 2 }],
    [
      "missing",
      { ...abort, missing: [abort.commits.find((c) => c.reveal !== undefined)!.contributorId] },
    ],
    ["abort turned completion", { ...abort, outcome: "completed" }],
    ["round key", { ...done, roundKey: abort.roundKey }],
    ["set signature", { ...done, setSignature: abort.setSignature }],
    ["server", { ...done, server: abort.commits[0]!.contributorId }],
  ];
  for (const [name, changed] of cases) {
    assert.throws(
      () => verifyRoundEntry(parseRoundEntry(encodeRoundEntry(changed)), key),
      (error: unknown) => isDkeygenError(error, ErrorCodes.BAD_SIGNATURE),
      name,
    );
  }
  // The results hash is covered by no signature inside the entry: the log itself fixes it (an
  // entry changed after a checkpoint is a fork), and `audit record` opens it.
  // Unchanged, both still verify: the cases fail for their change alone.
  verifyRoundEntry(done, key);
  verifyRoundEntry(abort, key);
});

test("a leaf that is not the canonical form of an entry is refused as malformed", async () => {
  const [done] = await entries();
  const leaf = Buffer.from(encodeRoundEntry(done!)).toString();
  const variants = [
    ` ${leaf}`,
    leaf.replace('{"accepted"', '{"extra":1,"accepted"'),
    JSON.stringify({ ...done, protocol: 3 }),
    JSON.stringify(done, null, 1),
    leaf.replace(/"type":"dkeygen\/round"/, '"type":"dkeygen/other"'),
  ];
  for (const text of variants) {
    assert.throws(
      () => parseRoundEntry(new TextEncoder().encode(text)),
      (error: unknown) => isDkeygenError(error, ErrorCodes.INVALID_INPUT),
      text.slice(0, 40),
    );
  }
});
