/**
 * Runs rounds: opens each one (seed phrase, the server's own secret and its commitment, the
 * signed round.open to every invited contributor), feeds contributions into its RoundMachine
 * (protocol/round.ts) with the clock and the check of contribution-check.ts, and closes it: the
 * round secret from the seed, the server secret and the accepted phrases (crypto/kdf.ts), the
 * purpose's derivation (a batch round's on the derivation thread), and the records stored before
 * anyone is told.
 */
import { toBase64url } from "../crypto/base64url.js";
import { SERVER_SECRET_BYTES } from "../crypto/kdf.js";
import { serverSign } from "../crypto/server-signature.js";
import { derivationOf } from "../derive/index.js";
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import { encodeMessage, type MessageOf } from "../protocol/messages.js";
import { RoundMachine } from "../protocol/round.js";
import { roundOpenSignedData, serverSecretCommitment } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION, SEED_PHRASE_BYTES } from "../protocol/version.js";
import type { KeyRecord } from "../store/types.js";
import { BatchDeriver } from "./batch-deriver.js";
import { openContribution } from "./contribution-check.js";
import { type CompletedRound, storeRoundResults } from "./round-results.js";
import { MAX_BATCH, type Peer, type RoundRequest, type ServerContext } from "./server-context.js";

interface RunningRound extends CompletedRound {
  machine: RoundMachine;
  participants: Map<string, Peer>;
  timer: NodeJS.Timeout;
  settle: () => void;
}

const CLOSED_ROUNDS_REMEMBERED = 4096;

export class RoundRunner {
  readonly #ctx: ServerContext;
  readonly #rounds = new Map<string, RunningRound>();
  readonly #closedRounds = new Set<string>();
  /** Batch rounds' per-output work, on its own thread (batch-worker.ts). */
  readonly #batches = new BatchDeriver();

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  get running(): number {
    return this.#rounds.size;
  }

  /** Settles every running round (each fails or completes with what it has) and the thread. */
  async stop(): Promise<void> {
    for (const round of this.#rounds.values()) round.settle();
    await this.#batches.close();
  }

  /** An invited contributor's connection closed: it will not answer its rounds. */
  participantLeft(contributorId: string, peer: Peer): void {
    for (const round of this.#rounds.values()) {
      if (round.participants.get(contributorId) === peer) {
        round.machine.participantLeft(contributorId);
        if (round.machine.settled) round.settle();
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

    const participants = new Map([...ctx.contributors].slice(0, ctx.config.maxParticipants));
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
    const deadline = ctx.c.clock() + ctx.config.roundTimeoutMs;
    const deadlineIso = new Date(deadline).toISOString();
    const signature = serverSign(
      ctx.c.identity.privateKey,
      roundOpenSignedData({
        roundId,
        purpose: request.purpose,
        seed,
        serverCommitment,
        deadline: deadlineIso,
        participants: participants.size,
      }),
    );
    const machine = new RoundMachine({
      roundId,
      purpose: request.purpose,
      invited: [...participants.keys()],
      quorum,
      deadline,
    });
    const settled = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ctx.config.roundTimeoutMs);
      this.#rounds.set(roundId, {
        machine,
        seed,
        serverSecret,
        purpose: request.purpose,
        params,
        count,
        ...(request.owner === undefined ? {} : { owner: request.owner }),
        ...(request.subject === undefined ? {} : { subject: request.subject }),
        ...(request.onStored === undefined ? {} : { onStored: request.onStored }),
        participants,
        timer,
        settle: resolve,
      });
    });

    const open = encodeMessage({
      type: "round.open",
      v: PROTOCOL_VERSION,
      roundId,
      purpose: request.purpose,
      seed: toBase64url(seed),
      serverCommitment: toBase64url(serverCommitment),
      deadline: deadlineIso,
      participants: participants.size,
      signature: toBase64url(signature),
    });
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
      deadline: deadlineIso,
    });

    await settled;
    return this.#finish(roundId);
  }

  /** A contribution from `peer`, an authenticated contributor. */
  contribution(peer: Peer, msg: MessageOf<"contribution">): void {
    const ctx = this.#ctx;
    const contributorId = peer.contributorId!;
    const { roundId } = msg;
    const reject = (error: DkeygenError) => {
      ctx.reject(peer, error, { roundId });
      ctx.emit({
        type: "contribution.rejected",
        roundId,
        contributorId,
        code: error.code,
        message: error.message,
      });
    };
    if (msg.contributorId !== contributorId) {
      reject(
        new DkeygenError(
          ErrorCodes.UNAUTHORIZED,
          `The contribution names contributor ${msg.contributorId}, but this connection belongs to ${contributorId}.`,
          { culprit: contributorId },
        ),
      );
      return;
    }
    const round = this.#rounds.get(roundId);
    if (!round) {
      reject(
        this.#closedRounds.has(roundId)
          ? new DkeygenError(
              ErrorCodes.LATE_CONTRIBUTION,
              `Round ${roundId} is closed; the contribution came too late.`,
            )
          : new DkeygenError(ErrorCodes.WRONG_ROUND, `There is no round ${roundId}.`),
      );
      return;
    }
    const entry = ctx.c.registry.get(contributorId)!;
    const verdict = round.machine.contribute(contributorId, ctx.c.clock(), () =>
      openContribution(msg, contributorId, entry.key, {
        fingerprint: ctx.fingerprint,
        privateKey: ctx.c.identity.privateKey,
        random: ctx.c.random,
      }),
    );
    if (verdict.kind === "rejected") {
      reject(verdict.error);
      return;
    }
    ctx.send(peer, { type: "round.ack", v: PROTOCOL_VERSION, roundId });
    ctx.c.logger.info({ roundId, contributorId, name: peer.name }, "contribution accepted");
    ctx.emit({
      type: "contribution.accepted",
      roundId,
      contributorId,
      ...(peer.name === undefined ? {} : { name: peer.name }),
    });
    if (round.machine.settled) round.settle();
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
    const outcome = round.machine.close();
    const notify = (outcome: "completed" | "failed", accepted: number, reason?: string) => {
      const closed = encodeMessage({
        type: "round.closed",
        v: PROTOCOL_VERSION,
        roundId,
        outcome,
        accepted,
        ...(reason === undefined ? {} : { reason }),
      });
      for (const peer of round.participants.values()) peer.connection.send(closed);
    };

    if (outcome.status === "failed") {
      round.seed.fill(0);
      round.serverSecret.fill(0);
      notify("failed", outcome.acceptedCount, outcome.error.message);
      ctx.c.logger.warn({ roundId, code: outcome.error.code }, outcome.error.message);
      ctx.emit({
        type: "round.failed",
        roundId,
        code: outcome.error.code,
        message: outcome.error.message,
      });
      throw outcome.error;
    }

    let records: KeyRecord[];
    try {
      records = await storeRoundResults(
        { store: ctx.c.store, batches: this.#batches },
        roundId,
        round,
        outcome.accepted,
      );
    } catch (error) {
      const message =
        "The round's result could not be derived or stored; nothing was acknowledged.";
      ctx.c.logger.error({ roundId, err: describeError(error) }, message);
      notify("failed", outcome.accepted.length, message);
      ctx.emit({ type: "round.failed", roundId, code: ErrorCodes.OPERATIONAL, message });
      throw isDkeygenError(error) && error.code === ErrorCodes.INVALID_INPUT
        ? error
        : new DkeygenError(ErrorCodes.OPERATIONAL, message, { cause: error });
    }
    notify("completed", outcome.accepted.length);
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
}
