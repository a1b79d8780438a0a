/**
 * A 3-of-5 Ed25519 threshold key through the real `dkeygen` executable: a server process, five
 * contributor processes, `threshold keygen` and `threshold sign`, with holders killed outright.
 */
import assert from "node:assert/strict";
import { createPublicKey, verify } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli, runCliBatch, serverArgs } from "../helpers/cli.js";

const NAMES = ["h1", "h2", "h3", "h4", "h5"];

/** The contributor id a contributor process logged when it joined (JSON logs). */
function joinedId(c: CliProcess): string {
  for (const line of (c.stdout + c.stderr).split("\n")) {
    if (!line.includes("enrolled and joined")) continue;
    return (JSON.parse(line) as { contributorId: string }).contributorId;
  }
  throw new Error("no join logged");
}

/** Waits until the server has logged `count` departures. */
async function departures(server: CliProcess, count: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((server.stdout + server.stderr).match(/contributor left/g)?.length !== count) {
    if (Date.now() > deadline) throw new Error(`waited for ${count} departures\n${server.stdout}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test("threshold keys through the CLI, 3 of 5 (ed25519): node:crypto verifies the signatures; with two holders killed the other three sign, with a third killed signing fails with E_QUORUM_NOT_MET", async () => {
  const temp = await tempDir();
  const serverDir = join(temp.path, "server");
  const server = new CliProcess(serverArgs(serverDir, [], { http: false }));
  const contributors: CliProcess[] = [];
  try {
    const [, wsUrl] = await server.waitFor(/listening\s+(ws:\/\/\S+)/, 60_000);
    // One Node start for the five enrolments, then the five contributors start side by side.
    const enrolled = await runCliBatch(
      NAMES.map((name) => ["enroll", "--data-dir", serverDir, "--name", name, "--json"]),
    );
    for (const e of enrolled) assert.equal(e.status, 0, e.stderr);
    NAMES.forEach((name, i) => {
      const args = ["contributor", "--server", wsUrl!, "--data-dir", join(temp.path, name)];
      const token = JSON.parse(enrolled[i]!.stdout).token as string;
      contributors.push(
        new CliProcess([...args, "--log-format", "json"], { DKEYGEN_ENROLL_TOKEN: token }),
      );
    });
    await Promise.all(contributors.map((c) => c.waitFor(/enrolled and joined/, 60_000)));
    const ids = contributors.map(joinedId);
    const keygen = await runCli(
      [
        ...["threshold", "keygen", "--suite", "ed25519", "--t", "3", "--n", "5"],
        ...["--data-dir", serverDir, "--json"],
      ],
      { timeoutMs: 120_000 },
    );
    assert.equal(keygen.status, 0, keygen.stderr);
    const key = JSON.parse(keygen.stdout);
    assert.equal(key.suite, "ed25519");
    assert.deepEqual([key.t, key.n], [3, 5]);
    assert.deepEqual([...key.holders].sort(), [...ids].sort());
    assert.match(key.groupPublicKey, /^[0-9a-f]{64}$/);
    // The standard verifier: OpenSSL's Ed25519 through node:crypto, the key from its raw 32 bytes.
    const publicKey = createPublicKey({
      key: {
        kty: "OKP",
        crv: "Ed25519",
        x: Buffer.from(key.groupPublicKey, "hex").toString("base64url"),
      },
      format: "jwk",
    });
    const message = Buffer.from("pay 1 coin to the bearer of this message, signed 3 of 5");
    const messageFile = join(temp.path, "message.bin");
    await writeFile(messageFile, message);
    const sign = () =>
      runCli(
        [
          ...["threshold", "sign", "--key", key.id, "--message-file", messageFile],
          ...["--data-dir", serverDir, "--json"],
        ],
        { timeoutMs: 120_000 },
      );
    const signedBy = async () => {
      const run = await sign();
      assert.equal(run.status, 0, run.stderr);
      const out = JSON.parse(run.stdout) as { signature: string; signers: string[] };
      const signature = Buffer.from(out.signature, "hex");
      assert.equal(signature.length, 64);
      assert.ok(verify(null, message, publicKey, signature), "node:crypto verifies it");
      assert.equal(verify(null, Buffer.from("another message"), publicKey, signature), false);
      return out.signers;
    };
    const first = await signedBy();
    assert.equal(first.length, 3);
    // Kill two of the holders that just signed: the other three sign.
    const killed = first.slice(0, 2);
    for (const id of killed) await contributors[ids.indexOf(id)]!.stop("SIGKILL");
    await departures(server, 2);
    const second = await signedBy();
    assert.equal(second.length, 3);
    assert.deepEqual([...second].sort(), ids.filter((id) => !killed.includes(id)).sort());
    // A third killed: 2 of 5 remain, fewer than t — a clear failure, exit status 1.
    await contributors[ids.indexOf(second[0]!)]!.stop("SIGKILL");
    await departures(server, 3);
    const refused = await sign();
    assert.equal(refused.status, 1);
    assert.equal(JSON.parse(refused.stdout).error.code, "E_QUORUM_NOT_MET");
    assert.match(
      refused.stderr,
      new RegExp(`^dkeygen: Key ${key.id} needs 3 of its 5 holders; 2 are online`),
    );
  } finally {
    for (const c of contributors) await c.stop();
    await server.stop();
    await temp.remove();
  }
});
