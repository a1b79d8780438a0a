/**
 * Recovery codes in the key store (docs/PROTOCOL.md §12.9). A two-factor enrollment's codes
 * (src/derive/recovery.ts) are never stored: each is kept as one record of purpose `recovery`,
 * owned like its enrollment, whose public part holds the code's lookup tag and whose secret part
 * (encrypted by the store like every secret part) holds only a slow hash of it:
 *
 *   public  {type:"recovery", enrollment: <enrollment record id>, index: i, tag: <16 hex>}
 *   secret  {"v":1,"kdf":"scrypt","N":16384,"r":8,"p":1,"dkLen":32,"salt":b64url(16),"hash":b64url(32)}
 *
 * hash = scrypt(P = UTF-8 of the normalised code, S = salt, N, r, p, dkLen) (RFC 7914), with a
 * fresh random salt per code and the parameters recorded beside it, so they can be raised later
 * without breaking stored codes. A code is used up with the store's `consume` (atomic, durable):
 * of two verifications of one code, exactly one wins.
 *
 * Verification costs at most one scrypt per matching tag, never one per stored code: the typed
 * code's tag (keyed by a secret of the round) picks the candidate, and a code whose tag matches no
 * stored one is refused without hashing at all.
 */
import { scrypt, timingSafeEqual } from "node:crypto";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import type { RandomSource } from "../crypto/random.js";
import { normaliseRecoveryCode, type RecoveryCodeSet, recoveryTag } from "../derive/recovery.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { KeyRecord, KeyStore } from "../store/types.js";

export const RECOVERY_PURPOSE = "recovery";
export const RECOVERY_ALGORITHM = "recovery/v1";
const SALT_BYTES = 16;

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
  dkLen: number;
}

/** What new codes are hashed with: 16 MiB of memory per hash (128 · N · r bytes). */
export const RECOVERY_SCRYPT: Readonly<ScryptParams> = { N: 2 ** 14, r: 8, p: 1, dkLen: 32 };

/** A slow hash of a normalised code; scrypt by default (replaceable to count calls in tests). */
export type RecoveryHasher = (
  code: string,
  salt: Uint8Array,
  params: ScryptParams,
) => Promise<Uint8Array>;

/** scrypt on libuv's thread pool, so the event loop keeps serving while it works. */
export const scryptHasher: RecoveryHasher = (code, salt, params) =>
  new Promise((resolve, reject) => {
    scrypt(
      Buffer.from(code, "utf8"),
      salt,
      params.dkLen,
      { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r },
      (error, key) => (error ? reject(error) : resolve(new Uint8Array(key))),
    );
  });

interface StoredHash extends ScryptParams {
  v: 1;
  kdf: "scrypt";
  salt: string;
  hash: string;
}

function decodeHash(bytes: Uint8Array): StoredHash {
  let value: Partial<StoredHash> = {};
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8")) as Partial<StoredHash>;
  } catch {}
  const whole = (n: unknown, max: number) =>
    Number.isSafeInteger(n) && (n as number) >= 1 && (n as number) <= max;
  if (
    value.v !== 1 ||
    value.kdf !== "scrypt" ||
    !whole(value.N, 2 ** 20) ||
    !whole(value.r, 64) ||
    !whole(value.p, 16) ||
    !whole(value.dkLen, 64) ||
    typeof value.salt !== "string" ||
    typeof value.hash !== "string"
  ) {
    throw new DkeygenError(
      ErrorCodes.STORE_CORRUPT,
      "A stored recovery code hash is not in the expected format.",
    );
  }
  return value as StoredHash;
}

/**
 * Hashes `set`'s codes and stores one `recovery` record per code for `enrollment`; resolves once
 * all are durable. Two hashes at a time: the thread pool also does the store's file I/O.
 */
