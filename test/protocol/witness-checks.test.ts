/**
 * The contributor's witness module (src/client/witness.ts), driven directly with log.checkpoint
 * messages crafted by a test server (its own RSA key, log and rounds): it cosigns a checkpoint
 * only after every check of PROTOCOL §15.5 passes, and refuses — logging, cosigning nothing,
 * keeping its state — a fork (another root for the size it cosigned, or a larger tree that does
 * not extend it), a smaller tree, and an entry of its own round that omits its reveal although it
 * holds the server's receipt. A proof from another size than its own is answered log.conflict.
 */
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { before, test } from "node:test";
import {
  type ContributorState,
  loadOrCreateContributorState,
} from "../../src/client/contributor-state.js";
import {
  type AnsweredRound,
  readReceipts,
  readWitnessState,
  Witness,
} from "../../src/client/witness.js";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { generateIdentity, rawPublicKey, signMessage } from "../../src/crypto/signature.js";
import { encodeRoundEntry, roundEntryOf } from "../../src/protocol/log-entry.js";
import type { MessageOf } from "../../src/protocol/messages.js";
import {
  commitSetHash,
  commitSignedData,
  revealSignedData,
} from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { identityFromPrivateKey, type ServerIdentity } from "../../src/server/identity.js";
import {
  closingMessage,
  commitSetMessage,
  roundOpenMessage,
} from "../../src/server/round-statements.js";
import { TransparencyLog } from "../../src/server/transparency-log.js";
import { witnessVerifierKey } from "../../src/server/witnessing.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import { cosignatureVerifier } from "../../src/tlog/cosignature.js";
import { parseNote } from "../../src/tlog/note.js";
import { captureLogger, tempDir } from "../helpers/ceremony.js";

let server: ServerIdentity;
let pinned: { key: ReturnType<typeof createPublicKey>; fingerprint: string };

before(() => {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 3072 });
  server = identityFromPrivateKey(privateKey);
  pinned = { key: createPublicKey(privateKey), fingerprint: server.fingerprint };
});

async function newLog(): Promise<TransparencyLog> {
  const store = new MemoryKeyStore();
  await store.open();
  const log = new TransparencyLog(store, server);
  await log.ready();
  return log;
}

/** A round this contributor committed to (and revealed in, unless `withhold`), signed. */
function round(
  me: ContributorState,
  options: { withhold?: boolean; logReveal?: boolean } = {},
): { roundId: string; leaf: Uint8Array; answered: AnsweredRound } {
  const roundId = toBase64url(randomBytes(16));
  const roundKey = generateIdentity();
  const open = roundOpenMessage(server.privateKey, {
    roundId,
    purpose: "otp",
    paramsHash: randomBytes(32),
    seed: randomBytes(32),
    serverCommitment: randomBytes(32),
    roundKey: rawPublicKey(roundKey.publicKey),
    commitDeadline: "2026-11-24T10:00:00.000Z",
    revealDeadline: "2026-11-24T10:00:10.000Z",
    invited: [me.contributorId],
  });
  const commitment = new Uint8Array(randomBytes(32));
  const id = me.contributorId;
  const commits = [{ contributorId: id, commitment }];
  const setHash = commitSetHash(roundId, server.fingerprint, commits);
  const set = commitSetMessage(roundKey.privateKey, roundId, commits, setHash);
  const revealed = !options.withhold;
  const logged = options.logReveal ?? revealed;
  const closed = closingMessage(roundKey.privateKey, {
    roundId,
    outcome: logged ? "completed" : "aborted",
    accepted: logged ? 1 : 0,
    setHash,
    ...(logged ? {} : { missing: [id] }),
  });
  const entry = roundEntryOf({
    server: server.fingerprint,
    open,
    commits: [
      {
        contributorId: id,
        identity: me.identity,
        commitment,
        signature: toBase64url(
          signMessage(me.privateKey, commitSignedData(roundId, id, server.fingerprint, commitment)),
        ),
        ...(logged
          ? {
              reveal: toBase64url(
                signMessage(
                  me.privateKey,
                  revealSignedData(roundId, id, server.fingerprint, setHash, commitment),
                ),
              ),
            }
          : {}),
      },
    ],
    setSignature: set.signature,
    closed: {
      outcome: closed.outcome,
      accepted: closed.accepted,
      ...(closed.missing === undefined ? {} : { missing: closed.missing }),
      signature: closed.signature,
    },
    ...(logged
      ? { results: [{ recordId: "01KAAAAAAAAAAAAAAAAAAAAAAA", commitment: randomBytes(32) }] }
      : {}),
    closedAt: new Date("2026-11-24T10:00:11.000Z"),
  });
  return {
    roundId,
    leaf: encodeRoundEntry(entry),
    answered: {
      commitment,
      receipt: revealed,
      ...(options.logReveal === undefined
        ? {
            closed: {
              outcome: closed.outcome,
              accepted: closed.accepted,
              signature: closed.signature,
            },
          }
        : {}),
    },
  };
}

