/**
 * The golden wire frames (test/vectors/dkeygen-wire/frames.json): one frame of every message type
 * of the current protocol version (PROTOCOL_VERSION), made by the real encoders from fixed keys
 * and inputs, with the LP bytes of every signature and MAC. `buildGolden` makes them; the test
 * compares and verifies them; run this file (`node dist/test/helpers/wire-golden.js --write`) to
 * write a new golden file after a deliberate format change — the diff is the change.
 *
 * RSASSA-PSS signatures (welcome, admin.ready, round.open, log.checkpoint's identity, dkg.open,
 * sign.request) and RSA-OAEP envelopes (contribution, admin.export.result's secret, sealed to the
 * server's own golden key as its `revealTo`) are randomized by design, so for those the test
 * checks that the stored values verify or decrypt rather than comparing bytes. The threshold
 * frames (§16) come from wire-golden-threshold.ts.
 */
import { createHmac, createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { toBase64url } from "../../src/crypto/base64url.js";
import { sealEnvelope } from "../../src/crypto/envelope.js";
import { fingerprintOf, spkiDer } from "../../src/crypto/fingerprint.js";
import { secretPhraseInput } from "../../src/crypto/phrase-generators.js";
import { serverSign } from "../../src/crypto/server-signature.js";
import { rawPublicKey, signMessage } from "../../src/crypto/signature.js";
import { derivePurpose } from "../../src/derive/index.js";
import { AdminChannel, adminSessionKeys } from "../../src/protocol/admin-channel.js";
import { envelopeToWire } from "../../src/protocol/envelope-wire.js";
import { contributorIdOf } from "../../src/protocol/identity.js";
import { type AnyMessage, type EnvelopeWire, encodeMessage } from "../../src/protocol/messages.js";
import {
  adminFrameMacData,
  adminProofData,
  adminReadyProofData,
  adminSessionKeyInfo,
  commitSetHash,
  commitSetSignedData,
  commitSignedData,
  contributionAad,
  contributionCommitment,
  exportAad,
  joinSignedData,
  openingAad,
  paramsHash,
  revealReceiptSignedData,
  revealSignedData,
  roundClosedSignedData,
  roundOpenSignedData,
  serverSecretCommitment,
  welcomeProofData,
} from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { logIdentitySignedData, logOriginOf, witnessKeyName } from "../../src/protocol/witness.js";
import { deriveLogSecretKey } from "../../src/server/transparency-log.js";
import { signCheckpoint } from "../../src/tlog/checkpoint.js";
import { cosignatureSigner, cosignedMessage } from "../../src/tlog/cosignature.js";
import { hashLeaf } from "../../src/tlog/merkle.js";
import { parseNote } from "../../src/tlog/note.js";
import { ed25519NoteSigner } from "../../src/tlog/note-keys.js";
import { REPO_ROOT } from "./paths.js";
import { buildThresholdGolden } from "./wire-golden-threshold.js";

export const GOLDEN_DIR = join(REPO_ROOT, "test", "vectors", "dkeygen-wire");
export const GOLDEN_FILE = join(GOLDEN_DIR, "frames.json");

/** The fixed inputs: bytes i, i+1, … so every field is recognisable in a hex dump. */
const bytes = (length: number, first: number) =>
  Uint8Array.from({ length }, (_, i) => (first + i) & 0xff);

export interface GoldenKeys {
  serverKey: KeyObject;
  contributorKey: KeyObject;
  /** The golden round's Ed25519 key (round.open carries its public half). */
  roundKey: KeyObject;
}

export interface Golden {
  version: number;
  inputs: Record<string, string>;
  frames: Record<string, string>;
  lp: Record<string, string>;
}

/**
 * The golden frames' keys, made from fixed bytes (so no private key is stored anywhere): the
 * server's RSA-3072 key by dkeygen's own deterministic RSA derivation (PROTOCOL §13.6) from the
 * 64 bytes 33 34 35 …, the contributor's Ed25519 key from the seed 55 56 57 …, the round key
 * from the seed 90 91 92 … (RFC 8032).
 */
const SERVER_KEY_SECRET = bytes(64, 0x33);
const CONTRIBUTOR_SEED = bytes(32, 0x55);
const ROUND_KEY_SEED = bytes(32, 0x90);

function ed25519Key(seed: Uint8Array): KeyObject {
  return createPrivateKey({
    key: {
      kty: "OKP",
      crv: "Ed25519",
      d: toBase64url(seed),
      x: toBase64url(ed25519.getPublicKey(seed)),
    },
    format: "jwk",
  });
}

export async function goldenKeys(): Promise<GoldenKeys> {
  const rsa = await derivePurpose("rsa", SERVER_KEY_SECRET, { bits: 3072 });
  return {
    serverKey: createPrivateKey(String(rsa.secret.pkcs8)),
    contributorKey: ed25519Key(CONTRIBUTOR_SEED),
    roundKey: ed25519Key(ROUND_KEY_SEED),
  };
}

/**
 * The golden frames from `keys`. RSA-OAEP encryption is randomized, so a fresh build seals a new
 * envelope unless given the golden file's own (`envelope`): then every frame but the server's
 * RSASSA-PSS signatures (randomized too) comes out byte for byte the same.
 */
export function buildGolden(keys: GoldenKeys, reuse: { envelope?: EnvelopeWire } = {}): Golden {
  const V = PROTOCOL_VERSION;
  const { serverKey, contributorKey, roundKey } = keys;
  const serverPublic = createPublicKey(serverKey);
  const identity = rawPublicKey(contributorKey);
  const contributorId = contributorIdOf(identity);
  const fingerprint = fingerprintOf(serverPublic);
  const challenge = bytes(32, 0x00);
  const clientChallenge = bytes(32, 0x20);
  const adminClientChallenge = bytes(32, 0x40);
  const adminToken = bytes(32, 0x60);
  const seed = bytes(32, 0x80);
  const serverSecret = bytes(32, 0xa0);
  const roundId = toBase64url(bytes(16, 0xc0));
  const token = `dkt_${toBase64url(bytes(12, 0xd0))}.${toBase64url(bytes(32, 0xe0))}`;
  const name = "alice";
  const commitDeadline = "2026-12-01T12:00:10.000Z";
  const revealDeadline = "2026-12-01T12:00:20.000Z";
  const phrase = bytes(64, 0x10);
  const lp: Record<string, Uint8Array> = {};
  const frames: Record<string, AnyMessage | string> = {};

  frames.hello = {
    type: "hello",
    v: V,
    server: { publicKey: toBase64url(spkiDer(serverPublic)), fingerprint, keyType: "rsa" },
    challenge: toBase64url(challenge),
    heartbeatMs: 15_000,
  };
  lp.join = joinSignedData(challenge, fingerprint, identity, token, name, clientChallenge);
  frames.join = {
    type: "join",
    v: V,
    identity: toBase64url(identity),
    token,
    name,
    clientChallenge: toBase64url(clientChallenge),
    signature: toBase64url(signMessage(contributorKey, lp.join)),
  };
  lp.welcome = welcomeProofData(challenge, clientChallenge, fingerprint, contributorId, name, true);
  frames.welcome = {
    type: "welcome",
    v: V,
    contributorId,
    name,
    enrolled: true,
    proof: toBase64url(serverSign(serverKey, lp.welcome)),
  };
  const serverCommitment = serverSecretCommitment(roundId, serverSecret);
  lp.serverSecretCommitment = serverCommitment;
  const otherContributor = `SHA256:${Buffer.from(bytes(32, 0x55)).toString("base64").replace(/=+$/, "")}`;
  const invited = [contributorId, otherContributor];
  lp.paramsHash = paramsHash("otp", { digits: 6 });
  lp.roundOpen = roundOpenSignedData({
    roundId,
    purpose: "otp",
    paramsHash: lp.paramsHash,
    seed,
    serverCommitment,
    roundKey: rawPublicKey(createPublicKey(roundKey)),
    commitDeadline,
    revealDeadline,
    invited,
  });
  frames["round.open"] = {
    type: "round.open",
    v: V,
    roundId,
    purpose: "otp",
    paramsHash: toBase64url(lp.paramsHash),
    seed: toBase64url(seed),
    serverCommitment: toBase64url(serverCommitment),
    roundKey: toBase64url(rawPublicKey(createPublicKey(roundKey))),
    commitDeadline,
    revealDeadline,
    invited,
    signature: toBase64url(serverSign(serverKey, lp.roundOpen)),
  };
  lp.contributionAad = contributionAad(roundId, contributorId, fingerprint);
  const envelope =
    reuse.envelope ?? envelopeToWire(sealEnvelope(serverPublic, phrase, lp.contributionAad));
  lp.contributionCommitment = contributionCommitment(roundId, contributorId, fingerprint, envelope);
  lp.commit = commitSignedData(roundId, contributorId, fingerprint, lp.contributionCommitment);
  frames.commit = {
    type: "commit",
    v: V,
    roundId,
    contributorId,
    commitment: toBase64url(lp.contributionCommitment),
    signature: toBase64url(signMessage(contributorKey, lp.commit)),
  };
  const commits = [{ contributorId, commitment: lp.contributionCommitment }];
  lp.commitSetHash = commitSetHash(roundId, fingerprint, commits);
  lp.commitSet = commitSetSignedData(roundId, lp.commitSetHash);
  frames["round.commits"] = {
    type: "round.commits",
    v: V,
    roundId,
    commits: commits.map((c) => ({
      contributorId: c.contributorId,
      commitment: toBase64url(c.commitment),
    })),
    signature: toBase64url(signMessage(roundKey, lp.commitSet)),
  };
  lp.reveal = revealSignedData(
    roundId,
    contributorId,
    fingerprint,
    lp.commitSetHash,
    lp.contributionCommitment,
  );
  frames.reveal = {
    type: "reveal",
    v: V,
    roundId,
    contributorId,
    setHash: toBase64url(lp.commitSetHash),
    envelope,
    signature: toBase64url(signMessage(contributorKey, lp.reveal)),
  };
  lp.receipt = revealReceiptSignedData(
    roundId,
    contributorId,
    lp.commitSetHash,
    lp.contributionCommitment,
  );
  frames["round.receipt"] = {
    type: "round.receipt",
    v: V,
    roundId,
    contributorId,
    setHash: toBase64url(lp.commitSetHash),
    commitment: toBase64url(lp.contributionCommitment),
    signature: toBase64url(signMessage(roundKey, lp.receipt)),
  };
  lp.roundClosed = roundClosedSignedData({
    roundId,
    outcome: "completed",
    accepted: 1,
    setHash: lp.commitSetHash,
    missing: [],
  });
  frames["round.closed"] = {
    type: "round.closed",
    v: V,
    roundId,
    outcome: "completed",
    accepted: 1,
    setHash: toBase64url(lp.commitSetHash),
    signature: toBase64url(signMessage(roundKey, lp.roundClosed)),
  };
  frames.error = {
    type: "error",
    v: V,
    code: "E_LATE_CONTRIBUTION",
    message: `Round ${roundId} is closed; the contribution came too late.`,
    roundId,
    fatal: false,
  };
  // The transparency log (§15.5): a checkpoint of a one-entry tree (the leaf here is fixed bytes,
  // not a round's entry: the entry would carry round.open's randomized signature), signed by the
  // log key derived from the server key; the contributor's cosignature of it at a fixed time.
  const origin = logOriginOf(fingerprint);
  const logSigner = ed25519NoteSigner(origin, deriveLogSecretKey(serverKey));
  lp.logIdentity = logIdentitySignedData(fingerprint, origin, logSigner.verifierKey);
  const note = signCheckpoint(
    { origin, size: 1, rootHash: hashLeaf(bytes(16, 0xe0)), extensions: [] },
    logSigner,
  );
  frames["log.checkpoint"] = {
    type: "log.checkpoint",
    v: V,
    checkpoint: note,
    old: 0,
    consistency: [],
    rounds: [],
    identity: {
      origin,
      verifierKey: logSigner.verifierKey,
      signature: toBase64url(serverSign(serverKey, lp.logIdentity)),
    },
  };
  const cosignTime = 1_795_000_000;
  const noteText = new TextEncoder().encode(parseNote(note).text);
  lp.cosignature = cosignedMessage(noteText, cosignTime);
  const witnessSeed = contributorKey.export({ format: "jwk" }).d!;
  const witness = cosignatureSigner(
    witnessKeyName(contributorId),
    new Uint8Array(Buffer.from(witnessSeed, "base64url")),
    () => cosignTime,
  );
  const cosignature = new Uint8Array(76);
  new DataView(cosignature.buffer).setUint32(0, witness.keyId);
  cosignature.set(witness.sign(noteText), 4);
  frames["log.cosign"] = {
    type: "log.cosign",
    v: V,
    size: 1,
    cosignature: toBase64url(cosignature),
  };
  frames["log.conflict"] = { type: "log.conflict", v: V, size: 1 };
  lp.adminAuth = adminProofData(challenge, fingerprint, adminClientChallenge);
  frames["admin.auth"] = {
    type: "admin.auth",
    v: V,
    clientChallenge: toBase64url(adminClientChallenge),
    proof: toBase64url(createHmac("sha256", adminToken).update(lp.adminAuth).digest()),
  };
  lp.adminReady = adminReadyProofData(challenge, adminClientChallenge, fingerprint);
  frames["admin.ready"] = {
    type: "admin.ready",
    v: V,
    proof: toBase64url(serverSign(serverKey, lp.adminReady)),
  };
  const keys2 = adminSessionKeys(adminToken, challenge, adminClientChallenge, fingerprint);
  const admin = new AdminChannel(keys2, "admin");
  const server = new AdminChannel(keys2, "server");
  const generate: AnyMessage = {
    type: "admin.generate",
    v: V,
    requestId: "req-1",
    purpose: "otp",
    params: { digits: 6 },
  };
  const status: AnyMessage = { type: "admin.status", v: V, requestId: "req-2" };
  const round: AnyMessage = {
    type: "admin.round",
    v: V,
    requestId: "req-1",
    record: {
      id: "01JDKGEN00000000000000000A",
      purpose: "otp",
      createdAt: "2026-12-01T12:00:01.000Z",
      roundId,
      participants: [contributorId],
      algorithm: "otp/v1",
      public: { digits: 6 },
      owner: "@admin",
    },
  };
  const statusResult: AnyMessage = {
    type: "admin.status.result",
    v: V,
    requestId: "req-2",
    contributors: [{ id: contributorId, name }],
    enrolled: 1,
    roundsRunning: 0,
    store: { kind: "file", lines: 7, head: "ab".repeat(32) },
  };
  // An export of the record above, sealed to a `revealTo` that is the golden server key itself,
  // so that the test can open it.
  const exportRequest: AnyMessage = {
    type: "admin.export",
    v: V,
    requestId: "req-3",
    recordId: "01JDKGEN00000000000000000A",
    revealTo: toBase64url(spkiDer(serverPublic)),
  };
  // Not in `lp` (which a second implementation rebuilds whole): the test opens the envelope with
  // the AAD the code builds now, which pins it as well.
  const exportAd = exportAad("req-3", "01JDKGEN00000000000000000A", fingerprint);
  const exported = JSON.stringify({
    recordId: "01JDKGEN00000000000000000A",
    purpose: "otp",
    algorithm: "otp/v1",
    params: { digits: 6 },
    batch: { index: 0, size: 1 },
    derivationSecret: hex(bytes(64, 0x90)),
  });
  frames["admin.export"] = exportRequest;
  frames["admin.export.result"] = {
    type: "admin.export.result",
    v: V,
    requestId: "req-3",
    record: (round as Extract<AnyMessage, { type: "admin.round" }>).record,
    secret: envelopeToWire(sealEnvelope(serverPublic, Buffer.from(exported), exportAd)),
  };
  // The opening of the record above (§15.6), sealed like the export, under its own AAD.
  const openingAd = openingAad("req-4", "01JDKGEN00000000000000000A", fingerprint);
  const opened = JSON.stringify({
    recordId: "01JDKGEN00000000000000000A",
    roundId,
    purpose: "otp",
    algorithm: "otp/v1",
    params: { digits: 6 },
    batch: { index: 0, size: 1 },
    serverSecret: hex(serverSecret),
    contributions: [],
    results: [{ recordId: "01JDKGEN00000000000000000A", commitment: toBase64url(bytes(32, 0xa0)) }],
  });
  frames["admin.opening"] = { ...exportRequest, type: "admin.opening", requestId: "req-4" };
  frames["admin.opening.result"] = {
    type: "admin.opening.result",
    v: V,
    requestId: "req-4",
    record: (round as Extract<AnyMessage, { type: "admin.round" }>).record,
    opening: envelopeToWire(sealEnvelope(serverPublic, Buffer.from(opened), openingAd)),
  };
  frames["admin.generate"] = generate;
  frames["admin.status"] = status;
  frames["admin.round"] = round;
  frames["admin.status.result"] = statusResult;
  lp.adminSessionInfoToServer = adminSessionKeyInfo(fingerprint, "to-server");
  lp.adminSessionInfoToAdmin = adminSessionKeyInfo(fingerprint, "to-admin");
  lp.adminSessionKeyToServer = keys2.toServer.export();
  lp.adminSessionKeyToAdmin = keys2.toAdmin.export();
  lp.adminFrameMacSeq0 = adminFrameMacData("to-server", 0, encodeMessage(generate));
  // A §7.1 secret phrase input (no V: not a wire construction), with E = 64 bytes 0x70 0x71 ….
  lp.secretPhraseInput = secretPhraseInput(roundId, seed, bytes(64, 0x70));
  frames["admin.frame (admin.generate, seq 0)"] = admin.seal(generate);
  frames["admin.frame (admin.status, seq 1)"] = admin.seal(status);
  frames["admin.frame (admin.round, seq 0)"] = server.seal(round);
  frames["admin.frame (admin.status.result, seq 1)"] = server.seal(statusResult);
  // Threshold keys (§16): a real DKG and signing attempt from fixed inputs (wire-golden-threshold.ts).
  const threshold = buildThresholdGolden(serverKey, CONTRIBUTOR_SEED);
  Object.assign(frames, threshold.frames);
  Object.assign(lp, threshold.lp);

  return {
    version: V,
    inputs: {
      serverKeyDerivationSecret: hex(SERVER_KEY_SECRET),
      contributorSeed: hex(CONTRIBUTOR_SEED),
      challenge: hex(challenge),
      clientChallenge: hex(clientChallenge),
      adminClientChallenge: hex(adminClientChallenge),
      adminToken: hex(adminToken),
      seed: hex(seed),
      serverSecret: hex(serverSecret),
      phrase: hex(phrase),
      exported,
      opened,
      roundId,
      token,
      name,
      commitDeadline,
      revealDeadline,
      ...threshold.inputs,
    },
    frames: Object.fromEntries(
      Object.entries(frames).map(([k, f]) => [k, typeof f === "string" ? f : encodeMessage(f)]),
    ),
    lp: Object.fromEntries(Object.entries(lp).map(([k, v]) => [k, hex(v)])),
  };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

export function readGolden(): Golden {
  return JSON.parse(readFileSync(GOLDEN_FILE, "utf8")) as Golden;
}

// `node dist/test/helpers/wire-golden.js --write` remakes the file.
if (process.argv[1]?.endsWith("wire-golden.js") && process.argv.includes("--write")) {
  // The contribution's envelope is random; reusing the current file's keeps everything built on
  // it (commitment, commit, commit set, reveal, receipt, closing) byte for byte as it was.
  let reuse: { envelope?: EnvelopeWire } = {};
  try {
    reuse = {
      envelope: (JSON.parse(readGolden().frames.reveal!) as { envelope: EnvelopeWire }).envelope,
    };
  } catch {
    // No golden file yet: a fresh envelope.
  }
  const golden = buildGolden(await goldenKeys(), reuse);
  writeFileSync(GOLDEN_FILE, `${JSON.stringify(golden, null, 2)}\n`);
  process.stdout.write(`wrote ${GOLDEN_FILE}\n`);
}
