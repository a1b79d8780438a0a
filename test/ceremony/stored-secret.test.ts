/**
 * A stored result's secret part (src/server/stored-secret.ts, PROTOCOL §9): version 2, what a
 * server writes, holds the derivation secret in base64url and no copy of the round's server
 * secret; version 1, what servers wrote before, still reads, and every reader (the derivation
 * export, the OTP code) gets the same answers from either; anything else is E_STORE_CORRUPT.
 * A batch round of OTPs keeps its round secret once (version 3) and each record its index into
 * it: read, such a record gives exactly what a version 2 part of the same output would.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { batchOutputSecret } from "../../src/crypto/kdf.js";
import { derivePurpose } from "../../src/derive/index.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { derivationExport } from "../../src/server/derivation-export.js";
import {
  decodeRoundSecret,
  decodeStoredSecret,
  deriveResult,
  encodeRoundSecret,
  encodeStoredSecret,
  ROUND_SECRET_PURPOSES,
  readStoredSecret,
} from "../../src/server/stored-secret.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import type { SecretPart } from "../../src/store/types.js";

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

const isCorrupt = (error: unknown) => isDkeygenError(error, ErrorCodes.STORE_CORRUPT);

const ROUND = { purpose: "otp", size: 10, params: { digits: 8 } };

test("a round secret is written as version 3, members in the documented order, and decodes to what was encoded", () => {
  const bytes = encodeRoundSecret({ roundSecret: S, ...ROUND });
  const written = JSON.parse(text(bytes));
  assert.deepEqual(Object.keys(written), ["v", "roundSecret", "purpose", "size", "params"]);
  assert.deepEqual(written, {
    v: 3,
    roundSecret: Buffer.from(S).toString("base64url"),
    ...ROUND,
  });
  assert.ok(!text(bytes).includes(HEX), "no hex copy of the round secret");
  const decoded = decodeRoundSecret(bytes);
  assert.deepEqual(decoded, { roundSecret: S, ...ROUND });
  assert.notEqual(decoded.roundSecret.buffer, S.buffer, "a copy, which the caller wipes");
  // The one purpose kept this way, for now: OTPs, cheap to derive again on every read.
  assert.deepEqual([...ROUND_SECRET_PURPOSES], ["otp"]);
});

test("a round secret off its schema is E_STORE_CORRUPT, with a message that holds no secret", () => {
  const good = JSON.parse(text(encodeRoundSecret({ roundSecret: S, ...ROUND })));
  const b64 = good.roundSecret as string;
  const bad: [string, unknown][] = [
    ["not JSON", "{"],
    ["not UTF-8 JSON", "\xff"],
    ["null", null],
    ["an array", [good]],
    ["a string", b64],
    ["version 2", { ...good, v: 2 }],
    ["version 4", { ...good, v: 4 }],
    ["the version as a string", { ...good, v: "3" }],
    ["no version", { ...good, v: undefined }],
    ["an unknown member", { ...good, extra: 1 }],
    ["a record's batch member", { ...good, batch: { index: 0, size: 10 } }],
    ["no round secret", { ...good, roundSecret: undefined }],
    ["the secret in hex", { ...good, roundSecret: HEX }],
    ["a short secret", { ...good, roundSecret: Buffer.alloc(63).toString("base64url") }],
    ["a long secret", { ...good, roundSecret: Buffer.alloc(65).toString("base64url") }],
    ["a padded secret", { ...good, roundSecret: `${b64}==` }],
    ["a non-canonical secret", { ...good, roundSecret: `${b64.slice(0, -1)}B` }],
    ["a secret in base64", { ...good, roundSecret: `${b64.slice(0, -2)}+/` }],
    ["a number for the secret", { ...good, roundSecret: 7 }],
    ["a purpose kept per record", { ...good, purpose: "ecc", params: { curve: "secp256k1" } }],
    ["an unknown purpose", { ...good, purpose: "toString" }],
    ["no purpose", { ...good, purpose: undefined }],
    ["a size of 1", { ...good, size: 1 }],
    ["a size of 0", { ...good, size: 0 }],
    ["a size above MAX_BATCH", { ...good, size: 10_001 }],
    ["a fractional size", { ...good, size: 2.5 }],
    ["a size as a string", { ...good, size: "10" }],
    ["params not an object", { ...good, params: [] }],
    ["params null", { ...good, params: null }],
    ["params off the purpose", { ...good, params: { digits: 5 } }],
    ["params with an unknown option", { ...good, params: { digits: 8, extra: 1 } }],
    ["params without their default", { ...good, params: {} }],
    ["params as raw options", { ...good, params: { digits: "8" } }],
  ];
  for (const [what, value] of bad) {
    const bytes =
      what === "not UTF-8 JSON"
        ? Uint8Array.of(0xff, 0xfe)
        : Buffer.from(typeof value === "string" ? value : JSON.stringify(value), "utf8");
    assert.throws(
      () => decodeRoundSecret(new Uint8Array(bytes)),
      (error) =>
        isCorrupt(error) &&
        (error as Error).message === "A stored round secret is not in the expected format.",
      what,
    );
  }
  // Nor is a round secret ever a record's own part, or the other way round.
  assert.throws(
    () => decodeStoredSecret(encodeRoundSecret({ roundSecret: S, ...ROUND })),
    isCorrupt,
  );
  assert.throws(
    () =>
      decodeRoundSecret(
        encodeStoredSecret({
          v: 2,
          derivationSecret: HEX,
          batch: { index: 0, size: 10 },
          params: ROUND.params,
          output: { code: "12345678" },
        }),
      ),
    isCorrupt,
  );
});

test("encodeRoundSecret refuses what decodeRoundSecret would (TypeError)", () => {
  for (const [what, round] of [
    ["a 32-byte secret", { roundSecret: S.subarray(0, 32), ...ROUND }],
    ["another purpose", { roundSecret: S, ...ROUND, purpose: "ecc", params: { curve: "p256" } }],
    ["a one-result round", { roundSecret: S, ...ROUND, size: 1 }],
    ["raw params", { roundSecret: S, ...ROUND, params: {} }],
  ] as const) {
    assert.throws(() => encodeRoundSecret(round), TypeError, what);
  }
});

/** A memory store that keeps every buffer readSecretPart handed out, to check they were wiped. */
class HandedOutStore extends MemoryKeyStore {
  readonly handedOut: Uint8Array[] = [];
  override async readSecretPart(id: string): Promise<SecretPart> {
    const part = await super.readSecretPart(id);
    this.handedOut.push(part.kind === "own" ? part.secret : part.roundSecret);
    return part;
  }
  allWiped(): boolean {
    return this.handedOut.every((bytes) => bytes.every((b) => b === 0));
  }
}

