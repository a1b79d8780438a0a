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
 *
 * A batch round of a purpose in ROUND_SECRET_PURPOSES (a pool refill of OTPs) keeps no per-record
 * part at all (issue 17: ≤ 400 bytes on disk per pooled OTP). It stores its round secret once
 * (KeyStore putRoundSecret), version 3:
 *   {"v":3,"roundSecret":"<base64url of 64 bytes>","purpose":"otp","size":n,"params":{…}}
 * and each record only its index (RecordInput roundPart). Reading such a record derives what a
 * version 2 part would have held: the output's derivation secret (crypto/kdf.ts batchOutputSecret)
 * and its output (derivePurpose) — tens of microseconds for an OTP.
 */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { canonicalJson } from "../crypto/canonical-json.js";
import { batchOutputSecret, ROUND_SECRET_BYTES } from "../crypto/kdf.js";
import { derivationOf, derivePurpose } from "../derive/index.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import { resultSalt } from "../protocol/log-entry.js";
import type { KeyStore } from "../store/types.js";
import { MAX_BATCH } from "./round-request.js";

/**
 * A stored secret part, decoded: whichever version was stored, `derivationSecret` is in hex.
 * `v` is 3 for a record that keeps only its part of its round's (version 3) round secret: read
 * with readStoredSecret, it gives what a version 2 part of the same output would.
 */
export interface StoredSecret {
  v: 1 | 2 | 3;
  /** Hex, whichever version was stored. */
  derivationSecret: string;
  batch: { index: number; size: number };
  params: JsonObject;
  /** Only in a version 1 part (and not in all of those). */
  serverSecret?: string;
  output: JsonObject;
}

/** A record's own secret part, as encodeStoredSecret writes it (version 1 or 2). */
export type OwnStoredSecret = StoredSecret & { v: 1 | 2 };

/** Encodes `secret` as its version says (`derivationSecret` given in hex); a server writes 2. */
export function encodeStoredSecret(secret: OwnStoredSecret): Uint8Array {
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
  } else if (secret.v !== 1) {
    throw new TypeError("encodeStoredSecret: a record's own secret part is version 1 or 2");
  }
  return new Uint8Array(Buffer.from(JSON.stringify(value), "utf8"));
}

/**
 * Purposes whose batch rounds store one round secret and give each record only its part of it
 * (RecordInput roundPart), instead of a secret part per record: those whose derivation is cheap
 * enough to redo on every read of a record's secret (an OTP: one HKDF and one HMAC_DRBG draw,
 * tens of microseconds). A pool refill makes thousands of them, and each kept its own ≈ 330 bytes
 * on disk before (issue 17). Not TOTP/HOTP (made one per enrollment, read at every verification)
 * nor any key (an RSA key takes seconds to derive).
 */
export const ROUND_SECRET_PURPOSES: ReadonlySet<string> = new Set(["otp"]);

/**
 * A batch round's secret as the store keeps it once for all its records (version 3): the round
 * secret (64 bytes), the purpose, how many results the round made and their parameters (parsed,
 * defaults filled in).
 */
export interface RoundSecret {
  roundSecret: Uint8Array;
  purpose: string;
  size: number;
  params: JsonObject;
}

/**
 * Encodes a batch round's round secret (version 3, members in this order); the caller wipes the
 * bytes once stored. Throws TypeError for what decodeRoundSecret would refuse.
 */
export function encodeRoundSecret(round: RoundSecret): Uint8Array {
  if (
    !(round.roundSecret instanceof Uint8Array) ||
    round.roundSecret.length !== ROUND_SECRET_BYTES
  ) {
    throw new TypeError(`encodeRoundSecret: roundSecret must be ${ROUND_SECRET_BYTES} bytes`);
  }
  if (!ROUND_SECRET_PURPOSES.has(round.purpose)) {
    throw new TypeError(`encodeRoundSecret: purpose ${round.purpose} keeps a part per record`);
  }
  if (!Number.isSafeInteger(round.size) || round.size < 2 || round.size > MAX_BATCH) {
    throw new TypeError(`encodeRoundSecret: size must be an integer from 2 to ${MAX_BATCH}`);
  }
  if (!canonicalParams(round.purpose, round.params)) {
    throw new TypeError("encodeRoundSecret: params are not the purpose's parsed parameters");
  }
  const value = {
    v: 3,
    roundSecret: toBase64url(round.roundSecret),
    purpose: round.purpose,
    size: round.size,
    params: round.params,
  };
  return new Uint8Array(Buffer.from(JSON.stringify(value), "utf8"));
}

/** Whether `params` are exactly `purpose`'s parsed parameters (what paramsToJson writes). */
function canonicalParams(purpose: string, params: unknown): params is JsonObject {
  if (!isObject(params)) return false;
  try {
    const derivation = derivationOf(purpose);
    const parsed = derivation.paramsToJson(derivation.parseParams(params)) as JsonObject;
    return canonicalJson(parsed) === canonicalJson(params);
  } catch {
    return false;
  }
}

