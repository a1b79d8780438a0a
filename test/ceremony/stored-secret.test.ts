/**
 * A stored result's secret part (src/server/stored-secret.ts, PROTOCOL §9): version 2, what a
 * server writes, holds the derivation secret in base64url and no copy of the round's server
 * secret; version 1, what servers wrote before, still reads, and every reader (the derivation
 * export, the OTP code) gets the same answers from either; anything else is E_STORE_CORRUPT.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { derivePurpose } from "../../src/derive/index.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { derivationExport } from "../../src/server/derivation-export.js";
import {
  decodeStoredSecret,
  deriveResult,
  encodeStoredSecret,
  readStoredSecret,
} from "../../src/server/stored-secret.js";
import { MemoryKeyStore } from "../../src/store/memory.js";

const S = new Uint8Array(randomBytes(64));
const HEX = Buffer.from(S).toString("hex");
const PARAMS = { digits: 6 };

async function bothVersions() {
  const derived = await derivePurpose("otp", S, PARAMS);
  const common = { batch: { index: 3, size: 10 }, params: PARAMS, output: derived.secret };
  const v1 = encodeStoredSecret({
    v: 1,
    derivationSecret: HEX,
    ...common,
    serverSecret: "ab".repeat(32),
  });
  const v2 = encodeStoredSecret({ v: 2, derivationSecret: HEX, ...common });
  return { derived, v1, v2 };
}

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString("utf8");

test("a server writes version 2: the derivation secret in base64url, no server secret, members in the documented order", async () => {
  const result = await deriveResult("otp", S, { index: 3, size: 10 }, PARAMS);
  const written = JSON.parse(text(result.payload));
  assert.deepEqual(Object.keys(written), ["v", "derivationSecret", "batch", "params", "output"]);
  assert.equal(written.v, 2);
  assert.equal(written.derivationSecret, Buffer.from(S).toString("base64url"));
  assert.deepEqual(written.batch, { index: 3, size: 10 });
  assert.deepEqual(written.output, result.output);
  assert.ok(!text(result.payload).includes(HEX), "no hex copy of the derivation secret");
  const { v1 } = await bothVersions();
  // 124 bytes less here (165 on disk once sealed and in base64url).
  assert.ok(result.payload.length <= v1.length - 124, `${result.payload.length} vs ${v1.length}`);
});

test("a version 1 secret part still reads, and every reader gets the same answers from it as from version 2", async () => {
  const { derived, v1, v2 } = await bothVersions();
  const { serverSecret, v: one, ...fromV1 } = decodeStoredSecret(v1);
  const { v: two, ...fromV2 } = decodeStoredSecret(v2);
  assert.equal(one, 1);
  assert.equal(two, 2);
  assert.equal(serverSecret, "ab".repeat(32));
  assert.deepEqual(fromV2, fromV1);
  assert.equal(fromV2.derivationSecret, HEX, "in hex, whichever version was stored");

  const store = new MemoryKeyStore();
  await store.open();
  const put = (secret: Uint8Array) =>
    store.put({
      purpose: "otp",
      roundId: "round-1",
      participants: ["alice", "bob"],
      algorithm: derived.algorithm,
      public: derived.public,
      secret,
      owner: "rq:owner",
    });
  const [old, current] = [await put(v1), await put(v2)];
  const exported = [await derivationExport(store, old), await derivationExport(store, current)];
  assert.deepEqual(
    { ...exported[0], recordId: "" },
    { ...exported[1], recordId: "" },
    "the derivation export (owner's and admin's) is the same",
  );
  assert.equal(exported[1]!.derivationSecret, HEX);
  for (const record of [old, current]) {
    assert.equal(
      (await readStoredSecret(store, record.id)).output.code,
      derived.secret.code,
      "the OTP code the pool and the verifier read",
    );
  }
});

test("a secret part of neither version, or a version 2 one off its schema, is E_STORE_CORRUPT", async () => {
  const { v2 } = await bothVersions();
  const good = JSON.parse(text(v2));
  const bad: [string, unknown][] = [
    ["not JSON", "{"],
    ["null", null],
    ["an unknown version", { ...good, v: 3 }],
    ["no version", { ...good, v: undefined }],
    ["a server secret", { ...good, serverSecret: "ab".repeat(32) }],
    ["an unknown member", { ...good, extra: 1 }],
    ["the secret in hex", { ...good, derivationSecret: HEX }],
    ["a short secret", { ...good, derivationSecret: Buffer.alloc(32).toString("base64url") }],
    ["a padded secret", { ...good, derivationSecret: `${good.derivationSecret}==` }],
    ["a number for the secret", { ...good, derivationSecret: 7 }],
    ["index not below size", { ...good, batch: { index: 10, size: 10 } }],
    ["a negative index", { ...good, batch: { index: -1, size: 10 } }],
    ["a batch with more", { ...good, batch: { index: 0, size: 1, more: 1 } }],
    ["a fractional size", { ...good, batch: { index: 0, size: 1.5 } }],
    ["no batch", { ...good, batch: undefined }],
    ["params not an object", { ...good, params: [] }],
    ["no output", { ...good, output: undefined }],
    ["output null", { ...good, output: null }],
  ];
  for (const [what, value] of bad) {
    const bytes = Buffer.from(typeof value === "string" ? value : JSON.stringify(value), "utf8");
    assert.throws(
      () => decodeStoredSecret(new Uint8Array(bytes)),
      (error) => isDkeygenError(error, ErrorCodes.STORE_CORRUPT),
      what,
    );
  }
  assert.throws(
    () =>
      encodeStoredSecret({
        v: 2,
        derivationSecret: HEX,
        batch: { index: 0, size: 1 },
        params: {},
        serverSecret: "ab".repeat(32),
        output: {},
      }),
    TypeError,
  );
});
