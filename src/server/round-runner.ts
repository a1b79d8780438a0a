/**
 * Runs rounds, commit then reveal: opens each one (seed phrase, the server's own secret and its
 * commitment, the invited set, the signed round.open to every invited contributor); feeds commits
 * into its RoundMachine (protocol/round.ts) until the commit deadline or until every invited
 * contributor has committed or left; sends the signed commit set; feeds reveals (checked against
 * their commitments by contribution-check.ts), answering each with a signed receipt, until every
 * committed contributor has revealed, one cannot, or the reveal deadline; and closes it: the round
 * secret from the seed, the server secret and every committed phrase (crypto/kdf.ts), the
 * purpose's derivation (a batch round's on the derivation thread), and the records stored before
 * anyone is told — or an abort naming who did not reveal.
 */
import type { KeyObject } from "node:crypto";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { SERVER_SECRET_BYTES } from "../crypto/kdf.js";
import { generateIdentity, rawPublicKey } from "../crypto/signature.js";
import { derivationOf } from "../derive/index.js";
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import type { JsonObject } from "../json.js";
import { encodeRoundEntry, roundEntryOf } from "../protocol/log-entry.js";
import { encodeMessage, MAX_INVITED, type MessageOf } from "../protocol/messages.js";
import { RoundMachine } from "../protocol/round.js";
import { commitSetHash, paramsHash, serverSecretCommitment } from "../protocol/signed-data.js";
import { SEED_PHRASE_BYTES } from "../protocol/version.js";
import type { KeyRecord } from "../store/types.js";
import { BatchDeriver } from "./batch-deriver.js";
import { checkCommit } from "./contribution-check.js";
import { RevealPool } from "./reveal-pool.js";
import { type CompletedRound, storeRoundResults } from "./round-results.js";
import {
  closingMessage,
  commitSetMessage,
  receiptMessage,
  roundOpenMessage,
} from "./round-statements.js";
import { MAX_BATCH, type Peer, type RoundRequest, type ServerContext } from "./server-context.js";

interface RunningRound extends CompletedRound {
  machine: RoundMachine;
  participants: Map<string, Peer>;
  /** The current phase's deadline timer, and what ends the phase early. */
  timer?: NodeJS.Timeout;
  settle: () => void;
  /** The commit set's hash, once it was sent. */
  setHash?: Uint8Array;
  /** Why the round failed without an outcome of its own (too few commitments, the server stopping). */
  failure?: DkeygenError;
  /** The round's Ed25519 signing key (round.open carries its public half). */
  roundKey: KeyObject;
  /** Reveals being checked on the reveal threads; the round closes only once they are done. */
  opening: Set<Promise<void>>;
  /** The signed round.open, and later round.commits, as sent: evidence for the log entry. */
  openMessage: MessageOf<"round.open">;
  commitsMessage?: MessageOf<"round.commits">;
  /** Each accepted commit's signature and its signer's identity key (raw), by contributor id. */
  commitSignatures: Map<string, { signature: string; identity: Uint8Array }>;
  /** Each accepted reveal's signature (its countersignature of the set), by contributor id. */
  revealSignatures: Map<string, string>;
}

const CLOSED_ROUNDS_REMEMBERED = 4096;

