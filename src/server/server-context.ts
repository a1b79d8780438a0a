/**
 * What the key generation server's parts share: its configuration and components, the per-
 * connection `Peer`, the events it emits, and `ServerContext` — the few operations every message
 * handler needs (send, reject, refuse, emit). keygen-server.ts implements the context; the
 * handlers (handshake.ts, admin-commands.ts, contribution-check.ts, round-runner.ts and its
 * phases and closing) use only it.
 */

import type { RandomSource } from "../crypto/random.js";
import type { Secret } from "../crypto/secret.js";
import type { DkeygenError } from "../errors.js";
import type { Logger } from "../logging.js";
import type { AdminChannel } from "../protocol/admin-channel.js";
import type { AnyMessage } from "../protocol/messages.js";
import type { SessionMachine } from "../protocol/session.js";
import { HANDSHAKE_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS } from "../protocol/version.js";
import type { KeyRecord, KeyStore } from "../store/types.js";
import type { Connection } from "../transport/types.js";
import type { ContributorRegistry } from "./enrollment.js";
import type { ServerIdentity } from "./identity.js";
import type { TransparencyLog } from "./transparency-log.js";
import type { Witnessing } from "./witnessing.js";

export { MAX_BATCH, type RoundRequest } from "./round-request.js";

export interface KeygenServerConfig {
  /** Minimum accepted contributions for a round to succeed (at least 2). */
  quorum: number;
  /** How long each phase of a round (commit, reveal) lasts at most, unless set below. */
  roundTimeoutMs: number;
  /** How long a round collects commitments (default: roundTimeoutMs). */
  commitTimeoutMs?: number;
  /** How long a round waits for the committed contributions' reveals (default: roundTimeoutMs). */
  revealTimeoutMs?: number;
  /** At most this many contributors are invited to one round (and never more than 256). */
  maxParticipants: number;
  /** How long a whole DKG session may take (dkg-coordinator.ts; default 60 s). */
  dkgTimeoutMs?: number;
  /** How long a signing attempt waits for each phase's answers (sign-coordinator.ts; 10 s). */
  signTimeoutMs?: number;
  /** How long a share recovery waits for the holders' answers (recovery-coordinator.ts; 30 s). */
  recoveryTimeoutMs?: number;
  heartbeatMs: number;
  handshakeTimeoutMs: number;
  /** A peer is disconnected after this many rejected messages. */
  maxPeerErrors: number;
  /**
   * Witness cosignatures a checkpoint needs before the results of rounds it covers are handed
   * out, and before it is served (PROTOCOL §15.5); 0 turns witnessing off.
   */
  minCosignatures: number;
}

export const DEFAULT_SERVER_CONFIG: KeygenServerConfig = {
  quorum: 2,
  roundTimeoutMs: 10_000,
  maxParticipants: 256,
  heartbeatMs: HEARTBEAT_INTERVAL_MS,
  handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  maxPeerErrors: 16,
  minCosignatures: 1,
};

/** A registered requesting client as the key generation server needs it: its registration id. */
export interface OwnerLookup {
  reload(): Promise<void>;
  /** The live registration of a requester name, if any (its `id` once registrations have ids). */
  get(name: string): { readonly name: string; readonly id?: string } | undefined;
}

export interface KeygenServerComponents {
  identity: ServerIdentity;
  registry: ContributorRegistry;
  store: KeyStore;
  /** The admin token's bytes; admins prove they hold it with an HMAC over a challenge. */
  adminToken: Secret;
  logger: Logger;
  clock?: () => number;
  random?: RandomSource;
  /** Registered requesting clients, to check the owner named by `generate --for`. */
  requesters?: OwnerLookup;
  /**
   * Lets a round complete with a single contribution. Only for measuring (npm run bench):
   * a one-contributor round is only as good as that contributor.
   */
  allowQuorumOfOne?: boolean;
}

/** The components with their defaults filled in. */
export type ResolvedComponents = Required<
  Omit<KeygenServerComponents, "allowQuorumOfOne" | "requesters">
> &
  Pick<KeygenServerComponents, "requesters">;

