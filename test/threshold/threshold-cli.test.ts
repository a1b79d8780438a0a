/**
 * Threshold keys through the real `dkeygen` executable: a server process, contributor processes,
 * `threshold keygen` and `contributor shares`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { bech32m } from "@scure/base";
import { bip86OutputKey } from "../../src/threshold/taproot.js";
import { tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli, serverArgs } from "../helpers/cli.js";

test("threshold keygen through the CLI: a 2-of-3 Taproot key whose holders list it and whose address is the BIP 86 one", async () => {
  const temp = await tempDir();
  const serverDir = join(temp.path, "server");
  const server = new CliProcess(serverArgs(serverDir));
  const contributors: CliProcess[] = [];
  try {
    const [, wsUrl] = await server.waitFor(/listening\s+(ws:\/\/\S+)/, 60_000);
    for (const name of ["h1", "h2", "h3"]) {
      const enroll = await runCli(["enroll", "--data-dir", serverDir, "--name", name, "--json"]);
      assert.equal(enroll.status, 0, enroll.stderr);
      const c = new CliProcess(
        [
          "contributor",
          "--server",
          wsUrl!,
          "--data-dir",
          join(temp.path, name),
          "--log-format",
          "json",
        ],
        { DKEYGEN_ENROLL_TOKEN: JSON.parse(enroll.stdout).token as string },
      );
      contributors.push(c);
      await c.waitFor(/enrolled and joined/, 60_000);
    }
    const keygen = await runCli([
      "threshold",
      "keygen",
      "--suite",
      "secp256k1-tr",
      "--t",
      "2",
      "--n",
      "3",
      "--data-dir",
      serverDir,
      "--json",
    ]);
    assert.equal(keygen.status, 0, keygen.stderr);
    const key = JSON.parse(keygen.stdout);
    assert.deepEqual(
      Object.keys(key).sort(),
      [
        "address",
        "createdAt",
        "groupPublicKey",
        "holders",
        "id",
        "n",
        "outputKey",
        "owner",
        "sessionId",
        "suite",
        "t",
      ].sort(),
    );
    assert.equal(key.suite, "secp256k1-tr");
    assert.equal(key.owner, "@admin");
    assert.deepEqual([key.t, key.n], [2, 3]);
    assert.match(key.groupPublicKey, /^[0-9a-f]{64}$/);
    // The output key is BIP 86's tweak of the group key; the address is its witness v1 program.
    assert.equal(
      Buffer.from(bip86OutputKey(Buffer.from(key.groupPublicKey, "hex"))).toString("hex"),
      key.outputKey,
    );
    const decoded = bech32m.decode(key.address);
    assert.equal(decoded.prefix, "bc");
    assert.equal(decoded.words[0], 1);
    assert.equal(
      Buffer.from(bech32m.fromWords(decoded.words.slice(1))).toString("hex"),
      key.outputKey,
    );
    for (const c of contributors) await c.waitFor(/threshold share stored/, 10_000);
    for (const name of ["h1", "h2", "h3"]) {
      const listed = await runCli([
        "contributor",
        "shares",
        "--data-dir",
        join(temp.path, name),
        "--json",
      ]);
      assert.equal(listed.status, 0, listed.stderr);
      const shares = JSON.parse(listed.stdout);
      assert.equal(shares.length, 1);
      assert.equal(shares[0].keyId, key.id);
      assert.equal(shares[0].groupPublicKey, key.groupPublicKey);
      assert.equal(shares[0].address, key.address);
      assert.equal(JSON.stringify(shares).includes("sealedShare"), false);
    }
    const human = await runCli(["contributor", "shares", "--data-dir", join(temp.path, "h1")]);
    assert.match(human.stdout, /threshold\s+2 of 3 \(this contributor is holder [123]\)/);
    // Asking for more holders than are connected is a clear operational failure (exit 1).
    const tooMany = await runCli([
      "threshold",
      "keygen",
      "--suite",
      "ed25519",
      "--t",
      "3",
      "--n",
      "4",
      "--data-dir",
      serverDir,
    ]);
    assert.equal(tooMany.status, 1);
    assert.match(tooMany.stderr, /needs 4 contributors connected; 3 are/);
  } finally {
    for (const c of contributors) await c.stop();
    await server.stop();
    await temp.remove();
  }
});
