/**
 * Registered requesting clients. An admin registers a client's public key under a name
 * (`dkeygen requester add NAME --public-key FILE`) and receives the client's credential, shown
 * once: `dkr_<name>.<43 base64url characters>`. The server keeps only a SHA-256 of the secret
 * half, beside the public key every delivery to that client is encrypted to, and the response key
 * derived from the secret (protocol/answer-auth.ts) that authenticates its answers to that client.
 * A stolen credential alone therefore yields ciphertexts for a key its thief does not hold; a
 * leaked requesters.json lets its holder forge answers to a client from its network path, but
 * not authenticate as it.
 *
 * Registrations, ids and tombstones: requester-store.ts (the RequesterStore interface). This file
 * holds its implementation in the server's data folder and `RequesterRegistry`, the servers' view
 * of any RequesterStore. Registrations written before ids have none: their id is their name,
 * which is what their records' owner already holds.
 *
 *   requesters.json   {requesters: [{id, name, publicKey (SPKI PEM), fingerprint, credentialHash,
 *                     responseKey, addedAt}], removed: [{name, id, removedAt}]}, 0600. `requester
 *                     add` and `remove` change it under an exclusive lock (datadir/lock-file.ts) and
 *                     write it atomically, by rename; the server only reads it. The server checks
 *                     it for changes (a stat; a read only when it changed) every second, so a
 *                     replaced or removed credential stops working within a second, and before
 *                     refusing any credential, so one just added works at once. Every refusal
 *                     takes that same path, whether the name is unknown or the secret wrong: its
 *                     timing says nothing about which names exist.
 */
import { createPublicKey, type KeyObject, timingSafeEqual } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { ensureDataDir, readJsonFile, writeJsonFile } from "../datadir/files.js";
import { LockFile } from "../datadir/lock-file.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import {
  type AddedRequester,
  type AddOptions,
  checkRequesterName,
  type ListedRequester,
  liveNameTaken,
  makeRegistration,
  newRegistrationId,
  noSuchRequester,
  type RegistrationSnapshot,
  type RequesterStore,
  requesterKeyFromPem,
  type StoredRegistration,
  sha256,
  type Tombstone,
} from "./requester-store.js";

export {
  type AddedRequester,
  type ListedRequester,
  REGISTRATION_ID,
  REQUESTER_NAME,
  type RequesterStore,
  requesterKeyFromPem,
  type Tombstone,
} from "./requester-store.js";

export const REQUESTERS_FILE = "requesters.json";
const CREDENTIAL = /^dkr_([A-Za-z0-9][A-Za-z0-9._@-]{0,63})\.([A-Za-z0-9_-]{43})$/;

interface RegistrationLine {
  /** Absent in registrations written before ids: their id is their name. */
  id?: string;
  name: string;
  publicKey: string;
  fingerprint: string;
  credentialHash: string;
  /** base64url of K_resp (32 bytes); absent in registrations written before authenticated answers. */
  responseKey?: string;
  addedAt: string;
}

interface RequestersFile {
  requesters: RegistrationLine[];
  removed?: Tombstone[];
}

/** A registered requesting client, as the server knows it. */
export interface Requester {
  /** The registration's immutable id: what records' owner and claims' requester hold. */
  id: string;
  name: string;
  fingerprint: string;
  publicKey: KeyObject;
  /** K_resp, which authenticates answers to this client; undefined for a registration from before. */
  responseKey: Buffer | undefined;
}

/** The id of a registration line: its own, or for one written before ids, its name. */
const idOf = (line: RegistrationLine) => line.id ?? line.name;

async function readRequestersFile(path: string): Promise<RequestersFile> {
  const file = (await readJsonFile<RequestersFile>(path)) ?? { requesters: [] };
  if (!Array.isArray(file.requesters)) {
    throw new DkeygenError(ErrorCodes.OPERATIONAL, `${path} has no list of requesters.`);
  }
  return file;
}

/** Registrations in requesters.json in a server's data folder (one machine, one writer at a time). */
export class FileRequesterStore implements RequesterStore {
  readonly where: string;
  readonly pollMs = 1000;
  readonly #dataDir: string;
  readonly #lockTimeoutMs: number | undefined;

  constructor(dataDir: string, options: { lockTimeoutMs?: number } = {}) {
    this.#dataDir = dataDir;
    this.where = join(dataDir, REQUESTERS_FILE);
    this.#lockTimeoutMs = options.lockTimeoutMs;
  }

