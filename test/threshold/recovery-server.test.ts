/**
 * Getting a lost share back (PROTOCOL §16.8) through a real server and real contributors on
 * loopback: `threshold recover` sends the key's recovery data to its holders; one whose share
 * file is gone rebuilds the very same share from it and its identity key, one that has its file
 * keeps it, and recovery data changed on the way (even re-signed by the server) is refused with
 * the failed check's name and writes nothing.
 */
import assert from "node:assert/strict";
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Contributor, type ContributorEvent, type Dialer } from "../../src/client/contributor.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { EntropyPool } from "../../src/client/entropy.js";
import { PinStore } from "../../src/client/pins.js";
import { type ShareFile, ShareStore } from "../../src/client/share-store.js";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { serverSign } from "../../src/crypto/server-signature.js";
import type { MessageOf } from "../../src/protocol/messages.js";
import { recoverySignedData } from "../../src/protocol/signed-data.js";
import { MAX_SERVER_FRAME_BYTES } from "../../src/protocol/version.js";
import { issueEnrollmentToken } from "../../src/server/enrollment.js";
import { verifyThresholdSignature } from "../../src/threshold/signing.js";
import type { SuiteName } from "../../src/threshold/suites.js";
import { dialWs } from "../../src/transport/ws.js";
import {
  startContributors,
  startTestServer,
  type TestContributor,
  type TestServer,
  waitFor,
} from "../helpers/ceremony.js";

type Recovery = MessageOf<"dkg.recovery">;

async function shareOf(c: TestContributor, keyId: string) {
  const state = await loadOrCreateContributorState(c.dataDir);
  const store = new ShareStore(c.dataDir, state.privateKey);
  const file = await store.read(keyId);
  return { store, file, share: file === undefined ? undefined : store.openShare(file) };
}

function withoutSealing(file: ShareFile): Omit<ShareFile, "sealedShare" | "createdAt"> {
  const { sealedShare: _s, createdAt: _c, ...rest } = file;
  return rest;
}

async function keygen(server: TestServer, contributors: TestContributor[], suite: SuiteName) {
  const admin = await server.admin();
  try {
    const key = await admin.thresholdKeygen({ suite, t: 2, n: contributors.length });
    await Promise.all(
      contributors.map((c) =>
        waitFor(() => c.events.some((e) => e.type === "dkg.completed" && e.keyId === key.id), 5000),
      ),
    );
    return key;
  } finally {
    admin.close();
  }
}

for (const suite of ["secp256k1-tr", "ed25519"] as SuiteName[]) {
  test(`${suite}: a holder whose share file was deleted rebuilds the identical share with threshold recover, the others keep theirs, and it signs again`, async () => {
    const server = await startTestServer({ signTimeoutMs: 3000 });
    try {
      const contributors = await startContributors(server, 3);
      const key = await keygen(server, contributors, suite);
      const lost = contributors[0]!;
      const before = await shareOf(lost, key.id);
      // The disk is wiped but the identity key kept: no share file, no session log.
      await rm(before.store.dir, { recursive: true, force: true });
      assert.equal((await shareOf(lost, key.id)).file, undefined);

      const admin = await server.admin();
      try {
        const outcomes = await admin.thresholdRecover(key.id);
        assert.deepEqual(
          outcomes.map((o) => [o.contributorId, o.outcome]),
          key.holders.map((id) => [id, id === lost.id ? "recovered" : "kept"]),
        );
        const after = await shareOf(lost, key.id);
        assert.ok(after.file, "the share file is back");
        assert.deepEqual(Buffer.from(after.share!), Buffer.from(before.share!));
        assert.deepEqual(withoutSealing(after.file!), withoutSealing(before.file!));
        assert.equal((await stat(join(after.store.dir, `${key.id}.json`))).mode & 0o777, 0o600);
        // The file keeps the share sealed: it is not in it in the clear.
        const text = await readFile(join(after.store.dir, `${key.id}.json`));
        assert.equal(text.includes(Buffer.from(after.share!).toString("base64url")), false);
        // The session it took part in is remembered again (a replayed dkg.open is refused).
        assert.equal(await after.store.claimSession(key.sessionId), false);

        // A second recovery: every holder now keeps its share.
        const again = await admin.thresholdRecover(key.id);
        assert.deepEqual(
          again.map((o) => o.outcome),
          ["kept", "kept", "kept"],
        );

        // With one other holder gone, the recovered holder must sign: the signature verifies.
        await contributors[2]!.contributor.stop();
        const message = new TextEncoder().encode(`recovered ${suite}`);
        const signed = await admin.thresholdSign(key.id, message);
        assert.ok(signed.signers.includes(lost.id));
        const verifyKey = Buffer.from(key.outputKey ?? key.groupPublicKey, "hex");
        assert.ok(
          verifyThresholdSignature(suite, Buffer.from(signed.signature, "hex"), message, verifyKey),
        );
        // A holder not connected is reported so.
        const partial = await admin.thresholdRecover(key.id);
        assert.equal(
          partial.find((o) => o.contributorId === contributors[2]!.id)!.outcome,
          "not-connected",
        );
      } finally {
        admin.close();
      }
    } finally {
      await server.cleanup();
    }
  });
}

