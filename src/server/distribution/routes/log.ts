/**
 * The transparency log of rounds, served to anyone (PROTOCOL §15.3): the log is public, so no
 * credential and no answer MAC; a client trusts what the log's signatures and the Merkle proofs
 * show, which it checks itself. Every route waits for the log to have read the store (`ready`).
 * Sizes and indexes are decimal query parameters; a range or proof the log cannot give is
 * E_INVALID_INPUT. Only an answer its parameters fix for good (a proof for a given size) may be
 * cached for good.
 */
import type { TSchema } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply } from "fastify";
import { DkeygenError, ErrorCodes } from "../../../errors.js";
import { type DkgEntry, isDkgEntryLeaf, parseDkgEntry } from "../../../protocol/dkg-log-entry.js";
import { parseRoundEntry, type RoundEntry } from "../../../protocol/log-entry.js";
import { MAX_ENTRIES_PER_READ, type TransparencyLog } from "../../transparency-log.js";
import { answers } from "../answers.js";
import {
  ConsistencyProofAnswer,
  ConsistencyProofQuery,
  InclusionProofAnswer,
  InclusionProofQuery,
  LogEntries,
  LogEntriesQuery,
  LogIdentityAnswer,
  LogText,
} from "../schemas.js";

const IMMUTABLE = "public, max-age=31536000, immutable";
const NO_CACHE = "no-cache";
const GROWS = `${NO_CACHE}: the answer changes as the log grows`;
const KEYED = `${NO_CACHE}: the answer changes only with the server key`;
const FIXED = `${IMMUTABLE} when the size (to) was given, which fixes the answer for good; else ${NO_CACHE}`;
const TEXT = "text/plain; charset=utf-8";

/** A route's options: its OpenAPI summary, its answers and the query string it takes. */
const route = (summary: string, response: Record<number, TSchema>, querystring?: TSchema) => ({
  schema: { tags: ["log"], summary, ...(querystring ? { querystring } : {}), response },
});

const base64 = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");

/** Refused like a query string the schema refuses: "Invalid request: <why>." */
const invalid = (why: string) =>
  new DkeygenError(ErrorCodes.INVALID_INPUT, `Invalid request: ${why}.`);

/** A decimal query parameter (its pattern already checked) as a number up to 2^53 − 1. */
function integer(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw invalid(`${name} (${value}) is over 2^53 − 1`);
  return n;
}

/** A stored leaf that does not parse is the store's fault, never the caller's. */
function entryOf(leaf: Uint8Array, index: number): RoundEntry | DkgEntry {
  try {
    return isDkgEntryLeaf(leaf) ? parseDkgEntry(leaf) : parseRoundEntry(leaf);
  } catch (cause) {
    const message = `Log entry ${index} in the key store is neither a round's nor a threshold session's entry.`;
    throw new DkeygenError(ErrorCodes.STORE_CORRUPT, message, { cause });
  }
}

const cache = (reply: FastifyReply, fixed: boolean) =>
  reply.header("cache-control", fixed ? IMMUTABLE : NO_CACHE);

