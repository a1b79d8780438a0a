/**
 * The golden `dkg.recovery` frame (test/vectors/dkeygen-wire, PROTOCOL §16.8) is one a holder
 * accepts: holder 2 of the golden key, with only its identity key, checks it and rebuilds its
 * refreshed share — the one whose public image is its verifying share in the refresh's certified
 * package — and answers exactly the golden `dkg.recovered`. Past the frame's deadline, or under
 * another server key, it refuses and writes nothing.
 */
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ContributorRecovery } from "../../src/client/contributor-recovery.js";
import type { ContributorState } from "../../src/client/contributor-state.js";
import type { ServerKey } from "../../src/client/server-key.js";
import { ShareStore } from "../../src/client/share-store.js";
import { fingerprintOf } from "../../src/crypto/fingerprint.js";
import { rawPublicKey } from "../../src/crypto/signature.js";
import { silentLogger } from "../../src/logging.js";
import { decodeMessage, type MessageOf } from "../../src/protocol/messages.js";
import { publicFromJson } from "../../src/threshold/codec.js";
import { shareMatchesVerifyingShare } from "../../src/threshold/recovery.js";
import type { Connection } from "../../src/transport/types.js";
import { tempDir } from "../helpers/ceremony.js";
import { GOLDEN_FILE, type Golden, goldenKeys } from "../helpers/wire-golden.js";
import { ed25519Key } from "../helpers/wire-golden-threshold.js";

const golden = JSON.parse(readFileSync(GOLDEN_FILE, "utf8")) as Golden;
const frame = golden.frames["dkg.recovery (to 2)"]!;
const msg = decodeMessage(frame) as MessageOf<"dkg.recovery">;
/** Holder 2's identity seed in the golden DKG (wire-golden-threshold.ts OTHER_SEEDS[0]). */
const holder2 = ed25519Key(Uint8Array.from({ length: 32 }, (_, i) => (0xb0 + i) & 0xff));

async function answer(serverPublic: ReturnType<typeof createPublicKey>, now: string) {
  const dir = await tempDir();
  const shares = new ShareStore(dir.path, holder2);
  const sent: string[] = [];
  const recovery = new ContributorRecovery({
    state: { identity: rawPublicKey(holder2), privateKey: holder2 } as ContributorState,
    shares,
    logger: silentLogger,
    emit: () => {},
    clock: () => Date.parse(now),
  });
  const server: ServerKey = {
    url: "ws://golden",
    key: serverPublic,
    fingerprint: fingerprintOf(serverPublic),
    challenge: new Uint8Array(32),
    pin: "given",
  };
  await recovery.recovery(
    { send: (f: string) => sent.push(f) } as unknown as Connection,
    server,
    msg,
  );
  return { dir, shares, sent };
}

test("holder 2 accepts the golden dkg.recovery, rebuilds its refreshed share and answers the golden dkg.recovered", async () => {
  const keys = await goldenKeys();
  const { dir, shares, sent } = await answer(
    createPublicKey(keys.serverKey),
    "2026-12-01T12:03:59.000Z",
  );
  try {
    assert.deepEqual(sent, [golden.frames["dkg.recovered (from 2)"]]);
    const file = (await shares.read(msg.keyId))!;
    assert.equal(file.index, 2);
    assert.equal(file.refresh?.refreshOf, msg.refresh!.refreshOf);
    assert.deepEqual(file.public, msg.refresh!.public);
    const share = shares.openShare(file);
    const pub = publicFromJson(msg.refresh!.public, file.identifiers, file.t, file.n);
    assert.ok(
      shareMatchesVerifyingShare(file.suite, share, pub.verifyingShares[file.identifiers[1]!]!),
    );
    // The same share the file's own recovery data rebuilds (ShareStore.rebuild, §16.5).
    assert.deepEqual(Buffer.from(shares.rebuild(file)), Buffer.from(share));
  } finally {
    await dir.remove();
  }
});

test("the golden dkg.recovery past its deadline, or from another server key, is refused and writes nothing", async () => {
  const keys = await goldenKeys();
  const late = await answer(createPublicKey(keys.serverKey), "2026-12-01T12:04:00.000Z");
  const other = generateKeyPairSync("rsa", { modulusLength: 3072 }).publicKey;
  const forged = await answer(other, "2026-12-01T12:03:59.000Z");
  try {
    for (const [run, reason] of [
      [late, "late"],
      [forged, "signature"],
    ] as const) {
      const reply = JSON.parse(run.sent[0]!) as MessageOf<"dkg.recovered">;
      assert.deepEqual([reply.outcome, reply.reason], ["refused", reason]);
      assert.equal(await run.shares.read(msg.keyId), undefined);
    }
  } finally {
    await late.dir.remove();
    await forged.dir.remove();
  }
});
