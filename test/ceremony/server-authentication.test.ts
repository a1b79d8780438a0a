/**
 * Everything the server says is authenticated (issue 12 §3), on the in-memory transport: a server
 * that shows the pinned key without holding it cannot complete a handshake; a man in the middle
 * of an admin session cannot add, replay or change a message; a round.open the server's key did
 * not sign is not answered; a join's name cannot be changed on the way.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { AdminClient } from "../../src/client/admin-client.js";
import { toBase64url } from "../../src/crypto/base64url.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { identityFromPrivateKey } from "../../src/server/identity.js";
import {
  memoryContributor,
  Relay,
  startMemoryServer,
  testServerKey,
} from "../helpers/memory-server.js";

/** A server that presents the real server's public key and fingerprint but holds another key. */
function impostorIdentity() {
  const real = identityFromPrivateKey(testServerKey());
  const other = generateKeyPairSync("rsa", { modulusLength: 3072 }).privateKey;
  return { real, impostor: { ...real, privateKey: other } };
}

test("a server that shows the pinned key but does not hold it cannot complete a contributor's handshake", async () => {
  const { real, impostor } = impostorIdentity();
  const fake = await startMemoryServer({ identity: impostor });
  try {
    const { contributor } = await memoryContributor(fake, fake.dial, {
      name: "victim",
      fingerprint: real.fingerprint,
    });
    await assert.rejects(contributor.start(), (e: unknown) =>
      isDkeygenError(e, ErrorCodes.BAD_SIGNATURE),
    );
    const fatal = await contributor.done;
    assert.equal(fatal?.code, ErrorCodes.BAD_SIGNATURE);
    assert.match(fatal!.message, /did not prove it holds key/);
  } finally {
    await fake.close();
  }
});

test("a server that shows the pinned key but does not hold it cannot complete an admin's handshake", async () => {
  const { real, impostor } = impostorIdentity();
  const fake = await startMemoryServer({ identity: impostor });
  try {
    await assert.rejects(
      AdminClient.connect({
        url: "memory://dkeygen",
        token: fake.adminToken,
        expectedFingerprint: real.fingerprint,
        dial: fake.dial,
      }),
      (e: unknown) => isDkeygenError(e, ErrorCodes.BAD_SIGNATURE),
    );
  } finally {
    await fake.close();
  }
});

test("an admin command injected by a man in the middle is refused and ends the session", async () => {
  const real = await startMemoryServer();
  try {
    await real.contributors(2);
    const relay = new Relay(real.dial);
    const admin = await AdminClient.connect({
      url: "memory://dkeygen",
      token: real.adminToken,
      expectedFingerprint: real.identity.fingerprint,
      dial: relay.dial,
    });
    await admin.status();
    const before = await real.store.list({});
    // A well-formed frame with the next sequence number; the relay does not have the key.
    const body = JSON.stringify({
      type: "admin.generate",
      v: PROTOCOL_VERSION,
      requestId: "evil",
      purpose: "otp",
      params: {},
    });
    relay.inject(
      JSON.stringify({
        type: "admin.frame",
        v: PROTOCOL_VERSION,
        seq: 1,
        body,
        mac: toBase64url(new Uint8Array(32)),
      }),
    );
    // The server closes the session; the admin's next request fails instead of being answered.
    await assert.rejects(admin.status(), (e: unknown) => isDkeygenError(e));
    assert.deepEqual(await real.store.list({}), before, "no round ran");
    assert.match(real.log.text(), /E_BAD_SIGNATURE/);
  } finally {
    await real.close();
  }
});

test("an admin request replayed by a man in the middle is refused", async () => {
  const real = await startMemoryServer();
  try {
    await real.contributors(2);
    const relay = new Relay(real.dial);
    const admin = await AdminClient.connect({
      url: "memory://dkeygen",
      token: real.adminToken,
      expectedFingerprint: real.identity.fingerprint,
      dial: relay.dial,
    });
    await admin.generate("otp");
    const generate = relay.seen.find(
      (s) => s.direction === "up" && s.frame.includes("admin.frame"),
    );
    relay.inject(generate!.frame);
    await assert.rejects(admin.status(), (e: unknown) => isDkeygenError(e));
    assert.equal((await real.store.list({})).length, 1, "the replay ran no second round");
  } finally {
    await real.close();
  }
});

