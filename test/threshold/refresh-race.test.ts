/**
 * A holder's share refresh (client/contributor-refresh.ts) without a network, when the server's
 * refresh.deals overtakes the holder's own checks of the refresh.open: a holder that deals
 * nothing sends nothing before the deals reach it, so the deals can come while it is still
 * reading its share from disk or claiming the session id against replay. They wait for those
 * checks instead of being dropped: the holder confirms, and with the certificate stores its new
 * share. Real holders (data folders, sealed shares, a local DKG), a real RSA server key; only
 * one step of the open is held back, by a share store that awaits a gate the test opens. Also:
 * a dealer whose sealed share does not open answers with a fault at once (it used to throw past
 * the fault, leaving the refresh to time out).
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import type { DkgEvent } from "../../src/client/contributor-dkg.js";
import { ContributorRefresh } from "../../src/client/contributor-refresh.js";
import {
  type ContributorState,
  loadOrCreateContributorState,
} from "../../src/client/contributor-state.js";
import type { ServerKey } from "../../src/client/server-key.js";
import { type ShareFile, ShareStore } from "../../src/client/share-store.js";
import { toBase64url } from "../../src/crypto/base64url.js";
import { fingerprintOf } from "../../src/crypto/fingerprint.js";
import { serverSign } from "../../src/crypto/server-signature.js";
import { silentLogger } from "../../src/logging.js";
import type { AnyMessage, MessageOf } from "../../src/protocol/messages.js";
import { refreshOpenSignedData } from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { publicFromJson, round1ToJson } from "../../src/threshold/codec.js";
import { DkgParticipant } from "../../src/threshold/dkg.js";
import { type RefreshSessionParams, refreshSessionIdOf } from "../../src/threshold/refresh.js";
import type { SuiteName } from "../../src/threshold/suites.js";
import { type DkgSessionParams, publicPackageHash } from "../../src/threshold/transcript.js";
import type { Connection } from "../../src/transport/types.js";
import { tempDir } from "../helpers/ceremony.js";
import { runLocalDkg } from "../helpers/dkg-local.js";

const SUITE: SuiteName = "secp256k1-tr";
const T = 2;
const N = 3;
/** Holders 1 and 2 deal; holder 3 deals nothing, so it says nothing before the deals come. */
const DEALERS = [1, 2];
const KEY_ID = "01JDKGEN0000000000000000RK";
const REFRESHED_KEY_ID = "01JDKGEN0000000000000000RM";

const rsa = generateKeyPairSync("rsa", { modulusLength: 3072 });
const server: ServerKey = {
  url: "memory://test",
  key: rsa.publicKey,
  fingerprint: fingerprintOf(rsa.publicKey),
  challenge: new Uint8Array(32),
  pin: "given",
};
const random = (n: number) => new Uint8Array(randomBytes(n));

let dir: Awaited<ReturnType<typeof tempDir>>;
before(async () => {
  dir = await tempDir();
});
after(() => dir.remove());

/** A gate: `reached` resolves when the step comes to it; the step goes on after `open()`. */
function gate() {
  let reach!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((resolve) => {
    reach = resolve;
  });
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return {
    reached,
    open,
    async pass() {
      reach();
      await opened;
    },
  };
}

/** A share store whose read of a share file, or durable claim of a session id, waits at a gate. */
class GatedShareStore extends ShareStore {
  readonly gate = gate();
  readonly #step: "read" | "claimSession";

  constructor(dataDir: string, state: ContributorState, step: "read" | "claimSession") {
    super(dataDir, state.privateKey);
    this.#step = step;
  }