/** The log.checkpoint the test server sends for `log`'s latest checkpoint. */
function message(
  log: TransparencyLog,
  old: number,
  rounds: { roundId: string; leaf: Uint8Array }[] = [],
): MessageOf<"log.checkpoint"> {
  const size = log.size;
  const identity = log.identity();
  return {
    type: "log.checkpoint",
    v: PROTOCOL_VERSION,
    checkpoint: log.checkpointAt(size)!,
    old,
    consistency: old > 0 && old < size ? log.consistencyProof(old, size).map(toBase64url) : [],
    rounds: rounds.map((r) => {
      const index = log.indexOf(r.roundId)!;
      return {
        roundId: r.roundId,
        index,
        leaf: toBase64url(r.leaf),
        proof: log.inclusionProof(index, size).map(toBase64url),
      };
    }),
    identity: {
      origin: identity.origin,
      verifierKey: identity.verifierKey,
      signature: identity.signature,
    },
  };
}

async function witnessFor() {
  const dir = await tempDir();
  const me = await loadOrCreateContributorState(dir.path);
  const memory = new Map<string, AnsweredRound>();
  const log = captureLogger();
  const witness = new Witness({
    dataDir: dir.path,
    contributorId: me.contributorId,
    privateKey: me.privateKey,
    publicKey: me.publicKey,
    rounds: { answered: (id) => memory.get(id) },
    logger: log.logger,
  });
  const verifier = cosignatureVerifier(witnessVerifierKey(me.contributorId, me.identity));
  const cosigns = (answer: unknown, note: string) => {
    const a = answer as MessageOf<"log.cosign">;
    assert.equal(a?.type, "log.cosign", JSON.stringify(answer));
    const bytes = fromBase64url(a.cosignature, "cosignature", 76);
    assert.equal(new DataView(bytes.buffer, bytes.byteOffset).getUint32(0), verifier.keyId);
    const text = new TextEncoder().encode(parseNote(note).text);
    assert.ok(verifier.verify(text, bytes.subarray(4)), "the cosignature verifies");
  };
  return { dir, me, memory, witness, log, cosigns };
}

