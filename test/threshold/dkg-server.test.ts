/**
 * Distributed key generation through a real server and real contributors on loopback: the server
 * coordinates and stores public facts only; every holder keeps a sealed share; t of them sign,
 * and the group private key is in no file anywhere.
 */
import assert from "node:assert/strict";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { schnorr } from "@noble/curves/secp256k1.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { recoveryDataOf, ShareStore } from "../../src/client/share-store.js";
import { MAX_SIGN_MESSAGE_BYTES } from "../../src/protocol/threshold-messages.js";
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
import { registerTestRequester } from "../helpers/distribution.js";

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
      admin.close();
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
    admin.close();
  } finally {
    await server.cleanup();
  }
});

test("FROST signing through the server: t holders sign; a holder gone or refusing is named and another subset signs", async () => {
  const server = await startTestServer({ signTimeoutMs: 2000 });
  try {
    const contributors = await startContributors(server, 3);
    const admin = await server.admin();
    try {
      const key = await admin.thresholdKeygen({ suite: "ed25519", t: 2, n: 3 });
      await Promise.all(
        contributors.map((c) =>
          waitFor(
            () => c.events.some((e) => e.type === "dkg.completed" && e.keyId === key.id),
            5000,
          ),
        ),
      );
      const message = new TextEncoder().encode("release build 1.2.3");
      const first = await admin.thresholdSign(key.id, message);
      assert.equal(first.signers.length, 2);
      const verifyKey = Buffer.from(key.groupPublicKey, "hex");
      assert.ok(
        verifyThresholdSignature(
          "ed25519",
          Buffer.from(first.signature, "hex"),
          message,
          verifyKey,
        ),
      );
      // Verified by OpenSSL through node:crypto, from the key's raw bytes alone.
      const { createPublicKey, verify } = await import("node:crypto");
      const spki = createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: verifyKey.toString("base64url") },
        format: "jwk",
      });
      assert.ok(verify(null, message, spki, Buffer.from(first.signature, "hex")));
      // The empty message and the largest one sign too (admin.threshold.sign and sign.request
      // carry 0 to MAX_SIGN_MESSAGE_BYTES bytes).
      for (const other of [new Uint8Array(0), new Uint8Array(MAX_SIGN_MESSAGE_BYTES).fill(7)]) {
        const signed = await admin.thresholdSign(key.id, other);
        assert.ok(
          verify(null, other, spki, Buffer.from(signed.signature, "hex")),
          `${other.length}`,
        );
      }

      // A holder whose share file is gone refuses; the server leaves it out and signs with the others.
      const refusing = contributors.find((c) => c.id === first.signers[0])!;
      await rm(join(refusing.dataDir, "threshold", `${key.id}.json`));
      const second = await admin.thresholdSign(key.id, message);
      assert.equal(second.signers.includes(refusing.id), false);
      assert.ok(
        verifyThresholdSignature(
          "ed25519",
          Buffer.from(second.signature, "hex"),
          message,
          verifyKey,
        ),
      );

      // With one holder refusing and one stopped, fewer than t remain: a clear error naming them.
      const stopped = contributors.find((c) => c.id !== refusing.id)!;
      await stopped.contributor.stop();
      await waitFor(() => !server.server.contributors.has(stopped.id), 5000);
      await assert.rejects(admin.thresholdSign(key.id, message), (e: Error & { code?: string }) => {
        assert.equal(e.code, "E_QUORUM_NOT_MET");
        assert.match(e.message, /needs 2 of its 3 holders; 1 are online/);
        assert.ok(e.message.includes(refusing.id));
        assert.match(e.message, /refused \(unknown-key\)/);
        return true;
      });
    } finally {
      admin.close();
    }
  } finally {
    await server.cleanup();
  }
});

