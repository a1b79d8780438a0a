/**
 * Exporting a record's derivation secret, for audit (docs/PROTOCOL.md §9.1): the secret its
 * derivation took (the round secret, or a batch output's share of it) with the parameters it ran
 * with, so the record's owner can re-derive the record offline (`dkeygen derive PURPOSE
 * --secret-file FILE`, the server's own code) and compare the result with the record's public
 * part. The owner already holds the secret output (`/v1/keys/{id}/secret`); what the export adds
 * is the means to check that the output is the derivation of what the round made.
 *
 * Two routes lead here, both sealed to a key of the asker's: the owner over HTTP (a delivery of
 * kind `derivation-secret`, §12.4) and the admin over its channel (`admin.export`, §4, §5).
 *
 * Some derivation secrets never leave the server, for anyone (`E_FORBIDDEN`, NOT_EXPORTABLE).
 * The one today is `nonce`: its derivation first draws the version-1 `scalar` (which was handed
 * out as an ECDSA k itself before version 2) and throws it away. Whoever holds the derivation
 * secret re-draws that scalar, and with one signature made with it as k, computes the signer's
 * private key. A nonce record's value is audited through its signature instead (RFC 6979 hedged
 * signing reproduces it from the key, the message and the value, §13.10). Nor does a split record's
 * (a multisig set made for holders): it re-derives every holder's key.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { Json, JsonObject } from "../json.js";
import type { KeyRecord, KeyStore } from "../store/types.js";
import { readStoredSecret } from "./stored-secret.js";

/** Purposes whose derivation secret is never exported, with the reason given to the asker. */
export const NOT_EXPORTABLE: Readonly<Record<string, string>> = {
  nonce:
    "A nonce record's derivation secret never leaves the server: it re-derives the signing nonce (k) that version 1 handed out, and with one signature made with it, the signer's private key.",
};

/** Parameters that are secrets of their own, kept out of an export (the owner has them). */
const SECRET_PARAMS = new Set(["passphrase"]);

/**
 * What an export seals (UTF-8 JSON, members in this order):
 * `{"recordId","purpose","algorithm","params":{…},"batch":{"index","size"},"derivationSecret":"<hex>"}`.
 * `params` are the derivation's parameters with defaults filled in, less a wallet's passphrase.
 */
export interface DerivationExport {
  [key: string]: Json;
  recordId: string;
  purpose: string;
  algorithm: string;
  params: JsonObject;
  batch: { index: number; size: number };
  derivationSecret: string;
}

/**
 * Why a split record's (a multisig set made for holders, PROTOCOL §13.9) derivation secret is
 * never exported: it re-derives every holder's key, which no holder, and no admin over its
 * channel, may have but its own.
 */
export const SPLIT_NOT_EXPORTABLE =
  "A multisig set split among holders exports no derivation secret or opening: they re-derive every holder's key, and each holder gets only its own.";

/** Refuses a purpose whose derivation secret must not leave the server, and a split record. */
export function assertExportable(record: KeyRecord): void {
  const reason =
    NOT_EXPORTABLE[record.purpose] ?? (record.holders ? SPLIT_NOT_EXPORTABLE : undefined);
  if (reason !== undefined) throw new DkeygenError(ErrorCodes.FORBIDDEN, reason);
}

/** Record `record`'s export (after assertExportable), read from its stored secret part. */
export async function derivationExport(
  store: KeyStore,
  record: KeyRecord,
): Promise<DerivationExport> {
  assertExportable(record);
  const stored = await readStoredSecret(store, record.id);
  const params = Object.fromEntries(
    Object.entries(stored.params).filter(([key]) => !SECRET_PARAMS.has(key)),
  ) as JsonObject;
  return {
    recordId: record.id,
    purpose: record.purpose,
    algorithm: record.algorithm,
    params,
    batch: { index: stored.batch.index, size: stored.batch.size },
    derivationSecret: stored.derivationSecret,
  };
}