export async function storeRecoveryCodes(
  store: KeyStore,
  enrollment: KeyRecord,
  set: RecoveryCodeSet,
  options: { random: RandomSource; hasher?: RecoveryHasher; params?: ScryptParams },
): Promise<KeyRecord[]> {
  const hasher = options.hasher ?? scryptHasher;
  const params = options.params ?? RECOVERY_SCRYPT;
  const secrets: Uint8Array[] = new Array(set.codes.length);
  const hashOne = async (i: number) => {
    const salt = options.random(SALT_BYTES);
    const hash = await hasher(set.codes[i]!, salt, params);
    const stored: StoredHash = {
      v: 1,
      kdf: "scrypt",
      ...params,
      salt: toBase64url(salt),
      hash: toBase64url(hash),
    };
    secrets[i] = new Uint8Array(Buffer.from(JSON.stringify(stored), "utf8"));
  };
  for (let i = 0; i < set.codes.length; i += 2) {
    await Promise.all([i, i + 1].filter((j) => j < set.codes.length).map(hashOne));
  }
  // Put together: the store commits them with one fsync.
  return Promise.all(
    secrets.map((secret, index) =>
      store.put({
        purpose: RECOVERY_PURPOSE,
        roundId: enrollment.roundId,
        participants: enrollment.participants,
        algorithm: RECOVERY_ALGORITHM,
        public: {
          type: "recovery",
          enrollment: enrollment.id,
          index,
          tag: recoveryTag(set.tagKey, set.codes[index]!),
        },
        secret,
        ...(enrollment.owner === undefined ? {} : { owner: enrollment.owner }),
        ...(enrollment.subject === undefined ? {} : { subject: enrollment.subject }),
      }),
    ),
  );
}

/** The recovery records of `enrollment`, used or not. */
async function recordsOf(store: KeyStore, enrollment: KeyRecord): Promise<KeyRecord[]> {
  if (enrollment.owner === undefined || enrollment.subject === undefined) return [];
  const records = await store.list({
    purpose: RECOVERY_PURPOSE,
    owner: enrollment.owner,
    subject: enrollment.subject,
  });
  return records.filter((r) => r.public.enrollment === enrollment.id);
}

/** How many of `enrollment`'s recovery codes are still unused. */
export async function recoveryCodesLeft(store: KeyStore, enrollment: KeyRecord): Promise<number> {
  return (await recordsOf(store, enrollment)).filter((r) => r.consumedAt === undefined).length;
}

export interface RecoveryCheck {
  /** "valid": this call used the code up; "used": it was used before; "invalid": no such code. */
  outcome: "valid" | "used" | "invalid";
  /** Unused codes of the enrollment after this check. */
  left: number;
}

/**
 * Checks `typed` against `enrollment`'s recovery codes and, when it is one, uses it up. `tagKey`
 * is the enrollment's (recoveryTagKey of its round secret).
 */
export async function useRecoveryCode(
  store: KeyStore,
  enrollment: KeyRecord,
  tagKey: Uint8Array,
  typed: string,
  at: Date,
  hasher: RecoveryHasher = scryptHasher,
): Promise<RecoveryCheck> {
  const records = await recordsOf(store, enrollment);
  const unused = () => records.filter((r) => r.consumedAt === undefined).length;
  const code = normaliseRecoveryCode(typed);
  if (code === null) return { outcome: "invalid", left: unused() };
  const tag = Buffer.from(recoveryTag(tagKey, code), "hex");
  // Every tag is compared, in constant time; normally one record matches, or none.
  const candidates = records.filter((r) => {
    const stored = Buffer.from(String(r.public.tag), "hex");
    return stored.length === tag.length && timingSafeEqual(stored, tag);
  });
  for (const candidate of candidates) {
    const bytes = await store.readSecret(candidate.id);
    let stored: StoredHash;
    try {
      stored = decodeHash(bytes);
    } finally {
      bytes.fill(0);
    }
    const expected = fromBase64url(stored.hash, "recovery hash", stored.dkLen);
    const actual = await hasher(code, fromBase64url(stored.salt, "recovery salt"), stored);
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) continue;
    const won = await store.consume(candidate.id, at);
    return { outcome: won ? "valid" : "used", left: await recoveryCodesLeft(store, enrollment) };
  }
  return { outcome: "invalid", left: unused() };
}
