/**
 * C2SP tlog-checkpoint v1.0.0 (https://c2sp.org/tlog-checkpoint): a log's tree head as the text
 * of a signed note (note.ts).
 *
 *   <origin>\n                 non-empty; the log's identity
 *   <tree size>\n              ASCII decimal, no leading zeros ("0" for the empty tree)
 *   <root hash>\n              base64 of the 32-byte RFC 6962 root
 *   [<extension line>\n ...]   optional, each non-empty, opaque
 *
 * Parsing is strict (exactly these rules; a root that is not 32 bytes is refused). Tree sizes
 * above 2^53 - 1 are refused: the rest of src/tlog counts leaves in safe integers.
 */
import { base64 } from "@scure/base";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { assertHash, HASH_SIZE } from "./merkle.js";
import {
  checkNoteText,
  keyLabel,
  type NoteSignature,
  type NoteSigner,
  type NoteVerifier,
  type OpenedNote,
  openNote,
  signNote,
} from "./note.js";

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Uint8Array;
  /** Extension lines, without their newlines; usually none. */
  readonly extensions: readonly string[];
}

/** The note text of a checkpoint. Throws E_INVALID_INPUT for a checkpoint that breaks the rules. */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  const { origin, size, rootHash, extensions } = checkpoint;
  if (typeof origin !== "string" || origin === "" || origin.includes("\n")) {
    throw malformed("its origin must be one non-empty line");
  }
  if (!Number.isSafeInteger(size) || size < 0) throw malformed("its tree size is not valid");
  assertHash("checkpoint root hash", rootHash);
  for (const line of extensions) {
    if (typeof line !== "string" || line === "" || line.includes("\n")) {
      throw malformed("an extension line must be one non-empty line");
    }
  }
  const text = [origin, String(size), base64.encode(rootHash), ...extensions].join("\n");
  checkNoteText(`${text}\n`);
  return `${text}\n`;
}

/** Parses a checkpoint's note text (not a whole signed note: see `openCheckpoint`). */
export function parseCheckpoint(text: string): Checkpoint {
  if (typeof text !== "string" || !text.endsWith("\n")) {
    throw malformed("its text does not end in a newline");
  }
  const [origin, sizeLine, rootLine, ...extensions] = text.slice(0, -1).split("\n");
  if (origin === undefined || sizeLine === undefined || rootLine === undefined) {
    throw malformed("it has fewer than three lines");
  }
  if (origin === "") throw malformed("its origin line is empty");
  if (!/^(0|[1-9][0-9]*)$/.test(sizeLine)) {
    throw malformed("its tree size is not a decimal number without leading zeros");
  }
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size)) {
    throw malformed("its tree size is beyond 2^53 - 1, more than this implementation counts");
  }
  let rootHash: Uint8Array;
  try {
    rootHash = base64.decode(rootLine);
  } catch {
    throw malformed("its root hash is not canonical base64");
  }
  if (rootHash.length !== HASH_SIZE) throw malformed(`its root hash is not ${HASH_SIZE} bytes`);
  if (extensions.some((line) => line === "")) throw malformed("it has an empty extension line");
  return { origin, size, rootHash, extensions };
}

/** Signs a checkpoint as a note with the log's key (and keeps any signatures given). */
export function signCheckpoint(
  checkpoint: Checkpoint,
  signer: NoteSigner,
  keep: readonly NoteSignature[] = [],
): string {
  return signNote(formatCheckpoint(checkpoint), [signer], keep);
}

export interface OpenedCheckpoint {
  readonly checkpoint: Checkpoint;
  /** The note as opened: the log's signature and any cosignatures among `verified`. */
  readonly note: OpenedNote;
}

/**
 * Verifies and parses a signed checkpoint: the log's signature must be there and verify, every
 * signature from another known key (cosigners' verifiers, say) must verify too, and the origin
 * must be the one expected. Throws E_BAD_SIGNATURE for signatures, E_INVALID_INPUT for format
 * and E_BAD_SIGNATURE with the origin for a checkpoint of another log.
 */
export function openCheckpoint(
  note: Uint8Array | string,
  origin: string,
  log: NoteVerifier,
  others: readonly NoteVerifier[] = [],
): OpenedCheckpoint {
  const opened = openNote(note, [log, ...others]);
  if (!opened.verified.some((s) => s.name === log.name && s.keyId === log.keyId)) {
    throw new DkeygenError(
      ErrorCodes.BAD_SIGNATURE,
      `The checkpoint is not signed by the log's key ${keyLabel(log.name, log.keyId)}.`,
    );
  }
  const checkpoint = parseCheckpoint(opened.text);
  if (checkpoint.origin !== origin) {
    throw new DkeygenError(
      ErrorCodes.BAD_SIGNATURE,
      `The checkpoint is for origin "${checkpoint.origin}", not "${origin}".`,
    );
  }
  return { checkpoint, note: opened };
}

function malformed(why: string): DkeygenError {
  return new DkeygenError(ErrorCodes.INVALID_INPUT, `Malformed checkpoint: ${why}.`);
}
