/**
 * A holder's part in a share refresh (docs/PROTOCOL.md §16.7). It takes part only in a refresh
 * the pinned server signed, of a key it holds a share of, listing the key's holders as it knows
 * them and the key's public package as it has it, whose session id it recomputes and has never
 * seen; a dealer deals its own share (threshold/refresh-participant.ts). Only with the full
 * certificate does the new share replace the old one (share-store.ts saveRefreshed); a fault or
 * an abort leaves the old share as it was.
 */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import type { RandomSource } from "../crypto/random.js";
import { serverVerify } from "../crypto/server-signature.js";
import { describeError } from "../errors.js";
import type { Logger } from "../logging.js";
import { encodeMessage, type MessageOf } from "../protocol/messages.js";
import { refreshOpenSignedData } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import { publicFromJson, publicToJson, shareFromJson, shareToJson } from "../threshold/codec.js";
import { DkgFault } from "../threshold/dkg.js";
import { type RefreshSessionParams, refreshSessionIdOf } from "../threshold/refresh.js";
import { type DealPackage, RefreshParticipant } from "../threshold/refresh-participant.js";
import { publicPackageHash, type SealedShare } from "../threshold/transcript.js";
import type { Connection } from "../transport/types.js";
import { type DkgEvent, sendFault } from "./contributor-dkg.js";
import type { ContributorState } from "./contributor-state.js";
import type { ServerKey } from "./server-key.js";
import type { ShareFile, ShareStore } from "./share-store.js";

interface Running {
  participant: RefreshParticipant;
  file: ShareFile;
  deals?: MessageOf<"refresh.deals">["deals"];
  incoming?: SealedShare[];
  timer: NodeJS.Timeout;
}

export interface ContributorRefreshOptions {
  state: ContributorState;
  shares: ShareStore;
  random: RandomSource;
  logger: Logger;
  emit: (event: DkgEvent) => void;
  clock?: () => number;
}

export class ContributorRefresh {
  readonly #o: ContributorRefreshOptions;
  readonly #sessions = new Map<string, Running>();
  /** Sessions whose refresh.open is still being checked (share read, replay claim on disk). */
  readonly #opening = new Map<string, Promise<void>>();

  constructor(options: ContributorRefreshOptions) {
    this.#o = options;
  }

  has(sessionId: string): boolean {
    return this.#sessions.has(sessionId);
  }

  /**
   * Takes part in a refresh. The holder that deals nothing sends nothing before the dealers'
   * deals reach it, which can be before its own checks of the open (disk reads and a durable
   * replay claim) are done: `deals` waits for them rather than dropping the deals.
   */
  open(connection: Connection, server: ServerKey, msg: MessageOf<"refresh.open">): Promise<void> {
    const opening = this.#open(connection, server, msg);
    // A second open of the session (a replay) is refused by its own checks; deals wait for the first.
    if (!this.#opening.has(msg.sessionId)) {
      const done = () => {
        this.#opening.delete(msg.sessionId);
      };
      this.#opening.set(msg.sessionId, opening.then(done, done));
    }
    return opening;
  }

