/**
 * The golden wire frames (test/vectors/dkeygen-wire/frames.json) still hold: every frame decodes
 * and re-encodes to the same bytes, every LP is what the code builds from the same inputs, the
 * deterministic frames are rebuilt byte for byte, and the randomized ones verify or decrypt with
 * the golden keys. A change of the wire format fails here until the golden file is regenerated.
 */
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { before, test } from "node:test";
import { fromBase64url } from "../../src/crypto/base64url.js";
import { openEnvelope } from "../../src/crypto/envelope.js";
import { serverVerify } from "../../src/crypto/server-signature.js";
import { verifySignature } from "../../src/crypto/signature.js";
import { envelopeFromWire } from "../../src/protocol/envelope-wire.js";
import {
  type AnyMessage,
  decodeMessage,
  type EnvelopeWire,
  encodeMessage,
  SCHEMAS,
} from "../../src/protocol/messages.js";
import { contributionCommitment, exportAad } from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import {
  buildGolden,
  GOLDEN_FILE,
  type Golden,
  type GoldenKeys,
  goldenKeys,
} from "../helpers/wire-golden.js";

const golden = JSON.parse(readFileSync(GOLDEN_FILE, "utf8")) as Golden;
let keys: GoldenKeys;
let fresh: Golden;

before(async () => {
  keys = await goldenKeys();
  const reveal = JSON.parse(golden.frames.reveal!) as { envelope: EnvelopeWire };
  fresh = buildGolden(keys, { envelope: reveal.envelope });
});

/** The frames carrying an RSASSA-PSS signature by the server (randomized), and its field. */
const RANDOMIZED: Record<string, string> = {
  welcome: "proof",
  "admin.ready": "proof",
  "round.open": "signature",
};

test("the golden file is for this protocol version and has a frame of every message type", () => {
  assert.equal(golden.version, PROTOCOL_VERSION);
  const types = new Set(
    Object.values(golden.frames).map((f) => (JSON.parse(f) as AnyMessage).type),
  );
  assert.deepEqual([...types].sort(), Object.keys(SCHEMAS).sort());
});

test("every golden frame decodes and encodes back to the same bytes", () => {
  for (const [name, frame] of Object.entries(golden.frames)) {
    assert.equal(encodeMessage(decodeMessage(frame)), frame, name);
  }
});

test("every signed, MACed and committed LP is what the code builds from the same inputs", () => {
  assert.deepEqual(fresh.lp, golden.lp);
});

test("the deterministic frames are rebuilt byte for byte", () => {
  for (const [name, frame] of Object.entries(golden.frames)) {
    if (name === "admin.export.result" || name === "log.checkpoint" || name in RANDOMIZED) {
      continue;
    }
    assert.equal(fresh.frames[name], frame, name);
  }
});

test("the randomized parts verify: the server's signatures with its key, the envelope with its private key", () => {
  const serverPublic = createPublicKey(keys.serverKey);
  const lpOf = {
    welcome: "welcome",
    "admin.ready": "adminReady",
    "round.open": "roundOpen",
  } as const;
  for (const [name, field] of Object.entries(RANDOMIZED)) {
    const message = JSON.parse(golden.frames[name]!) as Record<string, string>;
    const data = Buffer.from(golden.lp[lpOf[name as keyof typeof lpOf]]!, "hex");
    assert.ok(serverVerify(serverPublic, data, fromBase64url(message[field]!, field)), name);
    // Everything else in the frame is deterministic.
    const freshMessage = JSON.parse(fresh.frames[name]!) as Record<string, string>;
    assert.deepEqual({ ...message, [field]: "" }, { ...freshMessage, [field]: "" }, name);
  }
  // The log's identity in log.checkpoint: the server key's signature of the log key (§15.2).
  const checkpoint = decodeMessage(golden.frames["log.checkpoint"]!) as Extract<
    AnyMessage,
    { type: "log.checkpoint" }
  >;
  assert.ok(
    serverVerify(
      serverPublic,
      Buffer.from(golden.lp.logIdentity!, "hex"),
      fromBase64url(checkpoint.identity!.signature, "signature"),
    ),
    "log.checkpoint",
  );
  const freshCheckpoint = JSON.parse(fresh.frames["log.checkpoint"]!);
  const blank = (m: typeof checkpoint) => ({ ...m, identity: { ...m.identity!, signature: "" } });
  assert.deepEqual(blank(checkpoint), blank(freshCheckpoint));
  const reveal = decodeMessage(golden.frames.reveal!) as Extract<AnyMessage, { type: "reveal" }>;
  const phrase = openEnvelope(
    keys.serverKey,
    envelopeFromWire(reveal.envelope),
    Buffer.from(golden.lp.contributionAad!, "hex"),
  );
  assert.equal(Buffer.from(phrase).toString("hex"), golden.inputs.phrase);
  // The admin's export: sealed to its revealTo (here the server key), under the export AAD as
  // the code builds it now.
  const exported = decodeMessage(golden.frames["admin.export.result"]!) as Extract<
    AnyMessage,
    { type: "admin.export.result" }
  >;
  const opened = openEnvelope(
    keys.serverKey,
    envelopeFromWire(exported.secret),
    exportAad(
      exported.requestId,
      exported.record.id,
      JSON.parse(golden.frames.hello!).server.fingerprint,
    ),
  );
  assert.equal(Buffer.from(opened).toString("utf8"), golden.inputs.exported);
  const freshExport = JSON.parse(fresh.frames["admin.export.result"]!);
  assert.deepEqual({ ...exported, secret: "" }, { ...freshExport, secret: "" });
  // The commitment is the hash of exactly that envelope, as sent; commit and reveal verify.
  const fingerprint = JSON.parse(golden.frames.hello!).server.fingerprint;
  const commitment = contributionCommitment(
    reveal.roundId,
    reveal.contributorId,
    fingerprint,
    reveal.envelope,
  );
  assert.equal(Buffer.from(commitment).toString("hex"), golden.lp.contributionCommitment);
  const contributor = createPublicKey(keys.contributorKey);
  const commit = decodeMessage(golden.frames.commit!) as Extract<AnyMessage, { type: "commit" }>;
  for (const [message, name] of [
    [commit, "commit"],
    [reveal, "reveal"],
  ] as const) {
    const data = Buffer.from(golden.lp[name]!, "hex");
    assert.ok(
      verifySignature(contributor, data, fromBase64url(message.signature, "signature", 64)),
      name,
    );
  }
});
