/**
 * Validation of a purpose's raw options (from `--param key=value` or from the wire) into typed,
 * fully explicit parameters. Every failure is a DkeygenError E_INVALID_INPUT whose sentence names
 * the purpose and the option, so a user or a peer sees what to fix. Unknown options are refused:
 * a misspelt option silently ignored would give a different key than the one asked for.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";
import { printableJson } from "../printable.js";

export type RawParams = Readonly<Record<string, unknown>>;

export function invalidParam(purpose: string, message: string): DkeygenError {
  return new DkeygenError(ErrorCodes.INVALID_INPUT, `${purpose}: ${message}`);
}

/** Refuses a non-object or any option not in `known`. */
export function checkKnownOptions(purpose: string, raw: unknown, known: readonly string[]): void {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw invalidParam(purpose, "the options must be an object of key/value pairs.");
  }
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      const choices = known.length === 0 ? "it takes no options" : `known: ${known.join(", ")}`;
      // The key is the caller's (a peer's, over the wire): escaped and cut short.
      throw invalidParam(purpose, `unknown option ${printableJson(shortened(key))} (${choices}).`);
    }
  }
}

/**
 * A whole number in [min, max] (or one of `allowed`). Accepts a JSON number or a string of decimal
 * digits, because options also arrive as text.
 */
export function intOption(
  purpose: string,
  raw: RawParams,
  name: string,
  spec: { default: number; min?: number; max?: number; allowed?: readonly number[] },
): number {
  const value = raw[name];
  if (value === undefined) return spec.default;
  const n =
    typeof value === "number"
      ? value
      : typeof value === "string" && /^\d{1,15}$/.test(value)
        ? Number(value)
        : Number.NaN;
  const range = spec.allowed
    ? `one of ${spec.allowed.join(", ")}`
    : `a whole number from ${spec.min} to ${spec.max}`;
  const ok =
    Number.isSafeInteger(n) &&
    (spec.allowed
      ? spec.allowed.includes(n)
      : n >= (spec.min ?? Number.MIN_SAFE_INTEGER) && n <= (spec.max ?? Number.MAX_SAFE_INTEGER));
  if (!ok) throw invalidParam(purpose, `option "${name}" must be ${range}; got ${show(value)}.`);
  return n;
}

/** One of a fixed set of strings; matching is case-insensitive, the result is the canonical spelling. */
export function enumOption<T extends string>(
  purpose: string,
  raw: RawParams,
  name: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const value = raw[name];
  if (value === undefined) return fallback;
  const found =
    typeof value === "string"
      ? allowed.find((a) => a.toLowerCase() === value.toLowerCase())
      : undefined;
  if (found === undefined) {
    throw invalidParam(
      purpose,
      `option "${name}" must be one of ${allowed.join(", ")}; got ${show(value)}.`,
    );
  }
  return found;
}

/**
 * True when `text` is well-formed Unicode: no unpaired UTF-16 surrogate (U+D800..U+DFFF). The same
 * test as ES2024's String.prototype.isWellFormed, which the project's ES2023 lib does not declare:
 * with the u flag a surrogate pair reads as one code point, so \p{Cs} matches only a lone one.
 * Text that fails it has no UTF-8 form, so encodeURIComponent, TextEncoder and other
 * implementations would throw on it or silently change it.
 */
export function isWellFormedText(text: string): boolean {
  return !/\p{Cs}/u.test(text);
}

/**
 * A well-formed Unicode string (see `isWellFormedText`) of 1..maxLength UTF-16 code units (a
 * character outside the Basic Multilingual Plane, such as an emoji, counts as 2), optionally
 * matching `pattern` (described by `what`).
 */
export function stringOption(
  purpose: string,
  raw: RawParams,
  name: string,
  spec: {
    default: string;
    maxLength: number;
    allowEmpty?: boolean;
    pattern?: RegExp;
    what?: string;
    /** A secret option: its value never appears in an error message. */
    secret?: boolean;
  },
): string {
  const value = raw[name];
  if (value === undefined) return spec.default;
  if (typeof value !== "string") {
    const got = spec.secret ? `a ${typeof value}` : show(value);
    throw invalidParam(purpose, `option "${name}" must be a string; got ${got}.`);
  }
  if (!isWellFormedText(value)) {
    throw invalidParam(
      purpose,
      `option "${name}" must be well-formed Unicode text; it holds an unpaired UTF-16 surrogate.`,
    );
  }
  if ((!spec.allowEmpty && value.length === 0) || value.length > spec.maxLength) {
    throw invalidParam(
      purpose,
      `option "${name}" must be ${spec.allowEmpty ? "0" : "1"} to ${spec.maxLength} UTF-16 code units long (a character outside the Basic Multilingual Plane, such as an emoji, counts as 2).`,
    );
  }
  if (spec.pattern && !spec.pattern.test(value)) {
    throw invalidParam(purpose, `option "${name}" must be ${spec.what ?? `like ${spec.pattern}`}.`);
  }
  return value;
}

/** At most 64 UTF-16 code units of `text`, with an ellipsis when cut. */
function shortened(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

/** A short, safe rendering of a bad value for an error message (never a long or secret blob). */
function show(value: unknown): string {
  if (typeof value === "string")
    return value.length > 40
      ? `a string of ${value.length} UTF-16 code units`
      : printableJson(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null)
    return String(value);
  return Array.isArray(value) ? "an array" : `a ${typeof value}`;
}
