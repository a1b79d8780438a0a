/**
 * The server as an untrusted coordinator of distributed key generations (docs/PROTOCOL.md §16):
 * it picks n connected contributors, invites them with a signed `dkg.open`, and relays what
 * they sign — round-1 packages to everyone, each sealed round-2 share to its recipient only,
 * confirmations back as the success certificate. It never holds a share: what it stores is the
 * group key, the verifying shares, the certificate and the public recovery data.
 *
 * It checks what it relays (signatures, forms) so a participant's fault is named as early as it
 * can be, and judges complaints from their evidence (threshold/dkg.ts judgeComplaint,
 * findBadProof). Every session ends by its deadline: completed with a certificate, or aborted
 * with a culprit where one is proven and the silent participants where one is missing.
 */
import { toBase64url } from "../crypto/base64url.js";
import { serverSign } from "../crypto/server-signature.js";
import { isStrongEd25519Key, publicKeyFromRaw, verifySignature } from "../crypto/signature.js";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import type { MessageOf } from "../protocol/messages.js";
import { dkgOpenSignedData } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { KeyRecord } from "../store/types.js";
import {
  publicFromJson,
  round1FromJson,
  round1ToJson,
  shareFromJson,
  shareToJson,
} from "../threshold/codec.js";
import {
  checkPackage,
  checkSessionParams,
  DkgFault,
  findBadProof,
  judgeComplaint,
} from "../threshold/dkg.js";
import type { SuiteName } from "../threshold/suites.js";
import {
  confirmSignedData,
  type DkgSessionParams,
  identifiersOf,
  publicPackageHash,
  type Round1Package,
  round1SignedData,
  type SealedShare,
  sessionIdOf,
  shareSignedData,
  transcriptHash,
} from "../threshold/transcript.js";
import type { Peer, ServerContext } from "./server-context.js";
import { logThresholdSession, sessionFacts, sessionWitnessed } from "./threshold-log.js";
import { storeThresholdKey } from "./threshold-record.js";

export interface ThresholdKeygenRequest {
  suite: SuiteName;
  t: number;
  n: number;
  /** The registration id of the requester that owns the key, or "@admin". */
  owner: string;
}

/**
 * How long a whole DKG session may take by default (all phases): 60 s, or 3 s per participant
 * when more (a 43-of-64 participant does ≈ 3 s of noble's round 2 and 3 on one core here).
 */
export const DEFAULT_DKG_TIMEOUT_MS = 60_000;
export const DKG_TIMEOUT_PER_PARTICIPANT_MS = 3_000;

/** `stored`: the server stored the key and sent the certificate; holders confirm their shares. */
type Phase = "round1" | "round2" | "confirm" | "stored" | "done";

interface Session {
  readonly params: DkgSessionParams;
  readonly sessionId: Uint8Array;
  readonly key: string;
  readonly identifiers: string[];
  readonly owner: string;
  /** Contributor ids by index - 1. */
  readonly members: string[];
  readonly peers: Peer[];
  phase: Phase;
  readonly packages: (Round1Package | undefined)[];
  readonly shares: (SealedShare[] | undefined)[];
  readonly confirms: (MessageOf<"dkg.confirm"> | undefined)[];
  /** Holders that confirmed they keep their share (dkg.stored), by index - 1. */
  readonly stored: boolean[];
  record?: KeyRecord;
  timer: NodeJS.Timeout | undefined;
  resolve(record: KeyRecord): void;
  reject(error: DkeygenError): void;
}

export class DkgCoordinator {
  readonly #ctx: ServerContext;
  readonly #sessions = new Map<string, Session>();

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  get running(): number {
    return this.#sessions.size;
  }

