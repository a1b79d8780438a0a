import assert from "node:assert/strict";
import { test } from "node:test";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { decodeMessage, encodeMessage } from "../../src/protocol/messages.js";
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from "../../src/protocol/version.js";

const b64 = (n: number) => Buffer.alloc(n, 1).toString("base64url");
const fp = `SHA256:${"A".repeat(43)}`;

const contribution = {
  type: "reveal",
  v: PROTOCOL_VERSION,
  roundId: b64(16),
  contributorId: fp,
  setHash: b64(32),
  envelope: { alg: "RSA-OAEP-256/A256GCM", ek: b64(384), iv: b64(12), ct: b64(64), tag: b64(16) },
  signature: b64(64),
};

function rejects(frame: string | Uint8Array, code: string, pattern?: RegExp) {
  assert.throws(
    () => decodeMessage(frame),
    (error: unknown) => {
      assert.ok(error instanceof DkeygenError);
      assert.equal(error.code, code);
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
  );
}

test("a valid reveal decodes to the same object", () => {
  assert.deepEqual(decodeMessage(JSON.stringify(contribution)), contribution);
  assert.deepEqual(decodeMessage(Buffer.from(encodeMessage(contribution as never))), contribution);
});

test("an oversized frame is refused before it is parsed", () => {
  const big = `{"type":"reveal","v":${PROTOCOL_VERSION},"pad":"${"x".repeat(MAX_FRAME_BYTES)}"}`;
  rejects(big, ErrorCodes.FRAME_TOO_LARGE);
  // Not even JSON: still refused for its size, which proves parsing never started.
  rejects("x".repeat(MAX_FRAME_BYTES + 1), ErrorCodes.FRAME_TOO_LARGE);
});

test("frames that are not protocol messages are malformed", () => {
  rejects("not json", ErrorCodes.MALFORMED_MESSAGE, /not valid JSON/);
  rejects("[1,2]", ErrorCodes.MALFORMED_MESSAGE, /object/);
  rejects("null", ErrorCodes.MALFORMED_MESSAGE);
  rejects(`{"v":${PROTOCOL_VERSION}}`, ErrorCodes.MALFORMED_MESSAGE, /type/);
  rejects(`{"type":"__proto__","v":${PROTOCOL_VERSION}}`, ErrorCodes.MALFORMED_MESSAGE, /type/);
  rejects(`{"type":"toString","v":${PROTOCOL_VERSION}}`, ErrorCodes.MALFORMED_MESSAGE, /type/);
  rejects(new Uint8Array([0xff, 0xfe, 0x00]), ErrorCodes.MALFORMED_MESSAGE);
});

test("another protocol version is a version mismatch", () => {
  rejects(JSON.stringify({ ...contribution, v: 1 }), ErrorCodes.VERSION_MISMATCH);
  rejects(
    JSON.stringify({ ...contribution, v: PROTOCOL_VERSION + 1 }),
    ErrorCodes.VERSION_MISMATCH,
  );
  rejects(
    JSON.stringify({ ...contribution, v: String(PROTOCOL_VERSION) }),
    ErrorCodes.MALFORMED_MESSAGE,
    /`v`/,
  );
  const { v: _v, ...unversioned } = contribution;
  rejects(JSON.stringify(unversioned), ErrorCodes.MALFORMED_MESSAGE, /`v`/);
});

test("unknown fields, missing fields and wrong sizes are rejected, naming the field", () => {
  rejects(JSON.stringify({ ...contribution, extra: 1 }), ErrorCodes.MALFORMED_MESSAGE);
  const { signature: _s, ...missing } = contribution;
  rejects(JSON.stringify(missing), ErrorCodes.MALFORMED_MESSAGE, /signature/);
  rejects(
    JSON.stringify({ ...contribution, signature: b64(63) }),
    ErrorCodes.MALFORMED_MESSAGE,
    /signature/,
  );
  rejects(
    JSON.stringify({
      ...contribution,
      envelope: { ...contribution.envelope, iv: "!!!!!!!!!!!!!!!!" },
    }),
    ErrorCodes.MALFORMED_MESSAGE,
    /iv/,
  );
  rejects(
    JSON.stringify({ ...contribution, envelope: { ...contribution.envelope, alg: "RSA1_5" } }),
    ErrorCodes.MALFORMED_MESSAGE,
    /alg/,
  );
  rejects(
    JSON.stringify({ ...contribution, envelope: { ...contribution.envelope, smuggled: "x" } }),
    ErrorCodes.MALFORMED_MESSAGE,
  );
  rejects(
    JSON.stringify({ ...contribution, contributorId: "alice" }),
    ErrorCodes.MALFORMED_MESSAGE,
    /contributorId/,
  );
});

test("error messages never echo the offending value", () => {
  const secretLooking = "S3CR3T".repeat(10);
  try {
    decodeMessage(JSON.stringify({ ...contribution, roundId: secretLooking }));
    assert.fail("must throw");
  } catch (error) {
    assert.ok(!(error as Error).message.includes(secretLooking));
  }
});

test("admin.generate's holders: 1 to 15 requester names; none, 16, or a name that is no name is malformed", () => {
  const generate = {
    type: "admin.generate",
    v: PROTOCOL_VERSION,
    requestId: "r1",
    purpose: "multisig",
    params: { m: 2 },
  };
  const names = (n: number) => Array.from({ length: n }, (_, i) => `holder-${i}`);
  for (const n of [1, 15]) {
    const frame = { ...generate, holders: names(n) };
    assert.deepEqual(decodeMessage(JSON.stringify(frame)), frame);
  }
  for (const holders of [[], names(16), ["a b"], ["rq:abc"], "holder-0"]) {
    rejects(JSON.stringify({ ...generate, holders }), ErrorCodes.MALFORMED_MESSAGE, /holders/);
  }
});
