/**
 * A multisig set split among holders (`dkeygen generate multisig --holders a,b,c`, PROTOCOL
 * §13.9): over real HTTP on loopback, each holder gets its own key and nothing else; nobody —
 * holder, outsider or the admin's channel — gets the derivation secret or opening that would
 * re-derive every key. An unsplit set stays one owner's escrow, as before.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { fromWif, p2wshSortedMulti } from "../../src/derive/multisig.js";
import { type ErrorCode, ErrorCodes, isDkeygenError } from "../../src/errors.js";
import type { PublicRecordWire } from "../../src/protocol/messages.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { http, registerTestRequester, type TestRequester } from "../helpers/distribution.js";

let server: TestServer;
let holders: TestRequester[];
let outsider: TestRequester;
/** A 2-of-3 set for holders a, b, c, made once for the tests that read it. */
let set: PublicRecordWire;

interface MultisigPublic {
  m: number;
  n: number;
  keys: { index: number; publicKey: string }[];
  descriptor: string;
  address: string;
}

const is = (code: ErrorCode) => (e: unknown) => isDkeygenError(e, code);

before(async () => {
  server = await startTestServer({ quorum: 2 });
  await startContributors(server, 2);
  holders = [];
  for (const name of ["holder-a", "holder-b", "holder-c"]) {
    holders.push(await registerTestRequester(server, name));
  }
  outsider = await registerTestRequester(server, "outsider");
  const admin = await server.admin();
  try {
    set = await admin.generate(
      "multisig",
      { m: "2" },
      undefined,
      holders.map((h) => h.name),
    );
  } finally {
    admin.close();
  }
});
after(() => server.cleanup());

test("a 2-of-3 set split among holders a, b, c: each holder gets exactly its own key, which is the i-th public key of a set whose P2WSH output still verifies", async () => {
  const pub = set.public as unknown as MultisigPublic;
  assert.equal(pub.m, 2);
  assert.equal(pub.n, 3, "n defaults to the number of holders");
  assert.deepEqual(
    set.holders,
    holders.map((h) => h.id),
    "the admin sees the holders as stored: registration ids, in key order",
  );
  assert.equal(set.owner, "@admin", "a split set has no one owner");
  const output = p2wshSortedMulti(
    2,
    pub.keys.map((k) => Uint8Array.from(Buffer.from(k.publicKey, "hex"))),
  );
  assert.equal(output.descriptor, pub.descriptor);
  assert.equal(output.address, pub.address);

  const delivered: string[] = [];
  for (const [i, holder] of holders.entries()) {
    const { record, secret } = await holder.client.fetchKey(set.id);
    const keys = secret.keys as { index: number; privateKey: string; wif: string }[];
    assert.equal(keys.length, 1, `holder ${i} gets one key`);
    const [key] = keys;
    assert.equal(key!.index, i, `holder ${i} gets key ${i}`);
    const privateKey = Uint8Array.from(Buffer.from(key!.privateKey, "hex"));
    assert.equal(
      Buffer.from(secp256k1.getPublicKey(privateKey, true)).toString("hex"),
      pub.keys[i]!.publicKey,
      `holder ${i}'s key is the set's public key ${i}`,
    );
    assert.deepEqual(fromWif(key!.wif), { privateKey, compressed: true });
    // Every holder reads the public part with the holders' names.
    assert.deepEqual(
      record.holders,
      holders.map((h) => h.name),
    );
    assert.equal(record.owner, undefined);
    delivered.push(key!.privateKey);
  }
  assert.equal(new Set(delivered).size, 3, "three different keys");
});

test("a holder gets no other holder's key through any route: /secret holds its own key only, /derivation-secret and /opening are 403 for it", async () => {
  const [a, b, c] = holders as [TestRequester, TestRequester, TestRequester];
  const theirs = [
    ((await b.client.fetchKey(set.id)).secret.keys as { privateKey: string; wif: string }[])[0]!,
    ((await c.client.fetchKey(set.id)).secret.keys as { privateKey: string; wif: string }[])[0]!,
  ];
  const mine = JSON.stringify((await a.client.fetchKey(set.id)).secret);
  for (const key of theirs) {
    assert.equal(mine.includes(key.privateKey), false, "no other holder's private key");
    assert.equal(mine.includes(key.wif), false, "no other holder's WIF");
  }
  for (const route of ["derivation-secret", "opening"]) {
    const answer = await http(server, "POST", `/v1/keys/${set.id}/${route}`, {
      credential: a.credential,
      body: {},
    });
    assert.equal(answer.status, 403, route);
    assert.equal((answer.body.error as { code: string }).code, ErrorCodes.FORBIDDEN, route);
  }
  await assert.rejects(a.client.exportDerivationSecret(set.id), is(ErrorCodes.FORBIDDEN));
  await assert.rejects(a.client.fetchOpening(set.id), is(ErrorCodes.FORBIDDEN));
  // Nor does the admin's channel export what would re-derive every key.
  const admin = await server.admin();
  try {
    await assert.rejects(admin.exportDerivationSecret(set.id), is(ErrorCodes.FORBIDDEN));
  } finally {
    admin.close();
  }
});