  /** Runs one DKG with n of the connected contributors; resolves to the stored key record. */
  keygen(request: ThresholdKeygenRequest): Promise<KeyRecord> {
    const ctx = this.#ctx;
    // Only contributors whose identity key can carry evidence (a strong Ed25519 key, PROTOCOL
    // §5): one with a small-order key could disown what it signed, and every session that drew
    // it would fail its parameter check.
    const connected = [...ctx.contributors.entries()].filter(
      ([, peer]) => peer.identity !== undefined && isStrongEd25519Key(peer.identity),
    );
    if (connected.length < request.n) {
      throw new DkeygenError(
        ErrorCodes.QUORUM_NOT_MET,
        `A ${request.t}-of-${request.n} key needs ${request.n} contributors connected; ` +
          `${connected.length} are${connected.length < ctx.contributors.size ? " (with a strong identity key)" : ""}.`,
      );
    }
    const chosen = shuffle(connected, ctx.c.random).slice(0, request.n);
    const params: DkgSessionParams = {
      suite: request.suite,
      t: request.t,
      n: request.n,
      serverFingerprint: ctx.fingerprint,
      nonce: ctx.c.random(32),
      identities: chosen.map(([, peer]) => peer.identity!),
    };
    checkSessionParams(params);
    const sessionId = sessionIdOf(params);
    const timeoutMs =
      ctx.config.dkgTimeoutMs ??
      Math.max(DEFAULT_DKG_TIMEOUT_MS, request.n * DKG_TIMEOUT_PER_PARTICIPANT_MS);
    const deadline = new Date(ctx.c.clock() + timeoutMs).toISOString();
    return new Promise<KeyRecord>((resolve, reject) => {
      const session: Session = {
        params,
        sessionId,
        key: toBase64url(sessionId),
        identifiers: identifiersOf(params.suite, sessionId, params.n),
        owner: request.owner,
        members: chosen.map(([id]) => id),
        peers: chosen.map(([, peer]) => peer),
        phase: "round1",
        packages: new Array(params.n).fill(undefined),
        shares: new Array(params.n).fill(undefined),
        confirms: new Array(params.n).fill(undefined),
        stored: new Array(params.n).fill(false),
        timer: undefined,
        resolve,
        reject,
      };
      this.#sessions.set(session.key, session);
      session.timer = setTimeout(() => this.#timedOut(session), timeoutMs);
      session.timer.unref();
      const participants = params.identities.map(toBase64url);
      const signature = toBase64url(
        serverSign(
          ctx.c.identity.privateKey,
          dkgOpenSignedData(
            ctx.fingerprint,
            sessionId,
            params.suite,
            params.t,
            params.n,
            params.nonce,
            params.identities,
            deadline,
            request.owner,
          ),
        ),
      );
      ctx.c.logger.info(
        { sessionId: session.key, suite: params.suite, t: params.t, n: params.n },
        "DKG session opened",
      );
      for (const peer of session.peers) {
        ctx.send(peer, {
          type: "dkg.open",
          v: PROTOCOL_VERSION,
          sessionId: session.key,
          suite: params.suite,
          t: params.t,
          n: params.n,
          nonce: toBase64url(params.nonce),
          participants,
          deadline,
          owner: request.owner,
          signature,
        });
      }
    });
  }

  round1(peer: Peer, msg: MessageOf<"dkg.round1">): void {
    const { session, index } = this.#member(peer, msg.sessionId, "round1");
    const pkg = round1FromJson(msg.package);
    if (pkg.index !== index) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "A round-1 package must carry the sender's own index.",
      );
    }
    // A package that is not the sender's own signature is refused (nobody is blamed for noise).
    const identity = publicKeyFromRaw(session.params.identities[index - 1]!);
    const data = round1SignedData(session.sessionId, pkg);
    if (!verifySignature(identity, data, pkg.signature)) {
      throw new DkeygenError(
        ErrorCodes.BAD_SIGNATURE,
        "The round-1 package is not signed by its sender.",
      );
    }
    const earlier = session.packages[index - 1];
    if (earlier !== undefined) {
      if (Buffer.from(earlier.signature).equals(Buffer.from(pkg.signature))) return;
      this.#abort(
        session,
        new DkgFault(
          index,
          "equivocation",
          `Participant ${index} signed two different round-1 packages.`,
        ),
      );
      return;
    }
    try {
      checkPackage(session.params, session.sessionId, pkg, "sender");
    } catch (error) {
      this.#abort(session, error);
      return;
    }
    session.packages[index - 1] = pkg;
    if (session.packages.every((p) => p !== undefined)) {
      session.phase = "round2";
      const packages = (session.packages as Round1Package[]).map(round1ToJson);
      for (const member of session.peers) {
        this.#ctx.send(member, {
          type: "dkg.round1s",
          v: PROTOCOL_VERSION,
          sessionId: session.key,
          packages,
        });
      }
    }
  }

  round2(peer: Peer, msg: MessageOf<"dkg.round2">): void {
    const { session, index } = this.#member(peer, msg.sessionId, "round2");
    if (session.shares[index - 1] !== undefined) {
      throw new DkeygenError(
        ErrorCodes.DUPLICATE_CONTRIBUTION,
        "This participant's shares are in already.",
      );
    }
    const shares = msg.shares.map(shareFromJson).sort((a, b) => a.to - b.to);
    const recipients = shares.map((s) => s.to);
    const expected = session.members.map((_, i) => i + 1).filter((i) => i !== index);
    if (
      shares.some((s) => s.from !== index) ||
      recipients.length !== expected.length ||
      recipients.some((to, i) => to !== expected[i])
    ) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "Round 2 is one share from the sender to each other participant.",
      );
    }
    const identity = publicKeyFromRaw(session.params.identities[index - 1]!);
    for (const s of shares) {
      if (
        !verifySignature(
          identity,
          shareSignedData(session.sessionId, s.from, s.to, s.ciphertext),
          s.signature,
        )
      ) {
        throw new DkeygenError(
          ErrorCodes.BAD_SIGNATURE,
          `The share for participant ${s.to} is not signed by its sender.`,
        );
      }
    }
    session.shares[index - 1] = shares;
    if (session.shares.every((s) => s !== undefined)) {
      session.phase = "confirm";
      const all = (session.shares as SealedShare[][]).flat();
      session.peers.forEach((member, i) => {
        const mine = all.filter((s) => s.to === i + 1).sort((a, b) => a.from - b.from);
        this.#ctx.send(member, {
          type: "dkg.shares",
          v: PROTOCOL_VERSION,
          sessionId: session.key,
          shares: mine.map(shareToJson),
        });
      });
    }
  }

  async confirm(peer: Peer, msg: MessageOf<"dkg.confirm">): Promise<void> {
    const { session, index } = this.#member(peer, msg.sessionId, "confirm");
    if (session.confirms[index - 1] !== undefined) {
      throw new DkeygenError(
        ErrorCodes.DUPLICATE_CONTRIBUTION,
        "This participant's confirmation is in already.",
      );
    }
    const packages = session.packages as Round1Package[];
    const transcript = transcriptHash(session.sessionId, packages);
    const { t, n } = session.params;
    let publicHash: Uint8Array;
    try {
      publicHash = publicPackageHash(
        publicFromJson(msg.public, session.identifiers, t, n),
        session.identifiers,
      );
    } catch (error) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        "The confirmation's public key package is malformed.",
        { cause: error },
      );
    }
    const identity = publicKeyFromRaw(session.params.identities[index - 1]!);
    const signature = Buffer.from(msg.signature, "base64url");
    if (
      !verifySignature(
        identity,
        confirmSignedData(session.sessionId, Buffer.from(msg.transcript, "base64url"), publicHash),
        signature,
      )
    ) {
      throw new DkeygenError(
        ErrorCodes.BAD_SIGNATURE,
        "The confirmation is not signed by its sender.",
      );
    }
    if (!Buffer.from(msg.transcript, "base64url").equals(Buffer.from(transcript))) {
      this.#abort(
        session,
        new DkgFault(
          index,
          "certificate",
          `Participant ${index} confirmed a transcript the coordinator never relayed.`,
        ),
      );
      return;
    }
    const first = session.confirms.find((c) => c !== undefined);
    if (first !== undefined && JSON.stringify(first.public) !== JSON.stringify(msg.public)) {
      this.#abort(
        session,
        new DkgFault(
          index,
          "certificate",
          `Participant ${index} derived another public key package than participant ${session.confirms.indexOf(first) + 1}.`,
        ),
      );
      return;
    }
    session.confirms[index - 1] = msg;
    if (!session.confirms.every((c) => c !== undefined)) return;
    session.phase = "done";
    const certificate = (session.confirms as MessageOf<"dkg.confirm">[]).map((c) =>
      Buffer.from(c.signature, "base64url"),
    );
    let logged = false;
    try {
      const record = await storeThresholdKey(this.#ctx, {
        params: session.params,
        sessionId: session.sessionId,
        identifiers: session.identifiers,
        members: session.members,
        owner: session.owner,
        packages,
        shares: (session.shares as SealedShare[][]).flat(),
        public: publicFromJson(msg.public, session.identifiers, t, n),
        transcript,
        certificate,
      });
      session.record = record;
      // Durable in the log before any holder hears of the key (PROTOCOL §15.1, §16.4).
      const index = await logThresholdSession(this.#ctx, {
        ...sessionFacts(session, session.params),
        completed: { transcript, publicHash, certificate },
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
          certificate: (session.confirms as MessageOf<"dkg.confirm">[]).map((c) => c.signature),
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
          `The key could not be ${why}: ${describeError(error)}`,
        ),
        !logged,
      );
    }
  }

  /** A holder keeps its share: once all have said so, the key is handed to whoever asked. */
  stored(peer: Peer, msg: MessageOf<"dkg.stored">): void {
    const { session, index } = this.#member(peer, msg.sessionId, "stored");
    if (msg.keyId !== session.record!.id) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, "dkg.stored names another key.");
    }
    session.stored[index - 1] = true;
    if (session.stored.every(Boolean)) this.#complete(session);
  }

  #complete(session: Session): void {
    const record = session.record!;
    this.#finish(session);
    session.phase = "done";
    const missing = session.stored.flatMap((ok, i) => (ok ? [] : [session.members[i]!]));
    if (missing.length > 0) {
      this.#ctx.c.logger.warn(
        { sessionId: session.key, keyId: record.id, holders: missing },
        "DKG session completed, but some holders did not confirm they keep their share",
      );
    }
    this.#ctx.c.logger.info({ sessionId: session.key, keyId: record.id }, "DKG session completed");
    this.#ctx.emit({ type: "dkg.completed", sessionId: session.key, keyId: record.id });
    session.resolve(record);
  }

  /** A participant that cannot go on: its complaint is judged from the evidence it gives. */
  fault(peer: Peer, msg: MessageOf<"dkg.fault">): void {
    const { session, index } = this.#member(peer, msg.sessionId, undefined);
    this.#abort(session, judgeFault(session, index, msg));
  }

  participantLeft(contributorId: string): void {
    for (const session of [...this.#sessions.values()]) {
      const index = session.members.indexOf(contributorId) + 1;
      // Once the key is stored, a holder leaving only means it will not confirm (see #complete).
      if (index > 0 && session.phase !== "done" && session.phase !== "stored") {
        this.#abort(
          session,
          new DkgFault(index, "missing", `Participant ${index} disconnected during the session.`),
        );
      }
    }
  }

  stop(): void {
    for (const session of [...this.#sessions.values()]) {
      if (session.phase === "stored") {
        this.#complete(session);
        continue;
      }
      this.#abort(
        session,
        new DkeygenError(ErrorCodes.UNAVAILABLE, "The server is stopping."),
        false,
      );
    }
  }

  #member(
    peer: Peer,
    sessionKey: string,
    phase: Phase | undefined,
  ): { session: Session; index: number } {
    const session = this.#sessions.get(sessionKey);
    const index = session ? session.peers.indexOf(peer) + 1 : 0;
    if (!session || index === 0) {
      throw new DkeygenError(
        ErrorCodes.WRONG_ROUND,
        "No DKG session of this id includes this contributor.",
      );
    }
    if (phase !== undefined && session.phase !== phase) {
      throw new DkeygenError(
        ErrorCodes.WRONG_PHASE,
        `This DKG session is not in its ${phase} phase.`,
      );
    }
    return { session, index };
  }

  #timedOut(session: Session): void {
    if (session.phase === "stored") {
      this.#complete(session);
      return;
    }
    const waiting =
      session.phase === "round1"
        ? session.packages
        : session.phase === "round2"
          ? session.shares
          : session.confirms;
    const silent = waiting.flatMap((x, i) => (x === undefined ? [i + 1] : []));
    const first = silent[0];
    this.#abort(
      session,
      first === undefined
        ? new DkeygenError(ErrorCodes.TIMEOUT, "The DKG session ran out of time.")
        : new DkgFault(
            first,
            "missing",
            `Participants ${silent.join(", ")} did not answer in time (${session.phase}).`,
          ),
    );
  }

  #finish(session: Session): void {
    clearTimeout(session.timer);
    this.#sessions.delete(session.key);
  }

  /**
   * Ends a session that cannot complete; logs it (§15.1) unless `log` is false (the server
   * stopping: nothing was made and nobody is to blame, and the store may be closing).
   */
  #abort(session: Session, error: unknown, log = true): void {
    if (!this.#sessions.has(session.key)) return;
    this.#finish(session);
    session.phase = "done";
    const fault = error instanceof DkgFault ? error : undefined;
    const culprit =
      fault === undefined
        ? undefined
        : fault.culpritIndex === "coordinator"
          ? "coordinator"
          : session.members[fault.culpritIndex - 1];
    const kind = fault?.kind ?? "aborted";
    const reason = error instanceof Error ? error.message : "The DKG session failed.";
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
      `DKG session aborted: ${reason}`,
    );
    if (log) {
      const blamed = culprit === "coordinator" ? undefined : culprit;
      // Failures are logged by logThresholdSession; the abort goes on regardless.
      logThresholdSession(this.#ctx, {
        ...sessionFacts(session, session.params),
        aborted: { fault: kind, ...(blamed === undefined ? {} : { culprit: blamed }) },
      }).catch(() => {});
    }
    this.#ctx.emit({
      type: "dkg.aborted",
      sessionId: session.key,
      kind,
      reason,
      ...(culprit === undefined ? {} : { culprit }),
    });
    session.reject(
      new DkeygenError(
        ErrorCodes.ROUND_ABORTED,
        `The DKG was aborted: ${reason}`,
        culprit === undefined ? {} : { culprit },
      ),
    );
  }
}

