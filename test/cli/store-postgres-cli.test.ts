/**
 * The CLI on PostgreSQL, through the real executable: `dkeygen store migrate` and `dkeygen server
 * --store postgres://…` (or DKEYGEN_STORE_URL) on a throwaway cluster (test/helpers/postgres.ts),
 * with the database password kept out of every line they print.
 */
import assert from "node:assert/strict";
import { hkdfSync } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fromBase64url } from "../../src/crypto/base64url.js";
import { KEY_CHECK_INFO } from "../../src/store/postgres.js";
import { MIGRATIONS, SCHEMA_VERSION } from "../../src/store/postgres-schema.js";
import { CliProcess, runCli, serverArgs } from "../helpers/cli.js";
import { startPostgres } from "../helpers/postgres.js";

const cluster = await startPostgres();
after(() => cluster.stop());

function assertHidden(password: string, ...texts: string[]) {
  for (const text of texts) assert.ok(!text.includes(password), `the password shows in: ${text}`);
}

test("dkeygen store migrate applies the schema and prints it, then has nothing to apply; a wrong password exits 1 without showing it", async () => {
  const url = await cluster.createDatabase();
  const first = await runCli(["store", "migrate", "--store", url]);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, new RegExp(`^applied ${MIGRATIONS.length} migrations?:\\n`));
  const again = await runCli(["store", "migrate", "--json"], { env: { DKEYGEN_STORE_URL: url } });
  assert.equal(again.status, 0, again.stderr);
  const document = JSON.parse(again.stdout);
  assert.deepEqual(document.applied, []);
  assert.equal(document.version, SCHEMA_VERSION);
  assert.match(document.store, /^postgres:\/\/dkeygen:\*\*\*@127\.0\.0\.1:/);
  const wrong = new URL(url);
  wrong.password = "Not-The-Password-42";
  const refused = await runCli(["store", "migrate", "--store", wrong.href]);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /password authentication failed/);
  assertHidden("Not-The-Password-42", refused.stdout, refused.stderr, first.stdout, again.stdout);
  assertHidden(cluster.password, first.stdout, again.stdout, first.stderr, again.stderr);
});

test("a bad store URL is a usage error naming where it came from, without its password; the key_store file's options are refused beside it", async () => {
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-pgcli-"));
  try {
    const fromEnv = await runCli(["server", "--data-dir", join(dir, "server")], {
      env: { DKEYGEN_STORE_URL: "mysql://root:Hunter2-Secret@db/keys" },
    });
    assert.equal(fromEnv.status, 2);
    assert.match(fromEnv.stderr, /^dkeygen: DKEYGEN_STORE_URL: .*mysql:\/\/root:\*\*\*@db\/keys/);
    assertHidden("Hunter2-Secret", fromEnv.stderr, fromEnv.stdout);
    const withHead = await runCli([
      "server",
      "--data-dir",
      join(dir, "server"),
      "--store",
      "postgres://u:p@127.0.0.1:9/db",
      "--store-head",
      join(dir, "head"),
    ]);
    assert.equal(withHead.status, 2);
    assert.match(withHead.stderr, /--store-head is for the key_store file/);
    const migrateWithout = await runCli(["store", "migrate"], { env: { DKEYGEN_STORE_URL: "" } });
    assert.equal(migrateWithout.status, 2);
    assert.match(migrateWithout.stderr, /needs --store/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("dkeygen server --store runs on PostgreSQL with store.key in its data folder, logs the URL without its password, and a server with another store key is refused", async () => {
  const url = await cluster.createDatabase();
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-pgcli-"));
  try {
    const server = new CliProcess(serverArgs(join(dir, "a"), ["--store", url], { http: false }));
    try {
      await server.waitFor(/"store":"postgres"/);
      const storeKey = fromBase64url(
        (await readFile(join(dir, "a", "store.key"), "utf8")).trim(),
        "store.key",
        32,
      );
      const rows = await cluster.admin<{ check_value: Buffer }>(
        "SELECT check_value FROM store_key_check",
        [],
        new URL(url).pathname.slice(1),
      );
      const expected = Buffer.from(
        hkdfSync("sha256", storeKey, new Uint8Array(0), KEY_CHECK_INFO, 32),
      );
      assert.deepEqual(
        rows[0]?.check_value,
        expected,
        "the database is sealed under the folder's store.key",
      );
      assert.match(
        server.stdout + server.stderr,
        /"storeUrl":"postgres:\/\/dkeygen:\*\*\*@127\.0\.0\.1:/,
      );
    } finally {
      assert.equal(await server.stop(), 0, server.stderr);
    }
    assertHidden(cluster.password, server.stdout, server.stderr);
    // Another data folder, so another store key: refused, and still no password shown.
    const other = await runCli(serverArgs(join(dir, "b"), [], { http: false }), {
      env: { DKEYGEN_STORE_URL: url },
    });
    assert.equal(other.status, 1);
    assert.match(other.stderr, /store key does not match the PostgreSQL key store/);
    assertHidden(cluster.password, other.stdout, other.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a password on the command line is warned about (the process list shows it); none in DKEYGEN_STORE_URL, nor with the password in PGPASSWORD instead", async () => {
  const url = await cluster.createDatabase();
  const inArgv = await runCli(["store", "migrate", "--store", url]);
  assert.equal(inArgv.status, 0, inArgv.stderr);
  assert.match(inArgv.stderr, /warning: --store carries the database password.*DKEYGEN_STORE_URL/);
  assertHidden(cluster.password, inArgv.stdout, inArgv.stderr);
  const inEnv = await runCli(["store", "migrate"], { env: { DKEYGEN_STORE_URL: url } });
  assert.equal(inEnv.status, 0, inEnv.stderr);
  assert.equal(inEnv.stderr, "");
  const bare = new URL(url);
  bare.password = "";
  const withPgPassword = await runCli(["store", "migrate", "--store", bare.href], {
    env: { PGPASSWORD: cluster.password },
  });
  assert.equal(withPgPassword.status, 0, withPgPassword.stderr);
  assert.equal(withPgPassword.stderr, "");
});
