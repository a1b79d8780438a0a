/**
 * A pool refill's records are put held and released once the round's entry is witnessed. A server
 * stopped between the two (here: its store refuses the release, as a store that failed or a
 * process killed at that moment would leave it) must not leave them held for good: the next start
 * releases them — once witnesses cosign a checkpoint covering the entry again, not before.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { silentLogger } from "../../src/logging.js";
import { heldRounds, releaseHeldRounds } from "../../src/server/held-release.js";
import type { TransparencyLog } from "../../src/server/transparency-log.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import type { KeyStore } from "../../src/store/types.js";
import { startContributors, startTestServer, tempDir } from "../helpers/ceremony.js";

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** An OTP record of round `roundId`, put held as a refill's are. */
function putHeld(store: KeyStore, roundId: string) {
  return store.put({
    purpose: "otp",
    roundId,
    participants: ["a", "b"],
    algorithm: "otp/v1",
    public: { digits: 6 },
    secret: new Uint8Array([1, 2, 3, 4, 5, 6]),
    held: true,
  });
}

async function heldCount(store: KeyStore): Promise<number> {
  const records = await store.list({ claimed: false, consumed: false });
  return records.filter((r) => r.held === true).length;
}

test("records left held by a server stopped between witnessing and release are released at the next start, once witnessed again", async () => {
  const root = await tempDir("dkeygen-held-");
  try {
    const first = await startTestServer({ minCosignatures: 1 }, { dataDir: root.path, otpPool: 4 });
    const store = first.store;
    let refused = 0;
    store.releaseHeld = async () => {
      refused += 1;
      throw new DkeygenError(ErrorCodes.UNAVAILABLE, "the store went away");
    };
    const failed: string[] = [];
    first.server.onEvent((e) => {
      if (e.type === "round.failed") failed.push(e.message);
    });
    await startContributors(first, 2);
    await until("a refill that could not be released", async () => refused > 0);
    for (const c of first.contributors) await c.stop();
    await first.stop();
    assert.match(failed[0] ?? "", /could not be released; they stay held/);

    const second = await startTestServer({ minCosignatures: 1 }, { dataDir: root.path });
    try {
      const held = await heldCount(second.store);
      assert.ok(held >= 4, `the refill's records are held after the restart (${held})`);
      assert.equal(await second.store.countUnclaimed("otp"), 0);
      assert.ok((await heldRounds(second.store)).size >= 1);
      // No witness connected: nothing is released on the server's word alone.
      await sleep(1000);
      assert.equal(await heldCount(second.store), held);
      await startContributors(second, 2);
      await until("the held records released", async () => (await heldCount(second.store)) === 0);
      assert.equal(await second.store.countUnclaimed("otp"), held);
      assert.match(second.log.text(), /held records released at start/);
    } finally {
      for (const c of second.contributors) await c.stop();
      await second.stop();
    }
  } finally {
    await root.remove();
  }
});

test("held records of a round that never reached the log are withdrawn at the start of a server on the key_store file (no other process can log it): consumed, never handed out", async () => {
  const root = await tempDir("dkeygen-held-");
  try {
    const first = await startTestServer({ minCosignatures: 0 }, { dataDir: root.path });
    const roundId = "AAAAAAAAAAAAAAAAAAAAAA";
    const record = await putHeld(first.store, roundId);
    await first.stop();
    const second = await startTestServer({ minCosignatures: 0 }, { dataDir: root.path });
    try {
      await until("the start-up pass", async () => /were withdrawn/.test(second.log.text()));
      assert.equal(await heldCount(second.store), 0);
      assert.notEqual((await second.store.get(record.id))?.consumedAt, undefined);
      assert.equal(await second.store.countUnclaimed("otp"), 0);
    } finally {
      await second.stop();
    }
  } finally {
    await root.remove();
  }
});

/** A transparency log with no entry, for the pass alone. */
const emptyLog = {
  ready: async () => {},
  indexOf: () => undefined,
  entries: async () => [],
} as unknown as TransparencyLog;

test("the start-up pass leaves a round it cannot know to be over alone: not logged on a store other servers may share stays held, and a round running here is not touched", async () => {
  const store = new MemoryKeyStore();
  await store.open();
  try {
    const elsewhere = await putHeld(store, "BBBBBBBBBBBBBBBBBBBBBB");
    const here = await putHeld(store, "CCCCCCCCCCCCCCCCCCCCCC");
    const deps = {
      store,
      log: emptyLog,
      whenWitnessed: async () => false,
      logger: silentLogger,
      stopping: () => false,
      running: (roundId: string) => roundId === here.roundId,
    };
    const shared = await releaseHeldRounds({ ...deps, exclusive: false });
    assert.deepEqual(shared, {
      released: [],
      waiting: [],
      withdrawn: [],
      unacknowledged: [elsewhere.roundId],
    });
    assert.equal(await heldCount(store), 2);
    const alone = await releaseHeldRounds({ ...deps, exclusive: true });
    assert.deepEqual(alone.withdrawn, [elsewhere.roundId]);
    assert.notEqual((await store.get(elsewhere.id))?.consumedAt, undefined);
    assert.equal((await store.get(here.id))?.consumedAt, undefined, "the running round's record");
    assert.equal(await heldCount(store), 1);
  } finally {
    await store.close();
  }
});
