/**
 * The contributor's round handling (client/contributor-rounds.ts) without a network: it answers a
 * round.open the server's RSA key signed, that invites it and that names a strong round key, with
 * a commit; a weak round key (small order, the identity, non-canonical) gets nothing, since the
 * server could disown what it signed under it; a closing not signed by the round's key is ignored.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { ContributorRounds, type RoundEvent } from "../../src/client/contributor-rounds.js";
import {
  type ContributorState,
  loadOrCreateContributorState,
} from "../../src/client/contributor-state.js";
import { EntropyPool } from "../../src/client/entropy.js";
import type { ServerKey } from "../../src/client/server-key.js";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { fingerprintOf } from "../../src/crypto/fingerprint.js";
import { serverSign } from "../../src/crypto/server-signature.js";
import { generateIdentity, rawPublicKey, signMessage } from "../../src/crypto/signature.js";
import { silentLogger } from "../../src/logging.js";
import type { MessageOf } from "../../src/protocol/messages.js";
import {
  commitSetHash,
  commitSetSignedData,
  compareIds,
  paramsHash,
  revealReceiptSignedData,
  roundClosedSignedData,
  roundOpenSignedData,
} from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import type { Connection } from "../../src/transport/types.js";
import { tempDir } from "../helpers/ceremony.js";

const rsa = generateKeyPairSync("rsa", { modulusLength: 3072 });
const server: ServerKey = {
  url: "memory://test",
  key: rsa.publicKey,
  fingerprint: fingerprintOf(rsa.publicKey),
  challenge: new Uint8Array(32),
  pin: "given",
};
let dir: Awaited<ReturnType<typeof tempDir>>;
let state: ContributorState;

before(async () => {
  dir = await tempDir();
  state = await loadOrCreateContributorState(dir.path);
});
after(() => dir.remove());

function rounds() {
  const sent: string[] = [];
  const events: RoundEvent[] = [];
  const connection = { send: (frame: string) => sent.push(frame) } as unknown as Connection;
  const handler = new ContributorRounds({
    state,
    entropy: new EntropyPool(new Uint8Array(0), "os"),
    random: (n) => new Uint8Array(randomBytes(n)),
    logger: silentLogger,
    emit: (event) => events.push(event),
  });
  return { handler, connection, sent, events };
}

/** A round.open the server's RSA key signed, naming `roundKey`. */
function invitation(roundKey: Uint8Array): MessageOf<"round.open"> {
  const now = Date.now();
  const fields = {
    roundId: toBase64url(randomBytes(16)),
    purpose: "otp",
    paramsHash: paramsHash("otp", { digits: 6 }),
    seed: new Uint8Array(randomBytes(32)),
    serverCommitment: new Uint8Array(randomBytes(32)),
    roundKey,
    commitDeadline: new Date(now + 10_000).toISOString(),
    revealDeadline: new Date(now + 20_000).toISOString(),
    invited: [state.contributorId],
  };
  return {
    type: "round.open",
    v: PROTOCOL_VERSION,
    roundId: fields.roundId,
    purpose: fields.purpose,
    paramsHash: toBase64url(fields.paramsHash),
    seed: toBase64url(fields.seed),
    serverCommitment: toBase64url(fields.serverCommitment),
    roundKey: toBase64url(roundKey),
    commitDeadline: fields.commitDeadline,
    revealDeadline: fields.revealDeadline,
    invited: fields.invited,
    signature: toBase64url(serverSign(rsa.privateKey, roundOpenSignedData(fields))),
  };
}

test("an invitation with a strong round key is answered with one commit", () => {
  const { handler, connection, sent } = rounds();
  const open = invitation(rawPublicKey(generateIdentity().publicKey));
  handler.open(connection, server, open);
  handler.open(connection, server, open); // replayed: answered once
  assert.equal(sent.length, 1);
  assert.equal(JSON.parse(sent[0]!).type, "commit");
});

test("an invitation whose round key is weak gets nothing, though the server's key signed it", () => {
  const identityPoint = new Uint8Array(32);
  identityPoint[0] = 1;
  const order2 = Buffer.from(
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "hex",
  );
  for (const weak of [new Uint8Array(32), identityPoint, new Uint8Array(order2)]) {
    const { handler, connection, sent, events } = rounds();
    handler.open(connection, server, invitation(weak));
    assert.deepEqual(sent, []);
    assert.deepEqual(events, []);
  }
});