  async add(name: string, publicKeyPem: string, options: AddOptions = {}): Promise<AddedRequester> {
    checkRequesterName(name);
    const key = requesterKeyFromPem(publicKeyPem);
    const random = options.random ?? osRandom;
    const path = this.where;
    await ensureDataDir(this.#dataDir);
    return this.#updateLocked(async () => {
      const file = await readRequestersFile(path);
      const existing = file.requesters.findIndex((r) => r.name === name);
      if (existing >= 0 && !options.replace) throw liveNameTaken(name);
      const taken = new Set([
        ...file.requesters.map(idOf),
        ...(file.removed ?? []).map((t) => t.id),
      ]);
      const id =
        existing >= 0
          ? idOf(file.requesters[existing]!)
          : newRegistrationId(random, (id) => taken.has(id));
      const made = makeRegistration(id, name, key, random, options.now ?? new Date());
      const r = made.registration;
      const line: RegistrationLine = {
        id,
        name,
        publicKey: r.publicKey,
        fingerprint: r.fingerprint,
        credentialHash: r.credentialHash.toString("hex"),
        responseKey: toBase64url(r.responseKey!),
        addedAt: r.addedAt,
      };
      if (existing >= 0) file.requesters[existing] = line;
      else file.requesters.push(line);
      await writeJsonFile(path, file);
      return {
        name,
        id,
        fingerprint: line.fingerprint,
        credential: made.credential,
        keptRegistration: existing >= 0,
        removedBefore:
          existing >= 0 ? [] : (file.removed ?? []).filter((t) => t.name === name).map((t) => t.id),
      };
    });
  }

  async remove(name: string, options: { now?: Date } = {}): Promise<{ name: string; id: string }> {
    const path = this.where;
    return this.#updateLocked(async () => {
      const file = await readRequestersFile(path);
      const gone = file.requesters.find((r) => r.name === name);
      if (!gone) throw noSuchRequester(name);
      const tombstone: Tombstone = {
        name,
        id: idOf(gone),
        removedAt: (options.now ?? new Date()).toISOString(),
      };
      await writeJsonFile(path, {
        ...file,
        requesters: file.requesters.filter((r) => r !== gone),
        removed: [...(file.removed ?? []), tombstone],
      });
      return { name, id: tombstone.id };
    });
  }

  async list(): Promise<{ requesters: ListedRequester[]; removed: Tombstone[] }> {
    const file = await readRequestersFile(this.where);
    return {
      requesters: file.requesters.map((line) => ({
        name: line.name,
        id: idOf(line),
        fingerprint: line.fingerprint,
        addedAt: line.addedAt,
        responseKey: line.responseKey !== undefined,
      })),
      removed: file.removed ?? [],
    };
  }

  /** Identity of the file: inode, mtime and size (each change renames a new file in); "" if none. */
  async version(): Promise<string> {
    try {
      const info = await stat(this.where);
      return `${info.ino}:${info.mtimeMs}:${info.size}`;
    } catch {
      return "";
    }
  }

  async snapshot(): Promise<RegistrationSnapshot> {
    const version = await this.version();
    if (version === "") return { version, registrations: [] };
    const file = await readRequestersFile(this.where);
    return {
      version,
      registrations: file.requesters.map(
        (line): StoredRegistration => ({
          id: idOf(line),
          name: line.name,
          publicKey: line.publicKey,
          fingerprint: line.fingerprint,
          credentialHash: Buffer.from(line.credentialHash, "hex"),
          responseKey:
            line.responseKey === undefined
              ? undefined
              : Buffer.from(fromBase64url(line.responseKey, "responseKey", 32)),
          addedAt: line.addedAt,
        }),
      ),
    };
  }

  /**
   * Runs a read-modify-write of requesters.json holding its lock (`requesters.json.lock`): a
   * second `requester add`/`remove` waits for the first (up to 10 s by default) instead of
   * reading the same old file and undoing its change.
   */
  #updateLocked<T>(update: () => Promise<T>): Promise<T> {
    return LockFile.holding(
      `${this.where}.lock`,
      {
        what: this.where,
        busy: ["being changed by", "try again"],
        waitMs: this.#lockTimeoutMs ?? 10_000,
      },
      update,
    );
  }
}

/**
 * Registers `name` with `publicKeyPem` in `dataDir` and returns its credential (shown once); see
 * RequesterStore.add.
 */
export function addRequester(
  dataDir: string,
  name: string,
  publicKeyPem: string,
  options: { replace?: boolean; random?: RandomSource; now?: Date; lockTimeoutMs?: number } = {},
): Promise<AddedRequester> {
  const { lockTimeoutMs, ...rest } = options;
  return new FileRequesterStore(dataDir, lockOption(lockTimeoutMs)).add(name, publicKeyPem, rest);
}

/**
 * Removes `name`'s registration from `dataDir`: its credential stops working (a running server
 * notices within a second) and a tombstone keeps its id, so nothing of its records is ever handed
 * to a later registration of the name. Throws E_NOT_FOUND if no such requester is registered.
 */
export function removeRequester(
  dataDir: string,
  name: string,
  options: { now?: Date; lockTimeoutMs?: number } = {},
): Promise<{ name: string; id: string }> {
  const { lockTimeoutMs, ...rest } = options;
  return new FileRequesterStore(dataDir, lockOption(lockTimeoutMs)).remove(name, rest);
}