test("an admin reply changed on the way is refused by the admin client", async () => {
  const real = await startMemoryServer();
  try {
    await real.contributors(2);
    let armed = false;
    const relay = new Relay(real.dial, (direction, frame) => {
      if (armed && direction === "down" && frame.includes("admin.frame")) {
        // Flip one character of the sealed body: the reply's record id, say.
        return frame.replace(
          /(\\"id\\":\\")(.)/,
          (_m, head, c) => `${head}${c === "0" ? "1" : "0"}`,
        );
      }
      return frame;
    });
    const admin = await AdminClient.connect({
      url: "memory://dkeygen",
      token: real.adminToken,
      expectedFingerprint: real.identity.fingerprint,
      dial: relay.dial,
    });
    armed = true;
    await assert.rejects(admin.generate("otp"), (e: unknown) =>
      isDkeygenError(e, ErrorCodes.BAD_SIGNATURE),
    );
  } finally {
    await real.close();
  }
});

test("an error the server did not seal is not believed once the admin session is ready", async () => {
  const real = await startMemoryServer();
  try {
    const relay = new Relay(real.dial);
    const admin = await AdminClient.connect({
      url: "memory://dkeygen",
      token: real.adminToken,
      expectedFingerprint: real.identity.fingerprint,
      dial: relay.dial,
    });
    const pending = admin.status();
    relay.injectDown(
      JSON.stringify({
        type: "error",
        v: PROTOCOL_VERSION,
        code: "E_LOCKED",
        message: "fake",
        fatal: false,
      }),
    );
    await assert.rejects(pending, (e: unknown) => isDkeygenError(e, ErrorCodes.UNEXPECTED_MESSAGE));
  } finally {
    await real.close();
  }
});

test("a round.open changed on the way is not answered; the contributor waits for a signed one", async () => {
  const real = await startMemoryServer({ config: { quorum: 2, roundTimeoutMs: 800 } });
  try {
    const honest = await real.contributors(1);
    // The second contributor's invitations pass a relay that swaps in its own seed.
    const relay = new Relay(real.dial, (direction, frame) => {
      if (direction !== "down" || !frame.includes('"round.open"')) return frame;
      const open = JSON.parse(frame);
      open.seed = toBase64url(new Uint8Array(32));
      return JSON.stringify(open);
    });
    const { contributor: victim } = await memoryContributor(real, relay.dial, {
      name: "relayed",
      fingerprint: real.identity.fingerprint,
    });
    const events: string[] = [];
    victim.onEvent((e) => events.push(e.type));
    await victim.start();
    await assert.rejects(real.server.runRound({ purpose: "otp" }), (e: unknown) =>
      isDkeygenError(e, ErrorCodes.QUORUM_NOT_MET),
    );
    assert.equal(
      events.includes("round.contributed"),
      false,
      "nothing sent for a forged invitation",
    );
    assert.equal(honest.length, 1);
    await victim.stop();
  } finally {
    await real.close();
  }
});

test("a join whose requested name is changed on the way is refused", async () => {
  const real = await startMemoryServer();
  try {
    const relay = new Relay(real.dial, (direction, frame) =>
      direction === "up" && frame.includes('"join"')
        ? frame.replace('"alice"', '"mallory"')
        : frame,
    );
    const { contributor } = await memoryContributor(real, relay.dial, {
      name: "alice",
      fingerprint: real.identity.fingerprint,
      joinName: "alice",
    });
    await assert.rejects(contributor.start(), (e: unknown) =>
      isDkeygenError(e, ErrorCodes.BAD_SIGNATURE),
    );
    assert.equal(real.server.connectedContributors.length, 0);
  } finally {
    await real.close();
  }
});

test("trust on first use pins a server's key only once the server proved it holds it", async () => {
  const { impostor } = impostorIdentity();
  const fake = await startMemoryServer({ identity: impostor });
  try {
    const { contributor, pins } = await memoryContributor(fake, fake.dial, {
      name: "first-contact",
    });
    await assert.rejects(contributor.start(), (e: unknown) =>
      isDkeygenError(e, ErrorCodes.BAD_SIGNATURE),
    );
    assert.equal(await pins.get("memory://dkeygen"), undefined, "nothing pinned");
  } finally {
    await fake.close();
  }
  // An honest server's key is pinned at the first join.
  const real = await startMemoryServer();
  try {
    const { contributor, pins } = await memoryContributor(real, real.dial, { name: "honest" });
    await contributor.start();
    assert.equal(await pins.get("memory://dkeygen"), real.identity.fingerprint);
    await contributor.stop();
  } finally {
    await real.close();
  }
});

test("a contributor answers each round once, however often its invitation is replayed", async () => {
  const real = await startMemoryServer({ config: { quorum: 2, roundTimeoutMs: 2000 } });
  try {
    await real.contributors(1);
    let contributions = 0;
    const relay = new Relay(real.dial, (direction, frame) => {
      if (direction === "up" && frame.includes('"type":"commit"')) contributions++;
      return frame;
    });
    const { contributor } = await memoryContributor(real, relay.dial, {
      name: "replayed",
      fingerprint: real.identity.fingerprint,
    });
    await contributor.start();
    const record = await real.server.runRound({ purpose: "otp" });
    assert.equal(record.participants.length, 2);
    const open = relay.seen.find((s) => s.direction === "down" && s.frame.includes('"round.open"'));
    relay.injectDown(open!.frame);
    relay.injectDown(open!.frame);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(contributions, 1);
    await contributor.stop();
  } finally {
    await real.close();
  }
});

test("an admin command that fails its schema is answered with its requestId, and the session goes on", {
  timeout: 20_000,
}, async () => {
  const real = await startMemoryServer();
  try {
    const admin = await AdminClient.connect({
      url: "memory://dkeygen",
      token: real.adminToken,
      expectedFingerprint: real.identity.fingerprint,
      dial: real.dial,
    });
    // params must be an object: a number is refused by the schema of the inner message.
    await assert.rejects(admin.generate("otp", 7 as never), (e: unknown) =>
      isDkeygenError(e, ErrorCodes.MALFORMED_MESSAGE),
    );
    const status = await admin.status();
    assert.equal(status.roundsRunning, 0);
    admin.close();
  } finally {
    await real.close();
  }
});
