/**
 * The contributor as a witness of the server's transparency log (docs/PROTOCOL.md §15.5). For each
 * `log.checkpoint` it checks, in order: the log's key (certified by the pinned server key), the
 * checkpoint's signature, that the proof starts from the size it last cosigned (else it answers
 * `log.conflict`), that the tree only grew (a consistency proof from what it cosigned), and each of
 * its own rounds sent along — the entry's signatures, its own commitment in it, its reveal there
 * exactly when it holds the server's receipt, the closing it accepted, and the entry's inclusion
 * in this checkpoint. Then it records a receipt per round (log-receipts.jsonl), stores the new
 * state (witness.json, written atomically before anything is sent) and cosigns (C2SP
 * cosignature/v1) with its identity key. Any check failing: an error is logged, nothing is
 * cosigned, the state stays as it was. It never cosigns two roots for one size, nor a smaller
 * tree than one it cosigned.
 *
 * Why the identity key may also cosign: a cosignature/v1 signs a message that begins with
 * "cosignature/v1\n" (bytes 63 6f 73 69), while every other message this key signs is an LP whose
 * first four bytes are the big-endian length of its label, at most 64 (00 00 00 xx): no message
 * of one kind is a message of the other (PROTOCOL §15.5).
 */
import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import { base64 } from "@scure/base";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { serverVerify } from "../crypto/server-signature.js";
import { rawPublicKey } from "../crypto/signature.js";
import { appendJsonLines, readJsonFile, readJsonLines, writeJsonFile } from "../datadir/files.js";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import type { Logger } from "../logging.js";
import { printable } from "../printable.js";
import { isDkgEntryLeaf, parseDkgEntry } from "../protocol/dkg-log-entry.js";
import { parseRoundEntry, verifyRoundEntry } from "../protocol/log-entry.js";
import type { MessageOf } from "../protocol/messages.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import { logIdentitySignedData, logOriginOf, witnessKeyName } from "../protocol/witness.js";
import { verifyDkgEntry } from "../threshold/session-entry.js";
import { type Checkpoint, openCheckpoint } from "../tlog/checkpoint.js";
import { cosignatureSigner } from "../tlog/cosignature.js";
import { hashLeaf, verifyConsistency, verifyInclusion } from "../tlog/merkle.js";
import { parseNote } from "../tlog/note.js";
import {
  ed25519NoteVerifier,
  formatVerifierKey,
  SIGNATURE_TYPE_COSIGNATURE_V1,
} from "../tlog/note-keys.js";
import { verifyEntryOnce } from "./verified-entries.js";

export const WITNESS_FILE = "witness.json";
export const RECEIPTS_FILE = "log-receipts.jsonl";

/** What a witness keeps between checkpoints (witness.json). */
export interface WitnessState {
  /** The log's origin and verifier key, as the server key certified them. */
  origin: string;
  verifierKey: string;
  /** The last checkpoint it cosigned: its size, root (base64, as in the note) and the note. */
  size: number;
  rootHash: string;
  note: string;
}

/** One round's receipt (a line of log-receipts.jsonl): its entry was in this checkpoint. */
export interface LogReceipt {
  roundId: string;
  index: number;
  /** SHA-256(0x00 ‖ leaf), base64 (as the log's routes write hashes). */
  leafHash: string;
  size: number;
  rootHash: string;
}

/** What the contributor remembers of a round it answered, for checking its entry. */
export interface AnsweredRound {
  commitment: Uint8Array;
  /** It holds the server's signed receipt of its reveal. */
  receipt: boolean;
  /** The signed round.closed it accepted, if one came. */
  closed?: { outcome: string; accepted: number; signature: string };
}

export interface RoundMemory {
  answered(roundId: string): AnsweredRound | undefined;
}

/** The server as the contributor pinned it. */
export interface PinnedServer {
  key: KeyObject;
  fingerprint: string;
}

/** A contributor's witness key name and verifier key (cosignature/v1, type 0x04). */
export function witnessIdentity(state: { contributorId: string; publicKey: KeyObject }): {
  name: string;
  verifierKey: string;
} {
  const name = witnessKeyName(state.contributorId);
  return {
    name,
    verifierKey: formatVerifierKey(
      name,
      SIGNATURE_TYPE_COSIGNATURE_V1,
      rawPublicKey(state.publicKey),
    ),
  };
}

export async function readWitnessState(dataDir: string): Promise<WitnessState | undefined> {
  const state = await readJsonFile<WitnessState>(join(dataDir, WITNESS_FILE));
  if (state === undefined) return undefined;
  if (
    typeof state !== "object" ||
    state === null ||
    typeof state.origin !== "string" ||
    typeof state.verifierKey !== "string" ||
    !Number.isSafeInteger(state.size) ||
    state.size < 0 ||
    typeof state.rootHash !== "string" ||
    typeof state.note !== "string"
  ) {
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `${join(dataDir, WITNESS_FILE)} is not a witness state.`,
    );
  }
  return state;
}

