/**
 * Contributors witness the transparency log (PROTOCOL §15.5), over real sockets: each cosigns the
 * checkpoints that cover its rounds once it has checked them, records a receipt per round, and
 * `contributor audit` re-checks the receipts later; the server serves the newest checkpoint with
 * K cosignatures and hands a round's result out only once one covers it. A bad cosignature is
 * refused with a stable code and does not count; K = 0 turns witnessing off.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { witnessKeyName } from "../../src/protocol/witness.js";
import { readReceipts, readWitnessState, witnessIdentity } from "../../src/client/witness.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { openCheckpoint } from "../../src/tlog/checkpoint.js";
import { cosignatureVerifier, cosignaturesOf } from "../../src/tlog/cosignature.js";
import { ed25519NoteVerifier } from "../../src/tlog/note-keys.js";
import {
  commitAndReveal,
  enrolledRawPeer,
  startContributors,
  startTestServer,
  type TestServer,
  waitFor,
} from "../helpers/ceremony.js";
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
      contributors.map(async (c) =>
        witnessIdentity(await loadOrCreateContributorState(c.dataDir)).verifierKey,
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
  } finally {
    await server.cleanup();
  }
});
