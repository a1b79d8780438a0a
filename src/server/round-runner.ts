/**
 * Runs rounds, commit then reveal: opens each one (seed phrase, the server's own secret and its
 * commitment, the invited set, the signed round.open to every invited contributor); runs its
 * commit phase until the commit deadline or until every invited contributor has committed or
 * left, then its reveal phase until every committed contributor has revealed, one cannot, or the
 * reveal deadline (each commit and reveal is handled in round-phases.ts: fed into the round's
 * RoundMachine, protocol/round.ts, checked by contribution-check.ts, the signed commit set sent,
 * each reveal answered with a signed receipt); and closes it (round-closing.ts): the round secret
 * from the seed, the server secret and every committed phrase (crypto/kdf.ts), the purpose's
 * derivation (a batch round's on the derivation thread), and the records stored and logged before
 * anyone is told — or an abort naming who did not reveal. It keeps the rounds running and the
 * ids of those recently closed, and finds each commit's and reveal's round.
 */
import { toBase64url } from "../crypto/base64url.js";
import { SERVER_SECRET_BYTES } from "../crypto/kdf.js";
import { generateIdentity, rawPublicKey } from "../crypto/signature.js";
import { derivationOf } from "../derive/index.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import { encodeMessage, MAX_INVITED, type MessageOf } from "../protocol/messages.js";
import { RoundMachine } from "../protocol/round.js";
import { paramsHash, serverSecretCommitment } from "../protocol/signed-data.js";
import { SEED_PHRASE_BYTES } from "../protocol/version.js";
import type { KeyRecord } from "../store/types.js";
import { BatchDeriver } from "./batch-deriver.js";
import { RevealPool } from "./reveal-pool.js";
import { closeRound } from "./round-closing.js";
import { acceptCommit, acceptReveal, rejectContribution, sendCommitSet } from "./round-phases.js";
import { roundOpenMessage } from "./round-statements.js";
import type { RunningRound } from "./running-round.js";
import { MAX_BATCH, type Peer, type RoundRequest, type ServerContext } from "./server-context.js";

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

  /** Whether round `roundId` is running in this process now. */
  isRunning(roundId: string): boolean {
    return this.#rounds.has(roundId);
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
    } else if (sendCommitSet(ctx, roundId, round)) {
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

  /** Checks a commit or reveal's sender and finds its round; undefined after answering an error. */
  #roundFor(
    peer: Peer,
    msg: { roundId: string; contributorId: string },
    what: string,
  ): RunningRound | undefined {
    const contributorId = peer.contributorId!;
    const { roundId } = msg;
    if (msg.contributorId !== contributorId) {
      rejectContribution(
        this.#ctx,
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
      rejectContribution(
        this.#ctx,
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

  /** A commitment from `peer`, an authenticated contributor (round-phases.ts). */
  commit(peer: Peer, msg: MessageOf<"commit">): void {
    const round = this.#roundFor(peer, msg, "commitment");
    if (round) acceptCommit(this.#ctx, round, peer, msg);
  }

  /** A reveal from `peer`, an authenticated contributor (round-phases.ts). */
  reveal(peer: Peer, msg: MessageOf<"reveal">): void {
    const round = this.#roundFor(peer, msg, "reveal");
    if (round) acceptReveal(this.#ctx, this.#reveals, round, peer, msg);
  }

  /** Forgets a round whose phases are over and closes it (round-closing.ts). */
  #finish(roundId: string): Promise<KeyRecord[]> {
    const round = this.#rounds.get(roundId)!;
    clearTimeout(round.timer);
    this.#rounds.delete(roundId);
    this.#closedRounds.add(roundId);
    if (this.#closedRounds.size > CLOSED_ROUNDS_REMEMBERED) {
      this.#closedRounds.delete(this.#closedRounds.values().next().value!);
    }
    return closeRound(this.#ctx, this.#batches, roundId, round);
  }
}

/** A round cut short by the server stopping: not anyone's abort. */
function stopping(roundId: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.UNAVAILABLE,
    `Round ${roundId} failed: the server is stopping. Nothing was stored.`,
  );
}