test("a requester that holds no key of the set gets 404 for its secret, derivation secret and opening, and sees the public part without the holders", async () => {
  for (const [method, route] of [
    ["GET", "secret"],
    ["POST", "derivation-secret"],
    ["POST", "opening"],
  ] as const) {
    const answer = await http(server, method, `/v1/keys/${set.id}/${route}`, {
      credential: outsider.credential,
      ...(method === "POST" ? { body: {} } : {}),
    });
    assert.equal(answer.status, 404, route);
    assert.equal((answer.body.error as { code: string }).code, ErrorCodes.NOT_FOUND, route);
  }
  // Were a split record ever owned by a requester, owning it would entitle that one to nothing.
  const stored = (await server.store.get(set.id))!;
  const owned = await server.store.put({
    purpose: stored.purpose,
    roundId: stored.roundId,
    participants: stored.participants,
    algorithm: stored.algorithm,
    public: stored.public,
    secret: await server.store.readSecret(set.id),
    owner: outsider.id,
    holders: stored.holders!,
  });
  for (const [method, route] of [
    ["GET", "secret"],
    ["POST", "derivation-secret"],
  ] as const) {
    const answer = await http(server, method, `/v1/keys/${owned.id}/${route}`, {
      credential: outsider.credential,
      ...(method === "POST" ? { body: {} } : {}),
    });
    assert.equal(answer.status, 404, `an owner that is no holder: ${route}`);
  }
  const seen = await outsider.client.getKey(set.id);
  assert.deepEqual(seen.public, set.public);
  assert.equal(seen.holders, undefined, "who holds the set is for its holders to know");
  assert.equal(seen.owner, undefined);
});

test("generate with holders refuses an unregistered holder, a count other than n, a repeated holder, an owner, revealTo and another purpose, and makes no record", async () => {
  const before = (await server.store.list()).length;
  const admin = await server.admin();
  const [a, b] = [holders[0]!.name, holders[1]!.name];
  try {
    const refusals: [string, () => Promise<unknown>, RegExp][] = [
      ["unregistered", () => admin.generate("multisig", {}, undefined, [a, "nobody"]), /nobody/],
      [
        "count",
        () => admin.generate("multisig", { n: "3" }, undefined, [a, b]),
        /3 keys needs 3 holders; 2/,
      ],
      ["repeated", () => admin.generate("multisig", {}, undefined, [a, a]), /named twice/],
      ["owner", () => admin.generate("multisig", {}, a, [a, b]), /no one owner/],
      ["other purpose", () => admin.generate("ecc", {}, undefined, [a]), /Only a multisig/],
    ];
    for (const [what, call, message] of refusals) {
      await assert.rejects(
        call(),
        (e: unknown) => is(ErrorCodes.INVALID_INPUT)(e) && message.test((e as Error).message),
        what,
      );
    }
  } finally {
    admin.close();
  }
  // revealTo (generate --reveal-secret) would show the admin every key.
  const reveal = await server.admin();
  try {
    await assert.rejects(
      reveal.generateRevealed("multisig", {}, undefined, [a, b, holders[2]!.name]),
      (e: unknown) => is(ErrorCodes.INVALID_INPUT)(e) && /not revealed/.test((e as Error).message),
    );
  } finally {
    reveal.close();
  }
  assert.equal((await server.store.list()).length, before, "no round ran");
});

test("an unsplit set stays one owner's escrow: its owner gets every key and may export its derivation secret", async () => {
  const owner = holders[0]!;
  const record = await server.server.runRound({
    purpose: "multisig",
    params: { m: 2, n: 3 },
    owner: owner.id,
  });
  assert.equal(record.holders, undefined);
  const { secret } = await owner.client.fetchKey(record.id);
  assert.equal((secret.keys as unknown[]).length, 3);
  const { exported } = await owner.client.exportDerivationSecret(record.id);
  assert.equal(exported.purpose, "multisig");
  await assert.rejects(holders[1]!.client.fetchKey(record.id), is(ErrorCodes.NOT_FOUND));
});