/** A dialer whose connection hands the contributor `tamper(message)` instead of each dkg.recovery. */
function tamperingDial(tamper: { current?: (m: Recovery) => Recovery }): Dialer {
  return async (url) => {
    const inner = await dialWs(url, { maxPayload: MAX_SERVER_FRAME_BYTES });
    return {
      get remote() {
        return inner.remote;
      },
      get isOpen() {
        return inner.isOpen;
      },
      send: (frame) => inner.send(frame),
      close: (code, reason) => inner.close(code, reason),
      onFrame: (handler) =>
        inner.onFrame((frame) => {
          const msg = JSON.parse(frame.toString("utf8")) as { type: string };
          if (msg.type === "dkg.recovery" && tamper.current !== undefined) {
            handler(Buffer.from(JSON.stringify(tamper.current(msg as Recovery))));
          } else {
            handler(frame);
          }
        }),
      onClose: (handler) => inner.onClose(handler),
      onError: (handler) => inner.onError(handler),
      watchHeartbeat: (ms) => inner.watchHeartbeat(ms),
    };
  };
}

async function startTamperedHolder(
  server: TestServer,
  tamper: { current?: (m: Recovery) => Recovery },
): Promise<TestContributor> {
  const dataDir = join(server.root, "mitm");
  const { token } = await issueEnrollmentToken(server.dataDir, { name: "mitm" });
  const state = await loadOrCreateContributorState(dataDir);
  const contributor = new Contributor({
    serverUrl: server.url,
    state,
    entropy: new EntropyPool(new Uint8Array(0), "os"),
    pins: new PinStore(dataDir),
    token,
    name: "mitm",
    reconnect: false,
    dial: tamperingDial(tamper),
  });
  const events: ContributorEvent[] = [];
  contributor.onEvent((e) => events.push(e));
  await contributor.start();
  server.contributors.push(contributor);
  return { contributor, id: state.contributorId, events, dataDir };
}

const flip = (b64: string) => {
  const bytes = fromBase64url(b64, "field");
  bytes[0]! ^= 1;
  return toBase64url(bytes);
};

