/**
 * A completed round's **opening** (docs/PROTOCOL.md §15.6): everything its log entry commits to
 * but does not show — the server secret, and for each contribution of the commit set the revealed
 * envelope, the content key K it opened under and the phrase — with the commitments of every
 * result of the round. With it the owner of a record checks, against the public log entry alone,
 * that its record came from that committed round: each envelope is the committed one and holds
 * that phrase, the server secret is the committed one, and the round secret they give derives the
 * record.
 *
 * The server keeps one per completed round in the key store (sealed, KeyStore.putRoundOpening),
 * written before the round's log entry, and hands a record's owner its **record opening** (the
 * round's, with the record's own id, algorithm, parameters and place in the batch) sealed to its
 * key: `POST /v1/keys/{id}/opening`. Never a derivation secret: the owner recomputes its own from
 * the round secret, and learns none of the other records'.
 *
 * Stored (UTF-8 JSON, members in this order):
 *   {"v":1,"roundId","purpose","serverSecret":"<64 hex>",
 *    "contributions":[{"contributorId","alg","ek","iv","ct","tag","contentKey":"<64 hex>",
 *                      "phrase":"<128 hex>"}, …],       (sorted by contributorId, bytewise)
 *    "results":[{"recordId","commitment":b64url(32)}, …]}  (in batch index order)
 */
import { toBase64url } from "../crypto/base64url.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { Json, JsonObject } from "../json.js";
import type { EnvelopeFields } from "../protocol/signed-data.js";
import type { KeyRecord, KeyStore } from "../store/types.js";
import { assertExportable, derivationExport } from "./derivation-export.js";

/** One accepted reveal, as the runner keeps it until the opening is sealed. */
export interface RevealedEnvelope {
  envelope: EnvelopeFields;
  /** The content key the envelope opened under (32 bytes); wiped once the opening is sealed. */
  contentKey: Uint8Array;
}

export interface OpeningContribution {
  [key: string]: Json;
  contributorId: string;
  alg: string;
  ek: string;
  iv: string;
  ct: string;
  tag: string;
  contentKey: string;
  phrase: string;
}

export interface OpeningResult {
  [key: string]: Json;
  recordId: string;
  commitment: string;
}

/** What the key store keeps for a round. */
export interface RoundOpening {
  v: 1;
  roundId: string;
  purpose: string;
  serverSecret: string;
  contributions: OpeningContribution[];
  results: OpeningResult[];
}

/** What a record's owner is sent (PROTOCOL §15.6), members in this order. */
export interface RecordOpening {
  [key: string]: Json;
  recordId: string;
  roundId: string;
  purpose: string;
  algorithm: string;
  params: JsonObject;
  batch: { index: number; size: number };
  serverSecret: string;
  contributions: OpeningContribution[];
  results: OpeningResult[];
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

function compareIds(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/**
 * The bytes the key store seals for a completed round. The caller wipes the returned bytes once
 * stored (its JSON text, a string, cannot be wiped: docs/ARCHITECTURE.md §3).
 */
export function encodeRoundOpening(round: {
  roundId: string;
  purpose: string;
  serverSecret: Uint8Array;
  contributions: readonly {
    contributorId: string;
    envelope: EnvelopeFields;
    contentKey: Uint8Array;
    phrase: Uint8Array;
  }[];
  results: readonly { recordId: string; commitment: Uint8Array }[];
}): Uint8Array {
  const opening: RoundOpening = {
    v: 1,
    roundId: round.roundId,
    purpose: round.purpose,
    serverSecret: hex(round.serverSecret),
    contributions: [...round.contributions]
      .sort((a, b) => compareIds(a.contributorId, b.contributorId))
      .map((c) => ({
        contributorId: c.contributorId,
        alg: c.envelope.alg,
        ek: c.envelope.ek,
        iv: c.envelope.iv,
        ct: c.envelope.ct,
        tag: c.envelope.tag,
        contentKey: hex(c.contentKey),
        phrase: hex(c.phrase),
      })),
    results: round.results.map((r) => ({
      recordId: r.recordId,
      commitment: toBase64url(r.commitment),
    })),
  };
  return new Uint8Array(Buffer.from(JSON.stringify(opening), "utf8"));
}

function corrupt(roundId: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.STORE_CORRUPT,
    `The stored opening of round ${roundId} is not in the expected format.`,
  );
}

/** Decodes a stored round opening (the bytes are the caller's to wipe). */
export function decodeRoundOpening(roundId: string, bytes: Uint8Array): RoundOpening {
  let value: Partial<RoundOpening>;
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8")) as Partial<RoundOpening>;
  } catch {
    throw corrupt(roundId);
  }
  if (
    value?.v !== 1 ||
    value.roundId !== roundId ||
    typeof value.purpose !== "string" ||
    typeof value.serverSecret !== "string" ||
    !Array.isArray(value.contributions) ||
    !Array.isArray(value.results)
  ) {
    throw corrupt(roundId);
  }
  return value as RoundOpening;
}

const noOpening = (record: KeyRecord) =>
  new DkeygenError(
    ErrorCodes.NOT_FOUND,
    `Record ${record.id} has no opening: its round (${record.roundId}) completed before this server kept openings.`,
  );

/**
 * Record `record`'s opening, for its owner (ownership is the caller's to check first). Refused
 * (E_FORBIDDEN) where the derivation secret is (a nonce record: the opening re-derives it);
 * E_NOT_FOUND for a record whose round has no opening.
 */
export async function recordOpening(store: KeyStore, record: KeyRecord): Promise<RecordOpening> {
  assertExportable(record);
  const bytes = await store.readRoundOpening(record.roundId);
  if (bytes === undefined) throw noOpening(record);
  let round: RoundOpening;
  try {
    round = decodeRoundOpening(record.roundId, bytes);
  } finally {
    bytes.fill(0);
  }
  if (round.purpose !== record.purpose) throw corrupt(record.roundId);
  // The record's parameters and place in the batch, as its export has them (a wallet's
  // passphrase left out); its derivation secret is not sent: the owner recomputes it.
  const { params, batch, algorithm } = await derivationExport(store, record);
  return {
    recordId: record.id,
    roundId: round.roundId,
    purpose: round.purpose,
    algorithm,
    params,
    batch,
    serverSecret: round.serverSecret,
    contributions: round.contributions,
    results: round.results,
  };
}