/**
 * Whom a participant's fault report blames, decided from its evidence: a share complaint by
 * opening the share with the revealed key, a proof complaint by checking every proof; a report
 * the server cannot check blames nobody.
 */
function judgeFault(session: Session, index: number, msg: MessageOf<"dkg.fault">): DkeygenError {
  const packages = session.packages.filter((p): p is Round1Package => p !== undefined);
  const evidence = msg.evidence;
  const share =
    msg.kind === "share" && evidence !== undefined && evidence.to === index
      ? session.shares[evidence.from - 1]?.find((s) => s.to === evidence.to)
      : undefined;
  if (share !== undefined && evidence !== undefined) {
    const key = Buffer.from(evidence.key, "base64url");
    const { verdict } = judgeComplaint(session.params, packages, share, key);
    const { from, to } = evidence;
    if (verdict === "sender") {
      return new DkgFault(
        from,
        "share",
        `Participant ${from} sent participant ${to} a share that does not match its commitment.`,
      );
    }
    if (verdict === "accuser") {
      return new DkgFault(
        index,
        "share",
        `Participant ${index} complained about a share that checks.`,
      );
    }
    return new DkeygenError(
      ErrorCodes.ROUND_ABORTED,
      `Participant ${index}'s complaint against participant ${from} could not be decided.`,
    );
  }
  if (msg.kind === "proof" && packages.length === session.params.n) {
    const culprit = findBadProofOrNone(session, packages);
    return culprit !== undefined
      ? new DkgFault(culprit, "proof", `Participant ${culprit}'s proof of knowledge is invalid.`)
      : new DkgFault(index, "proof", `Participant ${index} complained about proofs that check.`);
  }
  return new DkeygenError(
    ErrorCodes.ROUND_ABORTED,
    `Participant ${index} stopped the session (${msg.kind}).`,
  );
}

function findBadProofOrNone(session: Session, packages: Round1Package[]): number | undefined {
  try {
    return findBadProof(session.params, session.identifiers, packages);
  } catch {
    return undefined;
  }
}

/**
 * Fisher–Yates with the server's random source (32-bit draws reduced modulo ≤ 2^16 peers: a bias
 * below 2^-16 in whom a session invites, which decides nothing secret).
 */
function shuffle<T>(items: T[], random: (n: number) => Uint8Array): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const r = random(4).reduce((acc, b) => acc * 256 + b, 0);
    const j = r % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
