/**
 * The transparency-log parsers never crash: any bytes or string given as a signed note, a
 * checkpoint, a verifier key or a proof is either accepted or refused with a DkeygenError
 * (E_INVALID_INPUT or E_BAD_SIGNATURE), including small mutations of valid inputs.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { isDkeygenError } from "../../src/errors.js";
import { openCheckpoint, parseCheckpoint, signCheckpoint } from "../../src/tlog/checkpoint.js";
import { cosignatureSigner, cosignatureVerifier, cosignNote } from "../../src/tlog/cosignature.js";
import { MemoryHashStore } from "../../src/tlog/hash-store.js";
import { hashLeaf, verifyConsistency, verifyInclusion } from "../../src/tlog/merkle.js";
import { openNote } from "../../src/tlog/note.js";
import {
  ed25519NoteSigner,
  ed25519NoteVerifier,
  parseVerifierKey,
} from "../../src/tlog/note-keys.js";
import { fuzzParameters } from "../helpers/fuzz.js";

const log = ed25519NoteSigner("log.example/x", new Uint8Array(32).fill(5));
const witness = cosignatureSigner("w.example/y", new Uint8Array(32).fill(6), () => 1_800_000_000);
const verifiers = [ed25519NoteVerifier(log.verifierKey), cosignatureVerifier(witness.verifierKey)];
const store = new MemoryHashStore();
for (let i = 0; i < 50; i++) store.append(hashLeaf(Uint8Array.of(i)));
const valid = cosignNote(
  signCheckpoint(
    { origin: "log.example/x", size: 50, rootHash: store.root(), extensions: [] },
    log,
  ),
  witness,
);
const validBytes = new TextEncoder().encode(valid);

function refusedOrAccepted(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(
      isDkeygenError(e, "E_INVALID_INPUT") || isDkeygenError(e, "E_BAD_SIGNATURE"),
      `not a DkeygenError: ${String(e)}`,
    );
  }
}

const mutatedNote = fc
  .tuple(fc.nat(validBytes.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(3))
  .map(([at, byte, op]) => {
    const b = Array.from(validBytes);
    if (op === 0) b[at] = byte;
    else if (op === 1) b.splice(at, 1);
    else if (op === 2) b.splice(at, 0, byte);
    else b.splice(at, 0, ...b.slice(at, at + 40));
    return Uint8Array.from(b);
  });

test("signed notes and checkpoints: any bytes, any string, any mutation of a valid note never crash", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 400 }),
        fc.string({ maxLength: 300, unit: "binary" }),
        mutatedNote,
      ),
      (input) => {
        refusedOrAccepted(() => openNote(input, verifiers));
        refusedOrAccepted(() =>
          openCheckpoint(input, "log.example/x", verifiers[0]!, [verifiers[1]!]),
        );
        if (typeof input === "string") {
          refusedOrAccepted(() => parseCheckpoint(input));
          refusedOrAccepted(() => parseVerifierKey(input));
        }
      },
    ),
    fuzzParameters(3000),
  );
  // And the unmutated note opens.
  assert.equal(openNote(valid, verifiers).verified.length, 2);
});

test("proofs: any list of byte strings, any sizes, never crash", () => {
  const hash = fc.uint8Array({ minLength: 0, maxLength: 40 });
  fc.assert(
    fc.property(
      fc.array(hash, { maxLength: 12 }),
      fc.integer({ min: -2, max: 2 ** 54 }),
      fc.integer({ min: -2, max: 2 ** 54 }),
      hash,
      hash,
      (proof, a, b, x, y) => {
        refusedOrAccepted(() => verifyInclusion(a, b, x, proof, y));
        refusedOrAccepted(() => verifyConsistency(a, b, x, y, proof));
      },
    ),
    fuzzParameters(3000),
  );
});
