/**
 * The secret part of a stored round result, before the store encrypts it: the secret the
 * derivation took (the round secret, or for a batch round that output's share of it, so an auditor
 * can re-derive with `dkeygen derive`), its place in the batch, the derivation's parameters (defaults filled in; they may hold secrets,
 * such as a wallet passphrase, which is why they live here and not in the public part) and the
 * purpose's secret output.
 *
 *   {"v":1,"derivationSecret":"<128 hex>","batch":{"index":i,"size":n},"params":{…},
 *    "serverSecret":"<64 hex>","output":{…}}                                          (UTF-8 JSON)
 *
 * `serverSecret` is the server's own secret of the round (committed to in its round.open, never
 * sent): kept so the owner of a result can later be shown that the server fixed it before any
 * contribution came. Records made before protocol version 2 have none.
 */
import { derivePurpose } from "../derive/index.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import { resultSalt } from "../protocol/log-entry.js";
import type { KeyStore } from "../store/types.js";

export interface StoredSecret {
  v: 1;
  derivationSecret: string;
  batch: { index: number; size: number };
  params: JsonObject;
  serverSecret?: string;
  output: JsonObject;
}

export function encodeStoredSecret(secret: StoredSecret): Uint8Array {
  return new Uint8Array(Buffer.from(JSON.stringify(secret), "utf8"));
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
 * secret, or a batch output's share of it) and encodes its stored secret part, with the round's
 * server secret.
 */
export async function deriveResult(
  purpose: string,
  input: Uint8Array,
  batch: { index: number; size: number },
  params: JsonObject,
  serverSecret: Uint8Array,
): Promise<DerivedResult> {
  const result = await derivePurpose(purpose, input, params);
  const payload = encodeStoredSecret({
    v: 1,
    derivationSecret: Buffer.from(input).toString("hex"),
    batch,
    params,
    serverSecret: Buffer.from(serverSecret).toString("hex"),
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

export function decodeStoredSecret(bytes: Uint8Array): StoredSecret {
  let value: Partial<StoredSecret>;
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8")) as Partial<StoredSecret>;
  } catch {
    value = {};
  }
  if (
    value.v !== 1 ||
    typeof value.derivationSecret !== "string" ||
    typeof value.output !== "object"
  ) {
    throw new DkeygenError(
      ErrorCodes.STORE_CORRUPT,
      "A stored secret part is not in the expected format.",
    );
  }
  return value as StoredSecret;
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
