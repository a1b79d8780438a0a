/**
 * Checks a threshold session's log entry (protocol/dkg-log-entry.ts, docs/PROTOCOL.md §15.1.1)
 * without trusting the server — the auditor's check, and each holder's as a witness of the log: every holder's id is its identity key's fingerprint, the session id
 * is the hash of the entry's own parameters (so the holders, suite, t, n, server and nonce are the
 * ones every holder bound into everything it signed), and a completed session's certificate holds
 * one valid confirmation per holder over the entry's transcript and public package hashes.
 */
import { fromBase64url } from "../crypto/base64url.js";
import { fingerprintOf } from "../crypto/fingerprint.js";
import { isStrongEd25519Key, publicKeyFromRaw, verifySignature } from "../crypto/signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { refreshSessionIdOf } from "./refresh.js";
import type { SuiteName } from "./suites.js";
import { confirmSignedData, sessionIdOf } from "./transcript.js";

/**
 * The members of a threshold session's log entry the checks read (protocol/dkg-log-entry.ts
 * parses the whole entry; binary members are canonical base64url).
 */
export interface SessionEntry {
  server: string;
  session: "keygen" | "refresh";
  sessionId: string;
  suite: SuiteName;
  t: number;
  n: number;
  nonce: string;
  holders: readonly { contributorId: string; identity: string }[];
  keyId?: string;
  previous?: string;
  dealers?: number[];
  outcome: "completed" | "aborted";
  transcript?: string;
  publicHash?: string;
  certificate?: readonly string[];
}

function bad(what: string): DkeygenError {
  return new DkeygenError(ErrorCodes.BAD_SIGNATURE, what);
}

/** Throws E_BAD_SIGNATURE naming the first check that fails. */
export function verifyDkgEntry(entry: SessionEntry, serverFingerprint: string): void {
  if (entry.server !== serverFingerprint) {
    throw bad(`The entry is from server ${entry.server}, not ${serverFingerprint}.`);
  }
  const identities = entry.holders.map((h, i) => {
    const raw = fromBase64url(h.identity, "identity", 32);
    if (!isStrongEd25519Key(raw) || fingerprintOf(publicKeyFromRaw(raw)) !== h.contributorId) {
      throw bad(`Holder ${i + 1}'s identity key is not the one its id names.`);
    }
    return raw;
  });
  const nonce = fromBase64url(entry.nonce, "nonce", 32);
  const sessionId =
    entry.session === "keygen"
      ? sessionIdOf({
          suite: entry.suite,
          t: entry.t,
          n: entry.n,
          serverFingerprint: entry.server,
          nonce,
          identities,
        })
      : refreshSessionIdOf({
          suite: entry.suite,
          t: entry.t,
          n: entry.n,
          serverFingerprint: entry.server,
          keyId: entry.keyId!,
          publicHash: fromBase64url(entry.previous!, "previous", 32),
          nonce,
          dealers: entry.dealers!,
          identities,
        });
  if (!Buffer.from(sessionId).equals(fromBase64url(entry.sessionId, "sessionId", 32))) {
    throw bad(
      "The session id is not the hash of the entry's parameters (suite, t, n, server, nonce, holders).",
    );
  }
  if (entry.outcome !== "completed") return;
  const data = confirmSignedData(
    sessionId,
    fromBase64url(entry.transcript!, "transcript", 32),
    fromBase64url(entry.publicHash!, "publicHash", 32),
  );
  entry.certificate!.forEach((signature, i) => {
    if (
      !verifySignature(
        publicKeyFromRaw(identities[i]!),
        data,
        fromBase64url(signature, "certificate", 64),
      )
    ) {
      throw bad(
        `Holder ${i + 1}'s confirmation in the certificate does not verify (it did not sign this transcript and public package).`,
      );
    }
  });
}
