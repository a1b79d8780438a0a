/**
 * `dkeygen status`: the running server's state over an authenticated admin session, including
 * its key store's durable chain head (the one the head file anchors).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli, serverArgs } from "../helpers/cli.js";

test("dkeygen status shows contributors, rounds and the key store's head, human and --json", async () => {
  const dir = await tempDir();
  const dataDir = join(dir.path, "server");
  const server = new CliProcess(serverArgs(dataDir, [], { http: false }));

  try {
    await server.waitFor(/listening\s+ws:\/\//, 60_000);
    const json = await runCli(["status", "--data-dir", dataDir, "--json"]);
    assert.equal(json.status, 0, json.stderr);
    const status = JSON.parse(json.stdout);
    assert.deepEqual(status.contributors, []);
    assert.equal(status.enrolled, 0);
    assert.equal(status.roundsRunning, 0);
    assert.equal(status.store.kind, "file");
    const text = await readFile(join(dataDir, "key_store"), "utf8");
    const lines = text.split("\n").filter(Boolean);
    assert.equal(status.store.lines, lines.length);
    if (lines.length > 0) {
      assert.equal(status.store.head, /"mac":"([0-9a-f]{64})"/.exec(lines.at(-1)!)![1]);
    } else {
      assert.equal(status.store.head, "0".repeat(64));
    }
    const human = await runCli(["status", "--data-dir", dataDir]);
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /contributors\s+0 connected, 0 enrolled/);
    assert.match(
      human.stdout,
      new RegExp(`key store\\s+file, ${lines.length} lines, head [0-9a-f]{64}`),
    );
  } finally {
    await server.stop();
    await dir.remove();
  }
});
