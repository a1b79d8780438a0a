/**
 * A holder getting a lost share back (docs/PROTOCOL.md §16.8). The server sends a key's public
 * recovery data (`dkg.recovery`); the holder trusts none of it: the server's signature under the
 * pinned key, that it is the key's holder at the stated index with its own identity key, every
 * round-1 package and sealed share signed by its participant, its own package re-created from its
 * identity key, the certificate (all n signatures, its own among them) over the transcript and
 * the public package, the rebuilt share's public image — and for a refreshed key the refresh's
 * session id, its deals and sub-shares signed by their dealers, the refresh's certificate and the
 * same group key. A holder that already has a valid share of the key keeps it (`kept`); one that
 * has not rebuilds it (threshold/recovery.ts) and saves it as the DKG (and refresh) would have
 * (`recovered`); a failed check is `refused` with the check's name, never anything secret.
 */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { serverVerify } from "../crypto/server-signature.js";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import type { Logger } from "../logging.js";
import { encodeMessage, type MessageOf } from "../protocol/messages.js";
import { recoverySignedData } from "../protocol/signed-data.js";
import type { RecoveryRefusal } from "../protocol/threshold-messages.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import { publicFromJson, round1FromJson, shareFromJson } from "../threshold/codec.js";
import {
  checkPackages,
  checkSessionParams,
  DkgFault,
  type ThresholdShare,
} from "../threshold/dkg.js";
import {
  checkRefreshRecovery,
  recoverRefreshedShare,
  recoverShare,
  shareMatchesVerifyingShare,
} from "../threshold/recovery.js";
import type { DealPackage } from "../threshold/refresh-participant.js";
import { type DkgSessionParams, sessionIdOf } from "../threshold/transcript.js";
import type { Connection } from "../transport/types.js";
import type { ContributorState } from "./contributor-state.js";
import type { ServerKey } from "./server-key.js";
import type { ShareFile, ShareStore } from "./share-store.js";

export type RecoveryOutcome = MessageOf<"dkg.recovered">["outcome"];

export type RecoveryEvent = {
  type: "share.recovery";
  keyId: string;
  outcome: RecoveryOutcome;
  reason?: RecoveryRefusal;
};

export interface ContributorRecoveryOptions {
  state: ContributorState;
  shares: ShareStore;
  logger: Logger;
  emit: (event: RecoveryEvent) => void;
  clock?: () => number;
}

/** A failed check, and the reason the answer names. */
class Refusal extends Error {
  constructor(
    readonly reason: RecoveryRefusal,
    message: string,
  ) {
    super(message);
  }
}

/** Runs `work`; whatever it throws becomes a refusal for `reason` (DkgFault certificate: its own). */
function checked<T>(reason: RecoveryRefusal, work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof Refusal) throw error;
    const certificate = error instanceof DkgFault && error.kind === "certificate";
    throw new Refusal(certificate ? "certificate" : reason, describeError(error));
  }
}

export class ContributorRecovery {
  readonly #o: ContributorRecoveryOptions;
  /** One recovery at a time: two messages for one key must not both write its file. */
  #queue: Promise<void> = Promise.resolve();

  constructor(options: ContributorRecoveryOptions) {
    this.#o = options;
  }

