/**
 * Log entries whose signatures this process has verified already, each by the SHA-256 hash of
 * its exact leaf bytes and the fingerprint of the server key it was verified against (a
 * contributor's witness, PROTOCOL §15.5 step 5). A process that hosts several contributors (the
 * benchmark's swarm, the demo) sees the same entry once per contributor of the round; checking
 * its 2n signatures once per process instead of once per contributor takes a round's witnessing
 * from n² verifications in that process to n. Each contributor still checks its own part of the
 * entry itself (its commitment, its reveal, the outcome it was sent) and the entry's inclusion.
 *
 * Sound because the verdict is a function of the leaf bytes and the server key alone: the same
 * bytes verify the same way every time. Only successes are kept (a refusal is checked again, and
 * refused again), at most `MAX_VERIFIED` of them, the oldest let go first.
 */
import { base64 } from "@scure/base";
import { hashLeaf } from "../tlog/merkle.js";

/** Entries remembered at most: a few rounds' worth for every contributor a process may host. */
export const MAX_VERIFIED = 1024;

const verified = new Set<string>();

/**
 * Runs `verify` (which throws on a bad entry) unless the entry with these leaf bytes was verified
 * against this server key before in this process; remembers it once it passed.
 */
export function verifyEntryOnce(
  leaf: Uint8Array,
  serverFingerprint: string,
  verify: () => void,
): void {
  const key = `${serverFingerprint} ${base64.encode(hashLeaf(leaf))}`;
  if (verified.has(key)) return;
  verify();
  verified.add(key);
  if (verified.size > MAX_VERIFIED) verified.delete(verified.values().next().value!);
}

/** How many entries are remembered (tests). */
export function verifiedEntries(): number {
  return verified.size;
}