export function registerLogRoutes(app: FastifyInstance, log: TransparencyLog): void {
  app.get(
    "/v1/log/checkpoint",
    route(
      "The log's newest checkpoint with enough witness cosignatures (a C2SP signed note).",
      answers({
        ok: [
          LogText,
          "The newest checkpoint with at least --min-cosignatures cosignatures, all of them on it (the latest when 0): origin, size, root hash, extensions; signed.",
        ],
        text: true,
        cache: GROWS,
      }),
    ),
    async (_request, reply) => {
      const note = await log.servedCheckpoint();
      if (note === undefined) {
        throw new DkeygenError(
          ErrorCodes.UNAVAILABLE,
          `No checkpoint has ${log.minCosignatures} witness cosignature${log.minCosignatures === 1 ? "" : "s"} yet.`,
          { retryAfterSeconds: 5 },
        );
      }
      cache(reply, false).type(TEXT);
      return note;
    },
  );

  app.get(
    "/v1/log/key",
    route(
      "The log's verifier key (signed-note vkey), followed by a newline.",
      answers({
        ok: [LogText, "The log's Ed25519 verifier key and a newline."],
        text: true,
        cache: KEYED,
      }),
    ),
    async (_request, reply) => {
      await log.ready();
      cache(reply, false).type(TEXT);
      return `${log.verifierKey}\n`;
    },
  );

  app.get(
    "/v1/log/identity",
    route(
      "The log key, certified by the server key.",
      answers({
        ok: [LogIdentityAnswer, "The log's origin and key, signed by the server key."],
        cache: KEYED,
      }),
    ),
    async (_request, reply) => {
      await log.ready();
      cache(reply, false);
      return log.identity();
    },
  );

  app.get<{ Querystring: LogEntriesQuery }>(
    "/v1/log/entries",
    route(
      `Entries start ≤ i < min(end, start + ${MAX_ENTRIES_PER_READ}, size): each leaf and its parse.`,
      answers({
        ok: [LogEntries, "The entries asked for (at most 1000) and the log's size now."],
        query: true,
        cache: GROWS,
        errors: { 400: "or start > end, or start beyond the log's size (E_INVALID_INPUT)" },
      }),
      LogEntriesQuery,
    ),
    async (request, reply) => {
      await log.ready();
      const size = log.size;
      const start = integer("start", request.query.start);
      const end = integer("end", request.query.end);
      if (start > end) throw invalid(`start (${start}) is greater than end (${end})`);
      if (start > size) throw invalid(`start (${start}) is beyond the log's size (${size})`);
      const stop = Math.min(end, start + MAX_ENTRIES_PER_READ, size);
      const leaves = stop > start ? await log.entries(start, stop) : [];
      cache(reply, false);
      return {
        size,
        entries: leaves.map((leaf, i) => ({
          index: start + i,
          leaf: base64(leaf),
          entry: entryOf(leaf, start + i),
        })),
      };
    },
  );

  app.get<{ Querystring: InclusionProofQuery }>(
    "/v1/log/proof/inclusion",
    route(
      "An entry's inclusion proof (RFC 9162), by index or by round id.",
      answers({
        ok: [InclusionProofAnswer, "The leaf's hash and its inclusion proof."],
        query: true,
        cache: FIXED,
        errors: {
          400: "or not exactly one of index and roundId, size 0 or beyond the log's size, index ≥ size (E_INVALID_INPUT)",
          404: "No entry of this round is in the log (E_NOT_FOUND)",
        },
      }),
      InclusionProofQuery,
    ),
    async (request, reply) => {
      await log.ready();
      const query = request.query;
      if ((query.index === undefined) === (query.roundId === undefined)) {
        throw invalid("give exactly one of index and roundId");
      }
      const current = log.size;
      const size = query.size === undefined ? current : integer("size", query.size);
      if (size === 0) throw invalid("no leaf is in the tree of size 0");
      if (size > current) throw invalid(`size (${size}) is beyond the log's size (${current})`);
      const index =
        query.roundId === undefined ? integer("index", query.index!) : log.indexOf(query.roundId);
      if (index === undefined) {
        throw new DkeygenError(ErrorCodes.NOT_FOUND, "No entry of this round is in the log.");
      }
      if (index >= size) throw invalid(`index (${index}) is not below size (${size})`);
      const proof = log.inclusionProof(index, size).map(base64);
      cache(reply, query.size !== undefined);
      return { index, size, leafHash: base64(log.leafHash(index)), proof };
    },
  );

  app.get<{ Querystring: ConsistencyProofQuery }>(
    "/v1/log/proof/consistency",
    route(
      "A consistency proof (RFC 9162) between two tree sizes.",
      answers({
        ok: [ConsistencyProofAnswer, "The proof that the tree of size from is a prefix of to's."],
        query: true,
        cache: FIXED,
        errors: { 400: "or from 0, from > to, or to beyond the log's size (E_INVALID_INPUT)" },
      }),
      ConsistencyProofQuery,
    ),
    async (request, reply) => {
      await log.ready();
      const current = log.size;
      const from = integer("from", request.query.from);
      const to = request.query.to === undefined ? current : integer("to", request.query.to);
      if (from === 0) throw invalid("no consistency proof from size 0 exists");
      if (from > to) throw invalid(`from (${from}) is greater than to (${to})`);
      if (to > current) throw invalid(`to (${to}) is beyond the log's size (${current})`);
      const proof = log.consistencyProof(from, to).map(base64);
      cache(reply, request.query.to !== undefined);
      return { from, to, proof };
    },
  );
}
