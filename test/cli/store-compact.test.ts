/**
 * `dkeygen store compact` through the real CLI: a stopped server's key_store loses the OTPs
 * retired longer ago than --retain-used (and keeps them with `forever`), the report says so,
 * and a folder in use by a running store is refused with the reason.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { KEY_STORE_FILE, loadOrCreateKeyFile, STORE_KEY_FILE } from "../../src/server/runtime.js";
import { FileKeyStore } from "../../src/store/file.js";
import { tempDir } from "../helpers/ceremony.js";
import { runCli } from "../helpers/cli.js";
import { bodies, input } from "../helpers/key-store-file.js";

const DAY = 86_400_000;

/** A data folder whose key_store has 3 OTPs, 2 of them claimed and retired two days ago. */
async function folder() {
  const dir = await tempDir("dkeygen-compact-");
  const key = await loadOrCreateKeyFile(join(dir.path, STORE_KEY_FILE));
  let now = Date.now() - 2 * DAY;
  const store = new FileKeyStore({
    path: join(dir.path, KEY_STORE_FILE),
    storeKey: key.expose(),
    clock: () => new Date(now),
    retireEveryMs: 0,
    retireGraceMs: 0,
  });
  key.wipe();
  await store.open();
  for (let i = 0; i < 3; i++) await store.put(input());
  for (let i = 0; i < 2; i++) {
    await store.claimNext("otp", {
      requester: "r",
      subject: "s",
      requestId: `q${i}`,
      expiresAt: new Date(now + 1000),
    });
  }
  now += 1000;
  assert.equal(await store.retireDue(), 2);
  return { dir, store };
}

test("store compact leaves out what retired before --retain-used, keeps it with forever, and reports it", async () => {
  const kept = await folder();
  try {
    await kept.store.close();
    const forever = await runCli([
      "store",
      "compact",
      "--data-dir",
      kept.dir.path,
      "--retain-used",
      "forever",
      "--json",
    ]);
    assert.equal(forever.status, 0, forever.stderr);
    const keptReport = JSON.parse(forever.stdout);
    assert.equal(keptReport.dropped, 0);
    assert.equal(keptReport.generation, 1);
    assert.equal(keptReport.liveRecords, 1);

    const day = await runCli(["store", "compact", "--data-dir", kept.dir.path]);
    assert.equal(day.status, 0, day.stderr);
    assert.match(day.stdout, /compacted .*key_store \(generation 2\)/);
    assert.match(day.stdout, /left out\s+2 records retired before/);
    const written = await bodies(join(kept.dir.path, KEY_STORE_FILE));
    assert.equal(written[0]!.t, "compacted");
    assert.equal(written.filter((b) => b.t === "record").length, 1);
  } finally {
    await kept.store.close();
    await kept.dir.remove();
  }
});

test("store compact refuses a folder whose store is open elsewhere, saying why", async () => {
  const busy = await folder();
  try {
    const result = await runCli(["store", "compact", "--data-dir", busy.dir.path]);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /compacts its key_store by itself/);
  } finally {
    await busy.store.close();
    await busy.dir.remove();
  }
});
