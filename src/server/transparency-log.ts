/**
 * The server's transparency log of rounds (docs/PROTOCOL.md §15): entries appended to the key
 * store (durable before anyone is told of the round), their Merkle tree kept in memory
 * (tlog/hash-store.ts: every root and proof for any size), and a checkpoint signed with the log's
 * Ed25519 key after every append, carrying the store's chain head so a store rolled back to an
 * older copy contradicts a checkpoint someone already holds.
 *
 * The log key is derived from the server's RSA private key (HKDF, §15), so it needs no file of its
 * own and changes only with the server key; the server key certifies it in `identity()`.
 */
import { hkdfSync, type KeyObject } from "node:crypto";
import { toBase64url } from "../crypto/base64url.js";
import { lengthPrefixed } from "../crypto/canonical.js";
import { serverSign } from "../crypto/server-signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { KeyStore } from "../store/types.js";
import { signCheckpoint } from "../tlog/checkpoint.js";
import { MemoryHashStore } from "../tlog/hash-store.js";
import { hashLeaf } from "../tlog/merkle.js";
import { ed25519NoteSigner } from "../tlog/note-keys.js";
import { consistencyProof, inclusionProof, treeRoot } from "../tlog/prove.js";
import type { ServerIdentity } from "./identity.js";

export const LOG_KEY_INFO = "dkeygen/v1/log-key";
/** The extension line that carries the key store's chain head (§15.2). */
export const STORE_HEAD_EXTENSION = "dkeygen-store-head";
/** At most this many entries in one `entries` answer. */
export const MAX_ENTRIES_PER_READ = 1000;

/** The log's origin (its checkpoints' first line and its key's name) for a server fingerprint. */
export function logOriginOf(serverFingerprint: string): string {
  const digest = Buffer.from(serverFingerprint.slice("SHA256:".length), "base64");
  return `dkeygen/${digest.subarray(0, 8).toString("hex")}`;
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

/** What the server key signs to certify the log key: LP("dkeygen/v1/log-identity", V, …). */
export function logIdentitySignedData(
  serverFingerprint: string,
  origin: string,
  verifierKey: string,
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/log-identity",
    String(PROTOCOL_VERSION),
    serverFingerprint,
    origin,
    verifierKey,
  );
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
  #loading: Promise<void> | undefined;
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
    if (grew) this.#sign();
    return index;
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

  inclusionProof(index: number, size: number): Uint8Array[] {
    return inclusionProof(this.#hashes, index, size);
  }

  consistencyProof(from: number, to: number): Uint8Array[] {
    return consistencyProof(this.#hashes, from, to);
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
      `Log entry ${index} in the key store is not a round entry.`,
    );
  }
  return found[1]!;
}
