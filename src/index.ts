/**
 * dkeygen's library entry: the same capabilities as the CLI, with types — the derivations, the
 * clients (contributor, admin, requesting client), the servers and the key stores.
 */

// Auditing what a server publishes: its log (rounds and threshold sessions) and an owned record.
export { type AuditReport, auditLog } from "./audit/log-audit.js";
export { auditRecord, type RecordAuditReport } from "./audit/record-audit.js";
export { AdminClient } from "./client/admin-client.js";
// Clients
export {
  Contributor,
  type ContributorEvent,
  type ContributorOptions,
} from "./client/contributor.js";
export { loadOrCreateContributorState } from "./client/contributor-state.js";
export { EntropyPool, entropyFromFile } from "./client/entropy.js";
export { collectKeyboardEntropy } from "./client/keyboard-entropy.js";
export { PinStore } from "./client/pins.js";
export {
  type DeliveredOtp,
  RequesterClient,
  type TotpEnrollmentResult,
  type TotpEnrollRequest,
  type VerifyOutcome,
} from "./client/requester.js";
export { loadOrCreateRequesterKeys } from "./client/requester-state.js";
export { openEnvelope, type SealedEnvelope, sealEnvelope } from "./crypto/envelope.js";
// Cryptographic building blocks
export { fingerprintOf, fingerprintOfSpki } from "./crypto/fingerprint.js";
export { batchOutputSecret, combineRoundSecret } from "./crypto/kdf.js";
export { PHRASE_GENERATOR_NAMES, phraseGenerator } from "./crypto/phrase-generators.js";
export { osRandom, type RandomSource } from "./crypto/random.js";
export { Secret } from "./crypto/secret.js";
// Derivations (purposes)
export * from "./derive/index.js";
export * from "./errors.js";
export type { Json, JsonObject } from "./json.js";
export { createLogger, type Logger, silentLogger } from "./logging.js";
export { type DkgEntry, parseDkgEntry } from "./protocol/dkg-log-entry.js";
// Protocol
export { type AnyMessage, decodeMessage, encodeMessage } from "./protocol/messages.js";
export { type RoundConfig, RoundMachine, type RoundOutcome } from "./protocol/round.js";
export { MAX_FRAME_BYTES, PROTOCOL_VERSION } from "./protocol/version.js";
export { buildDistributionApp, type DistributionConfig } from "./server/distribution/app.js";
export { issueEnrollmentToken } from "./server/enrollment.js";
// Servers
export { KeygenServer, type KeygenServerConfig, type ServerEvent } from "./server/keygen-server.js";
export { addRequester } from "./server/requesters.js";
export { type RunningServer, type StartServerOptions, startServer } from "./server/runtime.js";
export { FileKeyStore } from "./store/file.js";
export { MemoryKeyStore } from "./store/memory.js";
// Key stores
export type {
  Claim,
  ClaimInput,
  KeyRecord,
  KeyStore,
  ListQuery,
  RecordInput,
} from "./store/types.js";
export { combineSigmas, repairDeltas, repairShare, repairSigma } from "./threshold/repair.js";
export { verifyDkgEntry } from "./threshold/session-entry.js";
// Threshold keys (PROTOCOL §16): FROST signing by t holders, the checks an outsider runs on a
// threshold signature and on a key's log entry, and share repair (RTS) for callers who carry its
// values between holders themselves.
export {
  aggregateSignature,
  commitNonces,
  type SignerShare,
  signShare,
  verifySignatureShare,
  verifyThresholdSignature,
} from "./threshold/signing.js";
export { SUITE_NAMES, type SuiteName } from "./threshold/suites.js";
export { type BitcoinNetwork, bip86OutputKey, p2trAddress } from "./threshold/taproot.js";
// Transport: the CA file a client may be given (`ca` of Contributor, AdminClient, RequesterClient)
export { readCaFile } from "./transport/tls.js";
