/**
 * Registered requesting clients. An admin registers a client's public key under a name
 * (`dkeygen requester add NAME --public-key FILE`) and receives the client's credential, shown
 * once: `dkr_<name>.<43 base64url characters>`. The server keeps only a SHA-256 of the secret
 * half, beside the public key every delivery to that client is encrypted to. A stolen credential
 * alone therefore yields ciphertexts for a key its thief does not hold.
 *
 *   requesters.json   {requesters: [{name, publicKey (SPKI PEM), fingerprint, credentialHash,
 *                     addedAt}]}, 0600, written (atomically, by rename) by `requester add` and
 *                     `requester remove`, read by the server. The server checks it for changes
 *                     (a stat; a read only when it changed) every second, so a replaced or removed
 *                     credential stops working within a second, and before refusing any credential,
 *                     so one just added works at once. Every refusal takes that same path, whether
 *                     the name is unknown or the secret wrong: its timing says nothing about which
 *                     names exist.
 */
import { createHash, createPublicKey, type KeyObject, timingSafeEqual } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { toBase64url } from "../crypto/base64url.js";
import { fingerprintOf } from "../crypto/fingerprint.js";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { readJsonFile, writeJsonFile } from "../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../errors.js";

export const REQUESTERS_FILE = "requesters.json";
export const REQUESTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const CREDENTIAL = /^dkr_([A-Za-z0-9][A-Za-z0-9._@-]{0,63})\.([A-Za-z0-9_-]{43})$/;

interface RequesterLine {
  name: string;
  publicKey: string;
  fingerprint: string;
  credentialHash: string;
  addedAt: string;
}

/** A registered requesting client, as the server knows it. */
export interface Requester {
  name: string;
  fingerprint: string;
  publicKey: KeyObject;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest();

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

/**
 * Registers `name` with `publicKeyPem` in `dataDir` and returns its credential (shown once).
 * With `replace`, an existing registration of that name gets the new key and a new credential.
 */
export async function addRequester(
  dataDir: string,
  name: string,
  publicKeyPem: string,
  options: { replace?: boolean; random?: RandomSource; now?: Date } = {},
): Promise<{ name: string; fingerprint: string; credential: string }> {
  if (!REQUESTER_NAME.test(name)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "A requester name has letters, digits and . _ @ - (up to 64, starting with a letter or digit).",
    );
  }
  const key = requesterKeyFromPem(publicKeyPem);
  const path = join(dataDir, REQUESTERS_FILE);
  const file = (await readJsonFile<{ requesters: RequesterLine[] }>(path)) ?? { requesters: [] };
  const existing = file.requesters.findIndex((r) => r.name === name);
  if (existing >= 0 && !options.replace) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `A requester named ${name} is already registered (use --replace).`,
    );
  }
  const secret = toBase64url((options.random ?? osRandom)(32));
  const line: RequesterLine = {
    name,
    publicKey: key.export({ type: "spki", format: "pem" }) as string,
    fingerprint: fingerprintOf(key),
    credentialHash: sha256(secret).toString("hex"),
    addedAt: (options.now ?? new Date()).toISOString(),
  };
  if (existing >= 0) file.requesters[existing] = line;
  else file.requesters.push(line);
  await writeJsonFile(path, file);
  return { name, fingerprint: line.fingerprint, credential: `dkr_${name}.${secret}` };
}

/**
 * Removes `name`'s registration from `dataDir`: its credential stops working (a running server
 * notices within a second). Throws E_NOT_FOUND if no such requester is registered.
 */
export async function removeRequester(dataDir: string, name: string): Promise<void> {
  const path = join(dataDir, REQUESTERS_FILE);
  const file = (await readJsonFile<{ requesters: RequesterLine[] }>(path)) ?? { requesters: [] };
  const remaining = file.requesters.filter((r) => r.name !== name);
  if (remaining.length === file.requesters.length) {
    throw new DkeygenError(ErrorCodes.NOT_FOUND, `No requester named ${name} is registered.`);
  }
  await writeJsonFile(path, { ...file, requesters: remaining });
}

export async function listRequesters(
  dataDir: string,
): Promise<Omit<RequesterLine, "credentialHash" | "publicKey">[]> {
  const file = await readJsonFile<{ requesters: RequesterLine[] }>(join(dataDir, REQUESTERS_FILE));
  return (file?.requesters ?? []).map(({ name, fingerprint, addedAt }) => ({
    name,
    fingerprint,
    addedAt,
  }));
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
    const file = await readJsonFile<{ requesters: RequesterLine[] }>(this.#path);
    const next = new Map<string, Entry>();
    for (const line of file?.requesters ?? []) {
      next.set(line.name, {
        name: line.name,
        fingerprint: line.fingerprint,
        publicKey: createPublicKey(line.publicKey),
        credentialHash: Buffer.from(line.credentialHash, "hex"),
      });
    }
    this.#byName = next;
    this.#version = version;
  }

  get(name: string): Requester | undefined {
    return this.#byName.get(name);
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
