/**
 * C2SP tlog-cosignature, Ed25519 version (cosignature/v1, signature type 0x04;
 * https://c2sp.org/tlog-cosignature): a witness's timestamped statement that a checkpoint is the
 * largest consistent tree head it has seen for the log.
 *
 *   key ID    = SHA-256(<name> || "\n" || 0x04 || 32-byte Ed25519 public key)[:4]
 *   signature = timestamp (uint64, big-endian, POSIX seconds) || Ed25519 signature (64 bytes)
 *   signed    = "cosignature/v1\n" || "time " || <timestamp, decimal, no leading zeros> || "\n"
 *               || the checkpoint's whole note text (final newline included, signatures not)
 *
 * The cosignature is a signature line of the checkpoint's note, so notes, checkpoints and
 * cosignatures share one parser (note.ts). Timestamps must not exceed 2^63 - 1 (the spec); we
 * also refuse those above 2^53 - 1, which no clock reaches. The clock is passed in.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";
import {
  type NoteSignature,
  type NoteSigner,
  type NoteVerifier,
  parseNote,
  signNote,
} from "./note.js";
import {
  ed25519PublicKey,
  ed25519Signing,
  ed25519Verify,
  formatVerifierKey,
  noteKeyId,
  parseVerifierKey,
  SIGNATURE_TYPE_COSIGNATURE_V1,
} from "./note-keys.js";

const TIMESTAMP_BYTES = 8;
const COSIGNATURE_BYTES = TIMESTAMP_BYTES + 64;
const encoder = new TextEncoder();

/** The bytes a cosignature signs: header line, time line, then the checkpoint's note text. */
export function cosignedMessage(checkpointText: Uint8Array, timestamp: number): Uint8Array {
  checkTimestamp(timestamp);
  const header = encoder.encode(`cosignature/v1\ntime ${timestamp}\n`);
  const message = new Uint8Array(header.length + checkpointText.length);
  message.set(header);
  message.set(checkpointText, header.length);
  return message;
}

/** The timestamp at the front of a cosignature's bytes (after the key ID). */
export function cosignatureTimestamp(signature: Uint8Array): number {
  if (signature.length !== COSIGNATURE_BYTES) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `A cosignature is ${COSIGNATURE_BYTES} bytes after its key ID, not ${signature.length}.`,
    );
  }
  const t = new DataView(signature.buffer, signature.byteOffset).getBigUint64(0);
  if (t > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A cosignature's timestamp is out of range.");
  }
  return Number(t);
}

/**
 * A cosigner (witness) key: signs checkpoint note texts with the time `now()` gives, in POSIX
 * seconds. `verifierKey` is its vkey (type 0x04) for clients.
 */
export function cosignatureSigner(
  name: string,
  secretKey: Uint8Array,
  now: () => number,
): NoteSigner & { verifierKey: string } {
  const publicKey = ed25519PublicKey(secretKey);
  const verifierKey = formatVerifierKey(name, SIGNATURE_TYPE_COSIGNATURE_V1, publicKey);
  const signWith = ed25519Signing(secretKey);
  return {
    name,
    keyId: noteKeyId(name, SIGNATURE_TYPE_COSIGNATURE_V1, publicKey),
    verifierKey,
    sign: (text) => {
      const timestamp = now();
      const message = cosignedMessage(text, timestamp); // checks the clock's answer first
      const out = new Uint8Array(COSIGNATURE_BYTES);
      new DataView(out.buffer).setBigUint64(0, BigInt(timestamp));
      out.set(signWith(message), TIMESTAMP_BYTES);
      return out;
    },
  };
}

/** A verifier of cosignature/v1 signatures, from the cosigner's vkey (signature type 0x04). */
export function cosignatureVerifier(vkey: string): NoteVerifier {
  const key = parseVerifierKey(vkey);
  if (key.type !== SIGNATURE_TYPE_COSIGNATURE_V1) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "Bad note verifier key: a cosigner's key has signature type 0x04.",
    );
  }
  const { name, keyId, publicKey } = key;
  return {
    name,
    keyId,
    verify: (text, signature) => {
      if (signature.length !== COSIGNATURE_BYTES) return false;
      let timestamp: number;
      try {
        timestamp = cosignatureTimestamp(signature);
      } catch {
        return false;
      }
      const message = cosignedMessage(text, timestamp);
      return ed25519Verify(publicKey, message, signature.subarray(TIMESTAMP_BYTES));
    },
  };
}

/** A cosignature's signer and time, once its signature has been verified. */
export interface Cosignature {
  readonly name: string;
  readonly keyId: number;
  readonly timestamp: number;
}

/**
 * The cosignatures among a note's verified signatures, with their timestamps; signatures by keys
 * that are not among `cosigners` (the log's own, say) are left out.
 */
export function cosignaturesOf(
  verified: readonly NoteSignature[],
  cosigners: readonly NoteVerifier[],
): Cosignature[] {
  const wanted = new Set(cosigners.map((c) => `${c.name} ${c.keyId}`));
  return verified
    .filter((s) => wanted.has(`${s.name} ${s.keyId}`))
    .map((s) => ({ name: s.name, keyId: s.keyId, timestamp: cosignatureTimestamp(s.signature) }));
}

/**
 * Adds a cosignature to a signed checkpoint note, keeping its signatures. The caller (a witness)
 * must have verified the log's signature and the consistency with what it saw before.
 */
export function cosignNote(note: Uint8Array | string, cosigner: NoteSigner): string {
  const { text, signatures } = parseNote(note);
  return signNote(text, [cosigner], signatures);
}

function checkTimestamp(timestamp: number): void {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "A cosignature timestamp is a whole number of seconds from 0 to 2^53 - 1.",
    );
  }
}
