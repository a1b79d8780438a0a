/**
 * Names and signed data of the witnessed transparency log (docs/PROTOCOL.md §15.2, §15.5), shared
 * by the server (which certifies its log key and counts cosignatures) and the contributors (which
 * check the certificate and cosign with their identity key).
 */
import { createHash } from "node:crypto";
import { lengthPrefixed } from "../crypto/canonical.js";
import { PROTOCOL_VERSION } from "./version.js";

/** The prefix of every contributor's witness key name. */
export const WITNESS_NAME_PREFIX = "dkeygen-witness/";

/**
 * A contributor's witness key name: `dkeygen-witness/` and the first 16 hex characters of the
 * SHA-256 of its contributor id (the `SHA256:…` string as UTF-8).
 */
export function witnessKeyName(contributorId: string): string {
  const digest = createHash("sha256").update(contributorId, "utf8").digest("hex");
  return `${WITNESS_NAME_PREFIX}${digest.slice(0, 16)}`;
}

/** The log's origin (its checkpoints' first line and its key's name) for a server fingerprint. */
export function logOriginOf(serverFingerprint: string): string {
  const digest = Buffer.from(serverFingerprint.slice("SHA256:".length), "base64");
  return `dkeygen/${digest.subarray(0, 8).toString("hex")}`;
}

/** What the server key signs to certify the log key: LP("dkeygen/v1/log-identity", V, …). */
export function logIdentitySignedData(
  serverFingerprint: string,
  origin: string,
  verifierKey: string,
): Uint8Array {
  return lengthPrefixed(
    "dkeygen/v1/log-identity",
    String(PROTOCOL_VERSION),
    serverFingerprint,
    origin,
    verifierKey,
  );
}
