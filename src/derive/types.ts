/**
 * What every derivation is: a pure, deterministic function from a round secret (at least 256
 * bits) and a purpose's parameters to that purpose's output, split into a public part (safe to
 * show, log and hand to anyone) and a secret part (stored encrypted, shown only when asked).
 *
 * The server and `dkeygen derive` call the same `derivePurpose` (src/derive/index.ts), so an
 * auditor holding a round secret reproduces exactly what the server stored.
 */
import type { JsonObject } from "../json.js";

export interface DerivationResult {
  purpose: string;
  /** The derivation and its version, e.g. "otp/v1"; recorded in the key store. */
  algorithm: string;
  public: JsonObject;
  secret: JsonObject;
}

export interface Derivation<P> {
  readonly purpose: string;
  /** The domain-separation label, e.g. "dkeygen/v1/derive/otp"; documented in docs/PROTOCOL.md. */
  readonly label: string;
  /** One line for `--help`. */
  readonly summary: string;
  /** Validates raw options (from the CLI or the wire) into typed parameters; throws DkeygenError
   * E_INVALID_INPUT naming the bad option. Fills in defaults, so the result is fully explicit. */
  parseParams(raw: Readonly<Record<string, unknown>>): P;
  /** The canonical JSON form of parsed parameters (defaults included), recorded with the result. */
  paramsToJson(params: P): JsonObject;
  derive(secret: Uint8Array, params: P): Promise<DerivationResult>;
}