test("recovery data changed on the way — a sealed share, a certificate signature, the index, or anything without the server's signature — is refused with the failed check, and nothing is written", async () => {
  const server = await startTestServer();
  try {
    const tamper: { current?: (m: Recovery) => Recovery } = {};
    const others = await startContributors(server, 2);
    const holder = await startTamperedHolder(server, tamper);
    const key = await keygen(server, [...others, holder], "ed25519");
    const { store } = await shareOf(holder, key.id);
    await rm(join(store.dir, `${key.id}.json`));
    // What a server that lies would send: changed data under a valid server signature.
    const serverKey = server.server.c.identity.privateKey;
    const resign = (m: Recovery): Recovery => {
      const { signature: _old, ...unsigned } = m;
      const data = recoverySignedData(server.fingerprint, unsigned);
      return { ...unsigned, signature: toBase64url(serverSign(serverKey, data)) };
    };
    const cases: [string, (m: Recovery) => Recovery][] = [
      [
        "share",
        (m) =>
          resign({
            ...m,
            dkg: {
              ...m.dkg,
              shares: m.dkg.shares.map((s, i) =>
                i === 0 ? { ...s, ciphertext: flip(s.ciphertext) } : s,
              ),
            },
          }),
      ],
      [
        "certificate",
        (m) =>
          resign({
            ...m,
            dkg: {
              ...m.dkg,
              certificate: m.dkg.certificate.map((c, i) => (i === m.index % 3 ? flip(c) : c)),
            },
          }),
      ],
      ["signature", (m) => ({ ...m, owner: "someone-else" })],
      ["signature", (m) => ({ ...m, signature: flip(m.signature) })],
      ["not-holder", (m) => resign({ ...m, index: (m.index % 3) + 1 })],
      ["late", (m) => resign({ ...m, deadline: new Date(Date.now() - 1000).toISOString() })],
      [
        "package",
        (m) =>
          resign({
            ...m,
            dkg: {
              ...m.dkg,
              packages: m.dkg.packages.map((p, i) =>
                i === 0 ? { ...p, proof: flip(p.proof) } : p,
              ),
            },
          }),
      ],
    ];
    const admin = await server.admin();
    try {
      for (const [reason, change] of cases) {
        tamper.current = change;
        const outcomes = await admin.thresholdRecover(key.id);
        const mine = outcomes.find((o) => o.contributorId === holder.id)!;
        assert.deepEqual([mine.outcome, mine.reason], ["refused", reason], `case ${reason}`);
        assert.equal(await store.read(key.id), undefined, `case ${reason}: nothing written`);
        for (const o of outcomes.filter((o) => o.contributorId !== holder.id)) {
          assert.equal(o.outcome, "kept");
        }
      }
      // The same data unchanged: recovered.
      tamper.current = undefined;
      const outcomes = await admin.thresholdRecover(key.id);
      assert.equal(outcomes.find((o) => o.contributorId === holder.id)!.outcome, "recovered");
      assert.ok(await store.read(key.id));

      // A refreshed key's refresh data is checked as well: its certificate and its deals.
      const refreshed = await admin.thresholdRefresh(key.id);
      await waitFor(
        () => holder.events.some((e) => e.type === "dkg.completed" && e.keyId === refreshed.id),
        5000,
      );
      await rm(join(store.dir, `${refreshed.id}.json`));
      const refreshCases: [string, (r: NonNullable<Recovery["refresh"]>) => Recovery["refresh"]][] =
        [
          [
            "certificate",
            (r) => ({ ...r, certificate: r.certificate.map((c, i) => (i === 0 ? flip(c) : c)) }),
          ],
          [
            "refresh",
            (r) => ({
              ...r,
              deals: r.deals.map((d, i) =>
                i === 0 ? { ...d, ephemeralKey: flip(d.ephemeralKey) } : d,
              ),
            }),
          ],
          ["refresh", (r) => ({ ...r, nonce: flip(r.nonce) })],
          [
            // A changed public package is not the one every holder certified.
            "certificate",
            (r) => ({
              ...r,
              public: { ...r.public, verifyingShares: [...r.public.verifyingShares].reverse() },
            }),
          ],
        ];
      for (const [reason, change] of refreshCases) {
        tamper.current = (m) => resign({ ...m, refresh: change(m.refresh!)! });
        const answers = await admin.thresholdRecover(refreshed.id);
        const mine = answers.find((o) => o.contributorId === holder.id)!;
        assert.deepEqual(
          [mine.outcome, mine.reason],
          ["refused", reason],
          `refresh case ${reason}`,
        );
        assert.equal(await store.read(refreshed.id), undefined);
      }
      tamper.current = undefined;
      const last = await admin.thresholdRecover(refreshed.id);
      assert.equal(last.find((o) => o.contributorId === holder.id)!.outcome, "recovered");
    } finally {
      admin.close();
    }
  } finally {
    await server.cleanup();
  }
});

test("a refreshed key: the holder rebuilds its refreshed share (not the one the DKG gave it); the refreshed-away key cannot be recovered", async () => {
  const server = await startTestServer();
  try {
    const contributors = await startContributors(server, 3);
    const key = await keygen(server, contributors, "p256");
    const lost = contributors[1]!;
    const dkgShare = (await shareOf(lost, key.id)).share!;
    const admin = await server.admin();
    try {
      const refreshed = await admin.thresholdRefresh(key.id);
      await Promise.all(
        contributors.map((c) =>
          waitFor(
            () => c.events.some((e) => e.type === "dkg.completed" && e.keyId === refreshed.id),
            5000,
          ),
        ),
      );
      const before = await shareOf(lost, refreshed.id);
      assert.ok(before.file?.refresh);
      assert.notDeepEqual(Buffer.from(before.share!), Buffer.from(dkgShare));
      await rm(join(before.store.dir, `${refreshed.id}.json`));

      const outcomes = await admin.thresholdRecover(refreshed.id);
      assert.deepEqual(
        outcomes.map((o) => o.outcome),
        refreshed.holders.map((id) => (id === lost.id ? "recovered" : "kept")),
      );
      const after = await shareOf(lost, refreshed.id);
      assert.deepEqual(Buffer.from(after.share!), Buffer.from(before.share!));
      assert.deepEqual(withoutSealing(after.file!), withoutSealing(before.file!));
      // The old key's file is not brought back.
      assert.equal(await after.store.read(key.id), undefined);
      await assert.rejects(admin.thresholdRecover(key.id), (e: Error & { code?: string }) => {
        assert.equal(e.code, "E_INVALID_INPUT");
        assert.match(e.message, new RegExp(`refreshed as ${refreshed.id}`));
        return true;
      });
    } finally {
      admin.close();
    }
  } finally {
    await server.cleanup();
  }
});
