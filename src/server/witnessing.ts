/**
 * Contributors as witnesses of the transparency log (docs/PROTOCOL.md §15.5). On every new
 * checkpoint the server sends each connected contributor a `log.checkpoint`: the signed note, a
 * consistency proof from the size it believes that witness last cosigned (0 after a connect: the
 * witness answers `log.conflict` with its size, and gets the checkpoint again with a proof from
 * there), and the entries of the rounds it was in the commit set of, with inclusion proofs. Each
 * `log.cosign` is checked against the witness key the contributor's enrolled identity key gives
 * and added to the log's checkpoint (transparency-log.ts), which serves the newest checkpoint with
 * at least `minCosignatures`. A round's result is handed out only once a checkpoint covering its
 * entry has that many (`whenWitnessed`, awaited by the round runner). With `minCosignatures` 0
 * nothing here runs.
 *
 * Per-witness state is in memory: a restart forgets who cosigned what, and witnesses tell again.
 */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { rawPublicKey } from "../crypto/signature.js";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import { encodeMessage, MAX_CHECKPOINT_ROUNDS, type MessageOf } from "../protocol/messages.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import { witnessKeyName } from "../protocol/witness.js";
import { cosignatureVerifier } from "../tlog/cosignature.js";
import type { NoteVerifier } from "../tlog/note.js";
import { formatVerifierKey, SIGNATURE_TYPE_COSIGNATURE_V1 } from "../tlog/note-keys.js";
import type { Peer, ServerContext } from "./server-context.js";

/** Rounds kept per witness until they can be sent (a witness that stays away loses the oldest). */
const PENDING_KEPT = 256;
/** The base64url leaves one `log.checkpoint` carries at most (the frame limit is 2 MiB). */
const LEAF_CHARS_PER_MESSAGE = 1_400_000;

interface PendingRound {
  roundId: string;
  leaf: Uint8Array;
}

interface WitnessState {
  verifier: NoteVerifier;
  /** The size it last cosigned, as far as this server knows (undefined: not known). */
  cosigned: number | undefined;
  /** Rounds it was in the commit set of whose entries it has not been sent yet. */
  pending: PendingRound[];
  /** A witness that cosigned a larger tree than this log has: nothing can be proved to it. */
  ahead?: boolean;
}

/** A contributor's witness verifier key (cosignature/v1) from its raw Ed25519 identity key. */
export function witnessVerifierKey(contributorId: string, identity: Uint8Array): string {
  return formatVerifierKey(witnessKeyName(contributorId), SIGNATURE_TYPE_COSIGNATURE_V1, identity);
}

export class Witnessing {
  readonly #ctx: ServerContext;
  readonly #witnesses = new Map<string, WitnessState>();
  /** Rounds logged, or about to be, whose entries go to their commit set's witnesses. */
  readonly #expected = new Map<string, { leaf: Uint8Array; members: readonly string[] }>();
  readonly #waiters = new Set<{ index: number; done: (witnessed: boolean) => void }>();

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
    if (this.enabled) ctx.log.onCheckpoint((_note, size) => this.#newCheckpoint(size));
  }

  /** Cosignatures a checkpoint needs before results it covers are handed out (0: off). */
  get minCosignatures(): number {
    return this.#ctx.config.minCosignatures;
  }

  get enabled(): boolean {
    return this.minCosignatures > 0;
  }

  /**
   * A round's entry is about to be appended: once the log covers it, its leaf goes to the
   * witnesses in its commit set. Called before the append, so the checkpoint that covers the
   * entry already carries it.
   */
  expect(roundId: string, leaf: Uint8Array, members: readonly string[]): void {
    if (this.enabled) this.#expected.set(roundId, { leaf, members });
  }

