// The independent peer (test/interop/independent-peer.mjs, written from docs/PROTOCOL.md alone)
// against dkeygen's golden wire frames (test/vectors/dkeygen-wire/frames.json): every LP and hash
// it builds must equal the golden bytes, every signature and MAC in the frames must check with its
// code, every server frame must pass its schema, and its contributor must answer the golden round
// (round.open, round.commits, round.receipt, round.closed) with exactly the golden commit and
// reveal, and hold a signed closing to what it was shown. The golden round key is the Ed25519
// seed 90 91 92 … af: signing with it reproduces the golden set, receipt and closing signatures,
// and lets these tests sign what a lying server would, under the key the golden round.open
// certifies.
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
  canonicalJson(value: unknown): string;
  paramsHash(purpose: string, params: unknown): Buffer;
  roundOpenData(open: Message): Buffer;
  serverCommitment(roundId: string, serverSecret: Uint8Array): Buffer;
  contributionAad(roundId: string, contributorId: string, serverFingerprint: string): Buffer;
  contributionCommitment(
    roundId: string,
    contributorId: string,
    serverFingerprint: string,
    envelope: Envelope,
  ): Buffer;
  commitData(
    roundId: string,
    contributorId: string,
    serverFingerprint: string,
    commitment: Uint8Array,
  ): Buffer;
  commitSetHash(roundId: string, serverFingerprint: string, commits: unknown): Buffer;
  commitSetSignatureData(roundId: string, setHash: Uint8Array): Buffer;
  revealData(
    roundId: string,
    contributorId: string,
    serverFingerprint: string,
    setHash: Uint8Array,
    commitment: Uint8Array,
  ): Buffer;
  receiptData(
    roundId: string,
    contributorId: string,
    setHash: Uint8Array,
    commitment: Uint8Array,
  ): Buffer;
  roundClosedData(closed: Message): Buffer;
  verifyServerSignature(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean;
  roundPublicKey(raw: Uint8Array): KeyObject | null;
  verifyRoundSignature(key: KeyObject | null, data: Uint8Array, signature: Uint8Array): boolean;
  seal(key: KeyObject, plaintext: Uint8Array, aad: Uint8Array): Envelope;
  parseMessage(text: string, allowed: string[]): Message;
  checkServerKey(
    hello: Message,
    expected?: string,
  ): { publicKey: KeyObject; serverFingerprint: string };
  ContributorRounds: new (options: {
    state: { contributorId: string; privateKey: KeyObject };
    publicKey: KeyObject;
    serverFingerprint: string;
    send(message: Message): void;
    emit(event: Record<string, unknown>): void;
    sealPhrase(open: Message): Envelope;
  }) => { handle(message: Message): void };
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
const commit = frame("commit");
const commits = frame("round.commits");
const reveal = frame("reveal");
const receipt = frame("round.receipt");
const closed = frame("round.closed");
const envelope = reveal.envelope as Envelope;
const b64 = (message: Message, field: string, n = 32) =>
  peer.fromB64u(str(message, field), field, n);
const identity = peer.fromB64u(str(join, "identity"), "identity", 32);
const contributorId = str(welcome, "contributorId");
const adminSecrets: AdminSecrets = {
  adminToken: hex("adminToken"),
  challenge: hex("challenge"),
  clientChallenge: hex("adminClientChallenge"),
  serverFingerprint,
};

/** An Ed25519 private key from its RFC 8032 seed, as RFC 8410 PKCS#8. */
const ed25519Key = (seed: Buffer) =>
  createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
    format: "der",
    type: "pkcs8",
  });
/** The contributor's key: the Ed25519 seed `inputs.contributorSeed`. */
const contributorKey = ed25519Key(hex("contributorSeed"));
/** The golden round key: the Ed25519 seed 90 91 92 … af (test/vectors/dkeygen-wire/README.md). */
const roundKey = ed25519Key(Buffer.from(Array.from({ length: 32 }, (_, i) => 0x90 + i)));
/** The raw 32 bytes of an Ed25519 key's public half. */
const rawPublic = (key: KeyObject) =>
  createPublicKey(key).export({ type: "spki", format: "der" }).subarray(12);

function flipped(bytes: Uint8Array): Buffer {
  const copy = Buffer.from(bytes);
  copy[0]! ^= 0x01;
  return copy;
}

