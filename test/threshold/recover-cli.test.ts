/**
 * `dkeygen threshold recover` through the real executable: a holder process whose share folder
 * is wiped (identity key kept) is restarted, the admin runs recover, the holder rebuilds the same
 * share, lists the key again, and signs with it.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { ShareStore } from "../../src/client/share-store.js";
import { tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli, serverArgs } from "../helpers/cli.js";

async function shareIn(dataDir: string, keyId: string): Promise<Buffer | undefined> {
  const state = await loadOrCreateContributorState(dataDir);
  const store = new ShareStore(dataDir, state.privateKey);
  const file = await store.read(keyId);
  return file === undefined ? undefined : Buffer.from(store.openShare(file));
}

test("threshold recover through the CLI: a holder whose share folder was wiped gets the same share back and signs with it", async () => {
  const temp = await tempDir();
  const serverDir = join(temp.path, "server");
  const server = new CliProcess(serverArgs(serverDir));
  const contributors: CliProcess[] = [];
  const contributorArgs = (wsUrl: string, name: string) => [
    "contributor",
    "--server",
    wsUrl,
    "--data-dir",
    join(temp.path, name),
    "--log-format",
    "json",
  ];
  try {
    const [, wsUrl] = await server.waitFor(/listening\s+(ws:\/\/\S+)/, 60_000);
    for (const name of ["h1", "h2", "h3"]) {
      const enroll = await runCli(["enroll", "--data-dir", serverDir, "--name", name, "--json"]);
      assert.equal(enroll.status, 0, enroll.stderr);
      const c = new CliProcess(contributorArgs(wsUrl!, name), {
        DKEYGEN_ENROLL_TOKEN: JSON.parse(enroll.stdout).token as string,
      });
      contributors.push(c);
      await c.waitFor(/enrolled and joined/, 60_000);
    }
    const keygen = await runCli([
      ..."threshold keygen --suite ed25519 --t 2 --n 3 --json --data-dir".split(" "),
      serverDir,
    ]);
    assert.equal(keygen.status, 0, keygen.stderr);
    const key = JSON.parse(keygen.stdout);
    for (const c of contributors) await c.waitFor(/threshold share stored/, 10_000);
    const h1 = join(temp.path, "h1");
    const before = await shareIn(h1, key.id);
    assert.ok(before);

    // h1's disk loses its shares (its identity key stays); it comes back without them.
    await contributors[0]!.stop();
    await rm(join(h1, "threshold"), { recursive: true, force: true });
    contributors[0] = new CliProcess(contributorArgs(wsUrl!, "h1"));
    await contributors[0].waitFor(/"joined"/, 60_000);
    const listedEmpty = await runCli(["contributor", "shares", "--data-dir", h1, "--json"]);
    assert.deepEqual(JSON.parse(listedEmpty.stdout), []);

    const recover = await runCli([
      ..."threshold recover --json --key".split(" "),
      key.id,
      "--data-dir",
      serverDir,
    ]);
    assert.equal(recover.status, 0, recover.stderr);
    const result = JSON.parse(recover.stdout);
    assert.equal(result.keyId, key.id);
    assert.deepEqual(result.holders.map((h: { outcome: string }) => h.outcome).sort(), [
      "kept",
      "kept",
      "recovered",
    ]);
    await contributors[0].waitFor(/recovered from the server's recovery data/, 10_000);
    assert.deepEqual(await shareIn(h1, key.id), before);
    const listed = JSON.parse(
      (await runCli(["contributor", "shares", "--data-dir", h1, "--json"])).stdout,
    );
    assert.deepEqual(
      listed.map((s: { keyId: string }) => s.keyId),
      [key.id],
    );

    // The human form names each holder's outcome.
    const human = await runCli(["threshold", "recover", "--key", key.id, "--data-dir", serverDir]);
    assert.equal(human.status, 0, human.stderr);
    assert.equal(human.stdout.match(/\bkept\b/g)?.length, 3);

    // With h2 gone, h1 must sign: the signature is RFC 8032 under the group key.
    await contributors[1]!.stop();
    await server.waitFor(/contributor left/, 10_000);
    const messageFile = join(temp.path, "message.bin");
    const message = createHash("sha256").update("after a recovery").digest();
    await writeFile(messageFile, message);
    const signed = await runCli([
      ..."threshold sign --json --key".split(" "),
      key.id,
      "--message-file",
      messageFile,
      "--data-dir",
      serverDir,
    ]);
    assert.equal(signed.status, 0, signed.stderr);
    const signature = JSON.parse(signed.stdout).signature as string;
    assert.ok(
      ed25519.verify(
        Buffer.from(signature, "hex"),
        message,
        Buffer.from(key.groupPublicKey, "hex"),
      ),
    );
    // A key id the server does not have: a clear error.
    const unknown = await runCli([
      ..."threshold recover --key 01JDKGEN0000000000000000ZZ --data-dir".split(" "),
      serverDir,
    ]);
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /No threshold key/);
  } finally {
    for (const c of contributors) await c.stop();
    await server.stop();
    await temp.remove();
  }
});
