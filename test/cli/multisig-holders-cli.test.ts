/**
 * `dkeygen generate multisig --holders a,b` through the real CLI, against a running server: each
 * holder fetches its own key with `dkeygen key fetch`, the output says who holds which key and
 * that the server knows them all; an unsplit set says it is escrow. Mistakes in --holders are
 * usage errors (exit 2) before anything is read; an unregistered holder is refused by the server.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { runCli } from "../helpers/cli.js";
import { type CliStack, startCliStack } from "../helpers/cli-stack.js";

let stack: CliStack;
let treasurerDir: string;

before(async () => {
  stack = await startCliStack();
  treasurerDir = join(stack.dir, "treasurer");
  await stack.addRequester("treasurer", treasurerDir);
});
after(async () => stack?.stop());

const admin = () => ["--data-dir", stack.serverDir];

test("generate multisig --holders webapp,treasurer: each holder fetches its own key, the i-th public key of the set", async () => {
  const generated = await runCli([
    "generate",
    "multisig",
    "--m",
    "2",
    "--holders",
    "webapp,treasurer",
    ...admin(),
    "--json",
  ]);
  assert.equal(generated.status, 0, generated.stderr);
  const record = JSON.parse(generated.stdout);
  assert.equal(record.public.n, 2, "--n defaults to the number of holders");
  assert.equal(record.holders.length, 2);
  for (const id of record.holders) assert.match(id, /^rq:[A-Za-z0-9_-]{22}$/);

  for (const [i, dataDir] of [stack.requesterDir, treasurerDir].entries()) {
    const fetched = await runCli([
      "key",
      "fetch",
      record.id,
      "--data-dir",
      dataDir,
      "--reveal-secret",
      "--json",
    ]);
    assert.equal(fetched.status, 0, fetched.stderr);
    const { secret, holders } = JSON.parse(fetched.stdout);
    assert.deepEqual(holders, ["webapp", "treasurer"], "holders see each other by name");
    assert.equal(secret.keys.length, 1);
    assert.equal(secret.keys[0].index, i);
    assert.equal(
      Buffer.from(
        secp256k1.getPublicKey(Buffer.from(secret.keys[0].privateKey, "hex"), true),
      ).toString("hex"),
      record.public.keys[i].publicKey,
    );
  }
  // The derivation secret would re-derive both keys: refused to a holder.
  const refused = await runCli([
    "key",
    "fetch",
    record.id,
    "--derivation-secret",
    "--out",
    join(stack.dir, "refused.json"),
    "--data-dir",
    treasurerDir,
  ]);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /split among holders/);
});

test("the human output names each key's holder and says the server knows every key; an unsplit set says it is escrow and points to threshold keys", async () => {
  const split = await runCli([
    "generate",
    "multisig",
    "--m",
    "1",
    "--holders",
    "treasurer,webapp",
    ...admin(),
  ]);
  assert.equal(split.status, 0, split.stderr);
  assert.match(split.stdout, /key 0 for\s+treasurer \(registration rq:/);
  assert.match(split.stdout, /key 1 for\s+webapp \(registration rq:/);
  assert.match(split.stdout, /custody\s+split: .*the server that made the set knows every key/);
  const escrow = await runCli(["generate", "multisig", "--for", "webapp", ...admin()]);
  assert.equal(escrow.status, 0, escrow.stderr);
  assert.match(
    escrow.stdout,
    /custody\s+escrow: every key is known to the server and to the set's one owner; .*dkeygen threshold keygen/,
  );
});

test("--holders mistakes exit 2 before anything is read; an unregistered holder is refused by the server (exit 1)", async () => {
  const missing = ["--data-dir", join(stack.dir, "no-such-server")];
  for (const [args, message] of [
    [["multisig", "--holders", "webapp,webapp"], /--holders names webapp twice/],
    [["multisig", "--holders", "webapp,bad name"], /--holders wants requesters' names/],
    [["multisig", "--holders", "webapp,treasurer", "--n", "3"], /2 holders for a set of --n 3/],
    [["multisig", "--holders", "webapp", "--for", "webapp"], /--holders and --for/],
    [["multisig", "--holders", "webapp", "--reveal-secret"], /--holders and --reveal-secret/],
    [["ecc", "--holders", "webapp"], /--holders is for multisig/],
  ] as const) {
    const result = await runCli(["generate", ...args, ...missing]);
    assert.equal(result.status, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  const unknown = await runCli(["generate", "multisig", "--holders", "webapp,nobody", ...admin()]);
  assert.equal(unknown.status, 1, unknown.stderr);
  assert.match(unknown.stderr, /No requesting client named nobody is registered/);
});
