/**
 * C2SP signed-note v1.0.0 (https://c2sp.org/signed-note): a text signed by one or more keys.
 *
 *   <text, ending in a newline>
 *   <empty line>
 *   — <key name> <base64(4-byte key ID, big-endian || signature)>
 *   ... one line per signature, each ending in a newline
 *
 * Parsing is strict: valid UTF-8 only, no control characters but the newline (so no CR, no CRLF
 * line endings), the text ends at the last empty line, every line after it is a signature line,
 * key names are non-empty with no Unicode white space and no "+", base64 is canonical RFC 4648
 * §4 with padding, at most MAX_NOTE_SIGNATURES lines and MAX_NOTE_BYTES bytes.
 *
 * Opening (verifying) follows the spec: signatures whose (name, key ID) no verifier has are
 * ignored (returned as unverified); a signature from a known key must verify or the whole note
 * is refused; at least one must verify. A known key's signature repeated is verified each time and
 * counted once. Key handling (key IDs, verifier keys, Ed25519) is in note-keys.ts.
 */
import { base64 } from "@scure/base";
import { DkeygenError, ErrorCodes } from "../errors.js";

/** Most signature lines a note may have (the spec asks verifiers to accept at least 16). */
export const MAX_NOTE_SIGNATURES = 100;
/** Largest note accepted, in bytes, signatures included. */
export const MAX_NOTE_BYTES = 256 * 1024;

const SIGNATURE_PREFIX = "\u2014 "; // em dash, space

export interface NoteSignature {
  /** The key name of the signature line. */
  readonly name: string;
  /** The 32-bit key ID (an unsigned integer) from the first four signature bytes. */
  readonly keyId: number;
  /** The signature bytes after the key ID. */
  readonly signature: Uint8Array;
}

export interface ParsedNote {
  /** The note text: everything before the last empty line, including its final newline. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** A key that verifies note signatures: by name and key ID it claims the lines it checks. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  /** Whether `signature` (the bytes after the key ID) signs `text` (the note text's UTF-8). */
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

/** A key that signs notes. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  /** The signature bytes (without the key ID) over `text`, the note text's UTF-8. */
  sign(text: Uint8Array): Uint8Array;
}

export interface OpenedNote {
  readonly text: string;
  /** Signatures by the verifiers given, each verified (one per key). */
  readonly verified: readonly NoteSignature[];
  /** Signatures by keys no verifier claims, not checked (identical lines once). */
  readonly unverified: readonly NoteSignature[];
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Parses a signed note without verifying anything. Throws E_INVALID_INPUT when malformed. */
export function parseNote(note: Uint8Array | string): ParsedNote {
  const message = decodeNote(note);
  const split = message.lastIndexOf("\n\n");
  if (split < 0) throw malformed("it has no empty line before its signatures");
  const text = message.slice(0, split + 1);
  const block = message.slice(split + 2);
  if (block === "") throw malformed("it has no signature lines");
  if (!block.endsWith("\n")) throw malformed("its last line does not end in a newline");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_NOTE_SIGNATURES) {
    throw malformed(`it has more than ${MAX_NOTE_SIGNATURES} signature lines`);
  }
  return { text, signatures: lines.map(parseSignatureLine) };
}

/**
 * Parses and verifies a signed note with the verifiers given. Throws E_INVALID_INPUT when the
 * note is malformed or two verifiers claim the same name and key ID, E_BAD_SIGNATURE when a
 * signature from a known key does not verify or none verifies.
 */
export function openNote(
  note: Uint8Array | string,
  verifiers: readonly NoteVerifier[],
): OpenedNote {
  const known = new Map<string, NoteVerifier>();
  for (const v of verifiers) {
    const id = keyLabel(v.name, v.keyId);
    if (known.has(id)) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, `Two verifiers claim the key ${id}.`);
    }
    known.set(id, v);
  }
  const { text, signatures } = parseNote(note);
  const textBytes = utf8.encode(text);
  const verified: NoteSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seen = new Set<string>();
  for (const sig of signatures) {
    const id = keyLabel(sig.name, sig.keyId);
    const verifier = known.get(id);
    if (verifier === undefined) {
      const line = `${id} ${base64.encode(sig.signature)}`;
      if (!seen.has(line)) unverified.push(sig);
      seen.add(line);
      continue;
    }
    if (!verifier.verify(textBytes, sig.signature)) {
      throw new DkeygenError(
        ErrorCodes.BAD_SIGNATURE,
        `The note's signature by ${id} does not verify.`,
        { culprit: sig.name },
      );
    }
    if (!seen.has(id)) verified.push(sig);
    seen.add(id);
  }
  if (verified.length === 0) {
    throw new DkeygenError(ErrorCodes.BAD_SIGNATURE, "The note has no signature from a known key.");
  }
  return { text, verified, unverified };
}