test("a closing is believed only under the round's key", () => {
  const { handler, connection, events } = rounds();
  const roundKey = generateIdentity();
  const open = invitation(rawPublicKey(roundKey.publicKey));
  handler.open(connection, server, open);
  const closing = (key: typeof roundKey.privateKey): MessageOf<"round.closed"> => ({
    type: "round.closed",
    v: PROTOCOL_VERSION,
    roundId: open.roundId,
    outcome: "failed",
    accepted: 0,
    signature: toBase64url(
      signMessage(
        key,
        roundClosedSignedData({
          roundId: open.roundId,
          outcome: "failed",
          accepted: 0,
          setHash: undefined,
          missing: [],
        }),
      ),
    ),
  });
  handler.closed(closing(generateIdentity().privateKey));
  assert.equal(events.filter((e) => e.type === "round.closed").length, 0, "another key");
  handler.closed(closing(roundKey.privateKey));
  assert.equal(events.filter((e) => e.type === "round.closed").length, 1);
});

/** A logger that keeps what was logged at warn and error. */
function recording() {
  const lines: { level: "warn" | "error"; message: string }[] = [];
  const logger = {
    ...silentLogger,
    warn: (_fields: object, message: string) => lines.push({ level: "warn", message }),
    error: (_fields: object, message: string) => lines.push({ level: "error", message }),
    child: () => logger,
  };
  return { logger, lines };
}

/** A round.commits the round's key signed, of the given (id, commitment) entries, sorted. */
function commitSet(
  roundKey: ReturnType<typeof generateIdentity>,
  roundId: string,
  entries: { contributorId: string; commitment: Uint8Array }[],
): { msg: MessageOf<"round.commits">; setHash: Uint8Array } {
  const sorted = [...entries].sort((a, b) => compareIds(a.contributorId, b.contributorId));
  const setHash = commitSetHash(roundId, server.fingerprint, sorted);
  return {
    setHash,
    msg: {
      type: "round.commits",
      v: PROTOCOL_VERSION,
      roundId,
      commits: sorted.map((e) => ({
        contributorId: e.contributorId,
        commitment: toBase64url(e.commitment),
      })),
      signature: toBase64url(
        signMessage(roundKey.privateKey, commitSetSignedData(roundId, setHash)),
      ),
    },
  };
}

test("a server that contradicts itself is caught: a second commit set is not revealed against, and a closing on another set, or naming us missing though we hold its receipt, is logged as an error", () => {
  const { logger, lines } = recording();
  const sent: string[] = [];
  const connection = { send: (frame: string) => sent.push(frame) } as unknown as Connection;
  const handler = new ContributorRounds({
    state,
    entropy: new EntropyPool(new Uint8Array(0), "os"),
    random: (n) => new Uint8Array(randomBytes(n)),
    logger,
    emit: () => {},
  });
  const roundKey = generateIdentity();
  const open = invitation(rawPublicKey(roundKey.publicKey));
  handler.open(connection, server, open);
  const commit = JSON.parse(sent[0]!) as MessageOf<"commit">;
  const ours = {
    contributorId: state.contributorId,
    commitment: fromBase64url(commit.commitment, "commitment", 32),
  };
  const other = { contributorId: `SHA256:${"B".repeat(43)}`, commitment: randomBytes(32) };

  // The set shown to us, with our commitment: we reveal against it.
  const shown = commitSet(roundKey, open.roundId, [ours, other]);
  handler.commits(connection, server, shown.msg);
  assert.equal(JSON.parse(sent[1]!).type, "reveal");
  // A second, different set for the same round (what the server would show someone else): no
  // second reveal.
  const second = commitSet(roundKey, open.roundId, [ours]);
  handler.commits(connection, server, second.msg);
  assert.equal(sent.length, 2, "nothing revealed against a second set");
  assert.match(lines.at(-1)!.message, /ignored a commit set/);

  // The server's receipt of our reveal, against the set we countersigned.
  handler.receipt({
    type: "round.receipt",
    v: PROTOCOL_VERSION,
    roundId: open.roundId,
    contributorId: state.contributorId,
    setHash: toBase64url(shown.setHash),
    commitment: commit.commitment,
    signature: toBase64url(
      signMessage(
        roundKey.privateKey,
        revealReceiptSignedData(open.roundId, state.contributorId, shown.setHash, ours.commitment),
      ),
    ),
  });
  assert.equal(lines.filter((l) => l.level === "error").length, 0, "the receipt checked out");

  // It closes the round aborted, on the other set, naming us as not having revealed.
  const closed = {
    roundId: open.roundId,
    outcome: "aborted" as const,
    accepted: 1,
    setHash: second.setHash,
    missing: [state.contributorId],
  };
  handler.closed({
    type: "round.closed",
    v: PROTOCOL_VERSION,
    roundId: open.roundId,
    outcome: closed.outcome,
    accepted: closed.accepted,
    setHash: toBase64url(second.setHash),
    missing: closed.missing,
    signature: toBase64url(signMessage(roundKey.privateKey, roundClosedSignedData(closed))),
  });
  const errors = lines.filter((l) => l.level === "error").map((l) => l.message);
  assert.deepEqual(errors, [
    "the server says we did not reveal, but we hold its signed receipt of our reveal",
    "the server closed the round on another commit set than the one we countersigned",
  ]);
});
