/**
 * The server's transparency log of rounds (docs/PROTOCOL.md §15): entries appended to the key
 * store (durable before anyone is told of the round), their Merkle tree kept in memory
 * (tlog/hash-store.ts: every root and proof for any size), and a checkpoint signed with the log's
 * Ed25519 key after every batch of appends made durable together, carrying the store's chain head so a store rolled back to an
 * older copy contradicts a checkpoint someone already holds.
 *
 * The log key is derived from the server's RSA private key (HKDF, §15), so it needs no file of its
 * own and changes only with the server key; the server key certifies it in `identity()`.
 */
import { hkdfSync, type KeyObject } from "node:crypto";
import { toBase64url } from "../crypto/base64url.js";
import { serverSign } from "../crypto/server-signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { logIdentitySignedData, logOriginOf } from "../protocol/witness.js";
import type { KeyStore } from "../store/types.js";
import { signCheckpoint } from "../tlog/checkpoint.js";
import { MemoryHashStore } from "../tlog/hash-store.js";
import { hashLeaf } from "../tlog/merkle.js";
import { type NoteSignature, type NoteVerifier, parseNote, signNote } from "../tlog/note.js";
import { ed25519NoteSigner } from "../tlog/note-keys.js";
import { consistencyProof, inclusionProof, treeRoot } from "../tlog/prove.js";
import type { ServerIdentity } from "./identity.js";

export { logIdentitySignedData, logOriginOf };

export const LOG_KEY_INFO = "dkeygen/v1/log-key";
/** The extension line that carries the key store's chain head (§15.2). */
export const STORE_HEAD_EXTENSION = "dkeygen-store-head";
/** At most this many entries in one `entries` answer. */
export const MAX_ENTRIES_PER_READ = 1000;
/** Checkpoints (by size) kept for witnesses to cosign: the newest ones, and the one served. */
export const CHECKPOINTS_KEPT = 64;

/** A checkpoint the log signed, and the witnesses' cosignatures of it (by key name). */
interface KeptCheckpoint {
  note: string;
  text: Uint8Array;
  cosignatures: Map<string, NoteSignature>;
}

/** The log's 32-byte Ed25519 secret key, derived from the server's RSA private key. */
export function deriveLogSecretKey(serverKey: KeyObject): Uint8Array {
  const der = serverKey.export({ type: "pkcs8", format: "der" });
  try {
    return new Uint8Array(hkdfSync("sha256", der, new Uint8Array(0), LOG_KEY_INFO, 32));
  } finally {
    der.fill(0);
  }
}

/** GET /v1/log/identity: the server key, the log key, and the server key's signature binding them. */
export interface LogIdentity {
  origin: string;
  verifierKey: string;
  serverKey: string;
  serverFingerprint: string;
  signature: string;
}

export class TransparencyLog {
  readonly origin: string;
  readonly verifierKey: string;
  readonly #store: KeyStore;
  readonly #signer: ReturnType<typeof ed25519NoteSigner>;
  readonly #hashes = new MemoryHashStore();
  readonly #byRound = new Map<string, number>();
  readonly #identity: LogIdentity;
  /** Leaf hashes of entries made durable out of order, waiting for the ones before them. */
  readonly #early = new Map<number, { hash: Uint8Array; roundId: string }>();
  #checkpoint = "";
  /** Recent checkpoints by size, with their cosignatures (PROTOCOL §15.5). */
  readonly #kept = new Map<number, KeptCheckpoint>();
  /** How many cosignatures a checkpoint needs to be served (0: the latest is served as is). */
  #minCosignatures = 0;
  /** The newest size whose checkpoint has at least #minCosignatures cosignatures. */
  #witnessed: number | undefined;
  #loading: Promise<void> | undefined;
  /** A checkpoint signature due once the current batch of appends has its leaves in the tree. */
  #signing: Promise<void> | undefined;
  #listeners = new Set<(checkpoint: string, size: number) => void>();

