/**
 * C2SP signed-note: the golang.org/x/mod sumdb/note examples (an outside implementation's notes,
 * keys and refusals), the spec's own example, and the strict parsing rules at their boundaries.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import { base64 } from "@scure/base";
import { type ErrorCode, isDkeygenError } from "../../src/errors.js";
import {
  MAX_NOTE_BYTES,
  MAX_NOTE_SIGNATURES,
  openNote,
  parseNote,
  signNote,
} from "../../src/tlog/note.js";
import {
  ed25519NoteSigner,
  ed25519NoteVerifier,
  ed25519Verify,
  formatVerifierKey,
  noteKeyId,
  parseVerifierKey,
  SIGNATURE_TYPE_ED25519,
} from "../../src/tlog/note-keys.js";
import { readVector } from "../helpers/paths.js";
import { goSignerSeed, type NoteVectors } from "./note-vectors.js";

const v = readVector<NoteVectors>("tlog/signed-notes.json");
const go = v.goSumdbNote;
const peter = ed25519NoteVerifier(go.peterVerifierKey);
const enoch = ed25519NoteVerifier(go.enochVerifierKey);
const peterSigner = ed25519NoteSigner("PeterNeumann", goSignerSeed(go.peterSignerKey));
const signed = `${go.text}\n${go.peterSignatureLine}`;

const fails = (fn: () => unknown, code: ErrorCode) =>
  assert.throws(fn, (e: unknown) => isDkeygenError(e, code));
const malformed = (fn: () => unknown) => fails(fn, "E_INVALID_INPUT");

test("sumdb/note: our Ed25519 signer, given Go's PeterNeumann key, writes Go's note and vkey byte for byte", () => {
  assert.equal(peterSigner.verifierKey, go.peterVerifierKey);
  assert.equal(peterSigner.keyId, 0xc74f20a3);
  assert.equal(signNote(go.text, [peterSigner]), signed);
  // A signature already there by the same key is replaced, not repeated (as Go's Sign does).
  const stale = { name: "PeterNeumann", keyId: 0xc74f20a3, signature: new Uint8Array(64) };
  assert.equal(signNote(go.text, [peterSigner], [stale]), signed);
});

test("sumdb/note: Go's notes open: known keys verified, unknown ones set aside, none known refused", () => {
  const both = `${go.text}\n${go.peterSignatureLine}${go.enochSignatureLine}`;
  const one = openNote(both, [peter]);
  assert.equal(one.text, go.text);
  assert.deepEqual(
    one.verified.map((s) => s.name),
    ["PeterNeumann"],
  );
  assert.deepEqual(
    one.unverified.map((s) => [s.name, s.keyId]),
    [["EnochRoot", 0xaf0cfe78]],
  );
  const two = openNote(new TextEncoder().encode(both), [peter, enoch]);
  assert.deepEqual(
    two.verified.map((s) => s.name),
    ["PeterNeumann", "EnochRoot"],
  );
  assert.equal(two.unverified.length, 0);
  fails(() => openNote(both, []), "E_BAD_SIGNATURE");
  // A verifier listed twice is a configuration error, even if its key signed nothing here.
  malformed(() => openNote(both, [peter, enoch, enoch]));
});

test("sumdb/note: a known key's altered signature refuses the whole note; an unknown key's is ignored", () => {
  const at = 60;
  const alter = (line: string) => `${line.slice(0, at)}ABCD${line.slice(at)}`;
  fails(() => openNote(`${go.text}\n${alter(go.peterSignatureLine)}`, [peter]), "E_BAD_SIGNATURE");
  const opened = openNote(
    `${go.text}\n${go.peterSignatureLine}${go.peterSignatureLine}${go.enochSignatureLine}${go.enochSignatureLine}${alter(go.enochSignatureLine)}`,
    [peter],
  );
  assert.equal(opened.verified.length, 1, "a repeated verified signature counts once");
  assert.equal(opened.unverified.length, 2, "identical unverified lines count once");
  // Stricter than Go, which skips repeats of a verified key: every copy must verify.
  fails(
    () => openNote(`${go.text}\n${go.peterSignatureLine}${alter(go.peterSignatureLine)}`, [peter]),
    "E_BAD_SIGNATURE",
  );
  // A signature line with Peter's name but another key ID is someone else's: ignored.
  const otherId = go.peterSignatureLine.replace("x08g", "xxxx");
  fails(() => openNote(`${go.text}\n${otherId}`, [peter]), "E_BAD_SIGNATURE");
  assert.equal(
    openNote(`${go.text}\n${otherId}${go.peterSignatureLine}`, [peter]).unverified.length,
    1,
  );
});

test("sumdb/note: Go's malformed notes are refused as malformed", () => {
  const bad: (string | Uint8Array)[] = [
    go.text,
    `${go.text}\n`,
    `${go.text}\n${go.peterSignatureLine.slice(0, -1)}`,
    `\x01${go.text}\n${go.peterSignatureLine}`,
    Uint8Array.from([0xff, ...new TextEncoder().encode(`${go.text}\n${go.peterSignatureLine}`)]),
    `${go.text}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
    `${go.text}\n${go.peterSignatureLine}Unexpected line.\n`,
  ];
  for (const note of bad) malformed(() => openNote(note, [peter]));
});

test("the C2SP signed-note example verifies with its verifier key", () => {
  const e = v.c2spSignedNoteExample;
  const opened = openNote(e.note, [ed25519NoteVerifier(e.verifierKey)]);
  assert.equal(opened.text, "This is an example message.\n");
  assert.equal(opened.verified[0]!.keyId, 0x530d903a);
});

test("line endings: CR, CRLF and other control characters are refused; a tab is too", () => {
  malformed(() => openNote(signed.replaceAll("\n", "\r\n"), [peter]));
  malformed(() => openNote(signed.replace("problem,\n", "problem,\r\n"), [peter]));
  malformed(() => openNote(signed.replace("problem,", "problem,\t"), [peter]));
  malformed(() => openNote(`${signed}\r`, [peter]));
  malformed(() => signNote("a\r\n", [peterSigner]));
  malformed(() => signNote("a\u0000\n", [peterSigner]));
  malformed(() => signNote("no final newline", [peterSigner]));
  malformed(() => signNote("lone \ud800 surrogate\n", [peterSigner]));
  malformed(() => parseNote(Uint8Array.of(0x61, 0x0a, 0x0a, 0xc3, 0x28, 0x0a)));
});

test("key names: Unicode white space and '+' are refused wherever a name appears", () => {
  const key = parseVerifierKey(go.peterVerifierKey);
  for (const name of ["a b", "a\u00a0b", "a\u2003b", "a\u3000b", "a\u0085b", "a+b", ""]) {
    malformed(() => formatVerifierKey(name, SIGNATURE_TYPE_ED25519, key.publicKey));
    malformed(() => ed25519NoteSigner(name, goSignerSeed(go.peterSignerKey)));
    const line = go.peterSignatureLine.replace("PeterNeumann", name);
    malformed(() => parseNote(`${go.text}\n${line}`));
  }
  // Any other Unicode is a fine name.
  const named = ed25519NoteSigner("δοκιμή.example/λ", goSignerSeed(go.peterSignerKey));
  const note = signNote(go.text, [named]);
  assert.equal(openNote(note, [ed25519NoteVerifier(named.verifierKey)]).verified.length, 1);
});

test(`limits: ${MAX_NOTE_SIGNATURES} signature lines are accepted, ${MAX_NOTE_SIGNATURES + 1} refused; ${MAX_NOTE_BYTES} bytes accepted, one more refused`, () => {
  const lines = (n: number) => `${go.text}\n${go.peterSignatureLine.repeat(n)}`;
  assert.equal(openNote(lines(MAX_NOTE_SIGNATURES), [peter]).verified.length, 1);
  malformed(() => openNote(lines(MAX_NOTE_SIGNATURES + 1), [peter]));
  malformed(() => openNote(lines(MAX_NOTE_SIGNATURES + 1), []));
  const pad = (total: number) => {
    const filler = "x".repeat(total - new TextEncoder().encode(signed).length - 1);
    return `${filler}\n${signed}`;
  };
  assert.equal(new TextEncoder().encode(pad(MAX_NOTE_BYTES)).length, MAX_NOTE_BYTES);
  // The padded text is not what Peter signed, so it opens only as far as its signature check.
  fails(() => openNote(pad(MAX_NOTE_BYTES), [peter]), "E_BAD_SIGNATURE");
  malformed(() => openNote(pad(MAX_NOTE_BYTES + 1), [peter]));
  malformed(() => openNote(new TextEncoder().encode(pad(MAX_NOTE_BYTES + 1)), [peter]));
  const bigText = `${"y".repeat(MAX_NOTE_BYTES)}\n`;
  malformed(() => signNote(bigText, [peterSigner]));
});

test("signature lines: non-canonical base64, a missing signature and a bare key ID are refused", () => {
  const b64 = go.peterSignatureLine.slice("— PeterNeumann ".length, -1);
  const withSig = (s: string) => `${go.text}\n— PeterNeumann ${s}\n`;
  malformed(() => parseNote(withSig(b64.replace(/=$/, ""))));
  malformed(() => parseNote(withSig(`${b64} `)));
  malformed(() => parseNote(withSig(b64.replace("/", "_"))));
  malformed(() => parseNote(`${go.text}\n— PeterNeumann\n`));
  malformed(() => parseNote(withSig("AAAAAA==")));
  malformed(() => parseNote(`${go.text}\n-- PeterNeumann ${b64}\n`));
  assert.equal(parseNote(withSig("AAAAAAA=")).signatures[0]!.signature.length, 1);
});

test("sumdb/note: verifier keys: Go's key parses; every truncation, every changed character and Go's bad keys are refused", () => {
  const key = parseVerifierKey(go.peterVerifierKey);
  assert.equal(key.name, "PeterNeumann");
  assert.equal(key.keyId, 0xc74f20a3);
  assert.equal(formatVerifierKey(key.name, key.type, key.publicKey), go.peterVerifierKey);
  const s = go.peterVerifierKey;
  let refusedCount = 0;
  for (let i = 0; i <= s.length; i++) {
    for (let j = i + 1; j <= s.length; j++) {
      if (i === 0 && j === s.length) continue;
      malformed(() => parseVerifierKey(s.slice(i, j)));
      refusedCount++;
    }
  }
  for (let i = 0; i < s.length; i++) {
    const changed = s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) + 1) + s.slice(i + 1);
    malformed(() => ed25519NoteVerifier(changed));
    refusedCount++;
  }
  for (const bad of go.badVerifierKeys) malformed(() => parseVerifierKey(bad));
  malformed(() => parseVerifierKey(s.replace("c74f20a3", "C74F20A3")));
  assert.ok(refusedCount > 2000);
});

test("verifier keys: a small-order or non-canonically encoded Ed25519 public key is refused", () => {
  const identity = new Uint8Array(32);
  identity[0] = 1; // y = 1: the neutral point, canonically encoded
  // Under such a key the "signature" R = B, S = 1 would satisfy [S]B = R + [k]A for every
  // message; strict verification refuses it too, and the key never gets that far.
  const forged = new Uint8Array(64);
  forged.set(ed25519.Point.BASE.toBytes());
  forged[32] = 1;
  assert.equal(ed25519Verify(identity, new TextEncoder().encode("anything\n"), forged), false);
  const nonCanonical = new Uint8Array(32).fill(0xff);
  nonCanonical[0] = 0xee;
  nonCanonical[31] = 0x7f; // y = p + 1, the neutral point again
  const vkey = (key: Uint8Array) =>
    `n+${noteKeyId("n", SIGNATURE_TYPE_ED25519, key).toString(16).padStart(8, "0")}+${base64.encode(Uint8Array.of(1, ...key))}`;
  for (const key of [identity, nonCanonical]) {
    malformed(() => parseVerifierKey(vkey(key)));
    malformed(() => formatVerifierKey("n", SIGNATURE_TYPE_ED25519, key));
  }
  const good = parseVerifierKey(go.peterVerifierKey).publicKey;
  assert.equal(parseVerifierKey(vkey(good)).name, "n");
});
