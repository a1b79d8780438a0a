/**
 * `dkeygen audit record` for a threshold key (docs/PROTOCOL.md §15.6, §16.4): it has no opening —
 * no machine ever held its secret — so after the identity, checkpoint and inclusion steps the
 * audit checks the key's log entry (a threshold session's, §15.1.1: its session id and every
 * holder's confirmation) and then ties the record to it (`certificate`): the session, transcript,
 * holders and parameters are the entry's, the record's public package hashes to the `publicHash`
 * every holder signed, and the group key, output key and address the record shows are the ones
 * that package gives. What passes: the key the server hands out is the one all n holders
 * confirmed in a logged distributed key generation (or refresh).
 */
import { fromBase64url } from "../crypto/base64url.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import { type DkgEntry, isDkgEntryLeaf, parseDkgEntry } from "../protocol/dkg-log-entry.js";
import { publicFromJson } from "../threshold/codec.js";
import { verifyDkgEntry } from "../threshold/session-entry.js";
import { bip86OutputKey, p2trAddress } from "../threshold/taproot.js";
import { publicPackageHash } from "../threshold/transcript.js";

export const THRESHOLD_KEY_PURPOSE = "threshold-key";

/** What a passing threshold-key audit establishes, in one sentence. */
export const THRESHOLD_AUDIT_STATEMENT =
  "this key is the one all of its holders confirmed in a logged distributed key generation";

type Step = <T>(
  name: "entry" | "certificate",
  needs: readonly ("identity" | "entry")[],
  body: () => T,
  passed: (value: T) => string,
) => Promise<T | undefined>;

/** A failed step's reason (the step runner reports a DkeygenError's message as it is). */
const mismatch = (what: string): never => {
  throw new DkeygenError(ErrorCodes.BAD_SIGNATURE, what);
};

interface HolderJson {
  contributorId: string;
  index: number;
  identity: string;
  identifier: string;
  verifyingShare: string;
}

/** The threshold record's public part, its shape checked (a malformed one is a failed step). */
function publicPartOf(value: JsonObject) {
  const p = value as Record<string, unknown>;
  const holders = p.holders;
  if (
    typeof p.suite !== "string" ||
    typeof p.t !== "number" ||
    typeof p.n !== "number" ||
    typeof p.sessionId !== "string" ||
    typeof p.transcript !== "string" ||
    typeof p.groupPublicKey !== "string" ||
    !Array.isArray(p.commitments) ||
    !p.commitments.every((c) => typeof c === "string") ||
    !Array.isArray(holders) ||
    !holders.every(
      (h) =>
        typeof h === "object" &&
        h !== null &&
        ["contributorId", "identity", "identifier", "verifyingShare"].every(
          (k) => typeof (h as Record<string, unknown>)[k] === "string",
        ) &&
        typeof (h as Record<string, unknown>).index === "number",
    )
  ) {
    return mismatch("the record's public part is not a threshold key's (§16.4)");
  }
  return {
    suite: p.suite,
    t: p.t,
    n: p.n,
    sessionId: p.sessionId,
    transcript: p.transcript,
    groupPublicKey: p.groupPublicKey,
    outputKey: typeof p.outputKey === "string" ? p.outputKey : undefined,
    address: typeof p.address === "string" ? p.address : undefined,
    refreshOf: typeof p.refreshOf === "string" ? p.refreshOf : undefined,
    commitments: p.commitments as string[],
    holders: [...(holders as HolderJson[])].sort((a, b) => a.index - b.index),
  };
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/**
 * The `entry` and `certificate` steps of a threshold key's audit, run through the caller's step
 * runner. Resolves to the holders' contributor ids once the entry checked.
 */
export async function auditThresholdKey(
  record: { id: string; roundId: string; public: JsonObject },
  leaf: Uint8Array,
  serverFingerprint: () => string,
  step: Step,
): Promise<string[] | undefined> {
  const entry = await step(
    "entry",
    ["identity"],
    (): DkgEntry => {
      if (!isDkgEntryLeaf(leaf)) {
        mismatch("the record's log entry is a round's, not a threshold session's");
      }
      const parsed = parseDkgEntry(leaf);
      verifyDkgEntry(parsed, serverFingerprint());
      if (parsed.outcome !== "completed") mismatch("the entry's session did not complete");
      if (parsed.roundId !== record.roundId) {
        mismatch(`the entry is of session ${parsed.roundId}…, not the record's ${record.roundId}…`);
      }
      return parsed;
    },
    (e) =>
      `${e.session === "keygen" ? "key generation" : "refresh"} session ${e.sessionId} (${e.suite}, ${e.t} of ${e.n}, completed): the session id is its parameters' hash, and all ${e.n} holders' confirmations verify`,
  );
  await step(
    "certificate",
    ["entry"],
    () => {
      const e = entry!;
      const p = publicPartOf(record.public);
      if (p.sessionId !== e.sessionId) mismatch("the record's session id is not the entry's");
      if (p.suite !== e.suite || p.t !== e.t || p.n !== e.n) {
        mismatch(
          `the record is a ${p.t}-of-${p.n} ${p.suite} key, the entry's session ${e.t}-of-${e.n} ${e.suite}`,
        );
      }
      if ((e.session === "refresh") !== (p.refreshOf !== undefined) || p.refreshOf !== e.keyId) {
        mismatch("the record's refreshOf is not the key the entry's session refreshed");
      }
      if (p.transcript !== hex(fromBase64url(e.transcript!, "transcript", 32))) {
        mismatch("the record's transcript is not the one the holders confirmed");
      }
      if (
        p.holders.length !== e.n ||
        p.holders.some(
          (h, i) =>
            h.index !== i + 1 ||
            h.contributorId !== e.holders[i]!.contributorId ||
            h.identity !== e.holders[i]!.identity,
        )
      ) {
        mismatch("the record's holders are not the entry's, in index order");
      }
      const identifiers = p.holders.map((h) => h.identifier);
      let hash: Uint8Array;
      let group: Uint8Array;
      try {
        const pub = publicFromJson(
          { commitments: p.commitments, verifyingShares: p.holders.map((h) => h.verifyingShare) },
          identifiers,
          p.t,
          p.n,
        );
        hash = publicPackageHash(pub, identifiers);
        group = pub.commitments[0]!;
      } catch {
        return mismatch("the record's public package does not decode");
      }
      if (!Buffer.from(hash).equals(fromBase64url(e.publicHash!, "publicHash", 32))) {
        mismatch(
          "the record's public package (group commitment, verifying shares) is not the one every holder confirmed",
        );
      }
      // The keys the record shows, from the confirmed package: for secp256k1-tr the group
      // commitment is the BIP 86 output key (noble's tweaked key), the record's group key the
      // internal key that tweaks to it.
      if (e.suite === "secp256k1-tr") {
        const output = group.subarray(1);
        if (
          p.outputKey !== hex(output) ||
          !/^[0-9a-f]{64}$/.test(p.groupPublicKey) ||
          hex(bip86OutputKey(Buffer.from(p.groupPublicKey, "hex"))) !== p.outputKey ||
          p.address !== p2trAddress(output)
        ) {
          mismatch(
            "the record's group key, output key or address is not the confirmed package's (BIP 86)",
          );
        }
      } else if (p.groupPublicKey !== hex(group)) {
        mismatch("the record's group public key is not the confirmed package's");
      }
      return p;
    },
    (p) =>
      `the record's group key ${p.groupPublicKey}${p.address ? ` (address ${p.address})` : ""}, verifying shares and holders are the package all ${p.n} holders confirmed`,
  );
  return entry?.holders.map((h) => h.contributorId);
}
