/**
 * Share refresh coordinated by the server (docs/PROTOCOL.md §16.7): all n holders of a threshold
 * key online, t of them (the first t by index) deal a fresh sharing of their own share; the server
 * relays each deal to everyone and each sealed sub-share to its recipient only, gathers the n
 * confirmations of the new public package (`dkg.confirm`), stores the refreshed key as a new
 * record (same group key, `refreshOf` the old one), sends the certificate (`dkg.certificate`) and
 * waits for every holder to keep its new share (`dkg.stored`) — holders then drop the old one.
 * A fault aborts: the old shares stay valid, nothing new is kept.
 */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { serverSign } from "../crypto/server-signature.js";
import { publicKeyFromRaw, verifySignature } from "../crypto/signature.js";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import type { MessageOf } from "../protocol/messages.js";
import { refreshOpenSignedData } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { KeyRecord } from "../store/types.js";
import { publicFromJson, shareFromJson, shareToJson } from "../threshold/codec.js";
import { DkgFault } from "../threshold/dkg.js";
import {
  checkDeal,
  dealSignedData,
  type RefreshSessionParams,
  refreshSessionIdOf,
  refreshTranscript,
  subShareMatches,
} from "../threshold/refresh.js";
import type { DealPackage } from "../threshold/refresh-participant.js";
import { openShare } from "../threshold/share-box.js";
import {
  confirmSignedData,
  publicPackageHash,
  type SealedShare,
  shareSignedData,
} from "../threshold/transcript.js";
import { DEFAULT_DKG_TIMEOUT_MS, DKG_TIMEOUT_PER_PARTICIPANT_MS } from "./dkg-coordinator.js";
import type { Peer, ServerContext } from "./server-context.js";
import { logThresholdSession, sessionFacts, sessionWitnessed } from "./threshold-log.js";
import { storeRefreshedKey, type ThresholdPublicPart } from "./threshold-record.js";

type Phase = "deal" | "confirm" | "stored" | "done";

interface Session {
  readonly key: string;
  readonly params: RefreshSessionParams;
  readonly sessionId: Uint8Array;
  readonly old: KeyRecord;
  readonly identifiers: string[];
  readonly members: string[];
  readonly peers: Peer[];
  phase: Phase;
  readonly deals: Map<number, { pkg: DealPackage; shares: SealedShare[] }>;
  readonly confirms: (MessageOf<"dkg.confirm"> | undefined)[];
  readonly stored: boolean[];
  record?: KeyRecord;
  timer: NodeJS.Timeout | undefined;
  resolve(record: KeyRecord): void;
  reject(error: DkeygenError): void;
}

const b64 = (text: string) => fromBase64url(text, "field");

export class RefreshCoordinator {
  readonly #ctx: ServerContext;
  readonly #sessions = new Map<string, Session>();

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  has(sessionId: string): boolean {
    return this.#sessions.has(sessionId);
  }