export async function readReceipts(dataDir: string): Promise<LogReceipt[]> {
  return (await readJsonLines(join(dataDir, RECEIPTS_FILE))).map((l) => l.value as LogReceipt);
}

type Answer = MessageOf<"log.cosign"> | MessageOf<"log.conflict">;

function refused(message: string): DkeygenError {
  return new DkeygenError(ErrorCodes.BAD_SIGNATURE, message);
}

export interface WitnessOptions {
  dataDir: string;
  contributorId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  rounds: RoundMemory;
  logger: Logger;
  /** POSIX seconds (default: the system clock). */
  now?: () => number;
}

export class Witness {
  readonly #o: WitnessOptions;
  #signer: ReturnType<typeof cosignatureSigner> | undefined;
  #state: WitnessState | undefined;
  #loaded = false;
  /** One checkpoint at a time: each starts from the state the one before left. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: WitnessOptions) {
    this.#o = options;
  }

  /**
   * Handles one `log.checkpoint` from `server`: resolves to the answer to send (a cosignature or a
   * conflict), or undefined when the checkpoint was refused (logged as an error).
   */
  handle(server: PinnedServer, msg: MessageOf<"log.checkpoint">): Promise<Answer | undefined> {
    const run = this.#queue.then(() => this.#handle(server, msg));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #handle(
    server: PinnedServer,
    msg: MessageOf<"log.checkpoint">,
  ): Promise<Answer | undefined> {
    try {
      return await this.#check(server, msg);
    } catch (error) {
      const message = printable(
        error instanceof DkeygenError ? error.message : describeError(error),
      );
      this.#o.logger.error(
        { code: error instanceof DkeygenError ? error.code : undefined },
        `refused to cosign the log's checkpoint: ${message}`,
      );
      return undefined;
    }
  }

  async #load(): Promise<WitnessState | undefined> {
    if (!this.#loaded) {
      this.#state = await readWitnessState(this.#o.dataDir);
      this.#loaded = true;
    }
    return this.#state;
  }

  async #check(server: PinnedServer, msg: MessageOf<"log.checkpoint">): Promise<Answer> {
    const state = await this.#load();
    // 1. The log's key: certified by the pinned server key, or the one remembered.
    let log = state === undefined ? undefined : { origin: state.origin, vkey: state.verifierKey };
    if (msg.identity !== undefined) {
      const { origin, verifierKey, signature } = msg.identity;
      const signed = logIdentitySignedData(server.fingerprint, origin, verifierKey);
      if (!serverVerify(server.key, signed, fromBase64url(signature, "identity.signature"))) {
        throw refused("the server key did not sign the log's identity");
      }
      if (origin !== logOriginOf(server.fingerprint)) {
        throw refused(`the log's origin "${origin}" is not the one its server key gives`);
      }
      if (log !== undefined && (log.origin !== origin || log.vkey !== verifierKey)) {
        throw refused("the log's key is not the one this witness cosigned for before");
      }
      log = { origin, vkey: verifierKey };
    }
    if (log === undefined) throw refused("no log key is known: the message carries no identity");
    // 2. The checkpoint, signed by the log's key.
    const { checkpoint } = openCheckpoint(
      msg.checkpoint,
      log.origin,
      ed25519NoteVerifier(log.vkey),
    );
    // 3. A proof from the size this witness last cosigned, or a conflict.
    const size = state?.size ?? 0;
    if (msg.old !== size) {
      return { type: "log.conflict", v: PROTOCOL_VERSION, size };
    }
    // 4. Never a smaller tree, never another root for a size: a consistency proof from ours.
    if (checkpoint.size < size) {
      throw refused(
        `the checkpoint's tree (size ${checkpoint.size}) is smaller than one cosigned (${size})`,
      );
    }
    if (state !== undefined && size > 0) {
      verifyConsistency(
        size,
        checkpoint.size,
        base64.decode(state.rootHash),
        checkpoint.rootHash,
        msg.consistency.map((h, i) => fromBase64url(h, `consistency[${i}]`, 32)),
      );
    }
    // 5. Our rounds (and threshold sessions), each against what we did in it, and in this tree.
    const receipts = msg.rounds.map((round) =>
      isDkgEntryLeaf(fromBase64url(round.leaf, "leaf"))
        ? this.#checkSession(server, checkpoint, round)
        : this.#checkRound(server, checkpoint, round),
    );
    // 6. Receipts, then the new state, durable before the cosignature leaves.
    if (receipts.length > 0) {
      await appendJsonLines(join(this.#o.dataDir, RECEIPTS_FILE), receipts, true);
    }
    const next: WitnessState = {
      origin: log.origin,
      verifierKey: log.vkey,
      size: checkpoint.size,
      rootHash: base64.encode(checkpoint.rootHash),
      note: msg.checkpoint,
    };
    await writeJsonFile(join(this.#o.dataDir, WITNESS_FILE), next);
    this.#state = next;
    for (const r of receipts) {
      this.#o.logger.info({ roundId: r.roundId, index: r.index }, "round's log entry checked");
    }
    this.#o.logger.info({ size: checkpoint.size }, "cosigned the log's checkpoint");
    return {
      type: "log.cosign",
      v: PROTOCOL_VERSION,
      size: checkpoint.size,
      cosignature: toBase64url(this.#cosign(msg.checkpoint)),
    };
  }

  #checkRound(
    server: PinnedServer,
    checkpoint: Checkpoint,
    round: MessageOf<"log.checkpoint">["rounds"][number],
  ): LogReceipt {
    const { roundId, index } = round;
    const at = `round ${roundId} (entry ${index})`;
    const leaf = fromBase64url(round.leaf, "leaf");
    const entry = parseRoundEntry(leaf);
    if (entry.roundId !== roundId) throw refused(`${at}: the entry is of another round`);
    verifyEntryOnce(leaf, server.fingerprint, () => verifyRoundEntry(entry, server.key));
    const answered = this.#o.rounds.answered(roundId);
    if (answered === undefined) throw refused(`${at}: not a round this contributor answered`);
    const own = entry.commits.find((c) => c.contributorId === this.#o.contributorId);
    if (own === undefined) throw refused(`${at}: the entry's commit set leaves us out`);
    if (own.commitment !== toBase64url(answered.commitment)) {
      throw refused(`${at}: the entry holds another commitment in our name`);
    }
    if ((own.reveal !== undefined) !== answered.receipt) {
      throw refused(
        answered.receipt
          ? `${at}: the entry omits our reveal, and we hold the server's receipt of it`
          : `${at}: the entry holds a reveal of ours that the server never gave a receipt for`,
      );
    }
    const closed = answered.closed;
    if (
      closed !== undefined &&
      (entry.outcome !== closed.outcome ||
        entry.accepted !== closed.accepted ||
        entry.closedSignature !== closed.signature)
    ) {
      throw refused(`${at}: the entry's outcome is not the round.closed we were sent`);
    }
    return this.#receipt(checkpoint, round, leaf);
  }

  /**
   * A threshold session this contributor was a holder in (PROTOCOL §15.1.1): the entry checks
   * (its session id is its parameters' hash, so the holders are the ones every holder bound into
   * what it signed; a completed one carries every holder's confirmation, ours included), it lists
   * us, and it is in this tree.
   */
  #checkSession(
    server: PinnedServer,
    checkpoint: Checkpoint,
    round: MessageOf<"log.checkpoint">["rounds"][number],
  ): LogReceipt {
    const { roundId, index } = round;
    const at = `threshold session ${roundId}… (entry ${index})`;
    const leaf = fromBase64url(round.leaf, "leaf");
    const entry = parseDkgEntry(leaf);
    if (entry.roundId !== roundId) throw refused(`${at}: the entry is of another session`);
    try {
      verifyEntryOnce(leaf, server.fingerprint, () => verifyDkgEntry(entry, server.fingerprint));
    } catch (error) {
      throw refused(`${at}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (!entry.holders.some((h) => h.contributorId === this.#o.contributorId)) {
      throw refused(`${at}: the entry's holders leave us out`);
    }
    return this.#receipt(checkpoint, round, leaf);
  }

  #receipt(
    checkpoint: Checkpoint,
    round: MessageOf<"log.checkpoint">["rounds"][number],
    leaf: Uint8Array,
  ): LogReceipt {
    const leafHash = hashLeaf(leaf);
    verifyInclusion(
      round.index,
      checkpoint.size,
      leafHash,
      round.proof.map((h, i) => fromBase64url(h, `proof[${i}]`, 32)),
      checkpoint.rootHash,
    );
    return {
      roundId: round.roundId,
      index: round.index,
      leafHash: base64.encode(leafHash),
      size: checkpoint.size,
      rootHash: base64.encode(checkpoint.rootHash),
    };
  }

  /** The 4-byte key ID and the 72-byte cosignature/v1 signature of the note's checkpoint. */
  #cosign(note: string): Uint8Array {
    const signer = this.#cosigner();
    const text = new TextEncoder().encode(parseNote(note).text);
    const signature = signer.sign(text);
    const out = new Uint8Array(4 + signature.length);
    new DataView(out.buffer).setUint32(0, signer.keyId);
    out.set(signature, 4);
    return out;
  }

  /**
   * The cosigner, made once: making it costs two of noble's scalar multiplications and a key
   * import. It holds the identity key as a KeyObject only, as the options already do.
   */
  #cosigner(): ReturnType<typeof cosignatureSigner> {
    if (this.#signer !== undefined) return this.#signer;
    const jwk = this.#o.privateKey.export({ format: "jwk" });
    const secret = new Uint8Array(Buffer.from(jwk.d!, "base64url"));
    try {
      const { name } = witnessIdentity(this.#o);
      this.#signer = cosignatureSigner(
        name,
        secret,
        this.#o.now ?? (() => Math.floor(Date.now() / 1000)),
      );
      return this.#signer;
    } finally {
      secret.fill(0);
    }
  }
}