/** What the server tells its observers (the CLI, the demo). Public facts only. */
export type ServerEvent =
  | { type: "dkg.completed"; sessionId: string; keyId: string }
  | { type: "dkg.aborted"; sessionId: string; kind: string; reason: string; culprit?: string }
  | { type: "contributor.joined"; contributorId: string; name?: string; enrolled: boolean }
  | { type: "contributor.left"; contributorId: string; name?: string }
  | { type: "peer.rejected"; remote: string; code: string; message: string }
  | {
      type: "round.opened";
      roundId: string;
      purpose: string;
      participants: number;
      seedBits: number;
      /** The commitment to the server's secret sent in round.open (hex); never the secret. */
      serverCommitment: string;
      commitDeadline: string;
      revealDeadline: string;
    }
  | { type: "commit.accepted"; roundId: string; contributorId: string; name?: string }
  | {
      type: "round.committed";
      roundId: string;
      /** How many commitments the commit set holds, and its hash (hex). */
      commits: number;
      setHash: string;
    }
  | { type: "contribution.accepted"; roundId: string; contributorId: string; name?: string }
  | {
      type: "contribution.rejected";
      roundId?: string;
      contributorId?: string;
      code: string;
      message: string;
    }
  | {
      type: "round.completed";
      roundId: string;
      /** The first record the round made (the only one unless it was a batch round). */
      record: KeyRecord;
      records: number;
      accepted: number;
    }
  | {
      type: "round.logged";
      roundId: string;
      outcome: "completed" | "aborted" | "failed";
      /** The entry's index in the transparency log, and the log's size after it. */
      index: number;
      size: number;
    }
  | {
      type: "dkg.logged";
      sessionId: string;
      session: "keygen" | "refresh";
      outcome: "completed" | "aborted";
      index: number;
      size: number;
    }
  | { type: "round.failed"; roundId: string; code: string; message: string }
  | { type: "round.aborted"; roundId: string; missing: string[]; message: string };

/**
 * The owner of records an admin generates without `--for`: no requesting client can be named so
 * (requester names start with a letter or digit), so none can fetch their secret part, and the
 * OTP pool never hands them out (an admin may have seen them, with --reveal-secret).
 */
export const ADMIN_OWNER = "@admin";

/** One connection, as the server keeps it. */
export interface Peer {
  readonly connection: Connection;
  readonly machine: SessionMachine;
  /** The server's challenge for this connection (hello). */
  readonly challenge: Uint8Array;
  contributorId?: string;
  /** The contributor's raw Ed25519 identity key, once joined. */
  identity?: Uint8Array;
  name?: string;
  /** Set once an admin has authenticated: seals and opens every later admin message. */
  admin?: AdminChannel;
  handshakeTimer?: NodeJS.Timeout;
}

/** Where a rejected message belongs, echoed in the error reply. */
export interface RejectContext {
  roundId?: string;
  requestId?: string;
}

/** What every message handler may do; implemented by KeygenServer. */
export interface ServerContext {
  readonly c: ResolvedComponents;
  readonly config: KeygenServerConfig;
  readonly fingerprint: string;
  /** Authenticated contributor connections by contributor id (one live connection each). */
  readonly contributors: Map<string, Peer>;
  readonly stopping: boolean;
  /** The transparency log every round that reached a commit set is appended to. */
  readonly log: TransparencyLog;
  /** Contributors witnessing the log: cosignatures, and the wait for them (witnessing.ts). */
  readonly witnessing: Witnessing;
  send(peer: Peer, msg: AnyMessage): void;
  /** Answers a rejected message with an `error`, logs it, and closes the session if fatal. */
  reject(peer: Peer, error: unknown, context?: RejectContext, integrity?: boolean): void;
  /** Refuses a peer outright (a failed handshake): error, log, event, close. */
  refuse(peer: Peer, error: DkeygenError): void;
  /** Closes a peer's session as the server (a newer connection replaced it). */
  drop(peer: Peer, code: number, reason: string): void;
  emit(event: ServerEvent): void;
}
