/**
 * docs/PROTOCOL.md §14 stays true to src/tlog: its known answers are what the code computes, and
 * the limits it states are the code's.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { hashLeaf, MAX_PROOF_HASHES, rootOf } from "../../src/tlog/merkle.js";
import { MAX_NOTE_BYTES, MAX_NOTE_SIGNATURES, signNote } from "../../src/tlog/note.js";
import { ed25519NoteSigner } from "../../src/tlog/note-keys.js";
import { REPO_ROOT, readVector } from "../helpers/paths.js";
import { fromHex, hex } from "./naive-merkle.js";
import { goSignerSeed, type NoteVectors } from "./note-vectors.js";

const protocol = readFileSync(`${REPO_ROOT}docs/PROTOCOL.md`, "utf8");
const section = protocol.slice(protocol.indexOf("\n## 14. Transparency log: formats"));

test("PROTOCOL.md §14's Merkle known answers are the roots our code computes", () => {
  assert.ok(section.length > 1000, "PROTOCOL.md has §14");
  const leaves = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
  ];
  const hashes = leaves.map((d) => hashLeaf(fromHex(d)));
  for (const d of leaves.slice(1)) assert.ok(section.includes(`\`${d}\``), d);
  assert.ok(section.includes(hex(hashes[0]!)));
  assert.ok(section.includes(`all eight =\n\`${hex(rootOf(hashes))}\``));
  assert.ok(section.includes(`first three =\n\`${hex(rootOf(hashes.slice(0, 3)))}\``));
});

test("PROTOCOL.md §14's signed-note known answer is what our signer writes, and its limits are the code's", () => {
  const go = readVector<NoteVectors>("tlog/signed-notes.json").goSumdbNote;
  const signer = ed25519NoteSigner("PeterNeumann", goSignerSeed(go.peterSignerKey));
  const line = signNote(go.text, [signer]).split("\n").at(-2)!;
  assert.ok(section.includes(`the line \`${line}\``));
  assert.ok(section.includes(`\`${signer.verifierKey}\``));
  assert.ok(section.includes(`larger than ${MAX_NOTE_BYTES.toLocaleString("en-US")} bytes`));
  assert.ok(section.includes(`more than ${MAX_NOTE_SIGNATURES} lines after the empty line`));
  assert.ok(section.includes(`more than ${MAX_PROOF_HASHES} hashes is refused`));
});
