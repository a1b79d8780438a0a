/**
 * What every admin command shares (admin-commands.ts, admin-threshold-commands.ts): the services
 * of the server it may use beyond the context, the owner a command names, and the answer to a
 * command that failed.
 */
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { KeyRecord } from "../store/types.js";
import type { ThresholdKeygenRequest } from "./dkg-coordinator.js";
import type { HolderOutcome } from "./recovery-coordinator.js";
import type { Peer, RoundRequest, ServerContext } from "./server-context.js";
import type { SignResult } from "./sign-coordinator.js";

/** What the admin commands need beyond the context: rounds and the server's live state. */
export interface AdminServices {
  runRound(request: RoundRequest): Promise<KeyRecord>;
  thresholdKeygen(request: ThresholdKeygenRequest): Promise<KeyRecord>;
  thresholdSign(record: KeyRecord, message: Uint8Array, requester: string): Promise<SignResult>;
  thresholdRefresh(record: KeyRecord): Promise<KeyRecord>;
  thresholdRecover(record: KeyRecord): Promise<HolderOutcome[]>;
  readonly roundsRunning: number;
  readonly connectedContributors: { id: string; name?: string }[];
}

/** Answers a command that failed with a non-fatal `error`; the session goes on. */
export function commandFailed(
  ctx: ServerContext,
  peer: Peer,
  requestId: string,
  error: unknown,
  otherwise: string,
): void {
  const e = isDkeygenError(error) ? error : new DkeygenError(ErrorCodes.OPERATIONAL, otherwise);
  if (!isDkeygenError(error)) ctx.c.logger.error({ err: describeError(error) }, otherwise);
  ctx.send(peer, {
    type: "error",
    v: PROTOCOL_VERSION,
    code: e.code,
    message: e.message,
    requestId,
    fatal: false,
  });
}

/** The registration id of the requester named by `generate --for`; refuses an unknown name. */
export async function ownerId(ctx: ServerContext, name: string): Promise<string> {
  const registry = ctx.c.requesters;
  if (!registry) return name;
  await registry.reload();
  const requester = registry.get(name);
  if (requester === undefined) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `No requesting client named ${name} is registered (dkeygen requester add).`,
    );
  }
  // Registrations made before registration ids existed are owned by their name.
  return requester.id ?? name;
}
