/**
 * Response phrase generation: the round's final secret from its seed phrase, the server's own
 * secret for the round and every accepted secret phrase, with HKDF-SHA-512 (RFC 5869) over a
 * canonical ordering.
 *
 *   contributions sorted by contributor id (bytewise over UTF-8)
 *   IKM  = LP("dkeygen/v1/response-phrase", seed, serverSecret, u32(n),
 *             id_1, phrase_1, ..., id_n, phrase_n)
 *   salt = "dkeygen/v1/round/" ‖ roundId
 *   info = LP("dkeygen/v1/round-secret", purpose)
 *   secret = HKDF-SHA-512(IKM, salt, info, L = 64)
 *
 * HKDF-Extract is a randomness extractor: if one input is uniform and unknown to someone, the
 * 64-byte output is indistinguishable from uniform to them, whatever the other inputs are, as long
 * as those were fixed without knowledge of it. One honest contributor's phrase is such an input
 * for everyone but the server; the server secret (32 bytes, never sent, only committed to) is one
 * for every coalition of contributors (docs/PROTOCOL.md §7.2).
 */
import { hkdfSync } from "node:crypto";
import { lengthPrefixed, u32 } from "./canonical.js";

export const ROUND_SECRET_BYTES = 64;
/** The server's per-round secret: 32 bytes from the CSPRNG. */
export const SERVER_SECRET_BYTES = 32;

export interface AcceptedPhrase {
  contributorId: string;
  phrase: Uint8Array;
}

export interface RoundSecretInput {
  roundId: string;
  purpose: string;
  seedPhrase: Uint8Array;
  /** The server's own secret for the round (SERVER_SECRET_BYTES), never sent to anyone. */
  serverSecret: Uint8Array;
  contributions: readonly AcceptedPhrase[];
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

export function combineRoundSecret(input: RoundSecretInput): Uint8Array {
  const sorted = [...input.contributions].sort((a, b) =>
    compareBytes(a.contributorId, b.contributorId),
  );
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1]!.contributorId === sorted[i]!.contributorId) {
      throw new TypeError("combineRoundSecret: a contributor appears twice");
    }
  }
  if (input.serverSecret.length !== SERVER_SECRET_BYTES) {
    throw new TypeError(`combineRoundSecret: serverSecret must be ${SERVER_SECRET_BYTES} bytes`);
  }
  const fields: (Uint8Array | string)[] = [
    "dkeygen/v1/response-phrase",
    input.seedPhrase,
    input.serverSecret,
    u32(sorted.length),
  ];
  for (const c of sorted) fields.push(c.contributorId, c.phrase);
  const ikm = lengthPrefixed(...fields);
  const salt = `dkeygen/v1/round/${input.roundId}`;
  const info = lengthPrefixed("dkeygen/v1/round-secret", input.purpose);
  const out = new Uint8Array(hkdfSync("sha512", ikm, salt, info, ROUND_SECRET_BYTES));
  ikm.fill(0);
  return out;
}

/**
 * The secret of output `index` of a batch round (a round asked for several results, such as a
 * pool of OTPs): independent HKDF-SHA-512 outputs of the round secret, one per index.
 *
 *   output_i = HKDF-SHA-512(IKM = roundSecret, salt = "dkeygen/v1/batch",
 *                           info = LP("dkeygen/v1/round-output", purpose, u32(i)), L = 64)
 *
 * A round that makes one result uses the round secret itself.
 */
export function batchOutputSecret(
  roundSecret: Uint8Array,
  purpose: string,
  index: number,
): Uint8Array {
  const info = lengthPrefixed("dkeygen/v1/round-output", purpose, u32(index));
  return new Uint8Array(
    hkdfSync("sha512", roundSecret, "dkeygen/v1/batch", info, ROUND_SECRET_BYTES),
  );
}