export class RoundRunner {
  readonly #ctx: ServerContext;
  readonly #rounds = new Map<string, RunningRound>();
  readonly #closedRounds = new Set<string>();
  /** Batch rounds' per-output work, on its own thread (batch-worker.ts). */
  readonly #batches = new BatchDeriver();
  /** Reveals' signature checks, decryptions and receipts, on a thread per core. */
  readonly #reveals: RevealPool;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
    this.#reveals = new RevealPool(ctx.c.identity.privateKey);
  }

  get running(): number {
    return this.#rounds.size;
  }

  /** Settles every running round (each fails or completes with what it has) and the thread. */
  async stop(): Promise<void> {
    for (const round of this.#rounds.values()) round.settle();
    await this.#reveals.close();
    await this.#batches.close();
  }

  /** An invited contributor's connection closed: it will not answer its rounds. */
  participantLeft(contributorId: string, peer: Peer): void {
    for (const round of this.#rounds.values()) {
      if (round.participants.get(contributorId) === peer) {
        round.machine.participantLeft(contributorId);
        if (round.machine.settled || round.machine.doomed) round.settle();
      }
    }
  }

  /**
   * Runs one round that makes `count` results (records) at once, each from its own share of the
   * round secret (crypto/kdf.ts batchOutputSecret), with every connected contributor (up to
   * maxParticipants). Resolves once all are stored, or rejects (QUORUM_NOT_MET, …).
   */
  async runBatchRound(request: RoundRequest): Promise<KeyRecord[]> {
    const ctx = this.#ctx;
    const count = request.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > MAX_BATCH) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, `A round makes 1 to ${MAX_BATCH} results.`);
    }
    const derivation = derivationOf(request.purpose);
    const params = request.params ?? {};
    derivation.parseParams(params); // fail before anyone is asked for anything
    if (ctx.stopping) throw new DkeygenError(ErrorCodes.UNAVAILABLE, "The server is stopping.");

    const participants = new Map(
      [...ctx.contributors].slice(0, Math.min(ctx.config.maxParticipants, MAX_INVITED)),
    );
    const { quorum } = ctx.config;
    if (participants.size < quorum) {
      throw new DkeygenError(
        ErrorCodes.QUORUM_NOT_MET,
        `Only ${participants.size} contributor${participants.size === 1 ? " is" : "s are"} ` +
          `connected; a round needs at least ${quorum}. Nothing was stored.`,
      );
    }
    const roundId = toBase64url(ctx.c.random(16));
    const seed = ctx.c.random(SEED_PHRASE_BYTES);
    const serverSecret = ctx.c.random(SERVER_SECRET_BYTES);
    const serverCommitment = serverSecretCommitment(roundId, serverSecret);
    const commitMs = ctx.config.commitTimeoutMs ?? ctx.config.roundTimeoutMs;
    const revealMs = ctx.config.revealTimeoutMs ?? ctx.config.roundTimeoutMs;
    const commitDeadline = ctx.c.clock() + commitMs;
    const revealDeadline = commitDeadline + revealMs;
    const invited = [...participants.keys()];
    // The round's own signing key: its commit set, receipts and closing are signed with it, and
    // round.open (signed by the server's RSA key) carries its public half. Dropped when it ends.
    const roundKey = generateIdentity();
    const fields = {
      roundId,
      purpose: request.purpose,
      // The parameters as the records will keep them (parsed, defaults filled: §13.2), so an
      // auditor recomputes the hash from a record.
      paramsHash: paramsHash(
        request.purpose,
        derivation.paramsToJson(derivation.parseParams(params)) as JsonObject,
      ),
      seed,
      serverCommitment,
      roundKey: rawPublicKey(roundKey.publicKey),
      commitDeadline: new Date(commitDeadline).toISOString(),
      revealDeadline: new Date(revealDeadline).toISOString(),
      invited,
    };
    const machine = new RoundMachine({
      roundId,
      purpose: request.purpose,
      invited,
      quorum,
      commitDeadline,
      revealDeadline,
    });
    const openMessage = roundOpenMessage(ctx.c.identity.privateKey, fields);
    const round: RunningRound = {
      openMessage,
      commitSignatures: new Map(),
      revealSignatures: new Map(),
      machine,
      seed,
      serverSecret,
      purpose: request.purpose,
      params,
      count,
      ...(request.owner === undefined ? {} : { owner: request.owner }),
      ...(request.subject === undefined ? {} : { subject: request.subject }),
      ...(request.holders === undefined ? {} : { holders: request.holders }),
      ...(request.onStored === undefined ? {} : { onStored: request.onStored }),
      participants,
      roundKey: roundKey.privateKey,
      settle: () => {},
      opening: new Set(),
      reveals: new Map(),
    };
    this.#rounds.set(roundId, round);

    const open = encodeMessage(openMessage);
    for (const peer of participants.values()) peer.connection.send(open);
    ctx.c.logger.info(
      { roundId, purpose: request.purpose, participants: participants.size, quorum },
      "round opened",
    );
    ctx.emit({
      type: "round.opened",
      roundId,
      purpose: request.purpose,
      participants: participants.size,
      seedBits: SEED_PHRASE_BYTES * 8,
      serverCommitment: Buffer.from(serverCommitment).toString("hex"),
      commitDeadline: fields.commitDeadline,
      revealDeadline: fields.revealDeadline,
    });

    await this.#phase(round, commitDeadline);
    if (ctx.stopping) {
      round.failure = stopping(roundId);
    } else if (this.#sendCommitSet(roundId, round)) {
      await this.#phase(round, revealDeadline);
      // A reveal that came in time is judged, however long its check takes.
      while (round.opening.size > 0) await Promise.all(round.opening);
      if (ctx.stopping) round.failure = stopping(roundId);
    }
    return this.#finish(roundId);
  }

  /** Waits until `deadline` (epoch ms) or until the round's current phase settles early. */
  #phase(round: RunningRound, deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const end = () => {
        clearTimeout(round.timer);
        round.settle = () => {};
        resolve();
      };
      round.settle = end;
      round.timer = setTimeout(end, Math.max(0, deadline - this.#ctx.c.clock()));
      if (round.machine.settled || round.machine.doomed) end();
    });
  }

  /**
   * Ends the commit phase. With a quorum of commitments, signs the commit set and sends it to
   * every invited contributor still connected (so one whose commitment is missing sees that) and
   * returns true; otherwise false (the round fails in #finish, nothing having been revealed).
   */
  #sendCommitSet(roundId: string, round: RunningRound): boolean {
    const ctx = this.#ctx;
    const closed = round.machine.closeCommits();
    if (closed.status === "failed") {
      round.failure = closed.error;
      return false;
    }
    const setHash = commitSetHash(roundId, ctx.fingerprint, closed.commits);
    round.setHash = setHash;
    round.commitsMessage = commitSetMessage(round.roundKey, roundId, closed.commits, setHash);
    const frame = encodeMessage(round.commitsMessage);
    for (const peer of round.participants.values()) peer.connection.send(frame);
    // Committed contributors that left before the set was sent can no longer reveal.
    for (const [id, peer] of round.participants) {
      if (ctx.contributors.get(id) !== peer) round.machine.participantLeft(id);
    }
    ctx.c.logger.info({ roundId, commits: closed.commits.length }, "commit set sent");
    ctx.emit({
      type: "round.committed",
      roundId,
      commits: closed.commits.length,
      setHash: Buffer.from(setHash).toString("hex"),
    });
    return true;
  }

  /** Checks a commit or reveal's sender and finds its round; undefined after answering an error. */
  #roundFor(
    peer: Peer,
    msg: { roundId: string; contributorId: string },
    what: string,
  ): RunningRound | undefined {
    const contributorId = peer.contributorId!;
    const { roundId } = msg;
    if (msg.contributorId !== contributorId) {
      this.#rejected(
        peer,
        roundId,
        new DkeygenError(
          ErrorCodes.UNAUTHORIZED,
          `The ${what} names contributor ${msg.contributorId}, but this connection belongs to ${contributorId}.`,
          { culprit: contributorId },
        ),
      );
      return undefined;
    }
    const round = this.#rounds.get(roundId);
    if (!round) {
      this.#rejected(
        peer,
        roundId,
        this.#closedRounds.has(roundId)
          ? new DkeygenError(
              ErrorCodes.LATE_CONTRIBUTION,
              `Round ${roundId} is closed; the ${what} came too late.`,
            )
          : new DkeygenError(ErrorCodes.WRONG_ROUND, `There is no round ${roundId}.`),
      );
      return undefined;
    }
    return round;
  }

  #rejected(peer: Peer, roundId: string, error: DkeygenError): void {
    const ctx = this.#ctx;
    ctx.reject(peer, error, { roundId });
    ctx.emit({
      type: "contribution.rejected",
      roundId,
      contributorId: peer.contributorId!,
      code: error.code,
      message: error.message,
    });
  }

  /** A commitment from `peer`, an authenticated contributor. */
  commit(peer: Peer, msg: MessageOf<"commit">): void {
    const ctx = this.#ctx;
    const round = this.#roundFor(peer, msg, "commitment");
    if (!round) return;
    const contributorId = peer.contributorId!;
    const entry = ctx.c.registry.get(contributorId)!;
    const verdict = round.machine.commit(contributorId, ctx.c.clock(), () =>
      checkCommit(msg, contributorId, entry.key, ctx.fingerprint),
    );
    if (verdict.kind === "rejected") {
      this.#rejected(peer, msg.roundId, verdict.error);
      return;
    }
    round.commitSignatures.set(contributorId, {
      signature: msg.signature,
      identity: rawPublicKey(entry.key),
    });
    ctx.c.logger.info(
      { roundId: msg.roundId, contributorId, name: peer.name },
      "commitment accepted",
    );
    ctx.emit({
      type: "commit.accepted",
      roundId: msg.roundId,
      contributorId,
      ...(peer.name === undefined ? {} : { name: peer.name }),
    });
    if (round.machine.settled) round.settle();
  }

  /**
   * A reveal from `peer`, an authenticated contributor: the cheap checks here, the costly ones on
   * a reveal-checking thread (reveal-pool.ts); answered with the thread's signed receipt.
   */
  reveal(peer: Peer, msg: MessageOf<"reveal">): void {
    const ctx = this.#ctx;
    const round = this.#roundFor(peer, msg, "reveal");
    if (!round) return;
    const contributorId = peer.contributorId!;
    const { roundId } = msg;
    const begun = round.machine.beginReveal(contributorId, ctx.c.clock());
    if (begun.kind === "rejected") {
      this.#rejected(peer, roundId, begun.error);
      return;
    }
    const { commitment } = begun;
    const entry = ctx.c.registry.get(contributorId)!;
    const checked = this.#reveals
      .open({
        contributorId,
        identity: entry.key,
        serverFingerprint: ctx.fingerprint,
        setHash: round.setHash!,
        commitment,
        reveal: msg,
      })
      .then(
        (opened) => {
          const verdict = round.machine.finishReveal(contributorId, { phrase: opened.phrase });
          if (verdict.kind === "rejected") {
            opened.contentKey.fill(0);
            return this.#rejected(peer, roundId, verdict.error);
          }
          // Kept for the round's opening (round-opening.ts), wiped once it is sealed.
          round.reveals.set(contributorId, {
            envelope: msg.envelope,
            contentKey: opened.contentKey,
          });
          round.revealSignatures.set(contributorId, msg.signature);
          ctx.send(
            peer,
            receiptMessage(round.roundKey, roundId, contributorId, round.setHash!, commitment),
          );
          ctx.c.logger.info({ roundId, contributorId, name: peer.name }, "contribution revealed");
          ctx.emit({
            type: "contribution.accepted",
            roundId,
            contributorId,
            ...(peer.name === undefined ? {} : { name: peer.name }),
          });
        },
        (error: unknown) => {
          const verdict = round.machine.finishReveal(contributorId, { error });
          if (verdict.kind === "rejected") this.#rejected(peer, roundId, verdict.error);
        },
      )
      .catch((error: unknown) => {
        // A bug in the code above, not the peer's doing: logged; the round goes on.
        ctx.c.logger.error({ roundId, err: describeError(error) }, "a reveal could not be handled");
      })
      .finally(() => {
        round.opening.delete(checked);
        if (round.machine.settled || round.machine.doomed) round.settle();
      });
    round.opening.add(checked);
  }

  async #finish(roundId: string): Promise<KeyRecord[]> {
    const ctx = this.#ctx;
    const round = this.#rounds.get(roundId)!;
    clearTimeout(round.timer);
    this.#rounds.delete(roundId);
    this.#closedRounds.add(roundId);
    if (this.#closedRounds.size > CLOSED_ROUNDS_REMEMBERED) {
      this.#closedRounds.delete(this.#closedRounds.values().next().value!);
    }
    const outcome = round.failure
      ? { status: "failed" as const, error: round.failure, acceptedCount: 0 }
      : round.machine.close();
    const closing = (
      outcome: "completed" | "failed" | "aborted",
      accepted: number,
      reason?: string,
      missing?: string[],
    ) =>
      closingMessage(round.roundKey, {
        roundId,
        outcome,
        accepted,
        setHash: round.setHash,
        ...(missing === undefined ? {} : { missing }),
        ...(reason === undefined ? {} : { reason }),
      });
    const notify = (closed: MessageOf<"round.closed">) => {
      const frame = encodeMessage(closed);
      for (const peer of round.participants.values()) peer.connection.send(frame);
    };

    if (outcome.status === "failed" || outcome.status === "aborted") {
      round.seed.fill(0);
      round.serverSecret.fill(0);
      for (const { contentKey } of round.reveals.values()) contentKey.fill(0);
      round.reveals.clear();
      const { error } = outcome;
      if (outcome.status === "aborted") {
        const closed = closing(
          "aborted",
          outcome.revealed,
          error.message.slice(0, 512),
          outcome.missing,
        );
        // Logged like a completion (an abort after the reveals began is evidence), then told.
        await this.#logRound(round, closed, undefined).catch(() => {});
        notify(closed);
        ctx.c.logger.warn(
          { roundId, code: error.code, missing: outcome.missing },
          "round aborted: committed contributors did not reveal",
        );
        ctx.emit({
          type: "round.aborted",
          roundId,
          missing: outcome.missing,
          message: error.message,
        });
      } else {
        const closed = closing("failed", outcome.acceptedCount, error.message.slice(0, 512));
        await this.#logRound(round, closed, undefined).catch(() => {});
        notify(closed);
        ctx.c.logger.warn({ roundId, code: error.code }, error.message);
        ctx.emit({ type: "round.failed", roundId, code: error.code, message: error.message });
      }
      throw error;
    }

    let records: KeyRecord[] | undefined;
    let index: number | undefined;
    try {
      const stored = await storeRoundResults(
        { store: ctx.c.store, batches: this.#batches },
        roundId,
        round,
        outcome.accepted,
      );
      records = stored.records;
      // The entry is durable before anyone hears of the round: a result nobody can find in
      // the log is never handed out by this server.
      index = await this.#logRound(
        round,
        closing("completed", outcome.accepted.length),
        stored.results,
      );
    } catch (error) {
      const message =
        "The round's result could not be derived or stored; nothing was acknowledged.";
      ctx.c.logger.error({ roundId, err: describeError(error) }, message);
      // Stored but not logged: a pool refill's records stay held; consumed too, so nobody counts
      // them as ready (best effort: the store may be what failed).
      if (records) await this.#withdraw(records);
      const closed = closing("failed", outcome.accepted.length, message);
      await this.#logRound(round, closed, undefined).catch(() => {});
      notify(closed);
      ctx.emit({ type: "round.failed", roundId, code: ErrorCodes.OPERATIONAL, message });
      throw isDkeygenError(error) && error.code === ErrorCodes.INVALID_INPUT
        ? error
        : new DkeygenError(ErrorCodes.OPERATIONAL, message, { cause: error });
    }
    // Handed out only once witnesses cosigned a checkpoint that covers the entry (§15.5).
    const revealMs = ctx.config.revealTimeoutMs ?? ctx.config.roundTimeoutMs;
    if (index !== undefined && !(await ctx.witnessing.whenWitnessed(index, revealMs))) {
      throw await this.#notWitnessed(roundId, records, () =>
        notify(closing("completed", outcome.accepted.length, "result withdrawn: not witnessed")),
      );
    }
    if (round.owner === undefined) {
      // A pool refill's records were put held: witnessed (or witnessing is off and the entry is
      // durable), they become claimable now, by every process claiming from this store.
      try {
        await ctx.c.store.releaseHeld(roundId);
      } catch (error) {
        const message = `Round ${roundId}'s results could not be released; they stay held.`;
        ctx.c.logger.error({ roundId, err: describeError(error) }, message);
        notify(closing("completed", outcome.accepted.length, "result withdrawn: not released"));
        ctx.emit({ type: "round.failed", roundId, code: ErrorCodes.OPERATIONAL, message });
        throw new DkeygenError(ErrorCodes.OPERATIONAL, message, { cause: error });
      }
      for (const record of records) delete record.held;
    }
    notify(closing("completed", outcome.accepted.length));
    ctx.c.logger.info(
      {
        roundId,
        purpose: round.purpose,
        recordId: records[0]!.id,
        records: records.length,
        accepted: outcome.accepted.length,
      },
      "round completed; result stored",
    );
    ctx.emit({
      type: "round.completed",
      roundId,
      record: records[0]!,
      records: records.length,
      accepted: outcome.accepted.length,
    });
    return records;
  }

  /**
   * A completed round whose entry no checkpoint with enough cosignatures covered in time: its
   * records are consumed (never handed out, by the pool or anyone; a pool refill's also stay
   * held), participants get the closing
   * the log holds, and the round fails with E_UNAVAILABLE.
   */
  async #notWitnessed(
    roundId: string,
    records: KeyRecord[],
    notify: () => void,
  ): Promise<DkeygenError> {
    const ctx = this.#ctx;
    const k = ctx.config.minCosignatures;
    const message =
      `Round ${roundId} was not witnessed: no checkpoint covering its log entry got ${k} ` +
      `cosignature${k === 1 ? "" : "s"} in time; its results are withdrawn.`;
    await this.#withdraw(records);
    notify();
    ctx.c.logger.error({ roundId, records: records.length }, message);
    ctx.emit({ type: "round.failed", roundId, code: ErrorCodes.UNAVAILABLE, message });
    return new DkeygenError(ErrorCodes.UNAVAILABLE, message);
  }

  /** Consumes a round's records so none is ever handed out (best effort; a pool refill's stay held). */
  async #withdraw(records: KeyRecord[]): Promise<void> {
    const store = this.#ctx.c.store;
    await Promise.all(records.map((r) => store.consume(r.id).catch(() => false)));
  }

  /**
   * Appends a round's entry to the transparency log (protocol/log-entry.ts), if the round got as
   * far as a commit set: before one, nothing was revealed, and a round that failed then told the
   * server nothing about its result. Resolves to its index; rejects if the log could not take it
   * (logged here).
   */
  async #logRound(
    round: RunningRound,
    closed: MessageOf<"round.closed">,
    results: { recordId: string; commitment: Uint8Array }[] | undefined,
  ): Promise<number | undefined> {
    const ctx = this.#ctx;
    const commits = round.commitsMessage;
    if (commits === undefined) return undefined;
    const { roundId } = closed;
    try {
      const entry = roundEntryOf({
        server: ctx.fingerprint,
        open: round.openMessage,
        commits: commits.commits.map((c) => ({
          contributorId: c.contributorId,
          identity: round.commitSignatures.get(c.contributorId)!.identity,
          commitment: fromBase64url(c.commitment, "commitment", 32),
          signature: round.commitSignatures.get(c.contributorId)!.signature,
          ...(round.revealSignatures.has(c.contributorId)
            ? { reveal: round.revealSignatures.get(c.contributorId)! }
            : {}),
        })),
        setSignature: commits.signature,
        closed: {
          outcome: closed.outcome,
          accepted: closed.accepted,
          ...(closed.missing === undefined ? {} : { missing: closed.missing }),
          signature: closed.signature,
        },
        ...(results === undefined ? {} : { results }),
        closedAt: new Date(ctx.c.clock()),
      });
      const leaf = encodeRoundEntry(entry);
      ctx.witnessing.expect(
        roundId,
        leaf,
        entry.commits.map((c) => c.contributorId),
      );
      const index = await ctx.log.append(leaf, roundId);
      ctx.c.logger.info({ roundId, index, outcome: closed.outcome }, "round logged");
      ctx.emit({
        type: "round.logged",
        roundId,
        outcome: closed.outcome,
        index,
        size: ctx.log.size,
      });
      return index;
    } catch (error) {
      ctx.c.logger.error(
        { roundId, err: describeError(error) },
        "the round could not be written to the transparency log",
      );
      throw error;
    }
  }
}

/** A round cut short by the server stopping: not anyone's abort. */
function stopping(roundId: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.UNAVAILABLE,
    `Round ${roundId} failed: the server is stopping. Nothing was stored.`,
  );
}