  constructor(store: KeyStore, server: ServerIdentity) {
    this.#store = store;
    this.origin = logOriginOf(server.fingerprint);
    const secret = deriveLogSecretKey(server.privateKey);
    this.#signer = ed25519NoteSigner(this.origin, secret);
    this.verifierKey = this.#signer.verifierKey;
    this.#identity = {
      origin: this.origin,
      verifierKey: this.verifierKey,
      serverKey: toBase64url(server.spki),
      serverFingerprint: server.fingerprint,
      signature: toBase64url(
        serverSign(
          server.privateKey,
          logIdentitySignedData(server.fingerprint, this.origin, this.verifierKey),
        ),
      ),
    };
  }

  /**
   * Resolves once the entries the store holds are read and the current checkpoint signed (on
   * first use; the store must be open by then). Every other async method waits for it.
   */
  ready(): Promise<void> {
    this.#loading ??= this.#load().catch((error: unknown) => {
      this.#loading = undefined; // the next use tries again
      throw error;
    });
    return this.#loading;
  }

  async #load(): Promise<void> {
    const size = this.#store.logSize();
    for (let start = 0; start < size; start += 4096) {
      const leaves = await this.#store.logEntries(start, Math.min(size, start + 4096));
      leaves.forEach((leaf, i) => {
        this.#hashes.append(hashLeaf(leaf));
        this.#byRound.set(roundIdOf(leaf, start + i), start + i);
      });
    }
    this.#sign();
  }

  /** Entries covered by the latest checkpoint (0 before `ready`). */
  get size(): number {
    return this.#hashes.size;
  }

  /** The latest signed checkpoint (a C2SP signed note). */
  async checkpoint(): Promise<string> {
    await this.ready();
    return this.#checkpoint;
  }

  /** Cosignatures a checkpoint needs before `servedCheckpoint` hands it out (0: none). */
  get minCosignatures(): number {
    return this.#minCosignatures;
  }

  set minCosignatures(k: number) {
    if (!Number.isSafeInteger(k) || k < 0) {
      throw new TypeError("TransparencyLog: minCosignatures must be an integer ≥ 0");
    }
    this.#minCosignatures = k;
  }

  /** The log's signed checkpoint of `size` (without cosignatures), if it is still kept. */
  checkpointAt(size: number): string | undefined {
    return this.#kept.get(size)?.note;
  }

  /**
   * Adds a witness's cosignature (`keyId` ‖ signature bytes as on a note line) of the checkpoint
   * of `size`, replacing that witness's earlier one of the same size; resolves to how many
   * cosignatures that checkpoint now has. Throws E_BAD_SIGNATURE when it does not verify under
   * `verifier`, E_NOT_FOUND when that checkpoint is no longer kept.
   */
  addCosignature(size: number, verifier: NoteVerifier, signature: Uint8Array): number {
    const kept = this.#kept.get(size);
    if (kept === undefined) {
      throw new DkeygenError(
        ErrorCodes.NOT_FOUND,
        `The checkpoint of size ${size} is not one the log still offers for cosigning.`,
      );
    }
    if (!verifier.verify(kept.text, signature)) {
      throw new DkeygenError(
        ErrorCodes.BAD_SIGNATURE,
        `The cosignature of the checkpoint of size ${size} does not verify.`,
      );
    }
    kept.cosignatures.set(verifier.name, {
      name: verifier.name,
      keyId: verifier.keyId,
      signature: new Uint8Array(signature),
    });
    const count = kept.cosignatures.size;
    if (count >= this.#minCosignatures && size >= (this.#witnessed ?? -1)) this.#witnessed = size;
    return count;
  }

  /** The newest size whose checkpoint has at least `minCosignatures` cosignatures, if any. */
  get witnessedSize(): number | undefined {
    return this.#minCosignatures === 0 ? this.size : this.#witnessed;
  }

  /** How many cosignatures the checkpoint of `size` has (0 when it is not kept). */
  cosignatureCount(size: number): number {
    return this.#kept.get(size)?.cosignatures.size ?? 0;
  }

  /**
   * The checkpoint to serve (GET /v1/log/checkpoint): the newest with at least `minCosignatures`
   * cosignatures, all of them on it; the latest as signed when that is 0. Undefined while no
   * checkpoint has enough.
   */
  async servedCheckpoint(): Promise<string | undefined> {
    await this.ready();
    if (this.#minCosignatures === 0) return this.#checkpoint;
    const kept = this.#witnessed === undefined ? undefined : this.#kept.get(this.#witnessed);
    if (kept === undefined) return undefined;
    const { text, signatures } = parseNote(kept.note);
    return signNote(text, [], [...signatures, ...kept.cosignatures.values()]);
  }

  identity(): LogIdentity {
    return { ...this.#identity };
  }

  /** Calls `listener` with each new checkpoint; returns the function that stops it. */
  onCheckpoint(listener: (checkpoint: string, size: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Appends a round's entry (its leaf bytes); resolves once it is durable and covered by the
   * checkpoint, to its index.
   */
  async append(leaf: Uint8Array, roundId: string): Promise<number> {
    await this.ready();
    const hash = hashLeaf(leaf);
    const index = await this.#store.appendLogEntry(leaf);
    // Appends resolve in order, but do not rely on it: hash the tree strictly in index order.
    this.#early.set(index, { hash, roundId });
    let next = this.#hashes.size;
    let grew = false;
    for (let item = this.#early.get(next); item !== undefined; item = this.#early.get(next)) {
      this.#early.delete(next);
      this.#hashes.append(item.hash);
      this.#byRound.set(item.roundId, next);
      next++;
      grew = true;
    }
    if (grew) await this.#signSoon();
    return index;
  }

  /**
   * Signs one checkpoint for all the appends that became durable together: the group commit
   * resumes a batch's appends one after another in the same turn, and this signs after the last
   * of them (a microtask later) instead of once per append.
   */
  #signSoon(): Promise<void> {
    this.#signing ??= Promise.resolve().then(() => {
      this.#signing = undefined;
      this.#sign();
    });
    return this.#signing;
  }

  /** The index of a round's entry, if the log has one. */
  indexOf(roundId: string): number | undefined {
    return this.#byRound.get(roundId);
  }

  async entries(start: number, end: number): Promise<Uint8Array[]> {
    await this.ready();
    return this.#store.logEntries(start, Math.min(end, start + MAX_ENTRIES_PER_READ, this.size));
  }

  root(size: number): Uint8Array {
    return treeRoot(this.#hashes, size);
  }

  /** The RFC 6962 leaf hash of entry `index` (< size), from the tree, without reading the entry. */
  leafHash(index: number): Uint8Array {
    return new Uint8Array(this.#hashes.node(0, index));
  }

  inclusionProof(index: number, size: number): Uint8Array[] {
    return inclusionProof(this.#hashes, index, size);
  }

  consistencyProof(from: number, to: number): Uint8Array[] {
    return consistencyProof(this.#hashes, from, to);
  }

  /** Keeps a newly signed checkpoint for cosigning; forgets the oldest but the one served. */
  #keep(size: number, note: string): void {
    const text = new TextEncoder().encode(parseNote(note).text);
    // Signed again (a restart, or nothing new): the same text, and its cosignatures still hold.
    const before = this.#kept.get(size);
    if (before !== undefined && Buffer.compare(before.text, text) === 0) return;
    this.#kept.set(size, { note, text, cosignatures: new Map() });
    for (const old of this.#kept.keys()) {
      if (this.#kept.size <= CHECKPOINTS_KEPT) break;
      if (old !== this.#witnessed) this.#kept.delete(old);
    }
  }

  #sign(): void {
    const size = this.#hashes.size;
    const chain = this.#store.chain;
    this.#checkpoint = signCheckpoint(
      {
        origin: this.origin,
        size,
        rootHash: treeRoot(this.#hashes, size),
        extensions: chain ? [`${STORE_HEAD_EXTENSION} ${chain.lines} ${chain.head}`] : [],
      },
      this.#signer,
    );
    this.#keep(size, this.#checkpoint);
    for (const listener of this.#listeners) listener(this.#checkpoint, size);
  }
}

const ROUND_ID_MEMBER = /"roundId":"([A-Za-z0-9_-]{22})"/;

/**
 * The round id of a stored entry, without parsing it whole (a million entries are read at start):
 * in canonical JSON no string value can hold `"roundId":"` unescaped and no nested object of an
 * entry has that member, so its only match is the entry's own. An entry without one is corruption.
 */
function roundIdOf(leaf: Uint8Array, index: number): string {
  const found = ROUND_ID_MEMBER.exec(Buffer.from(leaf).toString("latin1"));
  if (!found) {
    throw new DkeygenError(
      ErrorCodes.STORE_CORRUPT,
      `Log entry ${index} in the key store is neither a round's nor a threshold session's entry.`,
    );
  }
  return found[1]!;
}
