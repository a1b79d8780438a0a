/**
 * A stored round secret (src/server/stored-secret.ts, PROTOCOL §9) is read from the store's
 * decrypted bytes, which a damaged or tampered store may have made anything: any bytes, any JSON,
 * any mutation of a valid round secret either decode to a well-formed round secret or are refused
 * with E_STORE_CORRUPT, never another error; and so is reading a record that refers to them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { isDkeygenError } from "../../src/errors.js";
import {
  decodeRoundSecret,
  encodeRoundSecret,
  type RoundSecret,
  readStoredSecret,
} from "../../src/server/stored-secret.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import { fuzzParameters } from "../helpers/fuzz.js";

const valid = encodeRoundSecret({
  roundSecret: new Uint8Array(64).fill(7),
  purpose: "otp",
  size: 40,
  params: { digits: 6 },
});
const validObject = JSON.parse(Buffer.from(valid).toString("utf8")) as Record<string, unknown>;

const mutated = fc
  .tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(3))
  .map(([at, byte, op]) => {
    const b = Array.from(valid);
    if (op === 0) b[at] = byte;
    else if (op === 1) b.splice(at, 1);
    else if (op === 2) b.splice(at, 0, byte);
    else b.splice(at, 0, ...b.slice(at, at + 20));
    return Uint8Array.from(b);
  });

/** The valid object with one member replaced by any JSON value, removed, or one added. */
const member = fc
  .tuple(
    fc.constantFrom(...Object.keys(validObject), "extra", "__proto__"),
    fc.option(fc.jsonValue(), { nil: undefined }),
  )
  .map(([key, value]) => {
    const object: Record<string, unknown> = { ...validObject };
    if (value === undefined) delete object[key];
    else Object.defineProperty(object, key, { value, enumerable: true });
    return new Uint8Array(Buffer.from(JSON.stringify(object), "utf8"));
  });

const anyBytes = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc.json().map((json) => new Uint8Array(Buffer.from(json, "utf8"))),
  mutated,
  member,
);

/** Decodes `bytes`: a well-formed round secret, or undefined when refused as E_STORE_CORRUPT. */
function decodedOrRefused(bytes: Uint8Array): RoundSecret | undefined {
  try {
    const decoded = decodeRoundSecret(bytes);
    // What was accepted is a round secret encodeRoundSecret would write.
    assert.deepEqual(decodeRoundSecret(encodeRoundSecret(decoded)), decoded);
    return decoded;
  } catch (error) {
    assert.ok(
      isDkeygenError(error, "E_STORE_CORRUPT"),
      `not E_STORE_CORRUPT: ${String(error)} (${(error as Error).stack})`,
    );
    assert.equal((error as Error).message, "A stored round secret is not in the expected format.");
    return undefined;
  }
}

test("any bytes, any JSON, any mutation of a valid round secret decode to a well-formed one or are E_STORE_CORRUPT", () => {
  let refused = 0;
  fc.assert(
    fc.property(anyBytes, (bytes) => {
      if (decodedOrRefused(bytes) === undefined) refused++;
    }),
    fuzzParameters(5000),
  );
  assert.ok(refused > 0, "some inputs were refused");
  assert.ok(decodedOrRefused(valid), "the unmutated round secret decodes");
});

test("reading a record whose round secret is any such bytes gives its secret part or E_STORE_CORRUPT, never another error", async () => {
  const store = new MemoryKeyStore();
  await store.open();
  let round = 0;
  try {
    await fc.assert(
      fc.asyncProperty(anyBytes, fc.nat(60), async (bytes, part) => {
        if (bytes.length === 0) return; // the store takes 1 byte to 64 KiB
        const roundId = `round-${round++}`;
        await store.putRoundSecret(roundId, bytes);
        const record = await store.put({
          purpose: "otp",
          roundId,
          participants: ["alice"],
          algorithm: "otp/v1",
          public: { digits: 6 },
          roundPart: part,
        });
        const expected = decodedOrRefused(bytes);
        try {
          const read = await readStoredSecret(store, record.id);
          assert.ok(expected !== undefined && part < expected.size, "read only when well-formed");
          assert.deepEqual(read.batch, { index: part, size: expected.size });
        } catch (error) {
          if (error instanceof assert.AssertionError) throw error;
          assert.ok(isDkeygenError(error, "E_STORE_CORRUPT"), `not E_STORE_CORRUPT: ${error}`);
          assert.ok(expected === undefined || part >= expected.size, "refused only when not");
        }
      }),
      fuzzParameters(1000, 0.1),
    );
  } finally {
    await store.close();
  }
});
