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
import { toBase64url } from "../../src/crypto/base64url.js";
import { fingerprintOf } from "../../src/crypto/fingerprint.js";
import { serverSign } from "../../src/crypto/server-signature.js";
import { generateIdentity, rawPublicKey, signMessage } from "../../src/crypto/signature.js";
import { silentLogger } from "../../src/logging.js";
import type { MessageOf } from "../../src/protocol/messages.js";
import {
  paramsHash,
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
