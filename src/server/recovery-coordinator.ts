/**
 * Recovering lost shares (docs/PROTOCOL.md §16.8): on an admin's request the server sends every
 * connected holder of a threshold key that key's public recovery data (the record's secret part,
 * §16.4; for a refreshed key its DKG's and its last refresh's), signed by the server, and gathers
 * each holder's answer — `recovered` (it had lost its share and rebuilt it from the data and its
 * identity key), `kept` (it holds a valid share), `refused` (a check failed) — until every holder
 * answered or the deadline passed. The server learns nothing secret: the data is public and each
 * holder checks it against its own identity key and the certificate every holder signed.
 */
import { toBase64url } from "../crypto/base64url.js";
import { serverSign } from "../crypto/server-signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { MessageOf } from "../protocol/messages.js";
import { recoverySignedData } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { KeyRecord } from "../store/types.js";
import { ADMIN_OWNER, type Peer, type ServerContext } from "./server-context.js";
import {
  dkgRecoveryJson,
  readRecovery,
  THRESHOLD_PURPOSE,
  type ThresholdPublicPart,
} from "./threshold-record.js";

/** How long a recovery waits for the holders' answers unless configured (recoveryTimeoutMs). */
export const DEFAULT_RECOVERY_TIMEOUT_MS = 30_000;

export type HolderOutcome = MessageOf<"admin.threshold.recovery">["holders"][number];

interface Pending {
  readonly recoveryId: string;
  readonly keyId: string;
  readonly outcomes: HolderOutcome[];
  /** Holders (by position in `outcomes`) still to answer. */
  readonly waiting: Map<string, number>;
  timer: NodeJS.Timeout | undefined;
  resolve(outcomes: HolderOutcome[]): void;
}

export class RecoveryCoordinator {
  readonly #ctx: ServerContext;
  readonly #pending = new Map<string, Pending>();

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  /** Sends key `record`'s recovery data to its connected holders; resolves to their outcomes. */
  async recover(record: KeyRecord): Promise<HolderOutcome[]> {
    const ctx = this.#ctx;
    const pub = record.public as unknown as ThresholdPublicPart;
    const successor = (await ctx.c.store.list({ purpose: THRESHOLD_PURPOSE })).find(
      (r) => (r.public as { refreshOf?: unknown }).refreshOf === record.id,
    );
    if (successor !== undefined) {
      // Its holders keep the refreshed key's shares; an old share is only something to steal.
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        `Key ${record.id} was refreshed as ${successor.id}: recover that one.`,
      );
    }
    const data = await readRecovery(ctx.c.store, record.id);
    const dkg = "kind" in data ? await dkgRecoveryJson(ctx.c.store, record) : data;
    const refresh = "kind" in data ? data : undefined;
    const holders = [...pub.holders].sort((a, b) => a.index - b.index);
    const timeoutMs = ctx.config.recoveryTimeoutMs ?? DEFAULT_RECOVERY_TIMEOUT_MS;
    const deadline = new Date(ctx.c.clock() + timeoutMs).toISOString();
    const recoveryId = toBase64url(ctx.c.random(16));
    const outcomes: HolderOutcome[] = holders.map((h) => ({
      contributorId: h.contributorId,
      index: h.index,
      outcome: ctx.contributors.has(h.contributorId) ? "no-answer" : "not-connected",
    }));
    return new Promise<HolderOutcome[]>((resolve) => {
      const pending: Pending = {
        recoveryId,
        keyId: record.id,
        outcomes,
        waiting: new Map(),
        timer: undefined,
        resolve,
      };
      holders.forEach((h, k) => {
        const peer = ctx.contributors.get(h.contributorId);
        if (peer === undefined) return;
        const unsigned: Omit<MessageOf<"dkg.recovery">, "signature"> = {
          type: "dkg.recovery",
          v: PROTOCOL_VERSION,
          recoveryId,
          keyId: record.id,
          index: h.index,
          owner: record.owner ?? ADMIN_OWNER,
          createdAt: record.createdAt,
          deadline,
          dkg: {
            params: dkg.params,
            packages: dkg.packages,
            shares: dkg.shares.filter((s) => s.to === h.index),
            certificate: dkg.certificate,
          },
          ...(refresh === undefined
            ? {}
            : {
                refresh: {
                  refreshOf: refresh.params.keyId,
                  nonce: refresh.params.nonce,
                  publicHash: refresh.params.publicHash,
                  dealers: refresh.params.dealers,
                  deals: refresh.deals,
                  shares: refresh.shares.filter((s) => s.to === h.index),
                  public: {
                    commitments: pub.commitments,
                    verifyingShares: holders.map((x) => x.verifyingShare),
                  },
                  certificate: refresh.certificate,
                },
              }),
        };
        const signature = serverSign(
          ctx.c.identity.privateKey,
          recoverySignedData(ctx.fingerprint, unsigned),
        );
        pending.waiting.set(h.contributorId, k);
        ctx.send(peer, { ...unsigned, signature: toBase64url(signature) });
      });
      ctx.c.logger.info(
        { keyId: record.id, recoveryId, asked: pending.waiting.size, holders: holders.length },
        "share recovery: recovery data sent to the connected holders",
      );
      if (pending.waiting.size === 0) {
        resolve(outcomes);
        return;
      }
      this.#pending.set(recoveryId, pending);
      pending.timer = setTimeout(() => this.#finish(pending), timeoutMs);
      pending.timer.unref();
    });
  }

  /** A holder's answer. One from a peer that was not asked, or a second one, is refused. */
  answered(peer: Peer, msg: MessageOf<"dkg.recovered">): void {
    const pending = this.#pending.get(msg.recoveryId);
    const slot =
      pending === undefined || pending.keyId !== msg.keyId
        ? undefined
        : pending.waiting.get(peer.contributorId!);
    if (pending === undefined || slot === undefined) {
      throw new DkeygenError(
        ErrorCodes.UNEXPECTED_MESSAGE,
        "No recovery of this key waits for this contributor's answer.",
      );
    }
    if (msg.outcome === "refused" && msg.reason === undefined) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A refusal names its reason.");
    }
    pending.waiting.delete(peer.contributorId!);
    const entry = pending.outcomes[slot]!;
    entry.outcome = msg.outcome;
    if (msg.outcome === "refused") entry.reason = msg.reason!;
    this.#ctx.c.logger.info(
      {
        keyId: msg.keyId,
        contributorId: peer.contributorId,
        outcome: msg.outcome,
        ...(msg.reason === undefined ? {} : { reason: msg.reason }),
      },
      "share recovery: a holder answered",
    );
    if (pending.waiting.size === 0) this.#finish(pending);
  }

  /** A holder that leaves before answering: `no-answer` (its slot stays as it is). */
  participantLeft(contributorId: string): void {
    for (const pending of this.#pending.values()) {
      if (pending.waiting.delete(contributorId) && pending.waiting.size === 0) {
        this.#finish(pending);
      }
    }
  }

  stop(): void {
    for (const pending of [...this.#pending.values()]) this.#finish(pending);
  }

  #finish(pending: Pending): void {
    if (!this.#pending.delete(pending.recoveryId)) return;
    clearTimeout(pending.timer);
    pending.resolve(pending.outcomes);
  }
}
