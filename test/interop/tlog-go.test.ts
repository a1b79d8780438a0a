// An outside verifier for the transparency-log formats: test/interop/tlog-verifier.go runs Go's
// golang.org/x/mod sumdb/note and sumdb/tlog (Debian's golang-go and golang-golang-x-mod-dev,
// which .ci/run installs) over what src/tlog produces. Go must open our signed checkpoints, check
// our cosignatures, build the same tree from the same leaves and produce and accept the same
// proofs; and refuse the tampered ones, so the harness is seen to fail when it should.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { base64 } from "@scure/base";
import { formatCheckpoint, signCheckpoint } from "../../src/tlog/checkpoint.js";
import { cosignatureSigner, cosignNote } from "../../src/tlog/cosignature.js";
import { MemoryHashStore } from "../../src/tlog/hash-store.js";
import { hashLeaf } from "../../src/tlog/merkle.js";
import { signNote } from "../../src/tlog/note.js";
import { ed25519NoteSigner, ed25519PublicKey } from "../../src/tlog/note-keys.js";
import { REPO_ROOT } from "../helpers/paths.js";

const GOPATH = "/usr/share/gocode";
const haveGo =
  spawnSync("go", ["version"]).status === 0 &&
  existsSync(`${GOPATH}/src/golang.org/x/mod/sumdb/note/note.go`);

interface GoOutput {
  notes: string[];
  cosignatures: string[];
  roots: Record<string, string>;
  inclusion: string[];
  consistency: string[];
}

function runGo(input: unknown): GoOutput {
  const cache = mkdtempSync(join(tmpdir(), "dkeygen-gocache-"));
  try {
    const run = spawnSync("go", ["run", `${REPO_ROOT}test/interop/tlog-verifier.go`], {
      input: JSON.stringify(input),
      env: { ...process.env, GO111MODULE: "off", GOPATH, GOCACHE: cache, GOFLAGS: "" },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 300_000,
    });
    assert.equal(run.status, 0, `go run failed: ${run.stderr}`);
    return JSON.parse(run.stdout.toString()) as GoOutput;
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

const b64 = (h: Uint8Array) => base64.encode(h);

test("Go's sumdb/note and sumdb/tlog accept our checkpoints, cosignatures, trees and proofs, and refuse tampered ones", {
  skip: haveGo ? false : "needs Go and golang-golang-x-mod-dev (Debian), which .ci/run installs",
}, () => {
  const SIZE = 300;
  const leaves = Array.from({ length: SIZE }, (_, i) => Uint8Array.of(i >> 8, i & 0xff, 7));
  const store = new MemoryHashStore();
  for (const leaf of leaves) store.append(hashLeaf(leaf));

  const log = ed25519NoteSigner("dkeygen.example/log", new Uint8Array(32).fill(9));
  const other = ed25519NoteSigner("other.example/key", new Uint8Array(32).fill(10));
  const witnessSecret = new Uint8Array(32).fill(11);
  const witness = cosignatureSigner("witness.example/w", witnessSecret, () => 1_750_000_000);
  const checkpoint = {
    origin: "dkeygen.example/log",
    size: SIZE,
    rootHash: store.root(),
    extensions: [],
  };
  const signed = signCheckpoint(checkpoint, log);
  const both = signNote(formatCheckpoint(checkpoint), [log, other]);
  const cosigned = cosignNote(signed, witness);
  const tamperedText = signed.replace(`\n${SIZE}\n`, `\n${SIZE + 1}\n`);
  const witnessLine = cosigned.split("\n").find((l) => l.startsWith("— witness.example/w "))!;
  const sig = base64.decode(witnessLine.split(" ")[2]!);
  sig[11]! ^= 1;
  const tamperedTime = cosigned.replace(witnessLine, `— witness.example/w ${b64(sig)}`);

  const inclusion: { index: number; size: number; proof: string[] }[] = [];
  for (let size = 1; size <= 48; size++) {
    for (let index = 0; index < size; index++) {
      inclusion.push({ index, size, proof: store.inclusionProof(index, size).map(b64) });
    }
  }
  for (let i = 0; i < 400; i++) {
    const size = 49 + ((i * 7919) % (SIZE - 48));
    const index = (i * 104_729) % size;
    inclusion.push({ index, size, proof: store.inclusionProof(index, size).map(b64) });
  }
  const consistency: { size1: number; size2: number; proof: string[] }[] = [];
  for (let size2 = 2; size2 <= 48; size2++) {
    for (let size1 = 1; size1 < size2; size1++) {
      consistency.push({ size1, size2, proof: store.consistencyProof(size1, size2).map(b64) });
    }
  }
  for (let i = 0; i < 400; i++) {
    const size2 = 49 + ((i * 7919) % (SIZE - 48));
    const size1 = 1 + ((i * 104_729) % (size2 - 1));
    consistency.push({ size1, size2, proof: store.consistencyProof(size1, size2).map(b64) });
  }
  // Tampered cases at the end: a flipped hash, a proof for another index, another size.
  const flipped = store.inclusionProof(5, 100);
  const bad = Uint8Array.from(flipped[2]!);
  bad[0]! ^= 1;
  flipped[2] = bad;
  const badInclusion = [
    { index: 5, size: 100, proof: flipped.map(b64) },
    { index: 6, size: 100, proof: store.inclusionProof(5, 100).map(b64) },
    { index: 5, size: 101, proof: store.inclusionProof(5, 100).map(b64) },
  ];
  const badConsistency = [
    { size1: 10, size2: 100, proof: store.consistencyProof(11, 100).map(b64) },
    { size1: 10, size2: 100, proof: store.consistencyProof(10, 100).slice(1).map(b64) },
  ];

  const roots: Record<string, string> = {};
  for (let n = 1; n <= SIZE; n++) roots[String(n)] = b64(store.root(n));

  const out = runGo({
    notes: [
      { note: signed, verifierKeys: [log.verifierKey] },
      { note: both, verifierKeys: [log.verifierKey, other.verifierKey] },
      { note: cosigned, verifierKeys: [log.verifierKey] },
      { note: tamperedText, verifierKeys: [log.verifierKey] },
    ],
    cosignatures: [
      {
        note: cosigned,
        name: "witness.example/w",
        publicKey: b64(ed25519PublicKey(witnessSecret)),
      },
      {
        note: tamperedTime,
        name: "witness.example/w",
        publicKey: b64(ed25519PublicKey(witnessSecret)),
      },
    ],
    leaves: leaves.map(b64),
    roots,
    inclusion: [...inclusion, ...badInclusion],
    consistency: [...consistency, ...badConsistency],
  });

  assert.deepEqual(out.notes.slice(0, 3), ["ok", "ok", "ok"]);
  assert.notEqual(out.notes[3], "ok");
  assert.deepEqual(out.cosignatures[0], "ok");
  assert.notEqual(out.cosignatures[1], "ok");
  assert.deepEqual(
    Object.values(out.roots).filter((r) => r !== "ok"),
    [],
  );
  assert.equal(Object.keys(out.roots).length, SIZE);
  assert.deepEqual(
    out.inclusion.slice(0, inclusion.length).filter((r) => r !== "ok"),
    [],
  );
  for (const r of out.inclusion.slice(inclusion.length)) assert.notEqual(r, "ok");
  assert.equal(out.inclusion.length, inclusion.length + badInclusion.length);
  assert.deepEqual(
    out.consistency.slice(0, consistency.length).filter((r) => r !== "ok"),
    [],
  );
  for (const r of out.consistency.slice(consistency.length)) assert.notEqual(r, "ok");
  assert.equal(out.consistency.length, consistency.length + badConsistency.length);
});
