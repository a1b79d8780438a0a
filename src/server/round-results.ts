/**
 * The last step of a completed round: the round secret from the seed phrase, the server's secret
 * and the accepted phrases (crypto/kdf.ts, PROTOCOL §7.2); the purpose's derivation — from the
 * round secret itself for a one-result round, from each output's share of it on the derivation
 * thread for a batch (§13.1); for a batch of a purpose in ROUND_SECRET_PURPOSES (a pool refill of
 * OTPs), the round secret stored once (§9 "Round parts"), each record keeping only its index in
 * the batch instead of a secret part of its own; and the records stored (not awaited one by one:
 * the store commits a batch of puts with one fsync) before anyone is told — a pool refill's (no
 * owner) put held, so no process claiming from the store takes one before the round runner
 * releases them once its log entry is witnessed (PROTOCOL §15.5); then the round's opening
 * (round-opening.ts: server secret, envelopes, content keys, phrases and result commitments),
 * sealed in the store, before the round's log entry is appended.
 */
import { combineRoundSecret } from "../crypto/kdf.js";
import { derivationOf } from "../derive/index.js";
import { resultCommitment } from "../protocol/log-entry.js";
import type { KeyRecord, KeyStore } from "../store/types.js";
import type { BatchDeriver } from "./batch-deriver.js";
import type { BatchItem } from "./batch-worker.js";
import { encodeRoundOpening, type RevealedEnvelope } from "./round-opening.js";
import type { RoundRequest } from "./server-context.js";
import { deriveResult, encodeRoundSecret, ROUND_SECRET_PURPOSES } from "./stored-secret.js";

/** What a closed round brings to this step. */
export interface CompletedRound {
  seed: Uint8Array;
  /** The server's own secret for this round: never sent, wiped when the round closes. */
  serverSecret: Uint8Array;
  purpose: string;
  params: Record<string, unknown>;
  count: number;
  owner?: string;
  subject?: string;
  holders?: string[];
  onStored?: RoundRequest["onStored"];
  /** Each accepted reveal's envelope and content key, by contributor id; wiped here. */
  reveals: Map<string, RevealedEnvelope>;
}

/** A completed round's records, in index order, and the commitment to each for its log entry. */
export interface StoredResults {
  records: KeyRecord[];
  results: { recordId: string; commitment: Uint8Array }[];
}

/**
 * Combines, derives and stores a completed round's results, then its opening; wipes every secret
 * it used (the seed, the server secret, the accepted phrases and their content keys, the round
 * secret). Resolves once every record and the opening are stored, records in index order.
 */
export async function storeRoundResults(
  deps: { store: KeyStore; batches: BatchDeriver },
  roundId: string,
  round: CompletedRound,
  accepted: readonly { contributorId: string; phrase: Uint8Array }[],
): Promise<StoredResults> {
  // The phrases, their content keys and the server secret are kept until the opening is sealed.
  const wipe = () => {
    round.serverSecret.fill(0);
    for (const { phrase } of accepted) phrase.fill(0);
    for (const { contentKey } of round.reveals.values()) contentKey.fill(0);
    round.reveals.clear();
  };
  try {
    return await storeAndOpen(deps, roundId, round, accepted);
  } finally {
    wipe();
  }
}

async function storeAndOpen(
  deps: { store: KeyStore; batches: BatchDeriver },
  roundId: string,
  round: CompletedRound,
  accepted: readonly { contributorId: string; phrase: Uint8Array }[],
): Promise<StoredResults> {
  const { store } = deps;
  let secret: Uint8Array;
  try {
    secret = combineRoundSecret({
      roundId,
      purpose: round.purpose,
      seedPhrase: round.seed,
      serverSecret: round.serverSecret,
      contributions: accepted,
    });
  } finally {
    round.seed.fill(0);
  }
  const participants = accepted.map((a) => a.contributorId).sort();
  const derivation = derivationOf(round.purpose);
  const params = derivation.paramsToJson(derivation.parseParams(round.params));
  const puts: Promise<{ record: KeyRecord; commitment: Uint8Array }>[] = [];
  // A batch of cheap derivations keeps the round secret once; each record, its index into it.
  const roundParts = round.count > 1 && ROUND_SECRET_PURPOSES.has(round.purpose);
  // Not awaited one by one: the store commits a batch of puts with one fsync.
  const put = (result: BatchItem) => {
    const stored = store
      .put({
        purpose: round.purpose,
        roundId,
        participants,
        algorithm: result.algorithm,
        public: result.public,
        ...(roundParts ? { roundPart: result.index } : { secret: result.payload! }),
        ...(round.owner === undefined ? {} : { owner: round.owner }),
        ...(round.subject === undefined ? {} : { subject: round.subject }),
        ...(round.holders === undefined ? {} : { holders: round.holders }),
        // For the pool: claimable only once the round runner releases the round.
        ...(round.owner === undefined ? { held: true as const } : {}),
      })
      .then((record) => {
        round.onStored?.(record, result.output);
        const commitment = resultCommitment(
          record.id,
          record.algorithm,
          record.public,
          result.salt,
        );
        return { record, commitment };
      })
      .finally(() => result.payload?.fill(0));
    // Awaited together below; until then a failed write must not count as unhandled.
    stored.catch(() => {});
    puts.push(stored);
  };
  try {
    if (round.count === 1) {
      put({
        ...(await deriveResult(round.purpose, secret, { index: 0, size: 1 }, params)),
        index: 0,
      });
    } else {
      if (roundParts) {
        // Before any record that refers to it (the store refuses a roundPart without it).
        const encoded = encodeRoundSecret({
          roundSecret: secret,
          purpose: round.purpose,
          size: round.count,
          params,
        });
        try {
          await store.putRoundSecret(roundId, encoded);
        } finally {
          encoded.fill(0);
        }
      }
      // A batch: each output's HKDF and derivation run on the derivation thread; this thread
      // stores the outputs as they come, chunk by chunk.
      await deps.batches.derive(
        secret,
        round.purpose,
        params,
        round.count,
        (items) => {
          for (const item of items) put(item);
        },
        { roundParts },
      );
    }
  } finally {
    secret.fill(0);
  }
  const stored = await Promise.all(puts);
  const results = stored.map((s) => ({ recordId: s.record.id, commitment: s.commitment }));
  // Only a round made for an owner has anyone to open it to; a pool refill's records have none,
  // and its opening (a 10,000-OTP refill's is over a MiB) would be bulk nobody can ever fetch.
  if (round.owner === undefined) return { records: stored.map((s) => s.record), results };
  const opening = encodeRoundOpening({
    roundId,
    purpose: round.purpose,
    serverSecret: round.serverSecret,
    contributions: accepted.map(({ contributorId, phrase }) => {
      const revealed = round.reveals.get(contributorId);
      if (!revealed) throw new Error(`no revealed envelope kept for ${contributorId}`);
      return { contributorId, phrase, ...revealed };
    }),
    results,
  });
  try {
    await store.putRoundOpening(roundId, opening);
  } finally {
    opening.fill(0);
  }
  return { records: stored.map((s) => s.record), results };
}
