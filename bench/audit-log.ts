/**
 * `dkeygen audit log`'s verifier (src/audit/log-audit.ts) on big logs, in memory (no HTTP): what
 * its tree part costs (leaf hashes on the threads, the fold into the root on the main thread) over
 * 1,000,000 small entries, against the issue's target of 10 s; and what the full checks cost
 * (parse, every signature, the rules) over entries made and signed here as a server signs them
 * (a test RSA-3072 server key, 3 contributors a round, the size of a real entry). Each with one
 * thread and with one per core. Baseline: SHA-256 of the same entry bytes on one thread, in the
 * same run.
 *
 *   node dist/bench/audit-log.js [--entries 1000000] [--entry-bytes 256] [--signed 2000]
 *
 * Not part of the tests; bench/run.ts runs it in a process of its own (section tlog).
 */
import {
  createHash,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign as rawSign,
} from "node:crypto";
import { availableParallelism } from "node:os";
import { auditLog } from "../src/audit/log-audit.js";
import { toBase64url } from "../src/crypto/base64url.js";
import { fingerprintOfSpki } from "../src/crypto/fingerprint.js";
import { serverSign } from "../src/crypto/server-signature.js";
import { generateIdentity, rawPublicKey } from "../src/crypto/signature.js";
import { contributorIdOf } from "../src/protocol/identity.js";
import { encodeRoundEntry, roundEntryOf } from "../src/protocol/log-entry.js";
import {
  commitSetHash,
  commitSetSignedData,
  commitSignedData,
  revealSignedData,
  roundClosedSignedData,
  roundOpenSignedData,
} from "../src/protocol/signed-data.js";
import {
  deriveLogSecretKey,
  type LogIdentity,
  logIdentitySignedData,
  logOriginOf,
} from "../src/server/transparency-log.js";
import { signCheckpoint } from "../src/tlog/checkpoint.js";
import { Frontier } from "../src/tlog/frontier.js";
import { hashLeaf } from "../src/tlog/merkle.js";
import { ed25519NoteSigner } from "../src/tlog/note-keys.js";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};
const ENTRIES = arg("--entries", 1_000_000);
const ENTRY_BYTES = arg("--entry-bytes", 256);
const SIGNED = arg("--signed", 2000);
const BATCH = 1000;
const say = (line: string) => process.stderr.write(`  ${line}\n`);

/** A test server: its RSA key, and the log identity and checkpoint signer it would have. */
function testServer() {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 3072,
    publicExponent: 65537,
  });
  const spki = new Uint8Array(publicKey.export({ type: "spki", format: "der" }));
  const fingerprint = fingerprintOfSpki(spki);
  const origin = logOriginOf(fingerprint);
  const signer = ed25519NoteSigner(origin, deriveLogSecretKey(privateKey));
  const identity: LogIdentity = {
    origin,
    verifierKey: signer.verifierKey,
    serverKey: toBase64url(spki),
    serverFingerprint: fingerprint,
    signature: toBase64url(
      serverSign(privateKey, logIdentitySignedData(fingerprint, origin, signer.verifierKey)),
    ),
  };
  const checkpoint = (size: number, rootHash: Uint8Array) =>
    signCheckpoint({ origin, size, rootHash, extensions: [] }, signer);
  return { privateKey, fingerprint, identity, checkpoint };
}

