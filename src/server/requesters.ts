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
 * Records belong to a registration, not a name: each registration has an immutable id made at
 * `requester add` ("rq:" and 16 random bytes base64url; a name cannot hold ":"), which records'
 * `owner` and claims' `requester` hold. `requester remove` leaves a tombstone {name, id,
 * removedAt}; adding the name again makes a new id that sees nothing of the old one's.
 * `requester add --replace` on a live registration keeps its id: the operator's explicit transfer
 * to a new key. Registrations written before ids have none: their id is their name, which is what
 * their records' owner already holds.
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
import { createHash, createPublicKey, type KeyObject, timingSafeEqual } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { fingerprintOf } from "../crypto/fingerprint.js";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { ensureDataDir, readJsonFile, writeJsonFile } from "../datadir/files.js";
import { LockFile } from "../datadir/lock-file.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { deriveResponseKey } from "../protocol/answer-auth.js";

export const REQUESTERS_FILE = "requesters.json";
export const REQUESTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const CREDENTIAL = /^dkr_([A-Za-z0-9][A-Za-z0-9._@-]{0,63})\.([A-Za-z0-9_-]{43})$/;
/** A registration id made by `requester add`: never a name (names hold no ":"). */
export const REGISTRATION_ID = /^rq:[A-Za-z0-9_-]{22}$/;

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

/** What is left of a removed registration: its id is never reused, its records stay its own. */
export interface Tombstone {
  name: string;
  id: string;
  removedAt: string;
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

const sha256 = (text: string) => createHash("sha256").update(text).digest();

/** The id of a registration line: its own, or for one written before ids, its name. */
const idOf = (line: RegistrationLine) => line.id ?? line.name;

async function readRequestersFile(path: string): Promise<RequestersFile> {
  const file = (await readJsonFile<RequestersFile>(path)) ?? { requesters: [] };
  if (!Array.isArray(file.requesters)) {
    throw new DkeygenError(ErrorCodes.OPERATIONAL, `${path} has no list of requesters.`);
  }
  return file;
}

/** Checks a requester's public key: RSA of at least 3072 bits, given as SPKI PEM. */
export function requesterKeyFromPem(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (cause) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "The public key is not a PEM public key.", {
      cause,
    });
  }
  if (key.asymmetricKeyType !== "rsa" || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 3072) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "A requester's key must be RSA of at least 3072 bits.",
    );
  }
  return key;
}

export interface AddedRequester {
  name: string;
  /** The registration id (kept by --replace of a live registration, else new). */
  id: string;
  fingerprint: string;
  credential: string;
  /** True when --replace kept a live registration's id (and so its records). */
  keptRegistration: boolean;
  /** For a new registration: ids of earlier, removed ones of this name, whose records stay theirs. */
  removedBefore: string[];
}

/**
 * Registers `name` with `publicKeyPem` in `dataDir` and returns its credential (shown once).
 * With `replace`, a live registration of that name gets the new key and a new credential and
 * keeps its id, so its records stay its own; without, a live name is refused. A name whose
 * registration was removed gets a new id: nothing of the old registration's is visible to it.
 */
export async function addRequester(
  dataDir: string,
  name: string,
  publicKeyPem: string,
  options: { replace?: boolean; random?: RandomSource; now?: Date; lockTimeoutMs?: number } = {},
): Promise<AddedRequester> {
  if (!REQUESTER_NAME.test(name)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "A requester name has letters, digits and . _ @ - (up to 64, starting with a letter or digit).",
    );
  }
  const key = requesterKeyFromPem(publicKeyPem);
  const random = options.random ?? osRandom;
  const path = join(dataDir, REQUESTERS_FILE);
  await ensureDataDir(dataDir);
  return updateLocked(path, options.lockTimeoutMs, async () => {
    const file = await readRequestersFile(path);
    const existing = file.requesters.findIndex((r) => r.name === name);
    if (existing >= 0 && !options.replace) {
      throw new DkeygenError(
        ErrorCodes.USAGE,
        `A requester named ${name} is already registered (use --replace).`,
      );
    }
    const taken = new Set([...file.requesters.map(idOf), ...(file.removed ?? []).map((t) => t.id)]);
    let id: string;
    if (existing >= 0) id = idOf(file.requesters[existing]!);
    else {
      do id = `rq:${toBase64url(random(16))}`;
      while (taken.has(id));
    }
    const secret = toBase64url(random(32));
    const line: RegistrationLine = {
      id,
      name,
      publicKey: key.export({ type: "spki", format: "pem" }) as string,
      fingerprint: fingerprintOf(key),
      credentialHash: sha256(secret).toString("hex"),
      responseKey: toBase64url(deriveResponseKey(name, secret)),
      addedAt: (options.now ?? new Date()).toISOString(),
    };
    if (existing >= 0) file.requesters[existing] = line;
    else file.requesters.push(line);
    await writeJsonFile(path, file);
    return {
      name,
      id,
      fingerprint: line.fingerprint,
      credential: `dkr_${name}.${secret}`,
      keptRegistration: existing >= 0,
      removedBefore:
        existing >= 0 ? [] : (file.removed ?? []).filter((t) => t.name === name).map((t) => t.id),
    };
  });
}

