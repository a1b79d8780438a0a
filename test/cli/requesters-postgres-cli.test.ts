/**
 * `dkeygen requester add/remove/list --store postgres://…` through the real executable, against a
 * running `dkeygen server --store` on the same database: a credential added by the CLI works on
 * the server at once, a removal is refused there within a second, the list shows the tombstone,
 * and the store key comes from the data folder (a missing one is named, never made).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { loadOrCreateRequesterKeys } from "../../src/client/requester-state.js";
import { CliProcess, runCli, serverArgs } from "../helpers/cli.js";
import { startPostgres } from "../helpers/postgres.js";

const cluster = await startPostgres();
after(() => cluster.stop());

const status = async (url: string, credential: string) =>
  (await fetch(`${url}/v1/requester`, { headers: { authorization: `Bearer ${credential}` } }))
    .status;

test("requester add, remove and list with --store reach a running server on the database; a removal is refused within a second", async (t) => {
  const url = await cluster.createDatabase();
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-pgreq-"));
  const serverDir = join(dir, "server");
  const server = new CliProcess(serverArgs(serverDir, ["--store", url]));
  try {
    const [, httpUrl] = (await server.waitFor(/"httpUrl":"(http:[^"]+)"/)) as unknown as [
      string,
      string,
    ];
    const keys = await loadOrCreateRequesterKeys(join(dir, "client"));
    const added = await runCli(
      ["requester", "add", "shop", "--public-key", keys.publicKeyPath, "--data-dir", serverDir],
      { env: { DKEYGEN_STORE_URL: url } },
    );
    assert.equal(added.status, 0, added.stderr);
    const credential = added.stdout.trim();
    assert.equal(await status(httpUrl, credential), 200);

    const removed = await runCli([
      "requester",
      "remove",
      "shop",
      "--store",
      url,
      "--data-dir",
      serverDir,
      "--json",
    ]);
    assert.equal(removed.status, 0, removed.stderr);
    const gone = performance.now();
    let code = 200;
    while (code === 200 && performance.now() - gone < 2000) {
      code = await status(httpUrl, credential);
      if (code === 200) await sleep(20);
    }
    const after = performance.now() - gone;
    t.diagnostic(`refused ${after.toFixed(0)} ms after requester remove exited`);
    assert.equal(code, 401);
    assert.ok(after < 1000, `refused after ${after} ms`);

    const listed = await runCli([
      "requester",
      "list",
      "--store",
      url,
      "--data-dir",
      serverDir,
      "--json",
    ]);
    assert.equal(listed.status, 0, listed.stderr);
    const list = JSON.parse(listed.stdout);
    assert.deepEqual(list.requesters, []);
    assert.deepEqual(
      list.removed.map((r: { name: string; id: string }) => [r.name, r.id]),
      [["shop", JSON.parse(removed.stdout).id]],
    );
    // Nothing went to requesters.json.
    const fileList = await runCli(["requester", "list", "--data-dir", serverDir, "--json"], {
      env: { DKEYGEN_STORE_URL: "" },
    });
    assert.deepEqual(JSON.parse(fileList.stdout), { requesters: [], removed: [] });
    for (const out of [added, removed, listed]) {
      assert.ok(!(out.stdout + out.stderr).includes(cluster.password), "password shown");
    }
  } finally {
    assert.equal(await server.stop(), 0, server.stderr);
    await rm(dir, { recursive: true, force: true });
  }
});

test("requester list --store without the store key names the missing file and makes none", async () => {
  const url = await cluster.createDatabase();
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-pgreq-"));
  try {
    const result = await runCli([
      "requester",
      "list",
      "--store",
      url,
      "--data-dir",
      join(dir, "x"),
    ]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /--data-dir .*store\.key/);
    const again = await runCli(["requester", "list", "--store", url, "--data-dir", join(dir, "x")]);
    assert.equal(again.status, 1, "no store key was made by the first");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