test("a checkpoint that extends what the witness cosigned, with its rounds, is cosigned; a fork or a smaller tree is refused and the state kept", async () => {
  const { dir, me, memory, witness, log: logged, cosigns } = await witnessFor();
  try {
    const honest = await newLog();
    const first = round(me);
    memory.set(first.roundId, first.answered);
    await honest.append(first.leaf, first.roundId);
    const m1 = message(honest, 0, [first]);
    cosigns(await witness.handle(pinned, m1), m1.checkpoint);
    const state = await readWitnessState(dir.path);
    assert.equal(state?.size, 1);
    const receipts = await readReceipts(dir.path);
    assert.deepEqual(
      receipts.map((r) => [r.roundId, r.index, r.size]),
      [[first.roundId, 0, 1]],
    );

    // A proof from another size than the one it cosigned: it names its own.
    assert.deepEqual(await witness.handle(pinned, message(honest, 0)), {
      type: "log.conflict",
      v: PROTOCOL_VERSION,
      size: 1,
    });

    // A fork: another log under the same key, with another first entry.
    const fork = await newLog();
    const other = round(me);
    memory.set(other.roundId, other.answered);
    await fork.append(other.leaf, other.roundId);
    assert.equal(
      await witness.handle(pinned, message(fork, 1)),
      undefined,
      "same size, other root",
    );
    const second = round(me);
    memory.set(second.roundId, second.answered);
    await fork.append(second.leaf, second.roundId);
    assert.equal(
      await witness.handle(pinned, message(fork, 1, [second])),
      undefined,
      "a larger tree that does not extend the one cosigned",
    );
    // A smaller tree than the one cosigned.
    const empty = await newLog();
    assert.equal(await witness.handle(pinned, message(empty, 1)), undefined, "a smaller tree");
    assert.deepEqual(await readWitnessState(dir.path), state, "the state is unchanged");
    assert.equal((await readReceipts(dir.path)).length, 1, "no receipt from a refused checkpoint");
    const errors = logged.lines().filter((l) => JSON.parse(l).level === 50);
    assert.equal(errors.length, 3, logged.text());
    assert.match(errors[0]!, /two different roots for tree size 1/);
    assert.match(errors[2]!, /smaller than one cosigned/);

    // The honest log grows: cosigned again, from the size cosigned.
    await honest.append(second.leaf, second.roundId);
    const m2 = message(honest, 1, [second]);
    cosigns(await witness.handle(pinned, m2), m2.checkpoint);
    assert.equal((await readWitnessState(dir.path))?.size, 2);
    assert.equal((await readReceipts(dir.path)).length, 2);
  } finally {
    await dir.remove();
  }
});

test("an entry that omits the contributor's reveal while it holds the server's receipt is refused, and nothing is cosigned", async () => {
  const { dir, me, memory, witness, log: logged, cosigns } = await witnessFor();
  try {
    const log = await newLog();
    // It revealed and got a receipt (no round.closed reached it); the log says it did not reveal.
    const bad = round(me, { logReveal: false });
    memory.set(bad.roundId, { ...bad.answered, receipt: true });
    await log.append(bad.leaf, bad.roundId);
    assert.equal(await witness.handle(pinned, message(log, 0, [bad])), undefined);
    assert.match(logged.text(), /omits our reveal, and we hold the server's receipt/);
    assert.equal(await readWitnessState(dir.path), undefined);
    assert.deepEqual(await readReceipts(dir.path), []);
    // The same checkpoint without that round (or with a round it checks out on) is cosigned.
    const good = round(me, { withhold: true });
    memory.set(good.roundId, good.answered);
    await log.append(good.leaf, good.roundId);
    const m = message(log, 0, [good]);
    cosigns(await witness.handle(pinned, m), m.checkpoint);
  } finally {
    await dir.remove();
  }
});

test("a log identity the pinned server key did not sign, or an entry not at its place in the tree, is refused", async () => {
  const { dir, me, memory, witness, log: logged } = await witnessFor();
  try {
    const log = await newLog();
    const r = round(me);
    memory.set(r.roundId, r.answered);
    await log.append(r.leaf, r.roundId);
    const m = message(log, 0, [r]);
    const forged = { ...m, identity: { ...m.identity!, signature: toBase64url(randomBytes(384)) } };
    assert.equal(await witness.handle(pinned, forged), undefined);
    assert.match(logged.text(), /server key did not sign the log's identity/);
    // An inclusion proof that does not lead to the checkpoint's root.
    const r2 = round(me);
    memory.set(r2.roundId, r2.answered);
    await log.append(r2.leaf, r2.roundId);
    const m2 = message(log, 0, [r, r2]);
    const moved = { ...m2, rounds: [m2.rounds[0]!, { ...m2.rounds[1]!, index: 0 }] };
    assert.equal(await witness.handle(pinned, moved), undefined);
    assert.match(logged.text(), /inclusion proof of leaf 0 does not lead to the root/);
    assert.equal(await readWitnessState(dir.path), undefined);
  } finally {
    await dir.remove();
  }
});