/** A completed round's entry, signed as the server and its contributors sign it. */
function signedEntry(
  server: { privateKey: KeyObject; fingerprint: string },
  contributors: { privateKey: KeyObject; raw: Uint8Array; id: string }[],
  n: number,
): Uint8Array {
  const roundId = toBase64url(randomBytes(16));
  const round = generateIdentity();
  const roundKey = rawPublicKey(round.publicKey);
  const b = () => toBase64url(randomBytes(32));
  const open = {
    roundId,
    purpose: "totp",
    paramsHash: b(),
    seed: b(),
    serverCommitment: b(),
    roundKey: toBase64url(roundKey),
    commitDeadline: new Date(1_800_000_000_000 + n * 1000).toISOString(),
    revealDeadline: new Date(1_800_000_005_000 + n * 1000).toISOString(),
    invited: contributors.map((c) => c.id),
  };
  const dec = (s: string) => new Uint8Array(Buffer.from(s, "base64url"));
  const signature = toBase64url(
    serverSign(
      server.privateKey,
      roundOpenSignedData({
        ...open,
        paramsHash: dec(open.paramsHash),
        seed: dec(open.seed),
        serverCommitment: dec(open.serverCommitment),
        roundKey,
      }),
    ),
  );
  const commits = contributors.map((c) => ({ ...c, commitment: new Uint8Array(randomBytes(32)) }));
  const setHash = commitSetHash(
    roundId,
    server.fingerprint,
    commits.map((c) => ({
      contributorId: c.id,
      commitment: c.commitment,
    })),
  );
  const ed = (key: KeyObject, data: Uint8Array) => toBase64url(rawSign(null, data, key));
  return encodeRoundEntry(
    roundEntryOf({
      server: server.fingerprint,
      open: { ...open, signature },
      commits: commits.map((c) => ({
        contributorId: c.id,
        identity: c.raw,
        commitment: c.commitment,
        signature: ed(
          c.privateKey,
          commitSignedData(roundId, c.id, server.fingerprint, c.commitment),
        ),
        reveal: ed(
          c.privateKey,
          revealSignedData(roundId, c.id, server.fingerprint, setHash, c.commitment),
        ),
      })),
      setSignature: ed(round.privateKey, commitSetSignedData(roundId, setHash)),
      closed: {
        outcome: "completed",
        accepted: commits.length,
        signature: ed(
          round.privateKey,
          roundClosedSignedData({
            roundId,
            outcome: "completed",
            accepted: commits.length,
            setHash,
            missing: [],
          }),
        ),
      },
      results: [{ recordId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", commitment: new Uint8Array(32) }],
      closedAt: new Date(1_800_000_010_000 + n * 1000),
    }),
  );
}

/** Small synthetic leaves, made in batches as the audit reads them (one buffer a batch). */
function* syntheticLeaves(count: number, bytes: number): Generator<Uint8Array[]> {
  for (let start = 0; start < count; start += BATCH) {
    const n = Math.min(BATCH, count - start);
    const buffer = new Uint8Array(n * bytes).fill(0x5a);
    const view = new DataView(buffer.buffer);
    const batch: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      view.setFloat64(i * bytes, start + i);
      batch.push(buffer.subarray(i * bytes, (i + 1) * bytes));
    }
    yield batch;
  }
}

/** CPU time of the whole process (every thread) in ms since `from`, and a new mark. */
const cpuMs = (from?: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1000;
};
const rate = (n: number, ms: number) =>
  `${Math.round((n / ms) * 1000).toLocaleString("en")} entries/s`;

async function main() {
  const cores = availableParallelism();
  const threadCounts = [...new Set([1, cores])];
  process.stdout.write(
    `audit log — node ${process.version}, ${cores} cores, ${new Date().toISOString()}\n`,
  );
  const server = testServer();

  // Baseline: one SHA-256 of each entry's bytes, one thread.
  const baselineCpu = process.cpuUsage();
  let t = performance.now();
  for (const batch of syntheticLeaves(ENTRIES, ENTRY_BYTES)) {
    for (const leaf of batch) createHash("sha256").update(leaf).digest();
  }
  const baselineMs = performance.now() - t;
  const baselineCpuMs = cpuMs(baselineCpu);
  process.stdout.write(
    `baseline: SHA-256 of ${ENTRIES.toLocaleString("en")} entries of ${ENTRY_BYTES} bytes, one thread: ${(baselineMs / 1000).toFixed(2)} s (${rate(ENTRIES, baselineMs)}); CPU ${((baselineCpuMs / ENTRIES) * 1000).toFixed(2)} µs an entry\n`,
  );

  // The tree part over ENTRIES small entries.
  const frontier = new Frontier();
  for (const batch of syntheticLeaves(ENTRIES, ENTRY_BYTES)) {
    for (const leaf of batch) frontier.append(hashLeaf(leaf));
  }
  const treeCheckpoint = server.checkpoint(ENTRIES, frontier.root());
  for (const threads of threadCounts) {
    say(`tree part, ${threads} thread(s)`);
    const cpu = process.cpuUsage();
    t = performance.now();
    const report = await auditLog({
      identity: server.identity,
      checkpoint: treeCheckpoint,
      leaves: (size) => syntheticLeaves(size, ENTRY_BYTES),
      threads,
      checks: "tree",
    });
    const ms = performance.now() - t;
    if (!report.ok) throw new Error(JSON.stringify(report.failures.slice(0, 3)));
    process.stdout.write(
      `tree only (leaf hashes, root, identity, checkpoint), ${threads} thread(s): ${(ms / 1000).toFixed(2)} s, ${rate(ENTRIES, ms)}, ${(ms / baselineMs).toFixed(2)}× baseline (target ≤ 10 s for 1,000,000); CPU ${((cpuMs(cpu) / ENTRIES) * 1000).toFixed(2)} µs an entry (every thread)\n`,
    );
  }

  // Full checks over SIGNED real-sized entries (3 contributors each).
  say(`making ${SIGNED} signed entries`);
  const contributors = Array.from({ length: 3 }, () => {
    const key = generateIdentity();
    const raw = rawPublicKey(key.publicKey);
    return { privateKey: key.privateKey, raw, id: contributorIdOf(raw) };
  }).sort((a, b) => Buffer.compare(Buffer.from(a.id), Buffer.from(b.id)));
  const leaves: Uint8Array[] = [];
  const signedFrontier = new Frontier();
  for (let i = 0; i < SIGNED; i++) {
    const leaf = signedEntry(server, contributors, i);
    leaves.push(leaf);
    signedFrontier.append(hashLeaf(leaf));
  }
  const signedCheckpoint = server.checkpoint(SIGNED, signedFrontier.root());
  for (const threads of threadCounts) {
    say(`full checks, ${threads} thread(s)`);
    const cpu = process.cpuUsage();
    t = performance.now();
    const report = await auditLog({
      identity: server.identity,
      checkpoint: signedCheckpoint,
      leaves: () => [leaves],
      threads,
    });
    const ms = performance.now() - t;
    if (!report.ok || report.verified !== SIGNED) {
      throw new Error(JSON.stringify(report.failures.slice(0, 3)));
    }
    process.stdout.write(
      `full checks (parse, 1 RSA-PSS + 8 Ed25519 verifications an entry, the round key's subgroup check (contributors' keys are checked once), rules), ${leaves[0]!.length}-byte entries, ${threads} thread(s): ${(ms / 1000).toFixed(2)} s for ${SIGNED}, ${rate(SIGNED, ms)} → ${(((ms / SIGNED) * 1_000_000) / 1000 / 60).toFixed(1)} min for 1,000,000; CPU ${(cpuMs(cpu) / SIGNED).toFixed(2)} ms an entry (every thread)\n`,
    );
  }
}

await main();
