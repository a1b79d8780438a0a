/**
 * Threshold keys through the real `dkeygen` executable: a server process, contributor processes,
 * `threshold keygen` and `contributor shares`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { schnorr } from "@noble/curves/secp256k1.js";
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
    // Sign through the CLI; the signature is BIP 340 under the output key (noble's verifier).
    const messageFile = join(temp.path, "sighash.bin");
    const sighash = createHash("sha256").update("a Taproot key-path spend").digest();
    await writeFile(messageFile, sighash);
    const signArgs = [
      "threshold",
      "sign",
      "--key",
      key.id,
      "--message-file",
      messageFile,
      "--data-dir",
      serverDir,
      "--json",
    ];
    const signed = await runCli(signArgs);
    assert.equal(signed.status, 0, signed.stderr);
    const first = JSON.parse(signed.stdout);
    assert.deepEqual(Object.keys(first).sort(), ["keyId", "signature", "signers"]);
    assert.match(first.signature, /^[0-9a-f]{128}$/);
    assert.equal(first.signers.length, 2);
    assert.ok(
      schnorr.verify(
        Buffer.from(first.signature, "hex"),
        sighash,
        Buffer.from(key.outputKey, "hex"),
      ),
    );
    assert.equal(
      schnorr.verify(
        Buffer.from(first.signature, "hex"),
        sighash,
        Buffer.from(key.groupPublicKey, "hex"),
      ),
      false,
    );
    const verifies = (signature: string) =>
      schnorr.verify(Buffer.from(signature, "hex"), sighash, Buffer.from(key.outputKey, "hex"));
    // Refresh: new shares of the same key (same address), under a new key id; sign again.
    const refreshArgs = [
      "threshold",
      "refresh",
      "--key",
      key.id,
      "--data-dir",
      serverDir,
      "--json",
    ];
    const refreshedRun = await runCli(refreshArgs);
    assert.equal(refreshedRun.status, 0, refreshedRun.stderr);
    const refreshed = JSON.parse(refreshedRun.stdout);
    assert.equal(refreshed.refreshOf, key.id);
    assert.equal(refreshed.address, key.address);
    const newSignArgs = signArgs.map((a) => (a === key.id ? refreshed.id : a));
    const afterRefresh = await runCli(newSignArgs);
    assert.equal(afterRefresh.status, 0, afterRefresh.stderr);
    assert.ok(verifies(JSON.parse(afterRefresh.stdout).signature));
    // Kill one holder outright: the other two still sign.
    const victim = contributors[0]!;
    await victim.stop("SIGKILL");
    await server.waitFor(/contributor left/, 10_000);
    const again = await runCli(newSignArgs);
    assert.equal(again.status, 0, again.stderr);
    const second = JSON.parse(again.stdout);
    assert.ok(verifies(second.signature));
    assert.equal(second.signers.length, 2);
    // A refresh needs every holder: with one killed, a clear error (the key still signs, above).
    const refused = await runCli(refreshArgs.map((a) => (a === key.id ? refreshed.id : a)));
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /needs all 3 holders/);
    // Each holder logged what it signed: the key, the message's hash, never a share.
    const digest = createHash("sha256").update(sighash).digest("hex");
    let logged = 0;
    for (const name of ["h1", "h2", "h3"]) {
      const path = join(temp.path, name, "threshold", "signed.log");
      if (!existsSync(path)) continue;
      for (const line of readFileSync(path, "utf8").trim().split("\n")) {
        const entry = JSON.parse(line);
        assert.ok([key.id, refreshed.id].includes(entry.keyId));
        assert.equal(entry.messageSha256, digest);
        assert.equal(entry.requester, "@admin");
        logged++;
      }
    }
    assert.equal(logged, 6, "three signatures, two signers each");
    // Asking for more holders than are connected is a clear operational failure (exit 1).
    const tooMany = await runCli([
      "threshold",
      "keygen",
      "--suite",
      "ed25519",
      "--t",
      "2",
      "--n",
      "3",
      "--data-dir",
      serverDir,
    ]);
    assert.equal(tooMany.status, 1);
    assert.match(tooMany.stderr, /needs 3 contributors connected; 2 are/);
  } finally {
    for (const c of contributors) await c.stop();
    await server.stop();
    await temp.remove();
  }
});
