/**
 * The admin session's threshold-key commands (admin-commands.ts hands them here), each answered
 * in an admin frame:
 *
 *   admin.threshold.keygen
 *                    a distributed key generation among n connected contributors
 *                    (dkg-coordinator.ts); answers with the key's public description
 *   admin.threshold.refresh
 *                    new shares of a threshold key among its holders, same key
 *                    (refresh-coordinator.ts); answers with the refreshed key's description
 *   admin.threshold.recover
 *                    sends a threshold key's recovery data to its connected holders, who rebuild
 *                    a lost share (recovery-coordinator.ts); answers with each holder's outcome
 *   admin.threshold.sign
 *                    a FROST signature by t holders of an admin-owned threshold key
 *                    (sign-coordinator.ts)
 *
 * A command that fails gets an `error` with its requestId and the session goes on.
 */
import { fromBase64url } from "../crypto/base64url.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { MessageOf } from "../protocol/messages.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import { type AdminServices, commandFailed, ownerId } from "./admin-session.js";
import { ADMIN_OWNER, type Peer, type ServerContext } from "./server-context.js";
import { THRESHOLD_PURPOSE, thresholdKeyWire } from "./threshold-record.js";

export async function adminThresholdKeygen(
  ctx: ServerContext,
  services: AdminServices,
  peer: Peer,
  msg: MessageOf<"admin.threshold.keygen">,
): Promise<void> {
  try {
    if (msg.t > msg.n) {
      throw new DkeygenError(ErrorCodes.USAGE, `t (${msg.t}) must not exceed n (${msg.n}).`);
    }
    const owner = msg.owner === undefined ? ADMIN_OWNER : await ownerId(ctx, msg.owner);
    const record = await services.thresholdKeygen({ suite: msg.suite, t: msg.t, n: msg.n, owner });
    ctx.send(peer, {
      type: "admin.threshold.key",
      v: PROTOCOL_VERSION,
      requestId: msg.requestId,
      key: thresholdKeyWire(record),
    });
  } catch (error) {
    commandFailed(ctx, peer, msg.requestId, error, "The threshold key could not be made.");
  }
}

export async function adminThresholdRefresh(
  ctx: ServerContext,
  services: AdminServices,
  peer: Peer,
  msg: MessageOf<"admin.threshold.refresh">,
): Promise<void> {
  try {
    const record = await ctx.c.store.get(msg.keyId);
    if (!record || record.purpose !== THRESHOLD_PURPOSE) {
      throw new DkeygenError(ErrorCodes.NOT_FOUND, `No threshold key ${msg.keyId}.`);
    }
    const refreshed = await services.thresholdRefresh(record);
    ctx.send(peer, {
      type: "admin.threshold.key",
      v: PROTOCOL_VERSION,
      requestId: msg.requestId,
      key: thresholdKeyWire(refreshed),
    });
  } catch (error) {
    commandFailed(ctx, peer, msg.requestId, error, "The key's shares could not be refreshed.");
  }
}

export async function adminThresholdRecover(
  ctx: ServerContext,
  services: AdminServices,
  peer: Peer,
  msg: MessageOf<"admin.threshold.recover">,
): Promise<void> {
  try {
    const record = await ctx.c.store.get(msg.keyId);
    if (!record || record.purpose !== THRESHOLD_PURPOSE) {
      throw new DkeygenError(ErrorCodes.NOT_FOUND, `No threshold key ${msg.keyId}.`);
    }
    const holders = await services.thresholdRecover(record);
    ctx.send(peer, {
      type: "admin.threshold.recovery",
      v: PROTOCOL_VERSION,
      requestId: msg.requestId,
      keyId: record.id,
      holders,
    });
  } catch (error) {
    commandFailed(ctx, peer, msg.requestId, error, "The key's recovery could not be run.");
  }
}

export async function adminThresholdSign(
  ctx: ServerContext,
  services: AdminServices,
  peer: Peer,
  msg: MessageOf<"admin.threshold.sign">,
): Promise<void> {
  try {
    // Canonical and at most MAX_SIGN_MESSAGE_BYTES (the schema's BytesUpTo): it decodes.
    const message = fromBase64url(msg.message, "message");
    const record = await ctx.c.store.get(msg.keyId);
    if (!record) throw new DkeygenError(ErrorCodes.NOT_FOUND, `No key ${msg.keyId}.`);
    // The admin signs only with keys made for the admin; a requester's key signs for its owner.
    const result = await services.thresholdSign(record, message, ADMIN_OWNER);
    ctx.send(peer, {
      type: "admin.threshold.signature",
      v: PROTOCOL_VERSION,
      requestId: msg.requestId,
      keyId: record.id,
      signature: Buffer.from(result.signature).toString("hex"),
      signers: result.signers,
    });
  } catch (error) {
    commandFailed(ctx, peer, msg.requestId, error, "The message could not be signed.");
  }
}
