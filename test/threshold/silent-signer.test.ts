/**
 * A holder that stays connected (heartbeats answered) but never answers a signing request: only
 * the signing timeout can leave it out. The signature still comes, from another subset, within
 * the timeout plus the fault-free latency; the silent holder is named in the server's log.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { Contributor, type Dialer } from "../../src/client/contributor.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { EntropyPool } from "../../src/client/entropy.js";
import { PinStore } from "../../src/client/pins.js";
import { MAX_SERVER_FRAME_BYTES } from "../../src/protocol/version.js";
import { issueEnrollmentToken } from "../../src/server/enrollment.js";
import { verifyThresholdSignature } from "../../src/threshold/signing.js";
import { dialWs } from "../../src/transport/ws.js";
import { startTestServer } from "../helpers/ceremony.js";

/** A connection that, while `gate.silent`, drops every sign.* frame from the server. */
function gatedDial(gate: { silent: boolean }): Dialer {
  return async (url) => {
    const c = await dialWs(url, { maxPayload: MAX_SERVER_FRAME_BYTES });
    const typeOf = (frame: Buffer) => {
      try {
        return String((JSON.parse(frame.toString("utf8")) as { type?: unknown }).type);
      } catch {
        return "";
      }
    };
    return {
      get remote() {
        return c.remote;
      },
      get isOpen() {
        return c.isOpen;
      },
      send: (frame) => c.send(frame),
      close: (code, reason) => c.close(code, reason),
      onFrame: (handler) =>
        c.onFrame((frame) => {
          if (gate.silent && typeOf(frame).startsWith("sign.")) return;
          handler(frame);
        }),
      onClose: (handler) => c.onClose(handler),
      onError: (handler) => c.onError(handler),
      watchHeartbeat: (ms) => c.watchHeartbeat(ms),
    };
  };
}

test("a silent holder is left out after the signing timeout and another subset signs", async () => {
  const timeoutMs = 1500;
  const server = await startTestServer({ signTimeoutMs: timeoutMs });
  const gates: { silent: boolean }[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const name = `h${i}`;
      const dataDir = join(server.root, name);
      const { token } = await issueEnrollmentToken(server.dataDir, { name });
      const gate = { silent: false };
      gates.push(gate);
      const contributor = new Contributor({
        serverUrl: server.url,
        state: await loadOrCreateContributorState(dataDir),
        entropy: new EntropyPool(new Uint8Array(0), "os"),
        pins: new PinStore(dataDir),
        token,
        name,
        reconnect: false,
        dial: gatedDial(gate),
      });
      await contributor.start();
      server.contributors.push(contributor);
    }
    const admin = await server.admin();
    try {
      const key = await admin.thresholdKeygen({ suite: "ed25519", t: 2, n: 3 });
      const message = new TextEncoder().encode("sign despite a silent holder");
      const first = await admin.thresholdSign(key.id, message);
      // Silence one of the holders the server asked first.
      const silentId = first.signers[0]!;
      const index = server.contributors.findIndex((c) => c.contributorId === silentId);
      gates[index]!.silent = true;
      const started = performance.now();
      const signed = await admin.thresholdSign(key.id, message);
      const elapsed = performance.now() - started;
      assert.equal(signed.signers.includes(silentId), false);
      assert.ok(
        verifyThresholdSignature(
          "ed25519",
          Buffer.from(signed.signature, "hex"),
          message,
          Buffer.from(key.groupPublicKey, "hex"),
        ),
      );
      assert.ok(elapsed >= timeoutMs, `left out only after the timeout (${elapsed} ms)`);
      assert.ok(elapsed < 3 * timeoutMs, `and not much later (${elapsed} ms)`);
      assert.ok(
        server.log
          .lines()
          .some(
            (l) =>
              l.includes(silentId) &&
              l.includes("signer left out") &&
              l.includes("sent no commitment in time"),
          ),
        "the silent holder is named",
      );
    } finally {
      admin.close();
    }
  } finally {
    await server.cleanup();
  }
});
