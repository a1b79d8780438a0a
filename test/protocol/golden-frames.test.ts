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
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { openEnvelope } from "../../src/crypto/envelope.js";
import { serverVerify } from "../../src/crypto/server-signature.js";
import { verifySignature } from "../../src/crypto/signature.js";
import { envelopeFromWire } from "../../src/protocol/envelope-wire.js";
import { contributorIdOf } from "../../src/protocol/identity.js";
import {
  type AnyMessage,
  decodeMessage,
  type EnvelopeWire,
  encodeMessage,
  type MessageOf,
  SCHEMAS,
} from "../../src/protocol/messages.js";
import { contributionCommitment, exportAad, openingAad } from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import {
  publicToJson,
  round1FromJson,
  round1ToJson,
  shareFromJson,
  shareToJson,
} from "../../src/threshold/codec.js";
import { checkCertificate, DkgParticipant, judgeComplaint } from "../../src/threshold/dkg.js";
import {
  aggregateSignature,
  commitNonces,
  signShare,
  verifySignatureShare,
  verifyThresholdSignature,
} from "../../src/threshold/signing.js";
import {
  type DkgSessionParams,
  publicPackageHash,
  sessionIdOf,
} from "../../src/threshold/transcript.js";
import {
  buildGolden,
  GOLDEN_FILE,
  type Golden,
  type GoldenKeys,
  goldenKeys,
} from "../helpers/wire-golden.js";
import { ed25519Key, fixedRng, sha256 } from "../helpers/wire-golden-threshold.js";

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
  "dkg.open": "signature",
  "sign.request": "signature",
  "refresh.open": "signature",
  "dkg.recovery (to 2)": "signature",
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
    if (
      name === "admin.export.result" ||
      name === "admin.opening.result" ||
      name === "log.checkpoint" ||
      name in RANDOMIZED
    ) {
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
    "dkg.open": "dkgOpen",
    "sign.request": "signRequest",
    "refresh.open": "refreshOpen",
    "dkg.recovery (to 2)": "dkgRecovery",
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
  // The admin's record opening (§15.6): likewise, under the opening AAD.
  const opening = decodeMessage(golden.frames["admin.opening.result"]!) as Extract<
    AnyMessage,
    { type: "admin.opening.result" }
  >;
  const openedOpening = openEnvelope(
    keys.serverKey,
    envelopeFromWire(opening.opening),
    openingAad(
      opening.requestId,
      opening.record.id,
      JSON.parse(golden.frames.hello!).server.fingerprint,
    ),
  );
  assert.equal(Buffer.from(openedOpening).toString("utf8"), golden.inputs.opened);
  const freshOpening = JSON.parse(fresh.frames["admin.opening.result"]!);
  assert.deepEqual({ ...opening, opening: "" }, { ...freshOpening, opening: "" });
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

test("the golden threshold session re-runs: each DKG step over the golden frames gives the next golden frame, and the golden signature verifies", () => {
  const inputs = golden.inputs;
  const fromHex = (name: string) => new Uint8Array(Buffer.from(inputs[name]!, "hex"));
  const lpHex = (name: string) => new Uint8Array(Buffer.from(golden.lp[name]!, "hex"));
  const b64 = (s: string) => new Uint8Array(fromBase64url(s, "golden"));
  const msg = <T extends keyof typeof SCHEMAS>(type: T, name: string = type) => {
    const m = decodeMessage(golden.frames[name]!);
    assert.equal(m.type, type, name);
    return m as MessageOf<T>;
  };
  const open = msg("dkg.open");
  const params: DkgSessionParams = {
    suite: open.suite,
    t: open.t,
    n: open.n,
    serverFingerprint: JSON.parse(golden.frames.hello!).server.fingerprint,
    nonce: b64(open.nonce),
    identities: open.participants.map(b64),
  };
  // The session id is §16.2's, and the SHA-256 of lp.dkgSession.
  const sessionId = sessionIdOf(params);
  assert.equal(toBase64url(sessionId), open.sessionId);
  assert.deepEqual(sha256(lpHex("dkgSession")), sessionId);
  const indices = Array.from({ length: params.n }, (_, i) => i + 1);
  const participants = indices.map(
    (index) =>
      new DkgParticipant({
        params,
        index,
        identityKey: ed25519Key(fromHex(`dkgIdentitySeed${index}`)),
        random: () => fromHex(`dkgEphemeralSecret${index}`),
      }),
  );
  // Round 1: each participant's package from its seed and ephemeral secret; the relayed set.
  for (const p of participants) {
    const sent = msg("dkg.round1", `dkg.round1 (from ${p.index})`);
    assert.deepEqual(round1ToJson(p.round1), sent.package, `round1 ${p.index}`);
  }
  const round1s = msg("dkg.round1s");
  assert.deepEqual(
    round1s.packages,
    participants.map((p) => round1ToJson(p.round1)),
  );
  // Round 2 over the relayed packages: the golden sealed shares.
  for (const p of participants) {
    const shares = p.round2(round1s.packages.map(round1FromJson));
    assert.deepEqual(
      shares.map(shareToJson),
      msg("dkg.round2", `dkg.round2 (from ${p.index})`).shares,
      `round2 ${p.index}`,
    );
  }
  // Round 3 over the golden dkg.shares: the golden confirmation.
  const identifiers = participants[0]!.identifiers;
  const confirms = participants.map((p) => {
    const incoming = msg("dkg.shares", `dkg.shares (to ${p.index})`).shares.map(shareFromJson);
    const c = p.round3(incoming);
    const sent = msg("dkg.confirm", `dkg.confirm (from ${p.index})`);
    assert.deepEqual(
      {
        sessionId: open.sessionId,
        transcript: toBase64url(c.transcript),
        public: publicToJson(c.public, identifiers),
        signature: toBase64url(c.signature),
      },
      {
        sessionId: sent.sessionId,
        transcript: sent.transcript,
        public: sent.public,
        signature: sent.signature,
      },
      `confirm ${p.index}`,
    );
    return c;
  });
  const transcript = confirms[0]!.transcript;
  const publicHash = publicPackageHash(confirms[0]!.public, identifiers);
  assert.deepEqual(sha256(lpHex("dkgTranscript")), transcript);
  assert.deepEqual(sha256(lpHex("dkgPublic")), publicHash);
  // The certificate verifies, and with it every participant keeps the same key.
  const cert = msg("dkg.certificate");
  assert.equal(cert.sessionId, open.sessionId);
  const certificate = cert.certificate.map(b64);
  checkCertificate(params, sessionId, transcript, publicHash, certificate);
  const held = participants.map((p) => p.finish(certificate));
  const key = msg("admin.threshold.key").key;
  assert.equal(key.id, cert.keyId);
  assert.equal(key.sessionId, open.sessionId);
  assert.deepEqual(key.holders, params.identities.map(contributorIdOf));
  // The vector covers noble's even-y steps: P = Σ C_i,0 and Q = commitments[0] both have odd y.
  const P = round1s.packages.reduce(
    (sum, p) => sum.add(secp256k1.Point.fromBytes(b64(p.commitment[0]!))),
    secp256k1.Point.ZERO,
  );
  assert.equal(P.toBytes(true)[0], 3);
  assert.equal(held[0]!.public.commitments[0]![0], 3);
  for (const h of held) {
    assert.equal(Buffer.from(h.groupPublicKey).toString("hex"), key.groupPublicKey);
    assert.equal(Buffer.from(h.outputKey!).toString("hex"), key.outputKey);
  }
  // The complaint's evidence opens participant 2's share to 1, which checks: the accuser is blamed.
  const fault = msg("dkg.fault", "dkg.fault (from 1)");
  const share21 = msg("dkg.round2", "dkg.round2 (from 2)")
    .shares.map(shareFromJson)
    .find((s) => s.to === 1)!;
  const { verdict } = judgeComplaint(
    params,
    round1s.packages.map(round1FromJson),
    share21,
    b64(fault.evidence!.key),
  );
  assert.equal(verdict, "accuser");
  assert.equal(msg("dkg.aborted").culprit, contributorIdOf(params.identities[0]!));
  // Signing: each signer's commitments from its fixed nonce randomness, its share over the
  // golden package; the aggregate is the golden signature and verifies under the output key.
  const request = msg("sign.request");
  const message = b64(request.message);
  assert.equal(toBase64url(message), msg("admin.threshold.sign").message);
  const pkg = msg("sign.package");
  assert.deepEqual(
    pkg.commitments.map((c) => c.index),
    request.signers,
  );
  const commitments = pkg.commitments.map((c) => ({
    identifier: identifiers[c.index - 1]!,
    hiding: b64(c.hiding),
    binding: b64(c.binding),
  }));
  const pub = held[0]!.public;
  const shares: Record<string, Uint8Array> = {};
  for (const index of request.signers) {
    const signer = {
      suite: params.suite,
      identifier: identifiers[index - 1]!,
      signingShare: held[index - 1]!.signingShare,
    };
    const { nonces, commitments: mine } = commitNonces(
      signer,
      fixedRng(fromHex(`signNonceRandom${index}`)),
    );
    const commit = msg("sign.commit", `sign.commit (from ${index})`);
    assert.deepEqual(
      [toBase64url(mine.hiding), toBase64url(mine.binding)],
      [commit.hiding, commit.binding],
    );
    const golden = b64(msg("sign.share", `sign.share (from ${index})`).share);
    assert.deepEqual(
      signShare(signer, pub, nonces, commitments, message),
      golden,
      `share ${index}`,
    );
    assert.ok(
      verifySignatureShare(params.suite, pub, commitments, message, signer.identifier, golden),
    );
    shares[signer.identifier] = golden;
  }
  const signature = aggregateSignature(params.suite, pub, commitments, message, shares);
  const result = msg("admin.threshold.signature");
  assert.equal(Buffer.from(signature).toString("hex"), result.signature);
  assert.deepEqual(
    result.signers,
    request.signers.map((i) => contributorIdOf(params.identities[i - 1]!)),
  );
  const outputKey = new Uint8Array(Buffer.from(key.outputKey!, "hex"));
  assert.ok(verifyThresholdSignature(params.suite, signature, message, outputKey));
  const other = message.slice();
  other[0]! ^= 1;
  assert.ok(!verifyThresholdSignature(params.suite, signature, other, outputKey));
});
