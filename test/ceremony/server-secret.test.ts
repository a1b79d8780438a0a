/**
 * The server adds a secret of its own to every round (issue 12 §2): contributors who were the
 * only members of a round, and recorded everything they saw, still cannot compute its result.
 */
import assert from "node:assert/strict";
import { createHash, hkdfSync, randomBytes } from "node:crypto";
import { test } from "node:test";
import { fromBase64url } from "../../src/crypto/base64url.js";
import { lengthPrefixed, u32 } from "../../src/crypto/canonical.js";
import { combineRoundSecret } from "../../src/crypto/kdf.js";
import { derivePurpose } from "../../src/derive/index.js";
import { contributorIdOf } from "../../src/protocol/identity.js";
import { serverSecretCommitment } from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { decodeRoundOpening } from "../../src/server/round-opening.js";
import { decodeStoredSecret } from "../../src/server/stored-secret.js";
import { commitAndReveal, enrolledRawPeer, startTestServer } from "../helpers/ceremony.js";

/** The round secret as it was computed before the server secret (protocol 1): all public here. */
function withoutServerSecret(
  roundId: string,
  purpose: string,
  seed: Uint8Array,
  phrases: [string, Uint8Array][],
) {
  const sorted = [...phrases].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const ikm = lengthPrefixed(
    "dkeygen/v1/response-phrase",
    seed,
    u32(sorted.length),
    ...sorted.flat(),
  );
  const info = lengthPrefixed("dkeygen/v1/round-secret", purpose);
  return new Uint8Array(hkdfSync("sha512", ikm, `dkeygen/v1/round/${roundId}`, info, 64));
}

test("two contributors that were a round's only members and recorded everything cannot compute its result", async () => {
  // Raw peers only, which do not witness the log: no cosignatures asked for.
  const server = await startTestServer({ quorum: 2, minCosignatures: 0 });
  try {
    const alice = await enrolledRawPeer(server);
    const bob = await enrolledRawPeer(server);
    const admin = await server.admin();
    const pending = admin.generate("ecc", { curve: "secp256k1" });
    const phrases: [string, Uint8Array][] = [];
    let open: Awaited<ReturnType<typeof alice.next<"round.open">>> | undefined;
    await Promise.all(
      [alice, bob].map(async (peer) => {
        open = await peer.next("round.open");
        const phrase = new Uint8Array(randomBytes(64));
        phrases.push([contributorIdOf(peer.contributorIdentity), phrase]);
        await commitAndReveal(peer, open, { phrase });
      }),
    );
    const record = await pending;
    admin.close();
    const seed = fromBase64url(open!.seed, "seed", 32);

    // Everything the coalition knows: the seed, both phrases, the round id and purpose.
    const guess = withoutServerSecret(record.roundId, "ecc", seed, phrases);
    const guessed = await derivePurpose("ecc", guess, { curve: "secp256k1" });
    assert.notEqual(guessed.public.publicKey, record.public.publicKey);
    // Nor with any fixed server secret they might try.
    const zeros = combineRoundSecret({
      roundId: record.roundId,
      purpose: "ecc",
      seedPhrase: seed,
      serverSecret: new Uint8Array(32),
      contributions: phrases.map(([contributorId, phrase]) => ({ contributorId, phrase })),
    });
    assert.notEqual(
      (await derivePurpose("ecc", zeros, { curve: "secp256k1" })).public.publicKey,
      record.public.publicKey,
    );

    // The server's own secret, kept in the round's stored opening, is what was missing: with it,
    // the same inputs give the stored result exactly, and it matches the commitment in round.open.
    const stored = decodeStoredSecret(await server.store.readSecret(record.id));
    assert.equal(stored.v, 2);
    assert.equal(stored.serverSecret, undefined, "not kept on the record: once, in the opening");
    const opening = decodeRoundOpening(
      record.roundId,
      (await server.store.readRoundOpening(record.roundId))!,
    );
    const serverSecret = new Uint8Array(Buffer.from(opening.serverSecret, "hex"));
    assert.equal(serverSecret.length, 32);
    const actual = combineRoundSecret({
      roundId: record.roundId,
      purpose: "ecc",
      seedPhrase: seed,
      serverSecret,
      contributions: phrases.map(([contributorId, phrase]) => ({ contributorId, phrase })),
    });
    assert.equal(Buffer.from(actual).toString("hex"), stored.derivationSecret);
    assert.equal(
      (await derivePurpose("ecc", actual, { curve: "secp256k1" })).public.publicKey,
      record.public.publicKey,
    );
    const commitment = Buffer.from(serverSecretCommitment(record.roundId, serverSecret));
    assert.equal(commitment.toString("base64url"), open!.serverCommitment);
    assert.equal(
      commitment.toString("hex"),
      createHash("sha256")
        .update(
          lengthPrefixed(
            "dkeygen/v1/server-secret",
            String(PROTOCOL_VERSION),
            record.roundId,
            serverSecret,
          ),
        )
        .digest("hex"),
    );

    // And the server never sent it: no frame either contributor received holds it.
    const secretHex = Buffer.from(serverSecret).toString("hex");
    const secretB64 = Buffer.from(serverSecret).toString("base64url");
    for (const peer of [alice, bob]) {
      const seen = peer.frames.join("\n");
      assert.ok(seen.includes('"round.open"'));
      assert.equal(seen.includes(secretHex) || seen.includes(secretB64), false);
    }
    assert.equal(
      server.log.text().includes(secretHex) || server.log.text().includes(secretB64),
      false,
    );
  } finally {
    await server.cleanup();
  }
});