  recovery(
    connection: Connection,
    server: ServerKey,
    msg: MessageOf<"dkg.recovery">,
  ): Promise<void> {
    const next = this.#queue.then(() => this.#answer(connection, server, msg));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #answer(
    connection: Connection,
    server: ServerKey,
    msg: MessageOf<"dkg.recovery">,
  ): Promise<void> {
    const { logger } = this.#o;
    let outcome: RecoveryOutcome;
    let reason: RecoveryRefusal | undefined;
    try {
      outcome = await this.#handle(server, msg);
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      outcome = "refused";
      reason = error.reason;
      logger.warn(
        { keyId: msg.keyId, reason, detail: error.message },
        "refused a key's recovery data",
      );
    }
    connection.send(
      encodeMessage({
        type: "dkg.recovered",
        v: PROTOCOL_VERSION,
        recoveryId: msg.recoveryId,
        keyId: msg.keyId,
        outcome,
        ...(reason === undefined ? {} : { reason }),
      }),
    );
    this.#o.emit({
      type: "share.recovery",
      keyId: msg.keyId,
      outcome,
      ...(reason === undefined ? {} : { reason }),
    });
  }

  async #handle(server: ServerKey, msg: MessageOf<"dkg.recovery">): Promise<RecoveryOutcome> {
    const { logger, shares, state } = this.#o;
    const { signature, ...unsigned } = msg;
    if (
      !serverVerify(
        server.key,
        recoverySignedData(server.fingerprint, unsigned),
        fromBase64url(signature, "signature"),
      )
    ) {
      throw new Refusal("signature", "The server did not sign this recovery data.");
    }
    if (!(Date.parse(msg.deadline) > (this.#o.clock ?? Date.now)())) {
      throw new Refusal("late", "The recovery data is past its deadline.");
    }
    const p = msg.dkg.params;
    if (
      msg.index > p.identities.length ||
      p.identities[msg.index - 1] !== toBase64url(state.identity)
    ) {
      throw new Refusal(
        "not-holder",
        `This contributor is not holder ${msg.index} of key ${msg.keyId}.`,
      );
    }
    const existing = await shares.read(msg.keyId);
    if (existing !== undefined) {
      if (this.#valid(existing, msg.index)) return "kept";
      logger.warn({ keyId: msg.keyId }, "the share file of this key is unusable: rebuilding it");
    }
    const params: DkgSessionParams = checked("parameters", () => {
      const params = {
        suite: p.suite,
        t: p.t,
        n: p.n,
        serverFingerprint: p.serverFingerprint,
        nonce: fromBase64url(p.nonce, "nonce", 32),
        identities: p.identities.map((k) => fromBase64url(k, "identities", 32)),
      };
      checkSessionParams(params);
      return params;
    });
    const packages = msg.dkg.packages.map(round1FromJson);
    const sessionId = sessionIdOf(params);
    checked("package", () => checkPackages(params, sessionId, packages));
    const incoming = msg.dkg.shares.map(shareFromJson).filter((s) => s.to === msg.index);
    const certificate = msg.dkg.certificate.map((c) => fromBase64url(c, "certificate", 64));
    let share: ThresholdShare | undefined;
    let refreshedShare: Uint8Array | undefined;
    try {
      share = checked("share", () => {
        try {
          return recoverShare(
            { params, packages, shares: incoming, certificate },
            msg.index,
            state.privateKey,
          );
        } catch (error) {
          // Only the identity-key check throws INVALID_INPUT once the packages passed.
          if (error instanceof DkeygenError && error.code === ErrorCodes.INVALID_INPUT) {
            throw new Refusal("package", error.message);
          }
          throw error;
        }
      });
      const own = share.public.verifyingShares[share.identifiers[msg.index - 1]!];
      if (own === undefined || !shareMatchesVerifyingShare(params.suite, share.signingShare, own)) {
        throw new Refusal("share", "The rebuilt share is not the holder's verifying share.");
      }
      const createdAt = new Date(msg.createdAt);
      const r = msg.refresh;
      if (r === undefined) {
        await this.#store(() =>
          shares.saveRecovered(
            msg.keyId,
            share!,
            params,
            msg.owner,
            msg.dkg.packages,
            incoming,
            createdAt,
          ),
        );
        await shares.claimSession(toBase64url(sessionId));
      } else {
        const dkgShare = share;
        const identifiers = dkgShare.identifiers;
        const refreshParams = {
          suite: params.suite,
          t: params.t,
          n: params.n,
          serverFingerprint: server.fingerprint,
          keyId: r.refreshOf,
          publicHash: fromBase64url(r.publicHash, "publicHash", 32),
          nonce: fromBase64url(r.nonce, "nonce", 32),
          dealers: r.dealers,
          identities: params.identities,
        };
        const deals: DealPackage[] = r.deals.map((d) => ({
          index: d.index,
          commitment: d.commitment.map((c) => fromBase64url(c, "commitment")),
          ephemeralKey: fromBase64url(d.ephemeralKey, "ephemeralKey", 32),
          signature: fromBase64url(d.signature, "signature", 64),
        }));
        const subShares = r.shares.map(shareFromJson).filter((s) => s.to === msg.index);
        const refreshCertificate = r.certificate.map((c) => fromBase64url(c, "certificate", 64));
        const pub = checked("refresh", () =>
          publicFromJson(r.public, identifiers, params.t, params.n),
        );
        const checkedRefresh = checked("refresh", () =>
          checkRefreshRecovery(
            refreshParams,
            identifiers,
            msg.index,
            deals,
            subShares,
            pub,
            refreshCertificate,
          ),
        );
        if (
          !Buffer.from(pub.commitments[0]!).equals(Buffer.from(dkgShare.public.commitments[0]!))
        ) {
          throw new Refusal("refresh", "The refreshed package is not of the DKG's group key.");
        }
        refreshedShare = checked("refresh", () =>
          recoverRefreshedShare(
            {
              suite: params.suite,
              t: params.t,
              n: params.n,
              identifiers,
              sessionId: checkedRefresh.sessionId,
              dealers: r.dealers,
              deals,
              shares: subShares,
              public: pub,
            },
            msg.index,
            state.privateKey,
          ),
        );
        const ownNew = pub.verifyingShares[identifiers[msg.index - 1]!]!;
        if (!shareMatchesVerifyingShare(params.suite, refreshedShare, ownNew)) {
          throw new Refusal("refresh", "The rebuilt share is not the holder's verifying share.");
        }
        const refreshedBytes = refreshedShare;
        await this.#store(() =>
          shares.saveRecovered(
            msg.keyId,
            dkgShare,
            params,
            msg.owner,
            msg.dkg.packages,
            incoming,
            createdAt,
            {
              keyId: r.refreshOf,
              share: {
                sessionId: checkedRefresh.sessionId,
                public: pub,
                signingShare: refreshedBytes,
                transcript: checkedRefresh.transcript,
                certificate: refreshCertificate,
              },
              refresh: {
                dealers: r.dealers,
                deals: r.deals,
                shares: r.shares.filter((s) => s.to === msg.index),
              },
            },
          ),
        );
        await shares.claimSession(toBase64url(sessionId));
        await shares.claimSession(toBase64url(checkedRefresh.sessionId));
      }
    } finally {
      share?.signingShare.fill(0);
      refreshedShare?.fill(0);
    }
    logger.info(
      { keyId: msg.keyId, index: msg.index, refreshed: msg.refresh !== undefined },
      "threshold share recovered from the server's recovery data and stored (sealed)",
    );
    return "recovered";
  }

  /** Whether a share file is this holder's and its share opens to its verifying share. */
  #valid(file: ShareFile, index: number): boolean {
    let share: Uint8Array | undefined;
    try {
      if (file.index !== index) return false;
      share = this.#o.shares.openShare(file);
      const own = fromBase64url(file.public.verifyingShares[index - 1]!, "verifyingShare");
      return shareMatchesVerifyingShare(file.suite, share, own);
    } catch {
      return false;
    } finally {
      share?.fill(0);
    }
  }

  async #store(write: () => Promise<unknown>): Promise<void> {
    try {
      await write();
    } catch (error) {
      throw new Refusal("store", describeError(error));
    }
  }
}