export function listRequesters(
  dataDir: string,
): Promise<{ requesters: ListedRequester[]; removed: Tombstone[] }> {
  return new FileRequesterStore(dataDir).list();
}

const lockOption = (ms: number | undefined) => (ms === undefined ? {} : { lockTimeoutMs: ms });

interface Entry extends Requester {
  credentialHash: Buffer;
}

/**
 * A server's view of a RequesterStore, for authenticating requests. It keeps the live
 * registrations in memory and asks the store's `version()` every `pollMs` (watch) and before
 * refusing any credential (so one just added works at once); it reads them again only when the
 * version changed.
 */
export class RequesterRegistry {
  readonly #store: RequesterStore;
  #byName = new Map<string, Entry>();
  /** The store's version last read ("" before the first read, and for an absent file). */
  #version: string | undefined;
  /** Compared against when a name is unknown, so a miss costs the same as a hit. */
  readonly #decoy = sha256("dkeygen decoy credential");
  #watch: NodeJS.Timeout | undefined;
  #reloading: Promise<void> | undefined;

  private constructor(store: RequesterStore) {
    this.#store = store;
  }

  /** The registry of requesters.json in `dataDir`. */
  static load(dataDir: string): Promise<RequesterRegistry> {
    return RequesterRegistry.open(new FileRequesterStore(dataDir));
  }

  /** The registry of `store`, read once now. */
  static async open(store: RequesterStore): Promise<RequesterRegistry> {
    const registry = new RequesterRegistry(store);
    await registry.reload();
    return registry;
  }

  /** Where the registrations are read from. */
  get store(): RequesterStore {
    return this.#store;
  }

  /**
   * Checks the store for changes every `intervalMs` (default: the store's `pollMs`) from now on,
   * until `close`, so that replaced and removed credentials stop working without a restart.
   */
  watch(intervalMs = this.#store.pollMs): void {
    clearInterval(this.#watch);
    this.#watch = setInterval(() => {
      this.reload().catch(() => {
        // A half-written file or an unreachable database: keep the registrations last read; the
        // next check (or the next refusal) tries again.
      });
    }, intervalMs);
    this.#watch.unref();
  }

  close(): void {
    clearInterval(this.#watch);
    this.#watch = undefined;
  }

  /** Re-reads the registrations if the store's version changed (one check at a time; shared). */
  reload(): Promise<void> {
    this.#reloading ??= this.#reload().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reload(): Promise<void> {
    const version = await this.#store.version();
    if (version === this.#version) return;
    const snapshot = await this.#store.snapshot();
    const next = new Map<string, Entry>();
    for (const r of snapshot.registrations) {
      next.set(r.name, {
        id: r.id,
        name: r.name,
        fingerprint: r.fingerprint,
        publicKey: createPublicKey(r.publicKey),
        credentialHash: r.credentialHash,
        responseKey: r.responseKey,
      });
    }
    this.#byName = next;
    this.#version = snapshot.version;
  }

  /** The live registration of `name`, with its id. */
  get(name: string): Requester | undefined {
    return this.#byName.get(name);
  }

  /** The name of live registration `id`, or undefined (removed, or never registered). */
  nameOf(id: string): string | undefined {
    for (const entry of this.#byName.values()) if (entry.id === id) return entry.name;
    return undefined;
  }

  /** Names of registrations without a response key (made before authenticated answers). */
  withoutResponseKey(): string[] {
    return [...this.#byName.values()].filter((r) => !r.responseKey).map((r) => r.name);
  }

  /**
   * The requester a `Bearer` credential belongs to, or undefined. Never says why not: a malformed
   * header, an unknown name and a wrong secret all look the same to the caller.
   */
  async authenticate(authorization: string | undefined): Promise<Requester | undefined> {
    const known = this.authenticateKnown(authorization);
    if (known !== "recheck") return known;
    await this.reload();
    const again = this.authenticateKnown(authorization);
    return again === "recheck" ? undefined : again;
  }

  /**
   * `authenticate` without touching the disk. "recheck" when a well-formed credential does not
   * match what was last read (an unknown name or a wrong secret alike, so the two cannot be told
   * apart): the caller reloads and asks again; undefined when the header is no credential at all.
   */
  authenticateKnown(authorization: string | undefined): Requester | undefined | "recheck" {
    const match = authorization === undefined ? null : /^Bearer (\S+)$/.exec(authorization);
    const parts = match ? CREDENTIAL.exec(match[1]!) : null;
    if (!parts) return undefined;
    const [, name, secret] = parts as unknown as [string, string, string];
    const entry = this.#byName.get(name);
    const presented = sha256(secret);
    const ok = timingSafeEqual(presented, entry?.credentialHash ?? this.#decoy);
    return entry && ok ? entry : "recheck";
  }
}
