/** The data folder's file primitives (src/datadir/files.ts): exclusive creation, never replacing. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { appendFile, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import {
  appendJsonLines,
  createFileExclusive,
  loadOrCreateSecret,
  readJsonLines,
} from "../../src/datadir/files.js";
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

test("a JSON-lines file: a line cut short by a crash is skipped and never runs into the next", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, "journal.jsonl");
    assert.deepEqual(await readJsonLines(path), [], "no file: no lines");
    await appendJsonLines(path, [{ n: 1 }, { n: 2 }], true);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await appendFile(path, '{"n":3,"cut');
    assert.deepEqual(
      (await readJsonLines(path)).map((l) => l.value),
      [{ n: 1 }, { n: 2 }],
      "the torn last line is not read",
    );
    await appendJsonLines(path, [{ n: 4 }]);
    assert.equal(await readFile(path, "utf8"), '{"n":1}\n{"n":2}\n{"n":3,"cut\n{"n":4}\n');
    assert.deepEqual(await readJsonLines(path), [
      { line: 1, value: { n: 1 } },
      { line: 2, value: { n: 2 } },
      { line: 4, value: { n: 4 } },
    ]);
    // Appends racing each other never lose a line.
    await Promise.all(Array.from({ length: 50 }, (_, i) => appendJsonLines(path, [{ i }])));
    assert.equal((await readJsonLines(path)).length, 53);
    // A line that is whole but not JSON is refused, naming it.
    await writeFile(path, '{"n":1}\n{not json}\n{"n":2}\n');
    await assert.rejects(readJsonLines(path), /journal\.jsonl: line 2 is not JSON/);
  } finally {
    await dir.remove();
  }
});
