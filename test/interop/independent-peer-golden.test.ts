// The independent peer (test/interop/independent-peer.mjs, written from docs/PROTOCOL.md alone)
// against dkeygen's golden wire frames (test/vectors/dkeygen-wire/frames.json): every LP it builds
// must equal the golden bytes, every signature and MAC in the frames must check with its code, and
// every server frame must pass its schema.
import assert from "node:assert/strict";
import {
  constants,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  privateDecrypt,
  sign,
} from "node:crypto";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { REPO_ROOT, readVector } from "../helpers/paths.js";

interface Golden {
  version: number;
  inputs: Record<string, string>;
  frames: Record<string, string>;
  lp: Record<string, string>;
}

interface Envelope {
  alg: string;
  ek: string;
  iv: string;
  ct: string;
  tag: string;
}

type Message = Record<string, unknown> & { type: string };

interface AdminSecrets {
  adminToken: Buffer;
  challenge: Buffer;
  clientChallenge: Buffer;
  serverFingerprint: string;
}

/** The parts of independent-peer.mjs these tests call. */
interface Peer {
  lp(...items: (string | Uint8Array)[]): Buffer;
  toB64u(bytes: Uint8Array): string;
  fromB64u(text: string, field: string, min?: number, max?: number): Buffer;
  fingerprint(spki: Uint8Array): string;
  contributorIdOf(raw: Uint8Array): string;
  joinData(x: Record<string, unknown>): Buffer;
  welcomeData(x: Record<string, unknown>): Buffer;
  adminProofData(x: AdminSecrets): Buffer;
  adminReadyData(x: AdminSecrets): Buffer;
  adminSessionKey(x: AdminSecrets, dir: string): Buffer;
  adminFrameMac(key: Buffer, dir: string, seq: number, body: string): Buffer;
  adminFrameData(dir: string, seq: number, body: string): Buffer;
  VERSION: number;
  roundOpenData(open: Message): Buffer;
  serverCommitment(roundId: string, serverSecret: Uint8Array): Buffer;
  contributionAad(roundId: string, contributorId: string, serverFingerprint: string): Buffer;
  contributionData(
    roundId: string,
    contributorId: string,
    serverFingerprint: string,
    envelope: Envelope,
  ): Buffer;
  verifyServerSignature(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean;
  seal(key: KeyObject, plaintext: Uint8Array, aad: Uint8Array): Envelope;
  parseMessage(text: string, allowed: string[]): Message;
  checkServerKey(
    hello: Message,
    expected?: string,
  ): { publicKey: KeyObject; serverFingerprint: string };
  AdminChannel: new (
    secrets: AdminSecrets,
  ) => { wrap(inner: Message): Message; unwrap(frame: Message): Message };
}

const peer = (await import(
  pathToFileURL(`${REPO_ROOT}test/interop/independent-peer.mjs`).href
)) as Peer;
const golden = readVector<Golden>("dkeygen-wire/frames.json");
const inputs = golden.inputs as Record<string, string>;
const hex = (name: string) => Buffer.from(inputs[name]!, "hex");
const frame = (name: string) => JSON.parse(golden.frames[name]!) as Message;
const str = (message: Message, field: string) => message[field] as string;

const hello = frame("hello");
const { publicKey: serverKey, serverFingerprint } = peer.checkServerKey(hello);
const join = frame("join");
const welcome = frame("welcome");
const open = frame("round.open");
const contribution = frame("contribution");
const identity = peer.fromB64u(str(join, "identity"), "identity", 32);
const contributorId = str(welcome, "contributorId");
const adminSecrets: AdminSecrets = {
  adminToken: hex("adminToken"),
  challenge: hex("challenge"),
  clientChallenge: hex("adminClientChallenge"),
  serverFingerprint,
};

/** The README's contributor key: the Ed25519 seed 55 56 57 … (32 bytes), as RFC 8410 PKCS#8. */
const contributorKey = createPrivateKey({
  key: Buffer.concat([
    Buffer.from("302e020100300506032b657004220420", "hex"),
    Buffer.from(Array.from({ length: 32 }, (_, i) => 0x55 + i)),
  ]),
  format: "der",
  type: "pkcs8",
});

function flipped(bytes: Uint8Array): Buffer {
  const copy = Buffer.from(bytes);
  copy[0]! ^= 0x01;
  return copy;
}

describe("the independent peer against the golden wire frames", () => {
  it("builds every construction's LP byte for byte as the golden lp", () => {
    const ids = { roundId: inputs.roundId!, contributorId, serverFingerprint };
    const built: Record<string, Buffer> = {
      join: peer.joinData({
        challenge: hex("challenge"),
        serverFingerprint,
        identity,
        token: inputs.token,
        name: inputs.name,
        clientChallenge: hex("clientChallenge"),
      }),
      welcome: peer.welcomeData({
        challenge: hex("challenge"),
        clientChallenge: hex("clientChallenge"),
        serverFingerprint,
        contributorId,
        name: inputs.name,
        enrolled: true,
      }),
      serverSecretCommitment: peer.serverCommitment(ids.roundId, hex("serverSecret")),
      roundOpen: peer.roundOpenData(open),
      contributionAad: peer.contributionAad(ids.roundId, contributorId, serverFingerprint),
      contribution: peer.contributionData(
        ids.roundId,
        contributorId,
        serverFingerprint,
        contribution.envelope as Envelope,
      ),
      adminAuth: peer.adminProofData(adminSecrets),
      adminReady: peer.adminReadyData(adminSecrets),
      adminSessionInfoToServer: peer.lp(
        "dkeygen/v1/admin-session",
        String(peer.VERSION),
        serverFingerprint,
        "to-server",
      ),
      adminSessionInfoToAdmin: peer.lp(
        "dkeygen/v1/admin-session",
        String(peer.VERSION),
        serverFingerprint,
        "to-admin",
      ),
      adminSessionKeyToServer: peer.adminSessionKey(adminSecrets, "to-server"),
      adminSessionKeyToAdmin: peer.adminSessionKey(adminSecrets, "to-admin"),
      adminFrameMacSeq0: peer.adminFrameData(
        "to-server",
        0,
        JSON.parse(golden.frames["admin.frame (admin.generate, seq 0)"]!).body,
      ),
      secretPhraseInput: peer.lp(
        "dkeygen/v1/secret-phrase",
        inputs.roundId!,
        hex("seed"),
        Buffer.from(Array.from({ length: 64 }, (_, i) => 0x70 + i)),
      ),
    };
    assert.deepEqual(Object.keys(built).sort(), Object.keys(golden.lp).sort());
    for (const [name, bytes] of Object.entries(built)) {
      assert.equal(bytes.toString("hex"), golden.lp[name], `lp.${name}`);
    }
  });

  it("takes the server key from hello and the contributor id from join as §2 computes them", () => {
    const server = hello.server as Record<string, string>;
    const spki = peer.fromB64u(server.publicKey!, "publicKey", 1, 2048);
    assert.equal(peer.fingerprint(spki), server.fingerprint);
    assert.equal(serverFingerprint, server.fingerprint);
    assert.equal(peer.contributorIdOf(identity), contributorId);
    const ours = createPublicKey(contributorKey).export({ type: "spki", format: "der" });
    assert.deepEqual(ours.subarray(12), identity, "the seed 55 56 57 … is the join's identity");
  });

  it("accepts hello's key only when RSA ≥ 3072, with the claimed fingerprint and the expected one", () => {
    const server = hello.server as Record<string, string>;
    assert.equal(
      peer.checkServerKey(hello, server.fingerprint).serverFingerprint,
      server.fingerprint,
    );
    const helloWith = (spki: Buffer, claimed = peer.fingerprint(spki)) => ({
      ...hello,
      server: { ...server, publicKey: peer.toB64u(spki), fingerprint: claimed },
    });
    const der = (key: KeyObject) => key.export({ type: "spki", format: "der" });
    const rsa = (bits: number) =>
      der(generateKeyPairSync("rsa", { modulusLength: bits }).publicKey);
    const refused = [
      // Just under the floor (the golden key, accepted above, is exactly 3072 bits).
      helloWith(rsa(3071)),
      helloWith(der(generateKeyPairSync("ed25519").publicKey)),
      helloWith(peer.fromB64u(server.publicKey!, "k", 1, 2048), peer.fingerprint(rsa(2048))),
    ];
    for (const message of refused) {
      assert.throws(() => peer.checkServerKey(message), { code: "E_PIN_MISMATCH" });
    }
    assert.throws(() => peer.checkServerKey(hello, peer.fingerprint(rsa(2048))), {
      code: "E_PIN_MISMATCH",
    });
  });

  it("signs the golden join and contribution byte for byte with the contributor's seed", () => {
    const joinLp = Buffer.from(golden.lp.join!, "hex");
    assert.equal(peer.toB64u(sign(null, joinLp, contributorKey)), join.signature);
    const contributionLp = Buffer.from(golden.lp.contribution!, "hex");
    assert.equal(peer.toB64u(sign(null, contributionLp, contributorKey)), contribution.signature);
  });

  it("verifies the server's welcome, admin.ready and round.open signatures, and not a flipped one", () => {
    const signed: [string, Buffer, string][] = [
      ["welcome", Buffer.from(golden.lp.welcome!, "hex"), str(welcome, "proof")],
      ["admin.ready", peer.adminReadyData(adminSecrets), str(frame("admin.ready"), "proof")],
      ["round.open", peer.roundOpenData(open), str(open, "signature")],
    ];
    for (const [name, data, signature] of signed) {
      const sig = peer.fromB64u(signature, name, 1, 512);
      assert.equal(peer.verifyServerSignature(serverKey, data, sig), true, name);
      assert.equal(peer.verifyServerSignature(serverKey, data, flipped(sig)), false, name);
      assert.equal(peer.verifyServerSignature(serverKey, flipped(data), sig), false, name);
    }
    assert.equal(
      peer.toB64u(peer.serverCommitment(inputs.roundId!, hex("serverSecret"))),
      open.serverCommitment,
    );
  });

  it("computes the admin proof and every admin frame's MAC as the golden ones", () => {
    const proof = createHmac("sha256", adminSecrets.adminToken)
      .update(Buffer.from(golden.lp.adminAuth!, "hex"))
      .digest();
    assert.equal(peer.toB64u(proof), frame("admin.auth").proof);
    const toServer = new peer.AdminChannel(adminSecrets);
    for (const name of [
      "admin.frame (admin.generate, seq 0)",
      "admin.frame (admin.status, seq 1)",
    ]) {
      const inner = JSON.parse(str(frame(name), "body")) as Message;
      assert.deepEqual(toServer.wrap(inner), frame(name), name);
    }
    // The golden server frames open in order on a fresh channel of the same session.
    const toAdmin = new peer.AdminChannel(adminSecrets);
    assert.deepEqual(
      toAdmin.unwrap(frame("admin.frame (admin.round, seq 0)")),
      frame("admin.round"),
    );
    assert.deepEqual(
      toAdmin.unwrap(frame("admin.frame (admin.status.result, seq 1)")),
      frame("admin.status.result"),
    );
  });

  it("refuses a golden server frame whose MAC is flipped, or that comes out of order", () => {
    const bad = frame("admin.frame (admin.round, seq 0)");
    bad.mac = peer.toB64u(flipped(peer.fromB64u(str(bad, "mac"), "mac", 32)));
    assert.throws(() => new peer.AdminChannel(adminSecrets).unwrap(bad), {
      code: "E_BAD_SIGNATURE",
    });
    assert.throws(
      () =>
        new peer.AdminChannel(adminSecrets).unwrap(
          frame("admin.frame (admin.status.result, seq 1)"),
        ),
      { code: "E_BAD_SIGNATURE" },
    );
    // The client-to-server frames do not open as the server's: the two directions' keys differ.
    assert.throws(
      () =>
        new peer.AdminChannel(adminSecrets).unwrap(frame("admin.frame (admin.generate, seq 0)")),
      { code: "E_BAD_SIGNATURE" },
    );
  });

  it("accepts every golden server frame under its §4 schema, and refuses an unknown field", () => {
    const fromServer = [
      "hello",
      "welcome",
      "round.open",
      "round.ack",
      "round.closed",
      "error",
      "admin.ready",
      "admin.round",
      "admin.status.result",
      "admin.frame (admin.round, seq 0)",
    ];
    for (const name of fromServer) {
      const text = golden.frames[name]!;
      const type = (JSON.parse(text) as Message).type;
      assert.deepEqual(peer.parseMessage(text, [type]), JSON.parse(text), name);
      const extra = JSON.stringify({ ...JSON.parse(text), extra: 1 });
      assert.throws(() => peer.parseMessage(extra, [type]), { code: "E_MALFORMED_MESSAGE" }, name);
    }
    const v1 = JSON.stringify({ ...frame("round.ack"), v: 1 });
    assert.throws(() => peer.parseMessage(v1, ["round.ack"]), { code: "E_VERSION_MISMATCH" });
    assert.throws(() => peer.parseMessage(golden.frames["round.ack"]!, ["welcome"]), {
      code: "E_UNEXPECTED_MESSAGE",
    });
  });

  it("reads only canonical base64url, one spelling per byte string", () => {
    assert.deepEqual(peer.fromB64u("AQ", "x"), Buffer.from([1]));
    assert.deepEqual(peer.fromB64u("AAE", "x", 2), Buffer.from([0, 1]));
    for (const text of ["AR", "AAF", "A", "AQ==", "AQ=", "+w", "/w", "A Q", ""]) {
      assert.throws(() => peer.fromB64u(text, "x", 1, 2), { code: "E_MALFORMED_MESSAGE" }, text);
    }
    assert.throws(() => peer.fromB64u("AAE", "x", 1), { code: "E_MALFORMED_MESSAGE" });
  });

  it("seals a phrase that opens per §6 with the server key and its associated data only", () => {
    // The envelope works the same for any RSA size; 2048 bits keep the test quick.
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const aad = peer.contributionAad(inputs.roundId!, contributorId, serverFingerprint);
    const phrase = hex("phrase");
    const envelope = peer.seal(publicKey, phrase, aad);
    assert.equal(envelope.alg, "RSA-OAEP-256/A256GCM");
    const open = (label: Buffer) => {
      const key = privateDecrypt(
        {
          key: privateKey,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: "sha256",
          oaepLabel: label,
        },
        peer.fromB64u(envelope.ek, "ek", 1, 1024),
      );
      assert.equal(key.length, 32);
      const decipher = createDecipheriv("aes-256-gcm", key, peer.fromB64u(envelope.iv, "iv", 12));
      decipher.setAAD(label);
      decipher.setAuthTag(peer.fromB64u(envelope.tag, "tag", 16));
      return Buffer.concat([
        decipher.update(peer.fromB64u(envelope.ct, "ct", 1, 4096)),
        decipher.final(),
      ]);
    };
    assert.deepEqual(open(aad), phrase);
    assert.throws(() => open(flipped(aad)));
  });
});
