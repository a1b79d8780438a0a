/**
 * Repairing a lost share with the help of t other holders: the Repairable Threshold Scheme (RTS)
 * of Laing and Stinson, https://eprint.iacr.org/2017/1155, as ZcashFoundation/frost implements it
 * (frost-core/src/keys/repairable.rs; docs/PROTOCOL.md §16.9). Holder r has lost s_r; the helpers
 * H (|H| ≥ t, r ∉ H) rebuild it without any of them learning it or each other's shares:
 *
 *   part 1, helper i   ζ_i = Π_{j ∈ H, j ≠ i} (x_r − x_j) / (x_i − x_j) (Lagrange at x_r, not at 0);
 *                      |H| − 1 random scalars δ_ij, and the last δ so that Σ_j δ_ij = ζ_i·s_i;
 *                      δ_ij is sent (privately) to helper j — itself included
 *   part 2, helper j   σ_j = Σ_i δ_ij, sent (privately) to r
 *   part 3, holder r   s_r = Σ_j σ_j = Σ_i ζ_i·s_i; and, beyond ZF's bare sum, s_r·G must be r's
 *                      verifying share in the key's public package, or the repair is refused
 *
 * Helpers are ordered as ZF's BTreeSet orders identifiers (by scalar value): the random deltas go
 * to all but the last, the computed one to the last. The transport (who sends what to whom,
 * sealed) is the caller's. Scalars are noble's (Fn); the one point multiplication is noble's.
 */
import type { FrostPublic } from "@noble/curves/abstract/frost.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { lagrangeAt, verifyingShareOf } from "./refresh.js";
import type { SignerShare } from "./signing.js";
import { type SuiteName, suiteOf } from "./suites.js";

function refuse(message: string): never {
  throw new DkeygenError(ErrorCodes.INVALID_INPUT, message);
}

/** A canonical identifier: a non-zero scalar in noble's serialization (lowercase hex). */
function identifierScalar(suite: SuiteName, id: unknown, what: string): bigint {
  const { Fn } = suiteOf(suite).frost.utils;
  let x = Fn.ZERO;
  try {
    if (typeof id === "string") x = Fn.fromBytes(Buffer.from(id, "hex"));
  } catch {}
  if (Fn.is0(x) || Buffer.from(Fn.toBytes(x)).toString("hex") !== id) {
    refuse(`The ${what} is not a canonical identifier.`);
  }
  return x;
}

/** A canonical scalar in the suite's encoding (ZF's SerializableScalar::deserialize). */
function scalarOf(suite: SuiteName, bytes: unknown, what: string): bigint {
  const { Fn } = suiteOf(suite).frost.utils;
  if (!(bytes instanceof Uint8Array) || bytes.length !== Fn.BYTES) {
    refuse(`The ${what} is not a ${Fn.BYTES}-byte scalar.`);
  }
  try {
    return Fn.fromBytes(bytes);
  } catch {
    refuse(`The ${what} is not a canonical scalar.`);
  }
}

/** Whether s·G is the verifying share the public package lists for `identifier`. */
function matchesVerifyingShare(
  suite: SuiteName,
  share: bigint,
  pub: FrostPublic,
  identifier: string,
): boolean {
  const expected = pub.verifyingShares[identifier];
  if (expected === undefined || share === 0n) return false;
  return Buffer.from(verifyingShareOf(suite, share)).equals(Buffer.from(expected));
}

/**
 * Part 1 (ZF repair_share_part1), run by each helper: the deltas it sends, one per helper
 * (itself included), keyed by identifier. `pub` is the key's public package; `random` (bytes →
 * bytes) is for tests only, by default noble draws from the system's CSPRNG.
 */