  async #open(
    connection: Connection,
    server: ServerKey,
    msg: MessageOf<"refresh.open">,
  ): Promise<void> {
    const { logger, shares, state } = this.#o;
    const ignore = (why: string) =>
      logger.warn({ sessionId: msg.sessionId, keyId: msg.keyId }, `ignored a refresh.open: ${why}`);
    const identities = msg.participants.map((p) => fromBase64url(p, "participants", 32));
    const nonce = fromBase64url(msg.nonce, "nonce", 32);
    const sessionId = fromBase64url(msg.sessionId, "sessionId", 32);
    const publicHash = fromBase64url(msg.publicHash, "publicHash", 32);
    const signed = refreshOpenSignedData(
      server.fingerprint,
      sessionId,
      msg.keyId,
      nonce,
      msg.dealers,
      publicHash,
      msg.deadline,
      identities,
    );
    if (!serverVerify(server.key, signed, fromBase64url(msg.signature, "signature"))) {
      return ignore("the server did not sign it");
    }
    const file = await shares.read(msg.keyId);
    if (file === undefined) return ignore("no share of this key here");
    const known = file.recovery.params.identities;
    if (
      file.suite !== msg.suite ||
      file.t !== msg.t ||
      file.n !== msg.n ||
      msg.participants.length !== known.length ||
      msg.participants.some((p, i) => p !== known[i]) ||
      msg.participants[file.index - 1] !== toBase64url(state.identity)
    ) {
      return ignore("it does not describe the key this holder has");
    }
    const oldPublic = publicFromJson(file.public, file.identifiers, file.t, file.n);
    if (
      !Buffer.from(publicPackageHash(oldPublic, file.identifiers)).equals(Buffer.from(publicHash))
    ) {
      return ignore("it is not of the key's current shares");
    }
    const params: RefreshSessionParams = {
      suite: msg.suite,
      t: msg.t,
      n: msg.n,
      serverFingerprint: server.fingerprint,
      keyId: msg.keyId,
      publicHash,
      nonce,
      dealers: msg.dealers,
      identities,
    };
    if (!Buffer.from(refreshSessionIdOf(params)).equals(Buffer.from(sessionId))) {
      return ignore("its session id does not match its parameters");
    }
    const msLeft = Date.parse(msg.deadline) - (this.#o.clock ?? Date.now)();
    if (!(msLeft > 0)) return ignore("it is past its deadline");
    if (!(await shares.claimSession(msg.sessionId))) {
      logger.error({ sessionId: msg.sessionId }, "refused a refresh taken part in before (replay)");
      return sendFault(
        connection,
        msg.sessionId,
        new DkgFault("coordinator", "replay", "The session id was used before."),
      );
    }
    const dealer = msg.dealers.includes(file.index);
    let signingShare: Uint8Array | undefined;
    try {
      // Inside the try: a share that does not open is a fault the server hears of at once, not
      // an error that leaves the refresh to time out.
      signingShare = dealer ? shares.openShare(file) : undefined;
      const participant = new RefreshParticipant({
        params,
        index: file.index,
        identityKey: state.privateKey,
        identifiers: file.identifiers,
        encryptionKeys: [...file.recovery.packages]
          .sort((a, b) => a.index - b.index)
          .map((p) => fromBase64url(p.encryptionKey, "encryptionKey", 32)),
        oldPublic,
        ...(signingShare === undefined ? {} : { signingShare }),
        random: this.#o.random,
      });
      const timer = setTimeout(() => this.#forget(msg.sessionId), msLeft + 1000);
      timer.unref();
      this.#sessions.set(msg.sessionId, { participant, file, timer });
      logger.info({ sessionId: msg.sessionId, keyId: msg.keyId, dealer }, "share refresh joined");
      if (dealer) {
        const dealt = participant.deal();
        connection.send(
          encodeMessage({
            type: "refresh.deal",
            v: PROTOCOL_VERSION,
            sessionId: msg.sessionId,
            deal: {
              index: dealt.package.index,
              commitment: dealt.package.commitment.map(toBase64url),
              ephemeralKey: toBase64url(dealt.package.ephemeralKey),
              signature: toBase64url(dealt.package.signature),
            },
            shares: dealt.shares.map(shareToJson),
          }),
        );
      }
    } catch (error) {
      logger.error(
        { sessionId: msg.sessionId, err: describeError(error) },
        "refused a share refresh",
      );
      sendFault(
        connection,
        msg.sessionId,
        new DkgFault("coordinator", "parameters", "The refresh cannot be taken part in."),
      );
      this.#forget(msg.sessionId);
    } finally {
      signingShare?.fill(0);
    }
  }

  async deals(connection: Connection, msg: MessageOf<"refresh.deals">): Promise<void> {
    await this.#opening.get(msg.sessionId);
    const running = this.#sessions.get(msg.sessionId);
    if (!running) return;
    try {
      const deals: DealPackage[] = msg.deals.map((d) => ({
        index: d.index,
        commitment: d.commitment.map((c) => fromBase64url(c, "commitment")),
        ephemeralKey: fromBase64url(d.ephemeralKey, "ephemeralKey", 32),
        signature: fromBase64url(d.signature, "signature", 64),
      }));
      const incoming = msg.shares.map(shareFromJson);
      const confirmation = running.participant.confirm(deals, incoming);
      running.deals = msg.deals;
      running.incoming = incoming;
      connection.send(
        encodeMessage({
          type: "dkg.confirm",
          v: PROTOCOL_VERSION,
          sessionId: msg.sessionId,
          transcript: toBase64url(confirmation.transcript),
          public: publicToJson(confirmation.public, running.file.identifiers),
          signature: toBase64url(confirmation.signature),
        }),
      );
    } catch (error) {
      this.#failed(connection, msg.sessionId, error);
    }
  }

  async certificate(connection: Connection, msg: MessageOf<"dkg.certificate">): Promise<void> {
    const running = this.#sessions.get(msg.sessionId);
    if (!running) return;
    let refreshed: ReturnType<RefreshParticipant["finish"]>;
    try {
      refreshed = running.participant.finish(
        msg.certificate.map((c) => fromBase64url(c, "certificate", 64)),
      );
    } catch (error) {
      this.#failed(connection, msg.sessionId, error);
      return;
    }
    try {
      await this.#o.shares.saveRefreshed(
        msg.keyId,
        running.file,
        refreshed,
        {
          dealers: running.participant.params.dealers,
          deals: running.deals!,
          shares: running.incoming!.map(shareToJson),
        },
        new Date(),
      );
      this.#o.logger.info(
        { sessionId: msg.sessionId, keyId: msg.keyId, refreshOf: running.file.keyId },
        "refreshed share stored (sealed); the old share is gone",
      );
      connection.send(
        encodeMessage({
          type: "dkg.stored",
          v: PROTOCOL_VERSION,
          sessionId: msg.sessionId,
          keyId: msg.keyId,
        }),
      );
      this.#o.emit({ type: "dkg.completed", sessionId: msg.sessionId, keyId: msg.keyId });
    } finally {
      refreshed.signingShare.fill(0);
      this.#forget(msg.sessionId);
    }
  }

  aborted(msg: MessageOf<"dkg.aborted">): void {
    const running = this.#sessions.get(msg.sessionId);
    if (!running) return;
    running.participant.abort();
    this.#forget(msg.sessionId);
    this.#o.logger.warn(
      { sessionId: msg.sessionId, culprit: msg.culprit, kind: msg.kind },
      `share refresh aborted (the old share stays): ${msg.reason}`,
    );
    this.#o.emit({
      type: "dkg.aborted",
      sessionId: msg.sessionId,
      kind: msg.kind,
      reason: msg.reason,
      ...(msg.culprit === undefined ? {} : { culprit: msg.culprit }),
    });
  }

  #failed(connection: Connection, sessionId: string, error: unknown): void {
    this.#o.logger.warn({ sessionId, err: describeError(error) }, "share refresh step failed");
    sendFault(
      connection,
      sessionId,
      error instanceof DkgFault
        ? error
        : new DkgFault("coordinator", "protocol", "A refresh step failed."),
    );
    this.#sessions.get(sessionId)?.participant.abort();
    this.#forget(sessionId);
  }

  #forget(sessionId: string): void {
    const running = this.#sessions.get(sessionId);
    if (!running) return;
    clearTimeout(running.timer);
    this.#sessions.delete(sessionId);
  }
}