describe("the independent peer against the golden wire frames", () => {
  it("builds every construction's LP and hash byte for byte as the golden lp", () => {
    const ids = { roundId: inputs.roundId!, contributorId, serverFingerprint };
    const commitment = peer.contributionCommitment(
      ids.roundId,
      contributorId,
      serverFingerprint,
      envelope,
    );
    const setHash = peer.commitSetHash(ids.roundId, serverFingerprint, commits.commits);
    const logIdentity = frame("log.checkpoint").identity as { origin: string; verifierKey: string };
    const checkpointNote = frame("log.checkpoint").checkpoint as string;
    const cosignTime = Buffer.from(
      frame("log.cosign").cosignature as string,
      "base64url",
    ).readBigUInt64BE(4);
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
      // The parameters of the golden admin.generate, whose round the golden round.open opens.
      paramsHash: peer.paramsHash("otp", frame("admin.generate").params),
      roundOpen: peer.roundOpenData(open),
      contributionAad: peer.contributionAad(ids.roundId, contributorId, serverFingerprint),
      // The commitment to the envelope the golden reveal carries; the commit signs it.
      contributionCommitment: commitment,
      commit: peer.commitData(ids.roundId, contributorId, serverFingerprint, commitment),
      commitSetHash: setHash,
      commitSet: peer.commitSetSignatureData(ids.roundId, setHash),
      reveal: peer.revealData(ids.roundId, contributorId, serverFingerprint, setHash, commitment),
      receipt: peer.receiptData(ids.roundId, contributorId, setHash, commitment),
      roundClosed: peer.roundClosedData(closed),
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
      // The log's identity (§15.2) and a cosignature's message (§14.4), from the log frames.
      logIdentity: peer.lp(
        "dkeygen/v1/log-identity",
        String(peer.VERSION),
        serverFingerprint,
        logIdentity.origin,
        logIdentity.verifierKey,
      ),
      cosignature: Buffer.concat([
        Buffer.from(`cosignature/v1\ntime ${cosignTime}\n`),
        Buffer.from(checkpointNote.slice(0, checkpointNote.lastIndexOf("\n\n") + 1)),
      ]),
      secretPhraseInput: peer.lp(
        "dkeygen/v1/secret-phrase",
        inputs.roundId!,
        hex("seed"),
        Buffer.from(Array.from({ length: 64 }, (_, i) => 0x70 + i)),
      ),
    };
    // The threshold constructions (§16: lp.dkg*, lp.refresh*, lp.signRequest) are not this peer's yet.
    const threshold = /^(dkg[A-Z]|refresh[A-Z]|signRequest$)/;
    assert.deepEqual(
      Object.keys(built).sort(),
      Object.keys(golden.lp)
        .filter((k) => !threshold.test(k))
        .sort(),
    );
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

  it("accepts hello's key only when RSA ≥ 3072 with e = 65537, the claimed fingerprint and the expected one", () => {
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
      // 3072 bits, but e = 3 (§4: e = 65537).
      helloWith(
        der(generateKeyPairSync("rsa", { modulusLength: 3072, publicExponent: 3 }).publicKey),
      ),
      // Not an SPKI at all.
      helloWith(Buffer.from("not a key")),
      helloWith(peer.fromB64u(server.publicKey!, "k", 1, 2048), peer.fingerprint(rsa(2048))),
    ];
    for (const message of refused) {
      assert.throws(() => peer.checkServerKey(message), { code: "E_PIN_MISMATCH" });
    }
    assert.throws(() => peer.checkServerKey(hello, peer.fingerprint(rsa(2048))), {
      code: "E_PIN_MISMATCH",
    });
  });

  it("finds its own hashes in the golden round: paramsHash, commitment, set hash, receipt", () => {
    const roundId = inputs.roundId!;
    assert.equal(peer.toB64u(peer.paramsHash("otp", { digits: 6 })), open.paramsHash);
    const commitment = peer.toB64u(
      peer.contributionCommitment(roundId, contributorId, serverFingerprint, envelope),
    );
    assert.equal(commit.commitment, commitment);
    const entries = commits.commits as { contributorId: string; commitment: string }[];
    assert.deepEqual(entries, [{ contributorId, commitment }]);
    const setHash = peer.toB64u(peer.commitSetHash(roundId, serverFingerprint, entries));
    assert.equal(reveal.setHash, setHash);
    assert.deepEqual(
      [receipt.contributorId, receipt.setHash, receipt.commitment],
      [contributorId, setHash, commitment],
    );
    // The golden round completed with the one committed contribution, over that same set.
    assert.deepEqual(
      [closed.outcome, closed.accepted, closed.setHash, closed.missing],
      ["completed", 1, setHash, undefined],
    );
    // Every item counts: another server or another entry makes another set.
    const other = { contributorId: (open.invited as string[])[1]!, commitment };
    assert.notEqual(
      peer.toB64u(peer.commitSetHash(roundId, "SHA256:x", entries)),
      setHash,
      "the server fingerprint is in the set hash",
    );
    assert.notEqual(
      peer.toB64u(peer.commitSetHash(roundId, serverFingerprint, [...entries, other])),
      setHash,
    );
  });

  it("hashes parameters as RFC 8785 canonical JSON (§13.2)", () => {
    assert.equal(
      peer.canonicalJson({
        issuer: "dkeygen",
        digits: 6,
        counter: 0,
        algorithm: "SHA1",
        account: "user",
      }),
      '{"account":"user","algorithm":"SHA1","counter":0,"digits":6,"issuer":"dkeygen"}',
    );
    // UTF-16 code units, not code points: U+1F600 (0xD83D 0xDE00) sorts before U+E000.
    assert.equal(peer.canonicalJson({ "\uE000": 2, "\u{1F600}": 1 }), '{"\u{1F600}":1,"\uE000":2}');
    assert.equal(
      peer.canonicalJson({ a: -0, b: [true, null, "x\ny"] }),
      '{"a":0,"b":[true,null,"x\\ny"]}',
    );
    assert.throws(() => peer.canonicalJson({ a: 1.5 }), { code: "E_INVALID_INPUT" });
    // §5: the parameters exactly as given, not completed with defaults (otp's digits is 6).
    assert.notEqual(
      peer.toB64u(peer.paramsHash("otp", { digits: "6" })),
      open.paramsHash,
      "a string is not the number it spells",
    );
    assert.notEqual(
      peer.toB64u(peer.paramsHash("otp", {})),
      open.paramsHash,
      "no parameters is not the defaults",
    );
    assert.notEqual(peer.toB64u(peer.paramsHash("hotp", { digits: 6 })), open.paramsHash);
  });

  it("signs the golden join, commit and reveal byte for byte with the contributor's seed", () => {
    for (const [name, message] of [
      ["join", join],
      ["commit", commit],
      ["reveal", reveal],
    ] as const) {
      const data = Buffer.from(golden.lp[name]!, "hex");
      assert.equal(peer.toB64u(sign(null, data, contributorKey)), message.signature, name);
    }
  });

  it("verifies the server's welcome, admin.ready and round.open signatures with its RSA key", () => {
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
    // The round key is under round.open's signature: another key there breaks it.
    const swapped = {
      ...open,
      roundKey: peer.toB64u(rawPublic(generateKeyPairSync("ed25519").privateKey)),
    };
    const sig = b64(open, "signature", 384);
    assert.equal(peer.verifyServerSignature(serverKey, peer.roundOpenData(swapped), sig), false);
    assert.equal(
      peer.toB64u(peer.serverCommitment(inputs.roundId!, hex("serverSecret"))),
      open.serverCommitment,
    );
  });

  /** The golden round's three round-key statements: name, LP, signature. */
  const roundSigned = (): [string, Buffer, string][] => {
    const roundId = inputs.roundId!;
    const setHash = b64(reveal, "setHash");
    return [
      ["round.commits", peer.commitSetSignatureData(roundId, setHash), str(commits, "signature")],
      [
        "round.receipt",
        peer.receiptData(roundId, contributorId, setHash, b64(commit, "commitment")),
        str(receipt, "signature"),
      ],
      ["round.closed", peer.roundClosedData(closed), str(closed, "signature")],
    ];
  };

  it("verifies round.commits, round.receipt and round.closed with the round key round.open names", () => {
    assert.equal(open.roundKey, peer.toB64u(rawPublic(roundKey)), "the seed 90 91 92 … is it");
    const key = peer.roundPublicKey(b64(open, "roundKey"));
    const otherKey = peer.roundPublicKey(rawPublic(generateKeyPairSync("ed25519").privateKey));
    for (const [name, data, signature] of roundSigned()) {
      const sig = peer.fromB64u(signature, name, 64);
      assert.equal(peer.verifyRoundSignature(key, data, sig), true, name);
      assert.equal(peer.verifyRoundSignature(key, data, flipped(sig)), false, name);
      assert.equal(peer.verifyRoundSignature(key, flipped(data), sig), false, name);
      assert.equal(peer.verifyRoundSignature(otherKey, data, sig), false, name);
      // Not the server's RSA key's (§5: the round key signs these, not the server key).
      assert.equal(peer.verifyServerSignature(serverKey, data, sig), false, name);
    }
  });

  it("signs the golden round.commits, round.receipt and round.closed byte for byte with the round key", () => {
    // Ed25519 is deterministic (RFC 8032 §5.1.6): the same key and LP give the same signature.
    for (const [name, data, signature] of roundSigned()) {
      assert.equal(peer.toB64u(sign(null, data, roundKey)), signature, name);
    }
  });

  it("verifies round.closed only as signed: outcome, accepted, setHash and missing, not reason", () => {
    const sig = peer.fromB64u(str(closed, "signature"), "signature", 64);
    const key = peer.roundPublicKey(b64(open, "roundKey"));
    const verifies = (change: Record<string, unknown>) =>
      peer.verifyRoundSignature(key, peer.roundClosedData({ ...closed, ...change }), sig);
    assert.equal(verifies({}), true);
    assert.equal(verifies({ reason: "for people, not evidence" }), true);
    const invited = open.invited as string[];
    for (const change of [
      { outcome: "aborted" },
      { accepted: 0 },
      { accepted: 10 },
      { setHash: undefined },
      { setHash: peer.toB64u(Buffer.alloc(32)) },
      { missing: [invited[1]] },
      { roundId: peer.toB64u(Buffer.alloc(16)) },
    ]) {
      assert.equal(verifies(change), false, JSON.stringify(change));
    }
    // An absent setHash and m = 0 are zero-length items and "0", not left out.
    const failed = peer.roundClosedData({
      ...closed,
      outcome: "failed",
      accepted: 0,
      setHash: undefined,
    });
    assert.equal(failed.subarray(-9).toString("hex"), "00000000" + "00000001" + "30");
    const aborted = peer.roundClosedData({ ...closed, outcome: "aborted", missing: [invited[1]] });
    const tail = peer.lp(b64(closed, "setHash"), "1", invited[1]!);
    assert.equal(aborted.subarray(-tail.length).toString("hex"), tail.toString("hex"));
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
      "round.commits",
      "round.receipt",
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
    for (const v of [2, 3]) {
      const old = JSON.stringify({ ...frame("round.closed"), v });
      assert.throws(() => peer.parseMessage(old, ["round.closed"]), { code: "E_VERSION_MISMATCH" });
    }
    assert.throws(() => peer.parseMessage(golden.frames["round.closed"]!, ["welcome"]), {
      code: "E_UNEXPECTED_MESSAGE",
    });
    // Version 2's round messages are unknown types now.
    const ack = JSON.stringify({ type: "round.ack", v: peer.VERSION, roundId: inputs.roundId });
    assert.throws(() => peer.parseMessage(ack, ["round.ack"]), { code: "E_MALFORMED_MESSAGE" });
  });

  it("holds round messages to their §4 rows: invited, commits, outcome, missing", () => {
    const refused = (name: string, change: Record<string, unknown>) => {
      const text = JSON.stringify({ ...frame(name), ...change });
      assert.throws(
        () => peer.parseMessage(text, [name]),
        { code: "E_MALFORMED_MESSAGE" },
        JSON.stringify(change),
      );
    };
    const accepted = (name: string, change: Record<string, unknown>) => {
      const text = JSON.stringify({ ...frame(name), ...change });
      assert.equal(peer.parseMessage(text, [name]).type, name, JSON.stringify(change));
    };
    const invited = open.invited as string[];
    const ids = Array.from({ length: 257 }, (_, i) =>
      peer.fingerprint(Buffer.from(`contributor ${i}`)),
    ).sort();
    refused("round.open", { invited: [] });
    refused("round.open", { invited: [invited[0], invited[1], invited[0]] });
    accepted("round.open", { invited: ids.slice(0, 256) });
    refused("round.open", { invited: ids });
    refused("round.open", { paramsHash: peer.toB64u(Buffer.alloc(31)) });
    refused("round.open", { roundKey: peer.toB64u(Buffer.alloc(31)) });
    refused("round.open", { roundKey: peer.toB64u(Buffer.alloc(33)) });
    refused("round.open", { roundKey: undefined });
    // The round key's signatures are Ed25519, 64 bytes: an RSA-3072 one (384 bytes) is no
    // round.commits, round.receipt or round.closed at all, nor is one byte less.
    for (const name of ["round.commits", "round.receipt", "round.closed"]) {
      refused(name, { signature: peer.toB64u(Buffer.alloc(384, 1)) });
      refused(name, { signature: peer.toB64u(Buffer.alloc(63, 1)) });
      accepted(name, { signature: peer.toB64u(Buffer.alloc(64, 1)) });
    }
    const entry = (commits.commits as Message[])[0]!;
    const other = { contributorId: invited[1], commitment: entry.commitment };
    accepted("round.commits", { commits: [entry, other] });
    refused("round.commits", { commits: [other, entry] });
    refused("round.commits", { commits: [entry, entry] });
    refused("round.commits", { commits: [] });
    refused("round.commits", { commits: [{ ...entry, extra: 1 }] });
    accepted("round.closed", { outcome: "aborted", accepted: 1, missing: [invited[0]] });
    accepted("round.closed", { outcome: "aborted", accepted: 0, missing: ids.slice(0, 256) });
    accepted("round.closed", { outcome: "failed", accepted: 0 });
    accepted("round.closed", { outcome: "failed", accepted: 0, setHash: undefined });
    accepted("round.closed", { accepted: 256 });
    refused("round.closed", { accepted: 257 });
    refused("round.closed", { accepted: -1 });
    refused("round.closed", { outcome: "aborted", missing: [invited[1], invited[0]] });
    refused("round.closed", { outcome: "aborted", missing: ids });
    refused("round.closed", { outcome: "aborted", missing: [] });
    refused("round.closed", { outcome: "rerun" });
    // §4: missing only when aborted; failed: 0 accepted; setHash absent only when failed.
    refused("round.closed", { outcome: "completed", missing: [invited[0]] });
    refused("round.closed", { outcome: "failed", accepted: 1 });
    refused("round.closed", { setHash: undefined });
    refused("round.closed", { outcome: "aborted", missing: [invited[0]], setHash: undefined });
    refused("round.closed", { setHash: peer.toB64u(Buffer.alloc(31)) });
    refused("round.closed", { signature: undefined });
    refused("round.closed", { reason: "x".repeat(513) });
    accepted("round.closed", { reason: "x".repeat(512) });
    refused("round.receipt", { setHash: "AAAA" });
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

describe("the independent contributor answers the golden round", () => {
  const roundId = inputs.roundId!;

  /** A contributor with the golden identity whose every phrase seals to `sealed`. */
  function contributor(options: { publicKey?: KeyObject; id?: string; sealed?: Envelope } = {}) {
    const sent: Message[] = [];
    const events: Record<string, unknown>[] = [];
    const rounds = new peer.ContributorRounds({
      state: { contributorId: options.id ?? contributorId, privateKey: contributorKey },
      publicKey: options.publicKey ?? serverKey,
      serverFingerprint,
      send: (message) => sent.push(message),
      emit: (event) => events.push(event),
      sealPhrase: () => options.sealed ?? envelope,
    });
    const last = () => events.at(-1) ?? {};
    return { rounds, sent, events, last };
  }

  /** Ed25519 by the golden round key (the one the golden round.open certifies), or by `key`. */
  const signRound = (data: Buffer, key = roundKey) => peer.toB64u(sign(null, data, key));
  /** A round.commits of the golden round with `entries`, signed by the round key or `key`. */
  const signedCommits = (
    entries: { contributorId: string; commitment: string }[],
    key = roundKey,
  ): Message => {
    const setHash = peer.commitSetHash(roundId, serverFingerprint, entries);
    return {
      ...commits,
      commits: entries,
      signature: signRound(peer.commitSetSignatureData(roundId, setHash), key),
    };
  };

  it("sends exactly the golden commit and reveal, and takes the golden receipt", () => {
    const { rounds, sent, events, last } = contributor();
    rounds.handle(open);
    assert.equal(JSON.stringify(sent), `[${golden.frames.commit}]`);
    assert.deepEqual(last(), {
      event: "committed",
      roundId,
      purpose: "otp",
      paramsHash: open.paramsHash,
      invited: 2,
      commitment: commit.commitment,
    });
    rounds.handle(commits);
    assert.equal(JSON.stringify(sent[1]), golden.frames.reveal);
    assert.deepEqual(last(), { event: "revealed", roundId, setHash: reveal.setHash, commits: 1 });
    rounds.handle(receipt);
    assert.deepEqual(last(), { event: "receipt", roundId, setHash: reveal.setHash });
    rounds.handle(closed);
    assert.deepEqual(last(), {
      event: "closed",
      roundId,
      outcome: "completed",
      accepted: 1,
      missing: [],
      setHash: reveal.setHash,
    });
    assert.equal(sent.length, 2);
    assert.equal(events.length, 4, "nothing contradicted");
  });

  it("answers each round once, and each phase once", () => {
    const { rounds, sent, events, last } = contributor();
    rounds.handle(open);
    rounds.handle(open);
    assert.deepEqual([last().code, sent.length], ["E_DUPLICATE_CONTRIBUTION", 1]);
    rounds.handle(receipt);
    assert.deepEqual([last().code, sent.length], ["E_UNEXPECTED_MESSAGE", 1], "no reveal yet");
    rounds.handle(commits);
    rounds.handle(commits);
    assert.deepEqual([last().code, sent.length], ["E_UNEXPECTED_MESSAGE", 2]);
    rounds.handle(receipt);
    rounds.handle(receipt);
    assert.deepEqual(
      [last().code, events.filter((e) => e.event === "receipt").length],
      ["E_UNEXPECTED_MESSAGE", 1],
    );
    // After round.closed the round is over: a replayed open or set gets nothing.
    rounds.handle(frame("round.closed"));
    rounds.handle(open);
    rounds.handle(commits);
    assert.equal(sent.length, 2);
  });

  it("commits to nothing when round.open's signature fails or it is not invited", () => {
    const forged = contributor();
    const signature = peer.toB64u(flipped(peer.fromB64u(str(open, "signature"), "s", 1, 512)));
    forged.rounds.handle({ ...open, signature });
    assert.deepEqual([forged.last().code, forged.sent.length], ["E_BAD_SIGNATURE", 0]);
    // Invited by a signature that verifies, but the list names others.
    const uninvited = contributor({ id: peer.fingerprint(Buffer.from("not invited")) });
    uninvited.rounds.handle(open);
    assert.deepEqual([uninvited.last().code, uninvited.sent.length], ["E_WRONG_ROUND", 0]);
    // The forged invitation did not use up the round: the genuine one is answered.
    forged.rounds.handle(open);
    assert.equal(forged.sent[0]?.type, "commit");
  });

  it("reveals nothing against a set it cannot verify, that leaves it out or holds another commitment", () => {
    // A forged set is ignored; the server's own set is still answered after it.
    const forged = contributor();
    forged.rounds.handle(open);
    const signature = peer.toB64u(flipped(peer.fromB64u(str(commits, "signature"), "s", 1, 512)));
    forged.rounds.handle({ ...commits, signature });
    assert.deepEqual([forged.last().code, forged.sent.length], ["E_BAD_SIGNATURE", 1]);
    forged.rounds.handle(commits);
    assert.equal(forged.sent[1]?.type, "reveal");

    // The golden set signed by the golden server holds the golden commitment, not a fresh one.
    const fresh = contributor({ sealed: { ...envelope, iv: peer.toB64u(Buffer.alloc(12)) } });
    fresh.rounds.handle(open);
    fresh.rounds.handle(commits);
    assert.deepEqual([fresh.last().code, fresh.sent.length], ["E_COMMITMENT_MISMATCH", 1]);
    fresh.rounds.handle(commits);
    assert.equal(fresh.sent.length, 1, "never revealed in that round");

    // A set the round key signed without us.
    const left = contributor();
    left.rounds.handle(open);
    const others = [
      { contributorId: (open.invited as string[])[1]!, commitment: str(commit, "commitment") },
    ];
    left.rounds.handle(signedCommits(others));
    assert.equal(left.last().event, "left-out");
    assert.equal(left.sent.length, 1);
  });

  it("takes only a receipt for its own reveal under the round key's signature", () => {
    const { rounds, events, last } = contributor();
    rounds.handle(open);
    rounds.handle(commits);
    const flippedSig = peer.toB64u(flipped(peer.fromB64u(str(receipt, "signature"), "s", 1, 512)));
    rounds.handle({ ...receipt, signature: flippedSig });
    assert.equal(last().code, "E_BAD_SIGNATURE");
    for (const change of [
      { contributorId: (open.invited as string[])[1] },
      { setHash: peer.toB64u(Buffer.alloc(32)) },
      { commitment: peer.toB64u(Buffer.alloc(32)) },
    ]) {
      rounds.handle({ ...receipt, ...change });
      assert.equal(last().code, "E_UNEXPECTED_MESSAGE", JSON.stringify(change));
    }
    assert.equal(events.filter((e) => e.event === "receipt").length, 0);
    rounds.handle(receipt);
    assert.equal(last().event, "receipt");
  });

  /** round.closed of the golden round with `change` (undefined: left out), signed by the round
   *  key or `key`. */
  const signedClosed = (change: Record<string, unknown>, key = roundKey): Message => {
    const message: Message = { ...closed, ...change };
    for (const [field, value] of Object.entries(message)) {
      if (value === undefined) delete message[field];
    }
    return { ...message, signature: signRound(peer.roundClosedData(message), key) };
  };
  const mine = { contributorId, commitment: str(commit, "commitment") };
  const other = (open.invited as string[]).find((id) => id !== contributorId)!;
  const theirs = { contributorId: other, commitment: peer.toB64u(Buffer.alloc(32, 7)) };
  const pair = [mine, theirs].sort((a, b) =>
    Buffer.compare(Buffer.from(a.contributorId), Buffer.from(b.contributorId)),
  );
  const hashOf = (entries: (typeof mine)[]) =>
    peer.toB64u(peer.commitSetHash(roundId, serverFingerprint, entries));
  const pairHash = hashOf(pair);

  /** A contributor through the golden round, up to the round key's receipt for `entries`. */
  function upTo(stage: "commit" | "reveal" | "receipt", entries = pair) {
    const c = contributor();
    c.rounds.handle(open);
    if (stage === "commit") return c;
    c.rounds.handle(signedCommits(entries));
    assert.equal(c.last().event, "revealed");
    if (stage === "reveal") return c;
    const setHash = peer.commitSetHash(roundId, serverFingerprint, entries);
    const signed = peer.receiptData(roundId, contributorId, setHash, b64(commit, "commitment"));
    c.rounds.handle({ ...receipt, setHash: peer.toB64u(setHash), signature: signRound(signed) });
    assert.equal(c.last().event, "receipt");
    return c;
  }

  /** The closed event and the reasons of the contradictions `closing` gave `c`. */
  function close(c: ReturnType<typeof contributor>, change: Record<string, unknown>) {
    const before = c.events.length;
    c.rounds.handle(signedClosed(change));
    const events = c.events.slice(before);
    assert.deepEqual(events[0], {
      event: "closed",
      roundId,
      outcome: change.outcome,
      accepted: change.accepted,
      missing: change.missing ?? [],
      setHash: change.setHash ?? null,
    });
    return events.slice(1).map((event) => {
      assert.equal(event.event, "contradicted");
      return String(event.why);
    });
  }

  it("holds a signed closing to its receipt and to the commit set it countersigned", () => {
    const stranger = peer.fingerprint(Buffer.from("stranger"));
    const cases: [string, Record<string, unknown>, RegExp | null][] = [
      ["completed, both used", { outcome: "completed", accepted: 2, setHash: pairHash }, null],
      [
        "aborted naming the other",
        { outcome: "aborted", accepted: 1, missing: [other], setHash: pairHash },
        null,
      ],
      ["failed after the set", { outcome: "failed", accepted: 0, setHash: pairHash }, null],
      [
        "aborted naming us",
        { outcome: "aborted", accepted: 1, missing: [contributorId], setHash: pairHash },
        /^named as missing, but the server signed a receipt for our reveal$/,
      ],
      [
        "completed with one",
        { outcome: "completed", accepted: 1, setHash: pairHash },
        /^completed with 1 contributions, not the 2 committed$/,
      ],
      [
        "completed over another set",
        { outcome: "completed", accepted: 2, setHash: hashOf([mine]) },
        /^names another commit set than the one the server signed for us$/,
      ],
      [
        "failed before any set",
        { outcome: "failed", accepted: 0, setHash: undefined },
        /^names no commit set, but the server signed one for this round$/,
      ],
      [
        "aborted naming one outside the set",
        { outcome: "aborted", accepted: 1, missing: [stranger], setHash: pairHash },
        /^names as missing a contributor outside the commit set$/,
      ],
      [
        "more accepted and missing than committed",
        { outcome: "aborted", accepted: 2, missing: [other], setHash: pairHash },
        /^2 accepted and 1 missing of 2 committed$/,
      ],
    ];
    for (const [name, change, why] of cases) {
      const reasons = close(upTo("receipt"), change);
      if (why === null) assert.deepEqual(reasons, [], name);
      else {
        assert.equal(reasons.length, 1, name);
        assert.match(reasons[0]!, why, name);
      }
    }
    // The evidence travels with the contradiction: the receipt the round key signed, which
    // anyone holding the round.open can check.
    const named = upTo("receipt");
    named.rounds.handle(
      signedClosed({
        outcome: "aborted",
        accepted: 1,
        missing: [contributorId],
        setHash: pairHash,
      }),
    );
    const evidence = named.last().receipt as Message;
    assert.equal(evidence.setHash, pairHash);
    assert.equal(
      peer.verifyRoundSignature(
        peer.roundPublicKey(b64(open, "roundKey")),
        peer.receiptData(
          roundId,
          contributorId,
          b64(evidence, "setHash"),
          b64(commit, "commitment"),
        ),
        b64(evidence, "signature", 64),
      ),
      true,
    );
  });

  it("holds nothing against a closing it has no evidence for, but what its set says", () => {
    const abortedNamingUs = {
      outcome: "aborted",
      accepted: 1,
      missing: [contributorId],
      setHash: pairHash,
    };
    // No receipt: our word that we revealed is no evidence; no set seen: nothing to compare.
    assert.deepEqual(close(upTo("reveal"), abortedNamingUs), []);
    assert.deepEqual(close(upTo("commit"), { ...abortedNamingUs, setHash: hashOf([mine]) }), []);
    // Left out of a signed set: the closing must name that set.
    const leftOut = () => {
      const c = upTo("commit");
      c.rounds.handle(signedCommits([theirs]));
      assert.equal(c.last().event, "left-out");
      return c;
    };
    const completed = { outcome: "completed", accepted: 1, setHash: hashOf([theirs]) };
    assert.deepEqual(close(leftOut(), completed), []);
    assert.deepEqual(close(leftOut(), { ...completed, setHash: pairHash }), [
      "names another commit set than the one the server signed for us",
    ]);
    // In the set with a commitment that is not ours: we revealed nothing, so it cannot complete.
    const impostor = contributor({ sealed: { ...envelope, iv: peer.toB64u(Buffer.alloc(12)) } });
    impostor.rounds.handle(open);
    impostor.rounds.handle(signedCommits(pair));
    assert.equal(impostor.last().code, "E_COMMITMENT_MISMATCH");
    assert.deepEqual(close(impostor, { outcome: "completed", accepted: 2, setHash: pairHash }), [
      "completed, but we are in the commit set and never revealed",
    ]);
  });

  it("ignores a round.closed that is not the round key's, and a second one", () => {
    const { rounds, events, last } = contributor();
    rounds.handle(open);
    rounds.handle(commits);
    rounds.handle(receipt);
    const signature = peer.toB64u(flipped(b64(closed, "signature", 64)));
    for (const forged of [
      { ...closed, signature },
      // The golden statement, signed by an Ed25519 key that no round.open certified.
      signedClosed({}, generateKeyPairSync("ed25519").privateKey),
      // The golden signature on another statement: aborted, naming us.
      { ...closed, outcome: "aborted", missing: [contributorId] },
      { ...closed, accepted: 0 },
    ]) {
      rounds.handle(forged);
      assert.deepEqual([last().type, last().code], ["round.closed", "E_BAD_SIGNATURE"]);
    }
    assert.equal(events.filter((e) => e.event === "closed").length, 0);
    // The round was not ended by them: the genuine closing is checked against the receipt.
    rounds.handle(closed);
    assert.deepEqual([last().event, last().setHash], ["closed", reveal.setHash]);
    // The same statement again (a replay; reason is not signed): nothing new.
    rounds.handle(closed);
    assert.deepEqual([last().type, last().code], ["round.closed", "E_UNEXPECTED_MESSAGE"]);
    rounds.handle({ ...closed, reason: "said again" });
    assert.deepEqual([last().type, last().code], ["round.closed", "E_UNEXPECTED_MESSAGE"]);
    assert.equal(events.filter((e) => e.event === "closed").length, 1);
    assert.equal(events.filter((e) => e.event === "contradicted").length, 0);
  });

  it("checks a round's set, receipt and closing with that round's key, and only after its round.open", () => {
    // A server key of our own (2048 bits: quick; the size is hello's check, not this one's)
    // opens two rounds: the golden one, with the golden round key, and a second with another.
    const server = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const signPss = (data: Buffer) =>
      peer.toB64u(
        sign("sha256", data, {
          key: server.privateKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: 32,
        }),
      );
    const opened = (change: Record<string, unknown>): Message => {
      const message = { ...open, ...change };
      return { ...message, signature: signPss(peer.roundOpenData(message)) };
    };
    const secondKey = generateKeyPairSync("ed25519").privateKey;
    const secondId = peer.toB64u(Buffer.alloc(16, 2));
    const c = contributor({ publicKey: server.publicKey });
    c.rounds.handle(opened({}));
    c.rounds.handle(opened({ roundId: secondId, roundKey: peer.toB64u(rawPublic(secondKey)) }));
    assert.equal(c.sent.length, 2, "both rounds answered");
    // The second round's key signs nothing of the golden round, though a round.open we answered
    // certified it.
    c.rounds.handle(signedCommits([mine], secondKey));
    assert.deepEqual([c.last().code, c.sent.length], ["E_BAD_SIGNATURE", 2]);
    c.rounds.handle(signedCommits([mine]));
    assert.deepEqual([c.last().event, c.sent.length], ["revealed", 3]);
    const setHash = peer.commitSetHash(roundId, serverFingerprint, [mine]);
    const receiptData = peer.receiptData(
      roundId,
      contributorId,
      setHash,
      b64(commit, "commitment"),
    );
    c.rounds.handle({ ...receipt, signature: signRound(receiptData, secondKey) });
    assert.equal(c.last().code, "E_BAD_SIGNATURE");
    c.rounds.handle({ ...receipt, signature: signRound(receiptData) });
    assert.equal(c.last().event, "receipt");
    const completed = { outcome: "completed", accepted: 1, setHash: peer.toB64u(setHash) };
    c.rounds.handle(signedClosed(completed, secondKey));
    assert.deepEqual([c.last().type, c.last().code], ["round.closed", "E_BAD_SIGNATURE"]);
    c.rounds.handle(signedClosed(completed));
    assert.equal(c.last().event, "closed");
    // The second round closes under its own key.
    const second = { roundId: secondId, outcome: "failed", accepted: 0 };
    const secondClosed = { ...second, type: "round.closed", v: peer.VERSION };
    c.rounds.handle({
      ...secondClosed,
      signature: signRound(peer.roundClosedData(secondClosed)),
    });
    assert.deepEqual([c.last().roundId, c.last().code], [secondId, "E_BAD_SIGNATURE"]);
    c.rounds.handle({
      ...secondClosed,
      signature: signRound(peer.roundClosedData(secondClosed), secondKey),
    });
    assert.deepEqual([c.last().event, c.last().roundId], ["closed", secondId]);

    // A round.open whose roundKey someone on the path replaced (the server's signature kept) is
    // no invitation, and that key then signs nothing: no round.open of ours certifies it.
    const relayKey = generateKeyPairSync("ed25519").privateKey;
    const d = contributor();
    d.rounds.handle({ ...open, roundKey: peer.toB64u(rawPublic(relayKey)) });
    assert.deepEqual([d.last().code, d.sent.length], ["E_BAD_SIGNATURE", 0]);
    d.rounds.handle(signedClosed({}, relayKey));
    assert.deepEqual([d.last().type, d.last().code], ["round.closed", "E_WRONG_ROUND"]);
    // Even the genuine closing is taken only from a contributor holding the round's round.open.
    d.rounds.handle(closed);
    assert.deepEqual([d.last().type, d.last().code], ["round.closed", "E_WRONG_ROUND"]);
    assert.equal(d.events.filter((e) => e.event === "closed").length, 0);
  });

  it("calls out a server that signs two different closings of one round", () => {
    const c = upTo("receipt");
    const first = signedClosed({ outcome: "completed", accepted: 2, setHash: pairHash });
    const second = signedClosed({
      outcome: "aborted",
      accepted: 1,
      missing: [other],
      setHash: pairHash,
    });
    c.rounds.handle(first);
    assert.equal(c.last().event, "closed");
    c.rounds.handle(second);
    assert.deepEqual(c.last(), {
      event: "contradicted",
      roundId,
      why: "the server signed two different closings of this round",
      closings: [first, second],
    });
    assert.equal(c.events.filter((e) => e.event === "closed").length, 1);
  });
});