  /** Refreshes the shares of threshold key `old`; resolves to the refreshed key's record. */
  refresh(old: KeyRecord): Promise<KeyRecord> {
    const ctx = this.#ctx;
    const p = old.public as unknown as ThresholdPublicPart;
    const holders = [...p.holders].sort((a, b) => a.index - b.index);
    const offline = holders.filter((h) => !ctx.contributors.has(h.contributorId));
    if (offline.length > 0) {
      throw new DkeygenError(
        ErrorCodes.QUORUM_NOT_MET,
        `A refresh needs all ${p.n} holders of key ${old.id} online; ${offline.length} are not: ` +
          `${offline.map((h) => h.contributorId).join(", ")}.`,
      );
    }
    const identifiers = holders.map((h) => h.identifier);
    const pub = publicFromJson(
      { commitments: p.commitments, verifyingShares: holders.map((h) => h.verifyingShare) },
      identifiers,
      p.t,
      p.n,
    );
    const params: RefreshSessionParams = {
      suite: p.suite,
      t: p.t,
      n: p.n,
      serverFingerprint: ctx.fingerprint,
      keyId: old.id,
      publicHash: publicPackageHash(pub, identifiers),
      nonce: ctx.c.random(32),
      dealers: holders.slice(0, p.t).map((h) => h.index),
      identities: holders.map((h) => b64(h.identity)),
    };
    const sessionId = refreshSessionIdOf(params);
    const timeoutMs =
      ctx.config.dkgTimeoutMs ??
      Math.max(DEFAULT_DKG_TIMEOUT_MS, p.n * DKG_TIMEOUT_PER_PARTICIPANT_MS);
    const deadline = new Date(ctx.c.clock() + timeoutMs).toISOString();
    return new Promise<KeyRecord>((resolve, reject) => {
      const session: Session = {
        key: toBase64url(sessionId),
        params,
        sessionId,
        old,
        identifiers,
        members: holders.map((h) => h.contributorId),
        peers: holders.map((h) => ctx.contributors.get(h.contributorId)!),
        phase: "deal",
        deals: new Map(),
        confirms: new Array(p.n).fill(undefined),
        stored: new Array(p.n).fill(false),
        timer: undefined,
        resolve,
        reject,
      };
      this.#sessions.set(session.key, session);
      session.timer = setTimeout(() => this.#timedOut(session), timeoutMs);
      session.timer.unref();
      const signature = serverSign(
        ctx.c.identity.privateKey,
        refreshOpenSignedData(
          ctx.fingerprint,
          sessionId,
          old.id,
          params.nonce,
          params.dealers,
          params.publicHash,
          deadline,
          params.identities,
        ),
      );
      ctx.c.logger.info({ sessionId: session.key, keyId: old.id }, "share refresh opened");
      for (const peer of session.peers) {
        ctx.send(peer, {
          type: "refresh.open",
          v: PROTOCOL_VERSION,
          sessionId: session.key,
          keyId: old.id,
          suite: params.suite,
          t: params.t,
          n: params.n,
          nonce: toBase64url(params.nonce),
          dealers: params.dealers,
          participants: params.identities.map(toBase64url),
          publicHash: toBase64url(params.publicHash),
          deadline,
          signature: toBase64url(signature),
        });
      }
    });
  }

  deal(peer: Peer, msg: MessageOf<"refresh.deal">): void {
    const { session, index } = this.#member(peer, msg.sessionId, "deal");
    const { params } = session;
    if (!params.dealers.includes(index) || msg.deal.index !== index) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, "Only a dealer deals, under its own index.");
    }
    if (session.deals.has(index)) {
      throw new DkeygenError(
        ErrorCodes.DUPLICATE_CONTRIBUTION,
        "This dealer's deal is in already.",
      );
    }
    const pkg: DealPackage = {
      index,
      commitment: msg.deal.commitment.map(b64),
      ephemeralKey: b64(msg.deal.ephemeralKey),
      signature: b64(msg.deal.signature),
    };
    const identity = publicKeyFromRaw(params.identities[index - 1]!);
    const data = dealSignedData(session.sessionId, index, pkg.ephemeralKey, pkg.commitment);
    if (!verifySignature(identity, data, pkg.signature)) {
      throw new DkeygenError(ErrorCodes.BAD_SIGNATURE, "The deal is not signed by its dealer.");
    }
    const shares = msg.shares.map(shareFromJson).sort((a, b) => a.to - b.to);
    if (shares.length !== params.n || shares.some((s, k) => s.from !== index || s.to !== k + 1)) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "A deal seals one sub-share to each holder.",
      );
    }
    for (const s of shares) {
      const signed = shareSignedData(session.sessionId, s.from, s.to, s.ciphertext);
      if (!verifySignature(identity, signed, s.signature)) {
        throw new DkeygenError(
          ErrorCodes.BAD_SIGNATURE,
          "A sub-share is not signed by its dealer.",
        );
      }
    }
    const p = session.old.public as unknown as ThresholdPublicPart;
    const verifying = b64(p.holders.find((h) => h.index === index)!.verifyingShare);
    if (!checkDeal(params.suite, params.t, pkg.commitment, verifying)) {
      this.#abort(
        session,
        new DkgFault(index, "commitment", `Dealer ${index} did not deal its own share.`),
      );
      return;
    }
    session.deals.set(index, { pkg, shares });
    if (session.deals.size < params.t) return;
    session.phase = "confirm";
    const deals = params.dealers.map((d) => session.deals.get(d)!);
    session.peers.forEach((member, j) => {
      this.#ctx.send(member, {
        type: "refresh.deals",
        v: PROTOCOL_VERSION,
        sessionId: session.key,
        deals: deals.map((d) => ({
          index: d.pkg.index,
          commitment: d.pkg.commitment.map(toBase64url),
          ephemeralKey: toBase64url(d.pkg.ephemeralKey),
          signature: toBase64url(d.pkg.signature),
        })),
        shares: deals.map((d) => shareToJson(d.shares[j]!)),
      });
    });
  }

  async confirm(peer: Peer, msg: MessageOf<"dkg.confirm">): Promise<void> {
    const { session, index } = this.#member(peer, msg.sessionId, "confirm");
    if (session.confirms[index - 1] !== undefined) {
      throw new DkeygenError(
        ErrorCodes.DUPLICATE_CONTRIBUTION,
        "This holder's confirmation is in already.",
      );
    }
    const { params } = session;
    const deals = params.dealers.map((d) => session.deals.get(d)!.pkg);
    const transcript = refreshTranscript(session.sessionId, deals);
    const pub = publicFromJson(msg.public, session.identifiers, params.t, params.n);
    const identity = publicKeyFromRaw(params.identities[index - 1]!);
    const data = confirmSignedData(
      session.sessionId,
      b64(msg.transcript),
      publicPackageHash(pub, session.identifiers),
    );
    if (!verifySignature(identity, data, b64(msg.signature))) {
      throw new DkeygenError(
        ErrorCodes.BAD_SIGNATURE,
        "The confirmation is not signed by its sender.",
      );
    }
    const first = session.confirms.find((c) => c !== undefined);
    const p = session.old.public as unknown as ThresholdPublicPart;
    if (
      !Buffer.from(b64(msg.transcript)).equals(Buffer.from(transcript)) ||
      (first !== undefined && JSON.stringify(first.public) !== JSON.stringify(msg.public)) ||
      msg.public.commitments[0] !== p.commitments[0]
    ) {
      this.#abort(
        session,
        new DkgFault(
          index,
          "certificate",
          `Holder ${index} confirmed another refresh than the others.`,
        ),
      );
      return;
    }
    session.confirms[index - 1] = msg;
    if (!session.confirms.every((c) => c !== undefined)) return;
    session.phase = "done";
    const confirms = session.confirms as MessageOf<"dkg.confirm">[];
    const certificate = confirms.map((c) => b64(c.signature));
    let logged = false;
    try {
      const record = await storeRefreshedKey(this.#ctx, {
        old: session.old,
        params,
        sessionId: session.sessionId,
        identifiers: session.identifiers,
        deals,
        shares: params.dealers.flatMap((d) => session.deals.get(d)!.shares),
        public: pub,
        transcript,
        certificate,
      });
      session.record = record;
      // Durable in the log before any holder hears of the new shares' key (§15.1, §16.7).
      const index = await logThresholdSession(this.#ctx, {
        ...refreshFacts(session),
        completed: {
          transcript,
          publicHash: publicPackageHash(pub, session.identifiers),
          certificate,
        },
      });
      logged = true;
      await sessionWitnessed(this.#ctx, index);
      // The session may have run out of time while the entry waited for its witnesses.
      if (!this.#sessions.has(session.key)) {
        await this.#ctx.c.store.consume(record.id).catch(() => false);
        return;
      }
      session.phase = "stored";
      for (const member of session.peers) {
        this.#ctx.send(member, {
          type: "dkg.certificate",
          v: PROTOCOL_VERSION,
          sessionId: session.key,
          keyId: record.id,
          certificate: confirms.map((c) => c.signature),
        });
      }
    } catch (error) {
      // A record stored but not logged, or logged but not witnessed, is withdrawn: no holder
      // was told of it, none keeps it. Its entry, once logged, stays the session's only one.
      const stored = session.record;
      if (stored !== undefined) await this.#ctx.c.store.consume(stored.id).catch(() => false);
      const why = stored === undefined ? "stored" : logged ? "handed out" : "logged";
      this.#abort(
        session,
        new DkeygenError(
          ErrorCodes.OPERATIONAL,
          `The refreshed key could not be ${why}: ${describeError(error)}`,
        ),
        !logged,
      );
    }
  }

  stored(peer: Peer, msg: MessageOf<"dkg.stored">): void {
    const { session, index } = this.#member(peer, msg.sessionId, "stored");
    if (msg.keyId !== session.record!.id) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, "dkg.stored names another key.");
    }
    session.stored[index - 1] = true;
    if (session.stored.every(Boolean)) this.#complete(session);
  }

  fault(peer: Peer, msg: MessageOf<"dkg.fault">): void {
    const { session, index } = this.#member(peer, msg.sessionId, undefined);
    this.#abort(session, this.#judge(session, index, msg));
  }

  /**
   * A sub-share complaint is judged from its evidence like a DKG's (PROTOCOL §16.3): the dealer's
   * signed sub-share opened with the revealed key either fails its commitment (the dealer) or
   * checks (the accuser); anything else blames nobody, and the old shares stay.
   */
  #judge(session: Session, index: number, msg: MessageOf<"dkg.fault">): DkeygenError {
    const e = msg.evidence;
    const dealt = e === undefined ? undefined : session.deals.get(e.from);
    if (msg.kind === "share" && e !== undefined && e.to === index && dealt !== undefined) {
      const sealed = dealt.shares[e.to - 1]!;
      const sub = openShare(b64(e.key), sealed.ciphertext, session.sessionId, e.from, e.to);
      if (sub !== undefined) {
        const { params } = session;
        const good =
          sub.length === 32 &&
          subShareMatches(
            params.suite,
            params.t,
            params.n,
            session.identifiers[e.to - 1]!,
            sub,
            dealt.pkg.commitment,
          );
        sub.fill(0);
        return good
          ? new DkgFault(
              index,
              "share",
              `Holder ${index} complained about a sub-share that checks.`,
            )
          : new DkgFault(
              e.from,
              "share",
              `Dealer ${e.from} sent holder ${e.to} a sub-share off its commitment.`,
            );
      }
    }
    return new DkeygenError(
      ErrorCodes.ROUND_ABORTED,
      `Holder ${index} stopped the refresh (${msg.kind}); the old shares stay.`,
    );
  }

  participantLeft(contributorId: string): void {
    for (const session of [...this.#sessions.values()]) {
      const index = session.members.indexOf(contributorId) + 1;
      if (index > 0 && session.phase !== "stored" && session.phase !== "done") {
        this.#abort(
          session,
          new DkgFault(index, "missing", `Holder ${index} disconnected during the refresh.`),
        );
      }
    }
  }

  stop(): void {
    for (const session of [...this.#sessions.values()]) {
      if (session.phase === "stored") this.#complete(session);
      else
        this.#abort(
          session,
          new DkeygenError(ErrorCodes.UNAVAILABLE, "The server is stopping."),
          false,
        );
    }
  }

  #member(peer: Peer, key: string, phase: Phase | undefined): { session: Session; index: number } {
    const session = this.#sessions.get(key);
    const index = session ? session.peers.indexOf(peer) + 1 : 0;
    if (!session || index === 0) {
      throw new DkeygenError(
        ErrorCodes.WRONG_ROUND,
        "No refresh of this id includes this contributor.",
      );
    }
    if (phase !== undefined && session.phase !== phase) {
      throw new DkeygenError(ErrorCodes.WRONG_PHASE, `This refresh is not in its ${phase} phase.`);
    }
    return { session, index };
  }

  #timedOut(session: Session): void {
    if (session.phase === "stored") {
      this.#complete(session);
      return;
    }
    const silent =
      session.phase === "deal"
        ? session.params.dealers.filter((d) => !session.deals.has(d))
        : session.confirms.flatMap((c, i) => (c === undefined ? [i + 1] : []));
    this.#abort(
      session,
      silent.length === 0
        ? new DkeygenError(ErrorCodes.TIMEOUT, "The refresh ran out of time.")
        : new DkgFault(
            silent[0]!,
            "missing",
            `Holders ${silent.join(", ")} did not answer in time (${session.phase}).`,
          ),
    );
  }

  #complete(session: Session): void {
    clearTimeout(session.timer);
    this.#sessions.delete(session.key);
    session.phase = "done";
    const record = session.record!;
    this.#ctx.c.logger.info(
      { sessionId: session.key, keyId: record.id, refreshOf: session.old.id },
      "share refresh completed",
    );
    session.resolve(record);
  }

  /** Ends a refresh that cannot complete; logs it (§15.1) unless the server is stopping. */
  #abort(session: Session, error: unknown, log = true): void {
    if (!this.#sessions.has(session.key)) return;
    clearTimeout(session.timer);
    this.#sessions.delete(session.key);
    session.phase = "done";
    const fault = error instanceof DkgFault ? error : undefined;
    const culprit =
      fault === undefined || fault.culpritIndex === "coordinator"
        ? undefined
        : session.members[fault.culpritIndex - 1];
    const reason = error instanceof Error ? error.message : "The refresh failed.";
    const kind = fault?.kind ?? "aborted";
    for (const member of session.peers) {
      this.#ctx.send(member, {
        type: "dkg.aborted",
        v: PROTOCOL_VERSION,
        sessionId: session.key,
        kind,
        reason: reason.slice(0, 512),
        ...(culprit === undefined ? {} : { culprit }),
      });
    }
    this.#ctx.c.logger.warn(
      { sessionId: session.key, culprit, kind },
      `share refresh aborted: ${reason}`,
    );
    if (log) {
      // Failures are logged by logThresholdSession; the abort goes on regardless.
      logThresholdSession(this.#ctx, {
        ...refreshFacts(session),
        aborted: { fault: kind, ...(culprit === undefined ? {} : { culprit }) },
      }).catch(() => {});
    }
    session.reject(
      new DkeygenError(
        ErrorCodes.ROUND_ABORTED,
        `The refresh was aborted: ${reason}`,
        culprit === undefined ? {} : { culprit },
      ),
    );
  }
}

const refreshFacts = (session: Session) =>
  sessionFacts(session, session.params, {
    keyId: session.params.keyId,
    previous: session.params.publicHash,
    dealers: session.params.dealers,
  });