test("POST /v1/keys/{id}/sign: the key's owner gets a sealed FROST signature; nobody else, and no secret part for anyone", async () => {
  const server = await startTestServer();
  try {
    const contributors = await startContributors(server, 3);
    const owner = await registerTestRequester(server, "wallet");
    const other = await registerTestRequester(server, "other");
    const admin = await server.admin();
    let key: Awaited<ReturnType<typeof admin.thresholdKeygen>>;
    try {
      key = await admin.thresholdKeygen({ suite: "secp256k1-tr", t: 2, n: 3, owner: "wallet" });
    } finally {
      admin.close();
    }
    assert.equal(key.owner, owner.id);
    await Promise.all(
      contributors.map((c) =>
        waitFor(() => c.events.some((e) => e.type === "dkg.completed" && e.keyId === key.id), 5000),
      ),
    );
    const message = new Uint8Array(32).fill(7);
    const signed = await owner.client.thresholdSign(key.id, message);
    assert.equal(signed.suite, "secp256k1-tr");
    assert.equal(signed.verifyKey, key.outputKey);
    assert.equal(signed.signers.length, 2);
    assert.ok(
      schnorr.verify(
        Buffer.from(signed.signature, "hex"),
        message,
        Buffer.from(key.outputKey!, "hex"),
      ),
    );
    // Another requester learns nothing of the key; the owner gets no "secret part" of it.
    await assert.rejects(other.client.thresholdSign(key.id, message), { code: "E_NOT_FOUND" });
    await assert.rejects(owner.client.fetchKey(key.id), { code: "E_FORBIDDEN" });
    await assert.rejects(owner.client.exportDerivationSecret(key.id), { code: "E_FORBIDDEN" });
    // The admin cannot sign with a key made for a requester (the holders sign for the owner only).
    const again = await server.admin();
    try {
      await assert.rejects(again.thresholdSign(key.id, message), { code: "E_FORBIDDEN" });
    } finally {
      again.close();
    }
  } finally {
    await server.cleanup();
  }
});

test("a share refresh through the server: same key and address, new shares that sign, the old shares gone", async () => {
  const server = await startTestServer();
  try {
    const contributors = await startContributors(server, 3);
    const admin = await server.admin();
    try {
      const key = await admin.thresholdKeygen({ suite: "secp256k1-tr", t: 2, n: 3 });
      const before = await Promise.all(
        contributors.map(async (c) => {
          const state = await loadOrCreateContributorState(c.dataDir);
          const store = new ShareStore(c.dataDir, state.privateKey);
          const file = (await store.read(key.id))!;
          return { store, file, share: store.openShare(file) };
        }),
      );
      const refreshed = await admin.thresholdRefresh(key.id);
      assert.notEqual(refreshed.id, key.id);
      assert.equal(refreshed.refreshOf, key.id);
      assert.equal(refreshed.groupPublicKey, key.groupPublicKey);
      assert.equal(refreshed.outputKey, key.outputKey);
      assert.equal(refreshed.address, key.address);
      for (const [i, h] of before.entries()) {
        assert.equal(await h.store.read(key.id), undefined, "the old share file is gone");
        const file = (await h.store.read(refreshed.id))!;
        assert.equal(file.refresh?.refreshOf, key.id);
        const share = h.store.openShare(file);
        assert.notDeepEqual(Buffer.from(share), Buffer.from(before[i]!.share));
        // The identity key alone rebuilds the refreshed share from the file's public data.
        assert.deepEqual(Buffer.from(h.store.rebuild(file)), Buffer.from(share));
      }
      // The refreshed key signs under the same output key; the old one has no holders left.
      const message = new Uint8Array(32).fill(9);
      const signed = await admin.thresholdSign(refreshed.id, message);
      assert.ok(
        schnorr.verify(
          Buffer.from(signed.signature, "hex"),
          message,
          Buffer.from(key.outputKey!, "hex"),
        ),
      );
      await assert.rejects(admin.thresholdSign(key.id, message), { code: "E_QUORUM_NOT_MET" });
      // A refresh needs every holder online.
      await contributors[2]!.contributor.stop();
      await waitFor(() => !server.server.contributors.has(contributors[2]!.id), 5000);
      await assert.rejects(admin.thresholdRefresh(refreshed.id), (e: Error & { code?: string }) => {
        assert.equal(e.code, "E_QUORUM_NOT_MET");
        assert.ok(e.message.includes(contributors[2]!.id));
        return true;
      });
    } finally {
      admin.close();
    }
  } finally {
    await server.cleanup();
  }
});
