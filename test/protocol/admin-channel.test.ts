/**
 * The admin session's MACed frames (protocol/admin-channel.ts), without sockets: what one side
 * seals the other opens, and nothing injected, altered, replayed, dropped, reordered or reflected
 * gets through.
 */
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { test } from "node:test";
import { toBase64url } from "../../src/crypto/base64url.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { AdminChannel, adminSessionKeys } from "../../src/protocol/admin-channel.js";
import { decodeMessage, type MessageOf } from "../../src/protocol/messages.js";
import { adminFrameMacData } from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";

const token = new Uint8Array(randomBytes(32));
const serverChallenge = new Uint8Array(randomBytes(32));
const clientChallenge = new Uint8Array(randomBytes(32));
const fingerprint = `SHA256:${"A".repeat(43)}`;

function pair() {
  const keys = adminSessionKeys(token, serverChallenge, clientChallenge, fingerprint);
  return { server: new AdminChannel(keys, "server"), admin: new AdminChannel(keys, "admin") };
}
const status = (requestId: string) =>
  ({ type: "admin.status", v: PROTOCOL_VERSION, requestId }) as const;
const frame = (text: string) => decodeMessage(text) as MessageOf<"admin.frame">;
const refused = (code: string) => (error: unknown) => isDkeygenError(error) && error.code === code;

test("frames sealed by one side open on the other, in order, both ways", () => {
  const { server, admin } = pair();
  for (let i = 0; i < 3; i++) {
    const request = frame(admin.seal(status(`r${i}`)));
    assert.equal(request.seq, i);
    assert.deepEqual(server.open(request), status(`r${i}`));
    const reply = frame(
      server.seal({
        type: "error",
        v: PROTOCOL_VERSION,
        code: "E_TIMEOUT",
        message: "x",
        fatal: false,
      }),
    );
    assert.equal(admin.open(reply).type, "error");
  }
});

test("an altered body, sequence number or MAC is refused, and the expected frame still opens", () => {
  const { server, admin } = pair();
  const good = frame(admin.seal(status("r0")));
  const mac = Buffer.from(good.mac, "base64url");
  mac[0]! ^= 1;
  for (const forged of [
    { ...good, body: good.body.replace("r0", "r1") },
    { ...good, seq: 1 },
    { ...good, mac: toBase64url(mac) },
  ]) {
    assert.throws(() => server.open(forged), refused(ErrorCodes.BAD_SIGNATURE));
  }
  assert.deepEqual(server.open(good), status("r0"));
});

test("a replayed, dropped-then-later or reordered frame is refused", () => {
  const { server, admin } = pair();
  const first = frame(admin.seal(status("a")));
  const second = frame(admin.seal(status("b")));
  const third = frame(admin.seal(status("c")));
  assert.throws(() => server.open(second), refused(ErrorCodes.BAD_SIGNATURE), "skipping one");
  server.open(first);
  assert.throws(() => server.open(first), refused(ErrorCodes.BAD_SIGNATURE), "a replay");
  server.open(second);
  server.open(third);
});

test("a frame reflected back to its sender, or made under another session's keys, is refused", () => {
  const { server, admin } = pair();
  const reply = frame(
    server.seal({
      type: "error",
      v: PROTOCOL_VERSION,
      code: "E_TIMEOUT",
      message: "x",
      fatal: false,
    }),
  );
  assert.throws(() => server.open(reply), refused(ErrorCodes.BAD_SIGNATURE), "reflected");
  const other = new AdminChannel(
    adminSessionKeys(token, serverChallenge, new Uint8Array(randomBytes(32)), fingerprint),
    "admin",
  );
  assert.throws(
    () => server.open(frame(other.seal(status("x")))),
    refused(ErrorCodes.BAD_SIGNATURE),
  );
  // A wrong token gives other keys too.
  const stranger = new AdminChannel(
    adminSessionKeys(new Uint8Array(32), serverChallenge, clientChallenge, fingerprint),
    "admin",
  );
  assert.throws(
    () => server.open(frame(stranger.seal(status("x")))),
    refused(ErrorCodes.BAD_SIGNATURE),
  );
  assert.deepEqual(server.open(frame(admin.seal(status("ok")))), status("ok"));
});

test("an authentic frame whose body is not an admin message for that side is refused", () => {
  const keys = adminSessionKeys(token, serverChallenge, clientChallenge, fingerprint);
  const server = new AdminChannel(keys, "server");
  const admin = new AdminChannel(keys, "admin");
  // A correct client never seals such a message…
  const ack = {
    type: "round.closed",
    v: PROTOCOL_VERSION,
    roundId: "A".repeat(22),
    outcome: "completed",
    accepted: 2,
    signature: "A".repeat(86),
  } as const;
  assert.throws(() => admin.seal(ack as never), TypeError);
  // …so seal one by hand, with the right key and sequence number.
  const body = JSON.stringify(ack);
  const mac = createHmac("sha256", keys.toServer)
    .update(adminFrameMacData("to-server", 0, body))
    .digest();
  const forged = { type: "admin.frame", v: PROTOCOL_VERSION, seq: 0, body, mac: toBase64url(mac) };
  assert.throws(() => server.open(forged as never), refused(ErrorCodes.UNEXPECTED_MESSAGE));
  // A body that is not a message at all.
  const junk = "{}";
  const junkMac = createHmac("sha256", keys.toServer)
    .update(adminFrameMacData("to-server", 1, junk))
    .digest();
  assert.throws(
    () => server.open({ ...forged, seq: 1, body: junk, mac: toBase64url(junkMac) } as never),
    refused(ErrorCodes.MALFORMED_MESSAGE),
  );
});
