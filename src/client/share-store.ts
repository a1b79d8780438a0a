/**
 * A contributor's threshold shares at rest (docs/PROTOCOL.md §16.5): one file per key,
 * `<data dir>/threshold/<key id>.json`, mode 0600 in a 0700 folder. The signing share is sealed
 * with AES-256-GCM under
 *
 *   K = HKDF-SHA-256(ikm = identity seed, salt = "", info = "dkeygen/v1/share-at-rest")
 *
 * with a random 12-byte IV and AAD = LP("dkeygen/v1/share-at-rest", key id, session id); the rest
 * of the file is public: the key's description, the public key package, the certificate, and the
 * recovery data (session parameters, every round-1 package, the shares sealed to this holder),
 * from which the identity key alone rebuilds the share if the sealed copy is lost
 * (threshold/recovery.ts). `sessions.log` lists every session id this contributor took part in,
 * so a replayed invitation is refused.
 */
import {
  createCipheriv,
  createDecipheriv,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { appendFile, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { FrostPublic } from "@noble/curves/abstract/frost.js";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { lengthPrefixed } from "../crypto/canonical.js";
import { ensureDataDir, fileExists, readJsonFile, writeJsonFile } from "../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import {
  type PublicPackageJson,
  publicFromJson,
  publicToJson,
  type Round1Json,
  round1FromJson,
  type SealedShareJson,
  shareFromJson,
  shareToJson,
} from "../threshold/codec.js";
import type { ThresholdShare } from "../threshold/dkg.js";
import { type RecoveryData, recoverRefreshedShare, recoverShare } from "../threshold/recovery.js";
import { identitySeed } from "../threshold/share-box.js";
import type { SuiteName } from "../threshold/suites.js";
import { p2trAddress } from "../threshold/taproot.js";
import { type DkgSessionParams, type SealedShare, sessionIdOf } from "../threshold/transcript.js";

export const SHARES_DIR = "threshold";
const SESSIONS_FILE = "sessions.log";

/** The file's form (version 1). */
export interface ShareFile {
  version: 1;
  keyId: string;
  suite: SuiteName;
  t: number;
  n: number;
  index: number;
  /** Who owns the key ("@admin" or a requester's registration id): only its requests are signed. */
  owner: string;
  groupPublicKey: string;
  outputKey?: string;
  address?: string;
  createdAt: string;
  identifiers: string[];
  public: PublicPackageJson;
  transcript: string;
  certificate: string[];
  /** The sealed signing share: IV ‖ ciphertext ‖ tag, base64url. */
  sealedShare: string;
  recovery: {
    params: {
      suite: SuiteName;
      t: number;
      n: number;
      serverFingerprint: string;
      nonce: string;
      identities: string[];
    };
    packages: Round1Json[];
    shares: SealedShareJson[];
  };
  /**
   * When the share came from a refresh (PROTOCOL §16.7), its public recovery data: the refresh's
   * session id and parameters, the t deals and the sub-shares sealed to this holder. `recovery`
   * above still describes the key's DKG (identities, encryption keys), not this share.
   */
  refresh?: {
    sessionId: string;
    refreshOf: string;
    dealers: number[];
    deals: { index: number; commitment: string[]; ephemeralKey: string; signature: string }[];
    shares: SealedShareJson[];
  };
}

/** What `dkeygen contributor shares` lists: nothing secret. */
export interface ShareSummary {
  keyId: string;
  suite: SuiteName;
  t: number;
  n: number;
  index: number;
  groupPublicKey: string;
  outputKey?: string;
  address?: string;
  createdAt: string;
}

function atRestKey(privateKey: KeyObject): Uint8Array {
  const seed = identitySeed(privateKey);
  try {
    return new Uint8Array(
      hkdfSync("sha256", seed, new Uint8Array(0), "dkeygen/v1/share-at-rest", 32),
    );
  } finally {
    seed.fill(0);
  }
}

function aad(keyId: string, sessionId: Uint8Array): Uint8Array {
  return lengthPrefixed("dkeygen/v1/share-at-rest", keyId, sessionId);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

export class ShareStore {
  readonly dir: string;
  readonly #privateKey: KeyObject;

  constructor(dataDir: string, privateKey: KeyObject) {
    this.dir = join(dataDir, SHARES_DIR);
    this.#privateKey = privateKey;
  }

  /** Records a session id; false when it was seen before (a replayed invitation). */
  async claimSession(sessionId: string): Promise<boolean> {
    await ensureDataDir(this.dir);
    const path = join(this.dir, SESSIONS_FILE);
    const seen = (await fileExists(path)) ? (await readFile(path, "utf8")).split("\n") : [];
    if (seen.includes(sessionId)) return false;
    await appendFile(path, `${sessionId}\n`, { mode: 0o600 });
    return true;
  }

  async save(
    keyId: string,
    share: ThresholdShare,
    params: DkgSessionParams,
    owner: string,
    packages: ShareFile["recovery"]["packages"],
    incoming: SealedShare[],
    createdAt: Date,
  ): Promise<ShareFile> {
    const file = this.#dkgFile(keyId, share, params, owner, packages, incoming, createdAt);
    await ensureDataDir(this.dir);
    await writeJsonFile(join(this.dir, `${keyId}.json`), file, 0o600);
    return file;
  }

  /**
   * Keeps a share rebuilt from the server's recovery data (PROTOCOL §16.8) exactly as the DKG —
   * and, for a refreshed key, the refresh — that made it would have: the DKG's file, then, when
   * `refreshed` is given, the refresh's file over it under `keyId` (a stale file of the key it
   * refreshed, say from an old backup, is removed, as after a refresh).
   */
  async saveRecovered(
    keyId: string,
    share: ThresholdShare,
    params: DkgSessionParams,
    owner: string,
    packages: ShareFile["recovery"]["packages"],
    incoming: SealedShare[],
    createdAt: Date,
    refreshed?: {
      keyId: string;
      share: Parameters<ShareStore["saveRefreshed"]>[2];
      refresh: Parameters<ShareStore["saveRefreshed"]>[3];
    },
  ): Promise<ShareFile> {
    if (refreshed === undefined) {
      return this.save(keyId, share, params, owner, packages, incoming, createdAt);
    }
    const dkg = this.#dkgFile(refreshed.keyId, share, params, owner, packages, incoming, createdAt);
    await ensureDataDir(this.dir);
    return this.saveRefreshed(keyId, dkg, refreshed.share, refreshed.refresh, createdAt);
  }

  #dkgFile(
    keyId: string,
    share: ThresholdShare,
    params: DkgSessionParams,
    owner: string,
    packages: ShareFile["recovery"]["packages"],
    incoming: SealedShare[],
    createdAt: Date,
  ): ShareFile {
    if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(keyId)) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "A key id is 26 Crockford base32 characters.",
      );
    }
    const sealed = this.#seal(keyId, share.sessionId, share.signingShare);
    return {
      version: 1,
      keyId,
      suite: share.suite,
      t: share.t,
      n: share.n,
      index: share.index,
      owner,
      groupPublicKey: hex(share.groupPublicKey),
      ...(share.outputKey === undefined
        ? {}
        : { outputKey: hex(share.outputKey), address: p2trAddress(share.outputKey) }),
      createdAt: createdAt.toISOString(),
      identifiers: share.identifiers,
      public: publicToJson(share.public, share.identifiers),
      transcript: hex(share.transcript),
      certificate: share.certificate.map(toBase64url),
      sealedShare: sealed,
      recovery: {
        params: {
          suite: params.suite,
          t: params.t,
          n: params.n,
          serverFingerprint: params.serverFingerprint,
          nonce: toBase64url(params.nonce),
          identities: params.identities.map(toBase64url),
        },
        packages,
        shares: incoming.map(shareToJson),
      },
    };
  }

  /**
   * Keeps the share a refresh made as key `keyId` and removes the refreshed key's file: the old
   * share is of no use with the new ones, and keeping it would only be something to steal.
   */
  async saveRefreshed(
    keyId: string,
    old: ShareFile,
    refreshed: {
      sessionId: Uint8Array;
      public: FrostPublic;
      signingShare: Uint8Array;
      transcript: Uint8Array;
      certificate: Uint8Array[];
    },
    refresh: Omit<NonNullable<ShareFile["refresh"]>, "sessionId" | "refreshOf">,
    createdAt: Date,
  ): Promise<ShareFile> {
    if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(keyId)) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "A key id is 26 Crockford base32 characters.",
      );
    }
    const file: ShareFile = {
      ...old,
      keyId,
      createdAt: createdAt.toISOString(),
      public: publicToJson(refreshed.public, old.identifiers),
      transcript: hex(refreshed.transcript),
      certificate: refreshed.certificate.map(toBase64url),
      sealedShare: this.#seal(keyId, refreshed.sessionId, refreshed.signingShare),
      refresh: { ...refresh, sessionId: toBase64url(refreshed.sessionId), refreshOf: old.keyId },
    };
    await writeJsonFile(join(this.dir, `${keyId}.json`), file, 0o600);
    await rm(join(this.dir, `${old.keyId}.json`), { force: true });
    return file;
  }

  #seal(keyId: string, sessionId: Uint8Array, share: Uint8Array): string {
    const key = atRestKey(this.#privateKey);
    try {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      cipher.setAAD(aad(keyId, sessionId));
      return toBase64url(
        Buffer.concat([iv, cipher.update(share), cipher.final(), cipher.getAuthTag()]),
      );
    } finally {
      key.fill(0);
    }
  }

  async list(): Promise<ShareSummary[]> {
    if (!(await fileExists(this.dir))) return [];
    const names = (await readdir(this.dir))
      .filter((n) => /^[0-9A-HJKMNP-TV-Z]{26}\.json$/.test(n))
      .sort();
    const out: ShareSummary[] = [];
    for (const name of names) {
      const f = await readJsonFile<ShareFile>(join(this.dir, name));
      if (f === undefined) continue;
      out.push({
        keyId: f.keyId,
        suite: f.suite,
        t: f.t,
        n: f.n,
        index: f.index,
        groupPublicKey: f.groupPublicKey,
        ...(f.outputKey === undefined ? {} : { outputKey: f.outputKey, address: f.address! }),
        createdAt: f.createdAt,
      });
    }
    return out;
  }

  async read(keyId: string): Promise<ShareFile | undefined> {
    if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(keyId)) return undefined;
    return readJsonFile<ShareFile>(join(this.dir, `${keyId}.json`));
  }

  /**
   * Rebuilds the file's signing share from its public recovery data and the identity key alone
   * (threshold/recovery.ts): the DKG's, or the last refresh's (secret: the caller wipes it).
   */
  rebuild(file: ShareFile): Uint8Array {
    if (file.refresh === undefined) {
      return recoverShare(recoveryDataOf(file), file.index, this.#privateKey).signingShare;
    }
    const r = file.refresh;
    return recoverRefreshedShare(
      {
        suite: file.suite,
        t: file.t,
        n: file.n,
        identifiers: file.identifiers,
        sessionId: fromBase64url(r.sessionId, "sessionId", 32),
        dealers: r.dealers,
        deals: r.deals.map((d) => ({
          index: d.index,
          commitment: d.commitment.map((c) => fromBase64url(c, "commitment")),
          ephemeralKey: fromBase64url(d.ephemeralKey, "ephemeralKey", 32),
          signature: fromBase64url(d.signature, "signature", 64),
        })),
        shares: r.shares.map(shareFromJson),
        public: publicFromJson(file.public, file.identifiers, file.t, file.n),
      },
      file.index,
      this.#privateKey,
    );
  }

  /** Opens the sealed signing share of a file (secret: the caller wipes it after use). */
  openShare(file: ShareFile): Uint8Array {
    const sealed = fromBase64url(file.sealedShare, "sealedShare");
    const sessionId =
      file.refresh === undefined
        ? sessionIdOf(paramsOf(file))
        : fromBase64url(file.refresh.sessionId, "sessionId", 32);
    const key = atRestKey(this.#privateKey);
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, 12));
      decipher.setAAD(aad(file.keyId, sessionId));
      decipher.setAuthTag(sealed.subarray(sealed.length - 16));
      return new Uint8Array(
        Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]),
      );
    } catch {
      throw new DkeygenError(
        ErrorCodes.DECRYPTION_FAILED,
        `The share of key ${file.keyId} does not open with this contributor's identity key.`,
      );
    } finally {
      key.fill(0);
    }
  }
}

/** The recovery data of a share file, as threshold/recovery.ts takes it. */
export function recoveryDataOf(file: ShareFile): RecoveryData {
  return {
    params: paramsOf(file),
    packages: file.recovery.packages.map(round1FromJson),
    shares: file.recovery.shares.map(shareFromJson),
    certificate: file.certificate.map((c) => fromBase64url(c, "certificate", 64)),
  };
}

export function paramsOf(file: ShareFile): DkgSessionParams {
  const p = file.recovery.params;
  return {
    suite: p.suite,
    t: p.t,
    n: p.n,
    serverFingerprint: p.serverFingerprint,
    nonce: fromBase64url(p.nonce, "nonce", 32),
    identities: p.identities.map((k) => fromBase64url(k, "identities", 32)),
  };
}