/**
 * Signs `text` with every signer and returns the signed note: the signatures in `keep` first
 * (minus any by a signer's own key, which its new signature replaces), then the new ones.
 */
export function signNote(
  text: string,
  signers: readonly NoteSigner[],
  keep: readonly NoteSignature[] = [],
): string {
  checkNoteText(text);
  const textBytes = utf8.encode(text);
  const mine = new Set(signers.map((s) => keyLabel(s.name, s.keyId)));
  const lines = keep
    .filter((sig) => !mine.has(keyLabel(sig.name, sig.keyId)))
    .map((sig) => formatSignatureLine(sig));
  for (const signer of signers) {
    const signature = signer.sign(textBytes);
    lines.push(formatSignatureLine({ name: signer.name, keyId: signer.keyId, signature }));
  }
  if (lines.length === 0) throw malformed("a note needs at least one signature");
  const note = `${text}\n${lines.join("")}`;
  parseNote(note); // the limits (count, size) hold for what we hand out
  return note;
}

/** Checks a note text: valid Unicode, ends in a newline, no control characters but newlines. */
export function checkNoteText(text: string): void {
  if (typeof text !== "string" || !wellFormed(text)) {
    throw malformed("its text is not well-formed Unicode");
  }
  if (!text.endsWith("\n")) throw malformed("its text does not end in a newline");
  checkNoControl(text);
}

/** A key name as signed-note wants it: non-empty, no Unicode white space, no "+". */
export function isValidKeyName(name: unknown): name is string {
  return (
    typeof name === "string" &&
    name !== "" &&
    wellFormed(name) &&
    !/[\p{White_Space}+]/u.test(name) &&
    controlAt(name) < 0
  );
}

/** "name+xxxxxxxx": how the spec's verifier keys and our errors name a key. */
export function keyLabel(name: string, keyId: number): string {
  return `${name}+${keyId.toString(16).padStart(8, "0")}`;
}

function formatSignatureLine(sig: NoteSignature): string {
  if (!isValidKeyName(sig.name)) throw malformed("a signature's key name is not valid");
  if (!Number.isInteger(sig.keyId) || sig.keyId < 0 || sig.keyId > 0xffffffff) {
    throw malformed("a key ID is a 32-bit unsigned integer");
  }
  const bytes = new Uint8Array(4 + sig.signature.length);
  new DataView(bytes.buffer).setUint32(0, sig.keyId);
  bytes.set(sig.signature, 4);
  return `${SIGNATURE_PREFIX}${sig.name} ${base64.encode(bytes)}\n`;
}

function parseSignatureLine(line: string): NoteSignature {
  if (!line.startsWith(SIGNATURE_PREFIX)) {
    throw malformed("a line after the empty line is not a signature line");
  }
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(" ");
  const name = space < 0 ? rest : rest.slice(0, space);
  const encoded = space < 0 ? "" : rest.slice(space + 1);
  if (!isValidKeyName(name)) throw malformed("a signature line's key name is not valid");
  let bytes: Uint8Array;
  try {
    bytes = base64.decode(encoded);
  } catch {
    throw malformed("a signature is not canonical base64");
  }
  if (bytes.length < 5) throw malformed("a signature is shorter than a key ID and one byte");
  const keyId = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
  return { name, keyId, signature: bytes.slice(4) };
}

function decodeNote(note: Uint8Array | string): string {
  if (typeof note === "string") {
    if (!wellFormed(note)) throw malformed("it is not well-formed Unicode");
    if (utf8.encode(note).length > MAX_NOTE_BYTES) throw tooLarge();
    checkNoControl(note);
    return note;
  }
  if (!(note instanceof Uint8Array)) throw malformed("it is neither bytes nor a string");
  if (note.length > MAX_NOTE_BYTES) throw tooLarge();
  let message: string;
  try {
    message = strictUtf8.decode(note);
  } catch {
    throw malformed("it is not valid UTF-8");
  }
  checkNoControl(message);
  return message;
}

/** No lone UTF-16 surrogates: the string has a UTF-8 form. */
function wellFormed(s: string): boolean {
  return !/\p{Surrogate}/u.test(s);
}

function checkNoControl(s: string): void {
  const at = controlAt(s);
  if (at >= 0) {
    throw malformed(
      s.charCodeAt(at) === 0x0d
        ? "it has a carriage return (lines end in \\n only)"
        : "it has a control character",
    );
  }
}

/** Index of the first control character other than the newline, or -1. */
function controlAt(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && c !== 0x0a) return i;
  }
  return -1;
}

function tooLarge(): DkeygenError {
  return malformed(`it is larger than ${MAX_NOTE_BYTES} bytes`);
}

function malformed(why: string): DkeygenError {
  return new DkeygenError(ErrorCodes.INVALID_INPUT, `Malformed signed note: ${why}.`);
}
