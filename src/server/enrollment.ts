/**
 * Who may contribute. An admin issues a single-use enrollment token (`dkeygen enroll`); a
 * contributor presents it once, with its Ed25519 identity key, and is known by that key from then
 * on. The server keeps only a SHA-256 of each token's secret, so the token file leaks nothing that
 * lets anyone enroll.
 *
 *   enrollment-tokens.jsonl   one token per line {id, hash, name?, createdAt, expiresAt}, 0600,
 *                             appended by `dkeygen enroll` (also while the server runs)
 *   contributors.json         the enrolled contributors, written only by the server, atomically
 *
 * A token is usable when its line exists, it has not expired, and no enrolled contributor used it.
 */
import { createHash, type KeyObject, timingSafeEqual } from "node:crypto";
import { appendFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { publicKeyFromRaw } from "../crypto/signature.js";
import { readJsonFile, writeJsonFile } from "../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { contributorIdOf } from "../protocol/identity.js";

export const TOKENS_FILE = "enrollment-tokens.jsonl";
export const CONTRIBUTORS_FILE = "contributors.json";
export const DEFAULT_TOKEN_TTL_MS = 24 * 60 * 60 * 1000;

interface TokenLine {
  id: string;
  hash: string;
  name?: string;
  createdAt: string;
  expiresAt: string;
}

export interface EnrolledContributor {
  id: string;
  name?: string;
  publicKey: string;
  enrolledAt: string;
  tokenId: string;
}

export interface IssuedToken {
  /** The whole token, to hand to the contributor. Shown once; the server keeps only its hash. */
  token: string;
  tokenId: string;
  name?: string;
  expiresAt: string;
}

const sha256hex = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");

/** Issues a single-use enrollment token into `dataDir`. Works whether the server runs or not. */
export async function issueEnrollmentToken(
  dataDir: string,
  options: { name?: string; ttlMs?: number; now?: Date; random?: RandomSource } = {},
): Promise<IssuedToken> {
  const random = options.random ?? osRandom;
  const now = options.now ?? new Date();
  const tokenId = toBase64url(random(12));
  const secret = toBase64url(random(32));
  const line: TokenLine = {
    id: tokenId,
    hash: sha256hex(secret),
    ...(options.name === undefined ? {} : { name: options.name }),
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + (options.ttlMs ?? DEFAULT_TOKEN_TTL_MS)).toISOString(),
  };
  // One write of one line with O_APPEND: a concurrent reader sees the whole line or none of it.
  await appendFile(join(dataDir, TOKENS_FILE), `${JSON.stringify(line)}\n`, {
    mode: 0o600,
    flush: true,
  });
  return {
    token: `dkt_${tokenId}.${secret}`,
    tokenId,
    ...(options.name === undefined ? {} : { name: options.name }),
    expiresAt: line.expiresAt,
  };
}

export { contributorIdOf } from "../protocol/identity.js";

interface RegistryEntry extends EnrolledContributor {
  key: KeyObject;
}

export class ContributorRegistry {
  readonly #dataDir: string;
  readonly #byId = new Map<string, RegistryEntry>();
  #writes: Promise<unknown> = Promise.resolve();

  private constructor(dataDir: string) {
    this.#dataDir = dataDir;
  }

  static async load(dataDir: string): Promise<ContributorRegistry> {
    const registry = new ContributorRegistry(dataDir);
    const file = await readJsonFile<{ contributors: EnrolledContributor[] }>(
      join(dataDir, CONTRIBUTORS_FILE),
    );
    for (const entry of file?.contributors ?? []) {
      const key = publicKeyFromRaw(
        fromBase64url(entry.publicKey, "contributors.json publicKey", 32),
      );
      registry.#byId.set(entry.id, { ...entry, key });
    }
    return registry;
  }

  get size(): number {
    return this.#byId.size;
  }

  get(id: string): (EnrolledContributor & { key: KeyObject }) | undefined {
    return this.#byId.get(id);
  }

  /**
   * Enrolls `identity` with `token`. Serialized, so two joins racing with one token cannot both
   * succeed. Throws NOT_ENROLLED, with the same message whatever was wrong with the token, so a
   * caller cannot probe which token ids exist.
   */
  enroll(identity: Uint8Array, token: string, now: Date): Promise<EnrolledContributor> {
    const run = this.#writes.then(() => this.#enroll(identity, token, now));
    this.#writes = run.catch(() => {});
    return run;
  }

  async #enroll(identity: Uint8Array, token: string, now: Date): Promise<EnrolledContributor> {
    const refused = new DkeygenError(
      ErrorCodes.NOT_ENROLLED,
      "The enrollment token is not valid: unknown, expired or already used.",
    );
    const match = /^dkt_([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!match) throw refused;
    const [, tokenId, secret] = match as unknown as [string, string, string];
    const line = (await this.#readTokens()).find((t) => t.id === tokenId);
    const presented = Buffer.from(sha256hex(secret), "hex");
    const expected = Buffer.from(line?.hash ?? "00".repeat(32), "hex");
    const hashOk = expected.length === 32 && timingSafeEqual(presented, expected);
    const used = [...this.#byId.values()].some((c) => c.tokenId === tokenId);
    if (!line || !hashOk || used || Date.parse(line.expiresAt) <= now.getTime()) throw refused;

    const id = contributorIdOf(identity);
    if (this.#byId.has(id)) return this.#byId.get(id)!;
    const entry: RegistryEntry = {
      id,
      ...(line.name === undefined ? {} : { name: line.name }),
      publicKey: toBase64url(identity),
      enrolledAt: now.toISOString(),
      tokenId,
      key: publicKeyFromRaw(identity),
    };
    this.#byId.set(id, entry);
    try {
      await this.#save();
    } catch (error) {
      this.#byId.delete(id);
      throw error;
    }
    return entry;
  }

  async #readTokens(): Promise<TokenLine[]> {
    let text: string;
    try {
      text = await readFile(join(this.#dataDir, TOKENS_FILE), "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const tokens: TokenLine[] = [];
    for (const raw of text.split("\n")) {
      if (!raw.trim()) continue;
      try {
        tokens.push(JSON.parse(raw) as TokenLine);
      } catch {
        // A line being appended right now, or damaged: it enrolls nobody.
      }
    }
    return tokens;
  }

  async #save(): Promise<void> {
    const contributors = [...this.#byId.values()].map(({ key: _key, ...rest }) => rest);
    await writeJsonFile(join(this.#dataDir, CONTRIBUTORS_FILE), { contributors });
  }
}
