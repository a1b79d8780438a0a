/**
 * The secret part of a stored round result, before the store encrypts it: the secret the
 * derivation took (the round secret, or for a batch round that output's share of it, so an auditor
 * can re-derive with `dkeygen derive`), its place in the batch, the derivation's parameters
 * (defaults filled in; they may hold secrets, such as a wallet passphrase, which is why they live
 * here and not in the public part) and the purpose's secret output. docs/PROTOCOL.md §9.
 *
 * Written (version 2, UTF-8 JSON, members in this order):
 *   {"v":2,"derivationSecret":"<base64url of 64 bytes>","batch":{"index":i,"size":n},"params":{…},
 *    "output":{…}}
 * Still read (version 1, what servers wrote before):
 *   {"v":1,"derivationSecret":"<hex>","batch":{…},"params":{…},"serverSecret"?:"<64 hex>",
 *    "output":{…}}
 *
 * Version 2 is smaller on disk: the derivation secret in base64url, and no copy of the round's
 * server secret on every record. Nothing read that copy: a record's owner is shown the server
 * secret from the round's opening (round-opening.ts), which keeps it once per round; a pool
 * refill's round, which keeps no opening, keeps it nowhere once the round ends (its log entry
 * commits to it).
 */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { ROUND_SECRET_BYTES } from "../crypto/kdf.js";
import { derivePurpose } from "../derive/index.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import { resultSalt } from "../protocol/log-entry.js";
import type { KeyStore } from "../store/types.js";

/** A stored secret part, decoded: whichever version was stored, `derivationSecret` is in hex. */
export interface StoredSecret {
  v: 1 | 2;
  /** Hex, whichever version was stored. */
  derivationSecret: string;
  batch: { index: number; size: number };
  params: JsonObject;
  /** Only in a version 1 part (and not in all of those). */
  serverSecret?: string;
  output: JsonObject;
}

/** Encodes `secret` as its version says (`derivationSecret` given in hex); a server writes 2. */
export function encodeStoredSecret(secret: StoredSecret): Uint8Array {
  let value: JsonObject | StoredSecret = secret;
  if (secret.v === 2) {
    if (secret.serverSecret !== undefined) {
      throw new TypeError("encodeStoredSecret: a version 2 secret part has no serverSecret");
    }
    value = {
      v: 2,
      derivationSecret: toBase64url(Buffer.from(secret.derivationSecret, "hex")),
      batch: secret.batch,
      params: secret.params,
      output: secret.output,
    };
  }
  return new Uint8Array(Buffer.from(JSON.stringify(value), "utf8"));
}

/** One round result, ready to store. */
export interface DerivedResult {
  algorithm: string;
  public: JsonObject;
  /** The stored secret part (encodeStoredSecret); the caller wipes it once stored. */
  payload: Uint8Array;
  /** The derivation's secret output (for RoundRequest.onStored). */
  output: JsonObject;
  /** The salt of its commitment in the round's log entry (protocol/log-entry.ts resultSalt). */
  salt: Uint8Array;
}

/**
 * Derives result `index` of a round of `size` from its derivation secret `input` (the round
 * secret, or a batch output's share of it) and encodes its stored secret part (version 2).
 */
export async function deriveResult(
  purpose: string,
  input: Uint8Array,
  batch: { index: number; size: number },
  params: JsonObject,
): Promise<DerivedResult> {
  const result = await derivePurpose(purpose, input, params);
  const payload = encodeStoredSecret({
    v: 2,
    derivationSecret: Buffer.from(input).toString("hex"),
    batch,
    params,
    output: result.secret,
  });
  return {
    algorithm: result.algorithm,
    public: result.public,
    payload,
    output: result.secret,
    salt: resultSalt(input),
  };
}

const notStored = () =>
  new DkeygenError(ErrorCodes.STORE_CORRUPT, "A stored secret part is not in the expected format.");

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const V2_FIELDS = new Set(["v", "derivationSecret", "batch", "params", "output"]);

/** Decodes a stored secret part of either version; E_STORE_CORRUPT if it is neither. */
export function decodeStoredSecret(bytes: Uint8Array): StoredSecret {
  let value: Partial<Record<keyof StoredSecret, unknown>>;
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8")) ?? {};
  } catch {
    value = {};
  }
  if (value.v === 1) {
    // As read before version 2.
    if (typeof value.derivationSecret !== "string" || typeof value.output !== "object") {
      throw notStored();
    }
    return value as StoredSecret;
  }
  const batch = value.batch as Record<string, unknown> | undefined;
  if (
    value.v !== 2 ||
    !Object.keys(value).every((key) => V2_FIELDS.has(key)) ||
    typeof value.derivationSecret !== "string" ||
    !isObject(batch) ||
    Object.keys(batch).length !== 2 ||
    !Number.isSafeInteger(batch.index) ||
    !Number.isSafeInteger(batch.size) ||
    (batch.index as number) < 0 ||
    (batch.index as number) >= (batch.size as number) ||
    !isObject(value.params) ||
    !isObject(value.output)
  ) {
    throw notStored();
  }
  let derivationSecret: Uint8Array;
  try {
    derivationSecret = fromBase64url(value.derivationSecret, "derivationSecret");
  } catch {
    throw notStored();
  }
  if (derivationSecret.length !== ROUND_SECRET_BYTES) throw notStored();
  const hex = Buffer.from(derivationSecret).toString("hex");
  derivationSecret.fill(0);
  return {
    v: 2,
    derivationSecret: hex,
    batch: { index: batch.index as number, size: batch.size as number },
    params: value.params,
    output: value.output,
  };
}

/** Reads and decodes record `id`'s secret part; the decrypted bytes are wiped once decoded. */
export async function readStoredSecret(store: KeyStore, id: string): Promise<StoredSecret> {
  const stored = await store.readSecret(id);
  try {
    return decodeStoredSecret(stored);
  } finally {
    stored.fill(0);
  }
}