  /** A contributor joined: it is sent the current checkpoint, to cosign it (or tell its size). */
  joined(peer: Peer): void {
    if (!this.enabled) return;
    const id = peer.contributorId!;
    this.#witness(id).cosigned = undefined; // not known on a new connection
    this.#ctx.log
      .ready()
      .then(() => this.#send(peer))
      .catch((error: unknown) =>
        this.#ctx.c.logger.error(
          { contributorId: id, err: describeError(error) },
          "could not send the checkpoint",
        ),
      );
  }

  /**
   * Resolves true once a checkpoint covering entry `index` carries at least `minCosignatures`
   * cosignatures, false if none does within `timeoutMs` (or the server is stopping).
   */
  whenWitnessed(index: number, timeoutMs: number): Promise<boolean> {
    if (!this.enabled || this.#covers(index)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        index,
        done: (witnessed: boolean) => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(witnessed);
        },
      };
      const timer = setTimeout(() => waiter.done(false), timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /** Wakes every waiter: the server is stopping, nothing more will be witnessed. */
  stop(): void {
    for (const waiter of [...this.#waiters]) waiter.done(this.#covers(waiter.index));
  }

  /** A `log.cosign` from an authenticated contributor. */
  cosign(peer: Peer, msg: MessageOf<"log.cosign">): void {
    this.#enabled();
    const id = peer.contributorId!;
    const witness = this.#witness(id);
    const bytes = fromBase64url(msg.cosignature, "cosignature", 76);
    const keyId = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
    if (keyId !== witness.verifier.keyId) {
      throw new DkeygenError(
        ErrorCodes.BAD_SIGNATURE,
        "The cosignature is not by this contributor's witness key.",
      );
    }
    const count = this.#ctx.log.addCosignature(msg.size, witness.verifier, bytes.subarray(4));
    witness.cosigned = Math.max(witness.cosigned ?? 0, msg.size);
    this.#ctx.c.logger.info({ contributorId: id, size: msg.size, count }, "checkpoint cosigned");
    for (const waiter of [...this.#waiters]) {
      if (this.#covers(waiter.index)) waiter.done(true);
    }
    // Rounds that did not fit the last message, or came since: the checkpoint again.
    if (witness.pending.length > 0 || msg.size < this.#ctx.log.size) this.#send(peer);
  }

  /** A `log.conflict`: the witness last cosigned `size`, not the `old` it was sent. */
  conflict(peer: Peer, msg: MessageOf<"log.conflict">): void {
    this.#enabled();
    const id = peer.contributorId!;
    const witness = this.#witness(id);
    if (msg.size > this.#ctx.log.size) {
      // It cosigned a larger tree of this log than the log now holds: a store rolled back, or a
      // fork. Nothing this log can show will be consistent with it.
      witness.ahead = true;
      this.#ctx.c.logger.error(
        { contributorId: id, size: msg.size, logSize: this.#ctx.log.size },
        "a witness has cosigned a larger tree than this log holds (a rolled-back store?)",
      );
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        `The log holds ${this.#ctx.log.size} entries, fewer than the ${msg.size} this witness cosigned.`,
      );
    }
    witness.ahead = false;
    witness.cosigned = msg.size;
    this.#send(peer);
  }

  #enabled(): void {
    if (!this.enabled) {
      throw new DkeygenError(
        ErrorCodes.UNEXPECTED_MESSAGE,
        "This server does not ask for cosignatures (--min-cosignatures 0).",
      );
    }
  }

  #witness(id: string): WitnessState {
    let witness = this.#witnesses.get(id);
    if (witness === undefined) {
      const entry = this.#ctx.c.registry.get(id);
      if (entry === undefined) {
        throw new DkeygenError(ErrorCodes.NOT_ENROLLED, `Contributor ${id} is not enrolled.`);
      }
      witness = {
        verifier: cosignatureVerifier(witnessVerifierKey(id, rawPublicKey(entry.key))),
        cosigned: undefined,
        pending: [],
      };
      this.#witnesses.set(id, witness);
    }
    return witness;
  }

  #covers(index: number): boolean {
    const size = this.#ctx.log.witnessedSize;
    return size !== undefined && size > index;
  }

  #newCheckpoint(size: number): void {
    // Entries now in the tree go to their witnesses' queues.
    for (const [roundId, round] of this.#expected) {
      const index = this.#ctx.log.indexOf(roundId);
      if (index === undefined || index >= size) continue;
      this.#expected.delete(roundId);
      for (const id of round.members) {
        const witness = this.#witness(id);
        witness.pending.push({ roundId, leaf: round.leaf });
        if (witness.pending.length > PENDING_KEPT) witness.pending.shift();
      }
    }
    // Witnesses in step get the same message: its parts and frame are made once for all of them.
    const shared: SharedParts = { leaves: new Map(), proofs: new Map(), frames: new Map() };
    for (const peer of this.#ctx.contributors.values()) this.#send(peer, shared);
  }

  /**
   * Sends `peer` the log's latest checkpoint, with the proofs its witness state calls for. With
   * `shared` (one checkpoint sent to every witness), leaves, proofs and whole frames already made
   * for another witness of the same checkpoint are reused: the message depends only on the size
   * the witness last cosigned and the rounds it is sent.
   */
  #send(peer: Peer, shared?: SharedParts): void {
    const id = peer.contributorId!;
    const witness = this.#witness(id);
    const log = this.#ctx.log;
    const size = log.size;
    const note = log.checkpointAt(size);
    if (witness.ahead || note === undefined) return;
    const old = witness.cosigned ?? 0;
    const from = old <= size ? old : 0;
    const rounds: MessageOf<"log.checkpoint">["rounds"] = [];
    let chars = 0;
    while (witness.pending.length > 0 && rounds.length < MAX_CHECKPOINT_ROUNDS) {
      const next = witness.pending[0]!;
      const index = log.indexOf(next.roundId);
      if (index === undefined || index >= size) break;
      let leaf = shared?.leaves.get(index);
      if (leaf === undefined) {
        leaf = toBase64url(next.leaf);
        shared?.leaves.set(index, leaf);
      }
      if (rounds.length > 0 && chars + leaf.length > LEAF_CHARS_PER_MESSAGE) break;
      chars += leaf.length;
      witness.pending.shift();
      let proof = shared?.proofs.get(index);
      if (proof === undefined) {
        proof = log.inclusionProof(index, size).map(toBase64url);
        shared?.proofs.set(index, proof);
      }
      rounds.push({ roundId: next.roundId, index, leaf, proof });
    }
    const key = `${from} ${rounds.map((r) => r.index).join(" ")}`;
    const frame = shared?.frames.get(key);
    if (frame !== undefined && peer.admin === undefined) {
      peer.connection.send(frame);
      return;
    }
    const consistency = from > 0 && from < size ? log.consistencyProof(from, size) : [];
    const identity = log.identity();
    const message: MessageOf<"log.checkpoint"> = {
      type: "log.checkpoint",
      v: PROTOCOL_VERSION,
      checkpoint: note,
      old: from,
      consistency: consistency.map(toBase64url),
      rounds,
      identity: {
        origin: identity.origin,
        verifierKey: identity.verifierKey,
        signature: identity.signature,
      },
    };
    if (shared === undefined || peer.admin !== undefined) {
      this.#ctx.send(peer, message);
      return;
    }
    const encoded = encodeMessage(message);
    shared.frames.set(key, encoded);
    peer.connection.send(encoded);
  }
}

/** What one checkpoint's messages to its witnesses share (see `#send`), for that checkpoint only. */
interface SharedParts {
  /** Base64url leaves by log index. */
  leaves: Map<number, string>;
  /** Base64url inclusion proofs (into the checkpoint's tree) by log index. */
  proofs: Map<number, string[]>;
  /** Whole frames by the size cosigned and the indexes sent. */
  frames: Map<string, string>;
}
