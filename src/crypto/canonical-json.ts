/**
 * Canonical JSON for derivation parameters, after RFC 8785 (JSON Canonicalization Scheme): object
 * members sorted by their UTF-16 code units, no whitespace, strings escaped as JSON.stringify does.
 * Parameters only ever hold strings, booleans, safe integers, arrays and objects, so the number
 * rules of RFC 8785 §3.2.2.3 reduce to JavaScript's own integer printing; anything else is refused
 * rather than serialized in a way another implementation might print differently.
 *
 * The canonical form goes into the DRBG personalization string (src/derive/drbg.ts), so two
 * parameter sets that mean the same thing must give the same bytes, and different ones never do.
 */
import type { Json } from "../json.js";

export function canonicalJson(value: Json): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new TypeError(`canonicalJson: ${value} is not a safe integer`);
    }
    return Object.is(value, -0) ? "0" : String(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k]!)}`).join(",")}}`;
}
