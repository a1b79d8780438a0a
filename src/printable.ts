/**
 * Text that someone else chose — a peer's field names, a subject, a path — made safe to print on
 * one line of a log or a terminal. Control characters (C0, DEL, C1), the Unicode line and
 * paragraph separators and the bidirectional overrides are written as `\u{…}` escapes, so a peer
 * cannot end a log line early, forge a second one, move the cursor or recolour a terminal
 * (ANSI escapes start with ESC, U+001B), or make text read backwards (Trojan Source,
 * CVE-2021-42574). Everything else is kept as is. Backslashes are doubled so an escape in the
 * output always came from here.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters to escape
const UNPRINTABLE = /[\\\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const RAW_UNPRINTABLE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the characters a printed line must not hold
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** True when `text` holds a character `printable` would escape, other than a line feed. */
export function hasUnprintable(text: string): boolean {
  return RAW_UNPRINTABLE.test(text);
}

/** `text` with every character that could change how a line prints escaped. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) =>
    c === "\\" ? "\\\\" : `\\u{${c.codePointAt(0)!.toString(16)}}`,
  );
}

const JSON_UNPRINTABLE = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * JSON text of `value` that prints on one line: JSON.stringify already escapes C0 controls,
 * quotes and backslashes; this also escapes DEL, C1, the line separators and the bidirectional
 * controls, with JSON's own `\uXXXX`, so the result is still the same JSON.
 */
export function printableJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.replace(
    JSON_UNPRINTABLE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** `printable`, cut to `max` characters (with an ellipsis) so a peer cannot fill a log line. */
export function printableShort(text: string, max = 64): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return printable(cut);
}