const ROUND_SECRET_FIELDS = ["v", "roundSecret", "purpose", "size", "params"];
/** Malformed UTF-8 is refused, not replaced with U+FFFD. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes a version 3 round secret; E_STORE_CORRUPT (naming no secret) for anything else: another
 * version, a member missing or added, a secret not exactly 64 bytes of canonical base64url, a
 * purpose outside ROUND_SECRET_PURPOSES, a size outside 2..MAX_BATCH, or parameters that are not
 * the purpose's parsed ones. The caller wipes `roundSecret`.
 */
export function decodeRoundSecret(bytes: Uint8Array): RoundSecret {
  let value: unknown;
  try {
    value = JSON.parse(strictUtf8.decode(bytes));
  } catch {
    throw notRoundSecret();
  }
  if (!isObject(value)) throw notRoundSecret();
  const keys = Object.keys(value);
  if (
    keys.length !== ROUND_SECRET_FIELDS.length ||
    !ROUND_SECRET_FIELDS.every((key) => Object.hasOwn(value, key)) ||
    value.v !== 3 ||
    typeof value.roundSecret !== "string" ||
    typeof value.purpose !== "string" ||
    !ROUND_SECRET_PURPOSES.has(value.purpose) ||
    !Number.isSafeInteger(value.size) ||
    (value.size as number) < 2 ||
    (value.size as number) > MAX_BATCH ||
    !canonicalParams(value.purpose, value.params)
  ) {
    throw notRoundSecret();
  }
  let roundSecret: Uint8Array;
  try {
    roundSecret = fromBase64url(value.roundSecret, "roundSecret");
  } catch {
    throw notRoundSecret();
  }
  if (roundSecret.length !== ROUND_SECRET_BYTES) {
    roundSecret.fill(0);
    throw notRoundSecret();
  }
  return {
    roundSecret,
    purpose: value.purpose,
    size: value.size as number,
    params: value.params as JsonObject,
  };
}

/** What one result's derivation gives, for its log entry commitment and RoundRequest.onStored. */
export interface DerivedOutput {
  algorithm: string;
  public: JsonObject;
  /** The derivation's secret output (for RoundRequest.onStored). */
  output: JsonObject;
  /** The salt of its commitment in the round's log entry (protocol/log-entry.ts resultSalt). */
  salt: Uint8Array;
}

/** One round result, ready to store with a secret part of its own. */
export interface DerivedResult extends DerivedOutput {
  /** The stored secret part (encodeStoredSecret); the caller wipes it once stored. */
  payload: Uint8Array;
}

/** Derives one result from its derivation secret `input` (left untouched), encoding nothing. */
export async function deriveOutput(
  purpose: string,
  input: Uint8Array,
  params: JsonObject,
): Promise<DerivedOutput> {
  const result = await derivePurpose(purpose, input, params);
  return {
    algorithm: result.algorithm,
    public: result.public,
    output: result.secret,
    salt: resultSalt(input),
  };
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
  const derived = await deriveOutput(purpose, input, params);
  const payload = encodeStoredSecret({
    v: 2,
    derivationSecret: Buffer.from(input).toString("hex"),
    batch,
    params,
    output: derived.output,
  });
  return { ...derived, payload };
}

const notStored = () =>
  new DkeygenError(ErrorCodes.STORE_CORRUPT, "A stored secret part is not in the expected format.");

const notRoundSecret = () =>
  new DkeygenError(
    ErrorCodes.STORE_CORRUPT,
    "A stored round secret is not in the expected format.",
  );

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const V2_FIELDS = new Set(["v", "derivationSecret", "batch", "params", "output"]);

/** Decodes a record's own stored secret part of either version; E_STORE_CORRUPT if it is neither. */
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
  if (derivationSecret.length !== ROUND_SECRET_BYTES) {
    derivationSecret.fill(0);
    throw notStored();
  }
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

/**
 * Reads record `id`'s secret part and decodes it: its own (either version), or its part `i` of its
 * round's round secret (version 3), from which its derivation secret (batchOutputSecret of the
 * round secret, the purpose and i) and its output (derivePurpose) are derived again, as the round
 * derived them. Every decrypted or derived secret buffer is wiped before this returns.
 */
export async function readStoredSecret(store: KeyStore, id: string): Promise<StoredSecret> {
  const part = await store.readSecretPart(id);
  if (part.kind === "own") {
    try {
      return decodeStoredSecret(part.secret);
    } finally {
      part.secret.fill(0);
    }
  }
  let round: RoundSecret;
  try {
    round = decodeRoundSecret(part.roundSecret);
  } finally {
    part.roundSecret.fill(0);
  }
  let input: Uint8Array | undefined;
  try {
    if (
      !Number.isSafeInteger(part.roundPart) ||
      part.roundPart < 0 ||
      part.roundPart >= round.size
    ) {
      throw notRoundSecret();
    }
    input = batchOutputSecret(round.roundSecret, round.purpose, part.roundPart);
    const derived = await derivePurpose(round.purpose, input, round.params);
    return {
      v: 3,
      derivationSecret: Buffer.from(input).toString("hex"),
      batch: { index: part.roundPart, size: round.size },
      params: round.params,
      output: derived.secret,
    };
  } finally {
    round.roundSecret.fill(0);
    input?.fill(0);
  }
}
