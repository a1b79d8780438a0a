/**
 * Distributed key generation through a real server and real contributors on loopback: the server
 * coordinates and stores public facts only; every holder keeps a sealed share; t of them sign,
 * and the group private key is in no file anywhere.
 */
import assert from "node:assert/strict";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { recoveryDataOf, ShareStore } from "../../src/client/share-store.js";
import { publicFromJson } from "../../src/threshold/codec.js";
import { recoverShare } from "../../src/threshold/recovery.js";
import {
  aggregateSignature,
  commitNonces,
  signShare,
  verifyThresholdSignature,
} from "../../src/threshold/signing.js";
import { type SuiteName, suiteOf } from "../../src/threshold/suites.js";
import { startContributors, startTestServer, waitFor } from "../helpers/ceremony.js";

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    if ((await stat(path)).isDirectory()) out.push(...(await filesUnder(path)));
    else out.push(path);
  }
  return out;
}

/** Every encoding of `secret` a careless writer might have used. */
function encodings(secret: Uint8Array): Buffer[] {
  const b = Buffer.from(secret);
  return [
    b,
    Buffer.from(b.toString("hex")),
    Buffer.from(b.toString("base64")),
    Buffer.from(b.toString("base64url")),
  ];
}

for (const [suite, t, n] of [
  ["secp256k1-tr", 2, 3],
  ["ed25519", 2, 3],
  ["p256", 3, 5],
] as [SuiteName, number, number][]) {
  test(`${suite}: a ${t}-of-${n} DKG through the server: one key, sealed shares, t sign, the group secret is nowhere`, async () => {
    const server = await startTestServer();
    try {
      const contributors = await startContributors(server, n);
      const admin = await server.admin();
      const key = await admin.thresholdKeygen({ suite, t, n });
      await admin.close();
      assert.equal(key.suite, suite);
      assert.deepEqual([key.t, key.n], [t, n]);
      assert.deepEqual([...key.holders].sort(), contributors.map((c) => c.id).sort());
      if (suite === "secp256k1-tr") {
        assert.match(key.outputKey!, /^[0-9a-f]{64}$/);
        assert.match(key.address!, /^bc1p/);
      } else {
        assert.equal(key.outputKey, undefined);
      }
      await Promise.all(
        contributors.map((c) =>
          waitFor(
            () => c.events.some((e) => e.type === "dkg.completed" && e.keyId === key.id),
            5000,
          ),
        ),
      );
      const holders = await Promise.all(
        contributors.map(async (c) => {
          const state = await loadOrCreateContributorState(c.dataDir);
          const store = new ShareStore(c.dataDir, state.privateKey);
          const file = (await store.read(key.id))!;
          const mode = (await stat(join(store.dir, `${key.id}.json`))).mode & 0o777;
          assert.equal(mode, 0o600);
          return { file, state, share: store.openShare(file) };
        }),
      );
      for (const h of holders) assert.equal(h.file.groupPublicKey, key.groupPublicKey);
      // The identity key alone rebuilds each share from the public recovery data.
      for (const h of holders) {
        const rebuilt = recoverShare(recoveryDataOf(h.file), h.file.index, h.state.privateKey);
        assert.deepEqual(Buffer.from(rebuilt.signingShare), Buffer.from(h.share));
      }
      // Any t holders sign; the signature verifies the suite's standard way.
      const message = new TextEncoder().encode(`threshold ${suite}`);
      const signers = holders.slice(n - t);
      const pub = publicFromJson(signers[0]!.file.public, signers[0]!.file.identifiers, t, n);
      const ids = signers.map((h) => h.file.identifiers[h.file.index - 1]!);
      const round1 = signers.map((h, i) =>
        commitNonces({ suite, identifier: ids[i]!, signingShare: h.share }),
      );
      const commitments = round1.map((r) => r.commitments);
      const sigShares = Object.fromEntries(
        signers.map((h, i) => [
          ids[i]!,
          signShare(
            { suite, identifier: ids[i]!, signingShare: h.share },
            pub,
            round1[i]!.nonces,
            commitments,
            message,
          ),
        ]),
      );
      const signature = aggregateSignature(suite, pub, commitments, message, sigShares);
      const verifyKey = Buffer.from(key.outputKey ?? key.groupPublicKey, "hex");
      assert.ok(verifyThresholdSignature(suite, signature, message, verifyKey));
      // t shares make the group secret (proof the shares are right) — which no file holds.
      const { frost } = suiteOf(suite);
      const groupSecret = frost.combineSecret(
        signers.map((h, i) => ({ identifier: ids[i]!, signingShare: h.share })),
        { min: t, max: n },
      );
      assert.ok(frost.verify(frost.sign(message, groupSecret), message, pub.commitments[0]!));
      const secrets = [groupSecret, ...holders.map((h) => h.share)].flatMap(encodings);
      const files = await filesUnder(server.root);
      assert.ok(files.length > 10);
      for (const path of files) {
        const bytes = await readFile(path);
        for (const s of secrets) assert.equal(bytes.includes(s), false, `a secret is in ${path}`);
      }
    } finally {
      await server.cleanup();
    }
  });
}

test("a DKG needs n connected contributors; too few is a clear error and no session", async () => {
  const server = await startTestServer();
  try {
    await startContributors(server, 2);
    const admin = await server.admin();
    await assert.rejects(
      admin.thresholdKeygen({ suite: "ed25519", t: 2, n: 3 }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "E_QUORUM_NOT_MET");
        assert.match(e.message, /needs 3 contributors connected; 2 are/);
        return true;
      },
    );
    await admin.close();
  } finally {
    await server.cleanup();
  }
});