/**
 * Runs a read-modify-write of requesters.json holding its lock (`requesters.json.lock`): a second
 * `requester add`/`remove` waits for the first (up to `timeoutMs`, default 10 s) instead of
 * reading the same old file and undoing its change.
 */
function updateLocked<T>(
  path: string,
  timeoutMs: number | undefined,
  update: () => Promise<T>,
): Promise<T> {
  return LockFile.holding(
    `${path}.lock`,
    {
      what: path,
      busy: ["being changed by", "try again"],
      waitMs: timeoutMs ?? 10_000,
    },
    update,
  );
}

/**
 * Removes `name`'s registration from `dataDir`: its credential stops working (a running server
 * notices within a second) and a tombstone keeps its id, so nothing of its records is ever handed
 * to a later registration of the name. Throws E_NOT_FOUND if no such requester is registered.
 */
export async function removeRequester(
  dataDir: string,
  name: string,
  options: { now?: Date; lockTimeoutMs?: number } = {},
): Promise<{ name: string; id: string }> {
  const path = join(dataDir, REQUESTERS_FILE);
  return updateLocked(path, options.lockTimeoutMs, async () => {
    const file = await readRequestersFile(path);
    const gone = file.requesters.find((r) => r.name === name);
    if (!gone) {
      throw new DkeygenError(ErrorCodes.NOT_FOUND, `No requester named ${name} is registered.`);
    }
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

export interface ListedRequester {
  name: string;
  id: string;
  fingerprint: string;
  addedAt: string;
  /** False for a registration from before authenticated answers: it must be re-registered. */
  responseKey: boolean;
}

export async function listRequesters(
  dataDir: string,
): Promise<{ requesters: ListedRequester[]; removed: Tombstone[] }> {
  const file = await readRequestersFile(join(dataDir, REQUESTERS_FILE));
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

interface Entry extends Requester {
  credentialHash: Buffer;
}

/** The server's view of requesters.json, for authenticating requests. */
export class RequesterRegistry {
  readonly #path: string;
  #byName = new Map<string, Entry>();
  /** Identity of the file last read: inode and mtime (each `requester add` renames a new file in). */
  #version = "";
  /** Compared against when a name is unknown, so a miss costs the same as a hit. */
  readonly #decoy = sha256("dkeygen decoy credential");
  #watch: NodeJS.Timeout | undefined;
  #reloading: Promise<void> | undefined;

  private constructor(dataDir: string) {
    this.#path = join(dataDir, REQUESTERS_FILE);
  }

  static async load(dataDir: string): Promise<RequesterRegistry> {
    const registry = new RequesterRegistry(dataDir);
    await registry.reload();
    return registry;
  }

  /**
   * Checks requesters.json for changes every `intervalMs` from now on (until `close`), so that
   * replaced and removed credentials stop working without a restart.
   */
  watch(intervalMs = 1000): void {
    clearInterval(this.#watch);
    this.#watch = setInterval(() => {
      this.reload().catch(() => {
        // A half-written or unreadable file: keep the registrations last read; the next check
        // (or the next refusal) tries again.
      });
    }, intervalMs);
    this.#watch.unref();
  }

  close(): void {
    clearInterval(this.#watch);
    this.#watch = undefined;
  }

  /** Re-reads requesters.json if it changed (one check at a time; callers share it). */
  reload(): Promise<void> {
    this.#reloading ??= this.#reload().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reload(): Promise<void> {
    let version: string;
    try {
      const info = await stat(this.#path);
      version = `${info.ino}:${info.mtimeMs}:${info.size}`;
    } catch {
      this.#byName = new Map();
      this.#version = "";
      return;
    }
    if (version === this.#version) return;
    const file = await readRequestersFile(this.#path);
    const next = new Map<string, Entry>();
    for (const line of file.requesters) {
      next.set(line.name, {
        id: idOf(line),
        name: line.name,
        fingerprint: line.fingerprint,
        publicKey: createPublicKey(line.publicKey),
        credentialHash: Buffer.from(line.credentialHash, "hex"),
        responseKey:
          line.responseKey === undefined
            ? undefined
            : Buffer.from(fromBase64url(line.responseKey, "responseKey", 32)),
      });
    }
    this.#byName = next;
    this.#version = version;
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