async function roundPartStore(round = ROUND, roundSecret: Uint8Array = S) {
  const store = new HandedOutStore();
  await store.open();
  await store.putRoundSecret("round-9", encodeRoundSecret({ roundSecret, ...round }));
  const put = (roundPart: number, owner?: string) =>
    store.put({
      purpose: "otp",
      roundId: "round-9",
      participants: ["alice", "bob"],
      algorithm: "otp/v1",
      public: { digits: 8 },
      roundPart,
      ...(owner === undefined ? {} : { owner }),
    });
  return { store, put };
}

test("a record that keeps its part of its round's secret reads exactly as a version 2 part of the same output: derivation secret, batch, params, code, export", async () => {
  const { store, put } = await roundPartStore();
  try {
    for (const index of [0, 3, 9]) {
      const record = await put(index, "rq:owner");
      const input = batchOutputSecret(S, "otp", index);
      const v2 = await deriveResult("otp", input, { index, size: 10 }, ROUND.params);
      const own = await store.put({
        purpose: "otp",
        roundId: "round-own",
        participants: ["alice", "bob"],
        algorithm: v2.algorithm,
        public: v2.public,
        secret: v2.payload,
        owner: "rq:owner",
      });
      const { v: three, ...fromPart } = await readStoredSecret(store, record.id);
      const { v: two, ...fromOwn } = await readStoredSecret(store, own.id);
      assert.equal(three, 3);
      assert.equal(two, 2);
      assert.deepEqual(fromPart, fromOwn);
      assert.equal(fromPart.derivationSecret, Buffer.from(input).toString("hex"));
      assert.deepEqual(fromPart.batch, { index, size: 10 });
      assert.deepEqual(fromPart.output, v2.output);
      assert.match(String(fromPart.output.code), /^\d{8}$/);
      assert.deepEqual(
        { ...(await derivationExport(store, record)), recordId: "" },
        { ...(await derivationExport(store, own)), recordId: "" },
        "the derivation export (owner's and admin's) is the same",
      );
    }
    // Every buffer the store handed out (round secrets and own parts) was wiped.
    assert.ok(store.handedOut.length >= 6);
    assert.ok(store.allWiped(), "every buffer handed out was wiped");
  } finally {
    await store.close();
  }
});

test("a record's part outside its round's size, or a round secret off its schema, reads as E_STORE_CORRUPT, wiped", async () => {
  const { store, put } = await roundPartStore({ ...ROUND, size: 3 });
  try {
    const beyond = await put(3);
    await assert.rejects(readStoredSecret(store, beyond.id), isCorrupt);
    const last = await put(2);
    assert.deepEqual((await readStoredSecret(store, last.id)).batch, { index: 2, size: 3 });
    await store.putRoundSecret("round-bad", Buffer.from('{"v":3}'));
    const bad = await store.put({
      purpose: "otp",
      roundId: "round-bad",
      participants: ["alice"],
      algorithm: "otp/v1",
      public: { digits: 6 },
      roundPart: 0,
    });
    await assert.rejects(readStoredSecret(store, bad.id), isCorrupt);
    assert.ok(store.allWiped(), "every buffer handed out was wiped");
  } finally {
    await store.close();
  }
});
