/** The data folder's file primitives (src/datadir/files.ts): exclusive creation, never replacing. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { createFileExclusive, loadOrCreateSecret } from "../../src/datadir/files.js";
import { tempDir } from "../helpers/ceremony.js";

test("concurrent loadOrCreateSecret calls on one path all get one secret, made once", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, "store.key");
    const results = await Promise.all(
      Array.from({ length: 20 }, () => loadOrCreateSecret(path, () => randomBytes(32))),
    );
    assert.equal(results.filter((r) => r.created).length, 1);
    const onDisk = await readFile(path);
    for (const result of results) assert.deepEqual(result.data, onDisk);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir.path), ["store.key"], "no temporary file is left");
  } finally {
    await dir.remove();
  }
});

test("createFileExclusive never replaces a file, and says whether it made one", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, "admin.token");
    await writeFile(path, "first\n");
    assert.equal(await createFileExclusive(path, "second\n"), false);
    assert.equal(await readFile(path, "utf8"), "first\n");
    const other = join(dir.path, "other");
    assert.equal(await createFileExclusive(other, "made\n", 0o600), true);
    assert.equal(await readFile(other, "utf8"), "made\n");
    assert.equal((await stat(other)).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir.path)).sort(), ["admin.token", "other"]);
  } finally {
    await dir.remove();
  }
});
