/**
 * What a round is asked to make, shared by the key generation server that runs rounds and the
 * distribution server that asks for them (the OTP pool's refills, TOTP enrollments) without
 * importing the key generation server.
 */
import type { JsonObject } from "../json.js";
import type { KeyRecord } from "../store/types.js";

/** The most results one round may make (a batch round, e.g. to fill the OTP pool). */
export const MAX_BATCH = 10_000;

export interface RoundRequest {
  purpose: string;
  params?: Record<string, unknown>;
  /** How many results (records) the round makes; 1 unless filling a pool. */
  count?: number;
  /** Who is entitled to the secret part: a requester's registration id, or ADMIN_OWNER. */
  owner?: string;
  /** Whom, within the owner, the result is for (a TOTP enrollment's account); needs `owner`. */
  subject?: string;
  /**
   * A split result's holders (registration ids): holder i is entitled to its own share of the
   * secret part only (a multisig set's key i, PROTOCOL §13.9); needs `owner`.
   */
  holders?: string[];
  /**
   * Told each result's secret output as soon as its record is stored (in-process only; the OTP
   * pool keeps ready codes this way instead of decrypting what the store just encrypted). A
   * round without an owner stores its records held: every call comes before they are released.
   */
  onStored?: (record: KeyRecord, secretOutput: JsonObject) => void;
}