  override async read(keyId: string): Promise<ShareFile | undefined> {
    if (this.#step === "read") await this.gate.pass();
    return super.read(keyId);
  }

  override async claimSession(sessionId: string): Promise<boolean> {
    if (this.#step === "claimSession") await this.gate.pass();
    return super.claimSession(sessionId);
  }
}

interface Holder {
  index: number;
  state: ContributorState;
  shares: ShareStore;
  refresh: ContributorRefresh;
  connection: Connection;
  sent: AnyMessage[];
  events: DkgEvent[];
  /** The frames of `type` this holder sent. */
  sentOf<T extends AnyMessage["type"]>(type: T): MessageOf<T>[];
}

/**
 * Three holders, each with its own data folder, that ran a DKG among themselves under the
 * server's fingerprint and keep their sealed shares as a contributor does; holder 3's share
 * store is `store3`'s.
 */
async function holdersOfAKey(
  name: string,
  store3: (dataDir: string, state: ContributorState) => ShareStore,
): Promise<Holder[]> {
  const states = await Promise.all(
    [1, 2, 3].map((i) => loadOrCreateContributorState(`${dir.path}/${name}-${i}`)),
  );
  const params: DkgSessionParams = {
    suite: SUITE,
    t: T,
    n: N,
    serverFingerprint: server.fingerprint,
    nonce: random(32),
    identities: states.map((s) => s.identity),
  };
  const participants = states.map(
    (s, i) => new DkgParticipant({ params, index: i + 1, identityKey: s.privateKey, random }),
  );
  const { shares, sealed } = runLocalDkg({ params, keys: states, participants });
  const packages = participants.map((p) => round1ToJson(p.round1));
  return Promise.all(
    states.map(async (state, i) => {
      const index = i + 1;
      const store =
        index === 3
          ? store3(state.dataDir, state)
          : new ShareStore(state.dataDir, state.privateKey);
      await store.save(
        KEY_ID,
        shares[i]!,
        params,
        "@admin",
        packages,
        sealed.filter((s) => s.to === index),
        new Date(),
      );
      const sent: AnyMessage[] = [];
      const events: DkgEvent[] = [];
      const connection = {
        send: (frame: string) => sent.push(JSON.parse(frame) as AnyMessage),
      } as unknown as Connection;
      const refresh = new ContributorRefresh({
        state,
        shares: store,
        random,
        logger: silentLogger,
        emit: (event) => events.push(event),
      });
      return {
        index,
        state,
        shares: store,
        refresh,
        connection,
        sent,
        events,
        sentOf: <T extends AnyMessage["type"]>(type: T) =>
          sent.filter((m): m is MessageOf<T> => m.type === type),
      };
    }),
  );
}

/** The refresh.open the server's RSA key signed for the key the holders share. */
async function refreshOpen(holders: Holder[]): Promise<MessageOf<"refresh.open">> {
  const file = (await holders[0]!.shares.read(KEY_ID))!;
  const oldPublic = publicFromJson(file.public, file.identifiers, file.t, file.n);
  const params: RefreshSessionParams = {
    suite: SUITE,
    t: T,
    n: N,
    serverFingerprint: server.fingerprint,
    keyId: KEY_ID,
    publicHash: publicPackageHash(oldPublic, file.identifiers),
    nonce: random(32),
    dealers: DEALERS,
    identities: holders.map((h) => h.state.identity),
  };
  const sessionId = refreshSessionIdOf(params);
  const deadline = new Date(Date.now() + 60_000).toISOString();
  const signature = serverSign(
    rsa.privateKey,
    refreshOpenSignedData(
      server.fingerprint,
      sessionId,
      KEY_ID,
      params.nonce,
      DEALERS,
      params.publicHash,
      deadline,
      params.identities,
    ),
  );
  return {
    type: "refresh.open",
    v: PROTOCOL_VERSION,
    sessionId: toBase64url(sessionId),
    keyId: KEY_ID,
    suite: SUITE,
    t: T,
    n: N,
    nonce: toBase64url(params.nonce),
    dealers: DEALERS,
    participants: params.identities.map(toBase64url),
    publicHash: toBase64url(params.publicHash),
    deadline,
    signature: toBase64url(signature),
  };
}

/** What the server relays to holder `to` once both dealers' deals are in. */
function dealsFor(dealt: MessageOf<"refresh.deal">[], to: number): MessageOf<"refresh.deals"> {
  return {
    type: "refresh.deals",
    v: PROTOCOL_VERSION,
    sessionId: dealt[0]!.sessionId,
    deals: dealt.map((d) => d.deal),
    shares: dealt.map((d) => d.shares.find((s) => s.to === to)!),
  };
}

for (const step of ["read", "claimSession"] as const) {
  const what = step === "read" ? "reading its share" : "claiming the session id (replay)";
  test(`a refresh.deals that reaches the non-dealing holder while it is still ${what} is not dropped: it confirms and stores its new share`, async () => {
    const holders = await holdersOfAKey(
      step,
      (dataDir, state) => new GatedShareStore(dataDir, state, step),
    );
    const [h1, h2, h3] = holders as [Holder, Holder, Holder];
    const store3 = h3.shares as GatedShareStore;
    const open = await refreshOpen(holders);

    // The dealers join and deal.
    await h1.refresh.open(h1.connection, server, open);
    await h2.refresh.open(h2.connection, server, open);
    const dealt = [...h1.sentOf("refresh.deal"), ...h2.sentOf("refresh.deal")];
    assert.deepEqual(
      dealt.map((d) => d.deal.index),
      DEALERS,
      "each dealer dealt once",
    );

    // Holder 3 is still checking the open when the deals reach it.
    const opening = h3.refresh.open(h3.connection, server, open);
    await store3.gate.reached;
    assert.equal(h3.refresh.has(open.sessionId), false, "holder 3 has not joined yet");
    const dealing = h3.refresh.deals(h3.connection, dealsFor(dealt, 3));
    store3.gate.open();
    await opening;
    await dealing;
    assert.equal(h3.refresh.has(open.sessionId), true, "holder 3 joined");
    assert.deepEqual(
      h3.sent.map((m) => m.type),
      ["dkg.confirm"],
      "holder 3 confirmed the deals it got before it had joined",
    );

    // The dealers confirm too; the certificate completes the refresh for every holder.
    await h1.refresh.deals(h1.connection, dealsFor(dealt, 1));
    await h2.refresh.deals(h2.connection, dealsFor(dealt, 2));
    const confirms = holders.map((h) => h.sentOf("dkg.confirm"));
    assert.deepEqual(
      confirms.map((c) => c.length),
      [1, 1, 1],
    );
    const certificate: MessageOf<"dkg.certificate"> = {
      type: "dkg.certificate",
      v: PROTOCOL_VERSION,
      sessionId: open.sessionId,
      keyId: REFRESHED_KEY_ID,
      certificate: confirms.map((c) => c[0]!.signature),
    };
    for (const h of holders) await h.refresh.certificate(h.connection, certificate);
    for (const h of holders) {
      assert.deepEqual(h.events, [
        { type: "dkg.completed", sessionId: open.sessionId, keyId: REFRESHED_KEY_ID },
      ]);
      assert.equal(h.sentOf("dkg.stored").length, 1);
      assert.equal(h.sentOf("dkg.fault").length, 0);
      const file = (await h.shares.read(REFRESHED_KEY_ID))!;
      assert.equal(file.refresh?.refreshOf, KEY_ID);
      assert.equal(await h.shares.read(KEY_ID), undefined, "the old share is gone");
    }
    // Holder 3's new share opens with its identity key and is the one its recovery data rebuilds.
    const file3 = (await h3.shares.read(REFRESHED_KEY_ID))!;
    assert.deepEqual(h3.shares.openShare(file3), h3.shares.rebuild(file3));
  });
}

/** A share store whose shares do not open (a share file sealed under another key, say). */
class UnopenableShareStore extends ShareStore {
  override openShare(_file: ShareFile): Uint8Array {
    throw new Error("the sealed share does not open");
  }
}

test("a dealer whose share does not open answers the refresh.open with a fault at once and keeps its old share", async () => {
  const holders = await holdersOfAKey(
    "unopenable",
    (dataDir, state) => new ShareStore(dataDir, state.privateKey),
  );
  const h1 = holders[0]!;
  const broken = new UnopenableShareStore(h1.state.dataDir, h1.state.privateKey);
  const refresh = new ContributorRefresh({
    state: h1.state,
    shares: broken,
    random,
    logger: silentLogger,
    emit: (event) => h1.events.push(event),
  });
  const open = await refreshOpen(holders);
  await refresh.open(h1.connection, server, open);
  assert.deepEqual(
    h1.sent.map((m) => m.type),
    ["dkg.fault"],
    "the server hears of it at once",
  );
  assert.equal(refresh.has(open.sessionId), false);
  assert.ok(await broken.read(KEY_ID), "the old share stays");
});