export function repairDeltas(
  helper: SignerShare,
  pub: FrostPublic,
  helpers: string[],
  participant: string,
  random?: (bytes: number) => Uint8Array,
): Record<string, Uint8Array> {
  const { suite } = helper;
  const { frost } = suiteOf(suite);
  const { Fn } = frost.utils;
  if (!Array.isArray(helpers)) refuse("The helpers must be a list of identifiers.");
  const xs = new Map<string, bigint>();
  for (const id of helpers) xs.set(id, identifierScalar(suite, id, "helper identifier"));
  const xr = identifierScalar(suite, participant, "participant's identifier");
  if (helpers.length < pub.signers.min) {
    refuse(`A repair needs at least t = ${pub.signers.min} helpers (${helpers.length} given).`);
  }
  if (xs.size !== helpers.length) refuse("A helper is named twice.");
  if (!xs.has(helper.identifier)) refuse("This helper is not among the helpers.");
  if (xs.has(participant)) refuse("The participant repairing its share cannot be a helper.");
  for (const id of [...helpers, participant]) {
    if (pub.verifyingShares[id] === undefined) refuse("A repair names a holder the key has not.");
  }
  const share = scalarOf(suite, helper.signingShare, "helper's signing share");
  if (!matchesVerifyingShare(suite, share, pub, helper.identifier)) {
    refuse("This share is not the helper's own: refusing to repair with it.");
  }
  const ordered = [...helpers].sort((a, b) => {
    const d = xs.get(a)! - xs.get(b)!;
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  });
  const zeta = lagrangeAt(suite, ordered, xr)[ordered.indexOf(helper.identifier)]!;
  const rng = random === undefined ? undefined : (bytes = 32) => new Uint8Array(random(bytes));
  const deltas: Record<string, Uint8Array> = {};
  let sum = Fn.ZERO;
  for (const id of ordered.slice(0, -1)) {
    const delta = frost.utils.randomScalar(rng);
    sum = Fn.add(sum, Fn.fromBytes(delta));
    deltas[id] = delta;
  }
  deltas[ordered.at(-1)!] = Fn.toBytes(Fn.sub(Fn.mul(zeta, share), sum));
  return deltas;
}

function sumScalars(suite: SuiteName, values: Uint8Array[], what: string): Uint8Array {
  const { Fn } = suiteOf(suite).frost.utils;
  if (!Array.isArray(values)) refuse(`The ${what}s must be a list.`);
  let sum = Fn.ZERO;
  values.forEach((v, k) => {
    sum = Fn.add(sum, scalarOf(suite, v, `${what} at position ${k}`));
  });
  return Fn.toBytes(sum);
}

/** Part 2 (ZF repair_share_part2), run by each helper: σ_j, the sum of the deltas it received. */
export function repairSigma(suite: SuiteName, deltas: Uint8Array[]): Uint8Array {
  return sumScalars(suite, deltas, "delta");
}

/**
 * Part 3's sum as ZF's repair_share_part3 computes it: Σ σ_j, unchecked. Use repairShare, which
 * also checks the result against the key; this is exposed for ZF's vector and for diagnosis.
 */
export function combineSigmas(suite: SuiteName, sigmas: Uint8Array[]): Uint8Array {
  return sumScalars(suite, sigmas, "sigma");
}

/**
 * Part 3, run by the participant: its signing share from the helpers' sigmas (one from each of
 * at least t helpers), refused unless s·G is its verifying share in `pub`, the key's public
 * package (which any helper can provide; its source should be the key's certified record).
 */
export function repairShare(
  suite: SuiteName,
  participant: string,
  sigmas: Uint8Array[],
  pub: FrostPublic,
): SignerShare {
  identifierScalar(suite, participant, "participant's identifier");
  if (pub.verifyingShares[participant] === undefined) {
    refuse("The participant is not a holder of this key.");
  }
  if (!Array.isArray(sigmas) || sigmas.length < pub.signers.min) {
    refuse(`A repair needs a sigma from each of at least t = ${pub.signers.min} helpers.`);
  }
  const signingShare = combineSigmas(suite, sigmas);
  const share = suiteOf(suite).frost.utils.Fn.fromBytes(signingShare);
  if (!matchesVerifyingShare(suite, share, pub, participant)) {
    signingShare.fill(0);
    refuse("The repaired share does not match the participant's verifying share: refused.");
  }
  return { suite, identifier: participant, signingShare };
}
