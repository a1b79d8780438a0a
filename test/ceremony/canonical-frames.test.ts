/**
 * Frames whose binary fields use the right alphabet and length but are not canonical base64url:
 * the schema itself refuses them (crypto/base64url.ts base64urlPattern), so nothing past the edge
 * ever meets a field it cannot decode. Once a join like this crashed the whole server.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { base64urlPattern, fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { ErrorCodes } from "../../src/errors.js";
import { decodeMessage } from "../../src/protocol/messages.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { RawPeer, startContributors, startTestServer } from "../helpers/ceremony.js";

test("a join whose identity is 43 base64url characters but not canonical is refused, and the server goes on", async () => {
  const server = await startTestServer({ quorum: 2 });
  try {
    const peer = await RawPeer.connect(server.url);
    peer.send({
      type: "join",
      v: PROTOCOL_VERSION,
      identity: `${"A".repeat(42)}B`,
      clientChallenge: toBase64url(new Uint8Array(32)),
      signature: toBase64url(new Uint8Array(64)),
    });
    const error = await peer.next("error");
    assert.equal(error.code, ErrorCodes.MALFORMED_MESSAGE);
    assert.equal(error.fatal, true);
    // The process is alive and still runs rounds with honest contributors.
    await startContributors(server, 2);
    const admin = await server.admin();
    try {
      const record = await admin.generate("otp");
      assert.equal(record.participants.length, 2);
    } finally {
      admin.close();
    }
  } finally {
    await server.cleanup();
  }
});

test("the canonical base64url pattern accepts exactly what the decoder accepts", () => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (const bytes of [1, 2, 3, 16, 31, 32, 33, 64]) {
    const exact = new RegExp(base64urlPattern(bytes));
    const upTo = new RegExp(base64urlPattern(bytes, true));
    const length = Math.ceil((bytes * 4) / 3);
    // Every last character on a valid prefix: the pattern matches iff the decoder takes it.
    const prefix = toBase64url(new Uint8Array(bytes)).slice(0, length - 1);
    for (const last of alphabet) {
      const text = prefix + last;
      let decodes = true;
      try {
        fromBase64url(text, "x", bytes);
      } catch {
        decodes = false;
      }
      assert.equal(exact.test(text), decodes, `${bytes} bytes, last character ${last}`);
      assert.equal(upTo.test(text), decodes, `up to ${bytes} bytes, last character ${last}`);
    }
    assert.equal(exact.test(toBase64url(new Uint8Array(bytes - 1 || 1)).slice(0, -1)), false);
    assert.equal(exact.test(`${toBase64url(new Uint8Array(bytes))}A`), false);
  }
  assert.equal(new RegExp(base64urlPattern(4, true)).test("AAAAA"), false, "1 mod 4 characters");
  assert.equal(new RegExp(base64urlPattern(4, true)).test("AAAA+w"), false, "the + of base64");
});

test("every binary field of every peer message refuses a non-canonical spelling", () => {
  const b = (n: number) => toBase64url(new Uint8Array(n).fill(7));
  const bad = (n: number) => {
    const good = b(n);
    // Flip unused low bits of the last character where there are any.
    return n % 3 === 0 ? `${good}A` : `${good.slice(0, -1)}${good.endsWith("w") ? "x" : "z"}`;
  };
  const envelope = { alg: "RSA-OAEP-256/A256GCM", ek: b(384), iv: b(12), ct: b(64), tag: b(16) };
  const cases: [string, Record<string, unknown>, string, number][] = [
    ["join", { identity: b(32), clientChallenge: b(32), signature: b(64) }, "identity", 32],
    ["join", { identity: b(32), clientChallenge: b(32), signature: b(64) }, "signature", 64],
    ["join", { identity: b(32), clientChallenge: b(32), signature: b(64) }, "clientChallenge", 32],
    ["admin.auth", { clientChallenge: b(32), proof: b(32) }, "proof", 32],
    ["admin.auth", { clientChallenge: b(32), proof: b(32) }, "clientChallenge", 32],
    ...(["roundId", "commitment", "signature"] as const).map(
      (field) =>
        [
          "commit",
          {
            roundId: b(16),
            contributorId: `SHA256:${"A".repeat(43)}`,
            commitment: b(32),
            signature: b(64),
          },
          field,
          { roundId: 16, commitment: 32, signature: 64 }[field],
        ] as [string, Record<string, unknown>, string, number],
    ),
  ];
  for (const [type, body, field, n] of cases) {
    assert.doesNotThrow(() =>
      decodeMessage(JSON.stringify({ type, v: PROTOCOL_VERSION, ...body })),
    );
    const frame = JSON.stringify({ type, v: PROTOCOL_VERSION, ...body, [field]: bad(n) });
    assert.throws(
      () => decodeMessage(frame),
      { code: ErrorCodes.MALFORMED_MESSAGE },
      `${type}.${field}`,
    );
  }
  const contribution = {
    type: "reveal",
    v: PROTOCOL_VERSION,
    roundId: b(16),
    contributorId: `SHA256:${"A".repeat(43)}`,
    setHash: b(32),
    envelope,
    signature: b(64),
  };
  assert.doesNotThrow(() => decodeMessage(JSON.stringify(contribution)));
  for (const [field, n] of [
    ["ek", 384],
    ["iv", 12],
    ["ct", 64],
    ["tag", 16],
  ] as const) {
    const frame = JSON.stringify({ ...contribution, envelope: { ...envelope, [field]: bad(n) } });
    assert.throws(() => decodeMessage(frame), { code: ErrorCodes.MALFORMED_MESSAGE }, field);
  }
  for (const [field, value] of [
    ["roundId", bad(16)],
    ["setHash", bad(32)],
    ["signature", bad(64)],
    ["contributorId", `SHA256:${"A".repeat(42)}B`],
  ] as const) {
    const frame = JSON.stringify({ ...contribution, [field]: value });
    assert.throws(() => decodeMessage(frame), { code: ErrorCodes.MALFORMED_MESSAGE }, field);
  }
});
