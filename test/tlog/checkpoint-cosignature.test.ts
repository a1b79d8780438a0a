/**
 * C2SP tlog-checkpoint and tlog-cosignature/v1: real checkpoints signed by outside implementations
 * (the Go checksum database), the spec's examples, the strict format rules, and cosignatures
 * bound to their timestamp, their checkpoint and their signature type.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { base64 } from "@scure/base";
import { type ErrorCode, isDkeygenError } from "../../src/errors.js";
import {
  type Checkpoint,
  formatCheckpoint,
  openCheckpoint,
  parseCheckpoint,
  signCheckpoint,
} from "../../src/tlog/checkpoint.js";
import {
  cosignatureSigner,
  cosignaturesOf,
  cosignatureTimestamp,
  cosignatureVerifier,
  cosignedMessage,
  cosignNote,
} from "../../src/tlog/cosignature.js";
import { MemoryHashStore } from "../../src/tlog/hash-store.js";
import { hashLeaf, verifyConsistency } from "../../src/tlog/merkle.js";
import { openNote, parseNote } from "../../src/tlog/note.js";
import {
  ed25519NoteSigner,
  ed25519NoteVerifier,
  noteKeyId,
  parseVerifierKey,
  SIGNATURE_TYPE_COSIGNATURE_V1,
  SIGNATURE_TYPE_ED25519,
} from "../../src/tlog/note-keys.js";
import { readVector } from "../helpers/paths.js";
import { leafData } from "./naive-merkle.js";
import { goSignerSeed, type NoteVectors } from "./note-vectors.js";

const v = readVector<NoteVectors>("tlog/signed-notes.json");
const fails = (fn: () => unknown, code: ErrorCode) =>
  assert.throws(fn, (e: unknown) => isDkeygenError(e, code));
const malformed = (fn: () => unknown) => fails(fn, "E_INVALID_INPUT");

const ORIGIN = "dkeygen.example/log";
const logSigner = ed25519NoteSigner(ORIGIN, new Uint8Array(32).fill(1));
const logVerifier = ed25519NoteVerifier(logSigner.verifierKey);
const witnessA = cosignatureSigner(
  "witness.example/a",
  new Uint8Array(32).fill(2),
  () => 1_700_000_000,
);
const witnessB = cosignatureSigner(
  "witness.example/b",
  new Uint8Array(32).fill(3),
  () => 1_700_000_009,
);
const verifierA = cosignatureVerifier(witnessA.verifierKey);
const verifierB = cosignatureVerifier(witnessB.verifierKey);

function checkpointOf(size: number, store = new MemoryHashStore()): Checkpoint {
  while (store.size < size) store.append(hashLeaf(leafData(store.size)));
  return { origin: ORIGIN, size, rootHash: store.root(size), extensions: [] };
}

test("golang.org/x/mod's sumdb test checkpoint opens, and our signer rewrites it byte for byte", () => {
  const c = v.goSumdbClientCheckpoint;
  const log = ed25519NoteVerifier(c.verifierKey);
  const { checkpoint } = openCheckpoint(c.note, "go.sum database tree", log);
  assert.equal(checkpoint.size, 6);
  assert.equal(base64.encode(checkpoint.rootHash), "wc4SkQt52o5W2nQ8To2ARs+mWuUJjss+sdleoiqxMmM=");
  const signer = ed25519NoteSigner("localhost.localdev/sumdb", goSignerSeed(c.signerKey));
  assert.equal(signer.verifierKey, c.verifierKey);
  assert.equal(signCheckpoint(checkpoint, signer), c.note);
});

test("a production checkpoint of sum.golang.org verifies, with its three extra signatures", () => {
  const s = v.sumGolangOrgCheckpoint;
  const log = ed25519NoteVerifier(s.verifierKey);
  const others = s.extraVerifierKeys.map(ed25519NoteVerifier);
  const note = s.note + s.extraSignatureLines.join("");
  const { checkpoint, note: opened } = openCheckpoint(note, s.origin, log, others);
  assert.equal(checkpoint.size, s.size);
  assert.equal(base64.encode(checkpoint.rootHash), s.rootHash);
  assert.equal(opened.verified.length, 4);
  // Another origin, a note the log did not sign, a log key that is not the log's: refused.
  fails(() => openCheckpoint(note, "sum.golang.org", log, others), "E_BAD_SIGNATURE");
  const withoutLog = `${s.note.slice(0, s.note.lastIndexOf("\n\n") + 2)}${s.extraSignatureLines.join("")}`;
  fails(() => openCheckpoint(withoutLog, s.origin, log, others), "E_BAD_SIGNATURE");
  fails(() => openCheckpoint(note, s.origin, logVerifier), "E_BAD_SIGNATURE");
});

test("checkpoint text: format and parse agree, extension lines included", () => {
  const cp: Checkpoint = { ...checkpointOf(5), extensions: ["store-head abc", "x"] };
  const text = formatCheckpoint(cp);
  assert.equal(text.split("\n").length, 6);
  assert.deepEqual(parseCheckpoint(text), cp);
  const empty = checkpointOf(0);
  assert.equal(
    formatCheckpoint(empty),
    `${ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n`,
  );
  const opened = openCheckpoint(signCheckpoint(cp, logSigner), ORIGIN, logVerifier);
  assert.deepEqual(opened.checkpoint, cp);
});

test("checkpoint text: every rule of tlog-checkpoint is enforced, at its boundary", () => {
  const root = base64.encode(new Uint8Array(32));
  const ok = (size: string, rest = "") => parseCheckpoint(`o\n${size}\n${root}\n${rest}`);
  assert.equal(ok("0").size, 0);
  assert.equal(ok(String(Number.MAX_SAFE_INTEGER)).size, Number.MAX_SAFE_INTEGER);
  assert.deepEqual(ok("7", "ext\n").extensions, ["ext"]);
  for (const size of ["00", "01", "-1", "+1", "1.0", "0x10", " 1", "", "9007199254740992"]) {
    malformed(() => ok(size));
  }
  malformed(() => ok("1", "\n")); // an empty extension line
  malformed(() => parseCheckpoint(`\n1\n${root}\n`)); // empty origin
  malformed(() => parseCheckpoint("o\n1\n")); // two lines
  malformed(() => parseCheckpoint(`o\n1\n${root}`)); // no final newline
  malformed(() => parseCheckpoint(`o\n1\n${base64.encode(new Uint8Array(31))}\n`));
  malformed(() => parseCheckpoint(`o\n1\n${base64.encode(new Uint8Array(33))}\n`));
  malformed(() => parseCheckpoint(`o\n1\n${root.replace("=", "")}\n`));
  malformed(() => parseCheckpoint(`o\n1\n${root.slice(0, -2)}B=\n`)); // non-zero padding bits
  malformed(() => formatCheckpoint({ ...checkpointOf(1), origin: "" }));
  malformed(() => formatCheckpoint({ ...checkpointOf(1), origin: "a\nb" }));
  malformed(() => formatCheckpoint({ ...checkpointOf(1), size: -1 }));
  malformed(() => formatCheckpoint({ ...checkpointOf(1), extensions: [""] }));
  malformed(() => formatCheckpoint({ ...checkpointOf(1), extensions: ["a\r"] }));
  malformed(() => formatCheckpoint({ ...checkpointOf(1), rootHash: new Uint8Array(31) }));
});

test("the C2SP cosignature example: its timestamp, key ID bytes and the exact message it signs", () => {
  const e = v.c2spCosignatureExample;
  const note = parseNote(e.note);
  const cosig = note.signatures.find((s) => s.name === e.cosignerName)!;
  assert.equal(cosig.keyId, 0x8d66cf3f);
  assert.equal(cosignatureTimestamp(cosig.signature), e.timestamp);
  const message = cosignedMessage(new TextEncoder().encode(note.text), e.timestamp);
  assert.equal(new TextDecoder().decode(message), e.signedMessage);
  assert.equal(parseCheckpoint(note.text).size, 20852163);
});

test("cosignatures: witnesses cosign, the checkpoint opens with the log's and their keys, timestamps read back", () => {
  const signedByLog = signCheckpoint(checkpointOf(9), logSigner);
  const cosigned = cosignNote(cosignNote(signedByLog, witnessA), witnessB);
  const { note } = openCheckpoint(cosigned, ORIGIN, logVerifier, [verifierA, verifierB]);
  assert.deepEqual(
    cosignaturesOf(note.verified, [verifierA, verifierB]).map((c) => [c.name, c.timestamp]),
    [
      ["witness.example/a", 1_700_000_000],
      ["witness.example/b", 1_700_000_009],
    ],
  );
  // A client that knows only witness A counts only A; B's line is set aside unverified.
  const onlyA = openCheckpoint(cosigned, ORIGIN, logVerifier, [verifierA]);
  assert.equal(cosignaturesOf(onlyA.note.verified, [verifierA]).length, 1);
  assert.equal(onlyA.note.unverified.length, 1);
  // Cosigning again replaces the witness's own earlier cosignature.
  assert.equal(parseNote(cosignNote(cosigned, witnessA)).signatures.length, 3);
});

test("cosignatures: the key ID is type 0x04's, and the vkey carries type 0x04", () => {
  const key = parseVerifierKey(witnessA.verifierKey);
  assert.equal(key.type, SIGNATURE_TYPE_COSIGNATURE_V1);
  assert.equal(witnessA.keyId, noteKeyId("witness.example/a", 0x04, key.publicKey));
  assert.notEqual(
    witnessA.keyId,
    noteKeyId("witness.example/a", SIGNATURE_TYPE_ED25519, key.publicKey),
  );
  for (const vkey of v.cosignerVerifierKeys.valid) {
    assert.equal(parseVerifierKey(vkey).type, SIGNATURE_TYPE_COSIGNATURE_V1);
    assert.equal(cosignatureVerifier(vkey).keyId, parseVerifierKey(vkey).keyId);
    malformed(() => ed25519NoteVerifier(vkey));
  }
  for (const vkey of v.cosignerVerifierKeys.invalid) malformed(() => cosignatureVerifier(vkey));
  malformed(() => cosignatureVerifier(logSigner.verifierKey));
});

test("cosignatures: a changed timestamp, checkpoint or extension line, or a plain Ed25519 signature in its place, is refused", () => {
  const cosigned = cosignNote(signCheckpoint(checkpointOf(9), logSigner), witnessA);
  const lines = cosigned.split("\n");
  const witnessLine = lines.find((l) => l.includes("witness.example/a"))!;
  const bytes = base64.decode(witnessLine.split(" ")[2]!);
  const withBytes = (b: Uint8Array) =>
    cosigned.replace(witnessLine, `— witness.example/a ${base64.encode(b)}`);
  const later = Uint8Array.from(bytes);
  later[11]! ^= 1; // the timestamp's last byte
  fails(
    () => openCheckpoint(withBytes(later), ORIGIN, logVerifier, [verifierA]),
    "E_BAD_SIGNATURE",
  );
  const huge = Uint8Array.from(bytes);
  huge[4] = 0x80; // 2^63 and above
  fails(() => openCheckpoint(withBytes(huge), ORIGIN, logVerifier, [verifierA]), "E_BAD_SIGNATURE");
  fails(
    () => openCheckpoint(withBytes(bytes.slice(0, -1)), ORIGIN, logVerifier, [verifierA]),
    "E_BAD_SIGNATURE",
  );
  // The same witness line on another checkpoint (re-signed by the log) does not verify.
  const other = signCheckpoint({ ...checkpointOf(9), extensions: ["x"] }, logSigner);
  const moved = `${other}${witnessLine}\n`;
  fails(() => openCheckpoint(moved, ORIGIN, logVerifier, [verifierA]), "E_BAD_SIGNATURE");
  // A plain note signature by the witness's key, written under the cosignature key ID.
  const plain = ed25519NoteSigner("witness.example/a", new Uint8Array(32).fill(2));
  const text = formatCheckpoint(checkpointOf(9));
  const sig = plain.sign(new TextEncoder().encode(text));
  const forged = new Uint8Array(4 + 8 + 64);
  new DataView(forged.buffer).setUint32(0, witnessA.keyId);
  forged.set(sig, 12);
  fails(
    () => openCheckpoint(withBytes(forged), ORIGIN, logVerifier, [verifierA]),
    "E_BAD_SIGNATURE",
  );
  // And the plain signature under its own (type 0x01) key ID is not a cosignature: set aside.
  const asNote = openNote(
    `${cosigned}— witness.example/a ${base64.encode(Uint8Array.from([...toBytes(plain.keyId), ...sig]))}\n`,
    [logVerifier, verifierA],
  );
  assert.equal(asNote.unverified.length, 1);
  for (const t of [1.5, -1, Number.NaN]) {
    const badClock = cosignatureSigner("witness.example/c", new Uint8Array(32).fill(4), () => t);
    malformed(() => cosignNote(cosigned, badClock));
  }
  malformed(() => cosignedMessage(new Uint8Array(0), -1));
  malformed(() => cosignedMessage(new Uint8Array(0), 2 ** 53));
  malformed(() => cosignatureTimestamp(new Uint8Array(71)));
});

test("a witness's whole job with these parts: check the log's signature and consistency, then cosign", () => {
  const store = new MemoryHashStore();
  const old = checkpointOf(40, store);
  const next = checkpointOf(97, store);
  const proof = store.consistencyProof(40, 97);
  const opened = openCheckpoint(signCheckpoint(next, logSigner), ORIGIN, logVerifier);
  verifyConsistency(
    old.size,
    opened.checkpoint.size,
    old.rootHash,
    opened.checkpoint.rootHash,
    proof,
  );
  const cosigned = cosignNote(signCheckpoint(next, logSigner), witnessA);
  assert.equal(openCheckpoint(cosigned, ORIGIN, logVerifier, [verifierA]).note.verified.length, 2);
  // A fork: a tree of size 97 with leaf 10 changed is not an extension of the witness's size 40,
  // whatever proof its log hands over; and two roots for the same size are refused outright.
  const forked = new MemoryHashStore();
  for (let i = 0; i < 97; i++) forked.append(hashLeaf(leafData(i === 10 ? 1000 : i)));
  for (const p of [forked.consistencyProof(40, 97), proof]) {
    fails(() => verifyConsistency(40, 97, old.rootHash, forked.root(), p), "E_BAD_SIGNATURE");
  }
  fails(() => verifyConsistency(97, 97, next.rootHash, forked.root(), []), "E_BAD_SIGNATURE");
  // Leaf 60 changed is past size 40: that tree does extend it (it forks only from 61 on).
  const later = new MemoryHashStore();
  for (let i = 0; i < 97; i++) later.append(hashLeaf(leafData(i === 60 ? 1000 : i)));
  verifyConsistency(40, 97, old.rootHash, later.root(), later.consistencyProof(40, 97));
});

function toBytes(keyId: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, keyId);
  return out;
}
