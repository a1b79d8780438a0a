/**
 * `admin.opening` (docs/PROTOCOL.md §4, §15.6): the admin's record opening, for a record it owns
 * (owner "@admin", made by `dkeygen generate` without --for), sealed to the request's one-off
 * key like `admin.export` seals its export, under its own associated data (signed-data.ts
 * openingAad). It refuses exactly what `POST /v1/keys/{id}/opening` refuses a requester: a record
 * that is not the admin's (or no record), E_NOT_FOUND, the same either way; a threshold key, a
 * nonce record or a split multisig set, E_FORBIDDEN; a record whose round has no opening,
 * E_NOT_FOUND. `dkeygen audit record ID --admin` checks the answer.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { MessageOf } from "../protocol/messages.js";
import { openingAad } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import { revealKey, sealJsonTo } from "./admin-reveal.js";
import { commandFailed } from "./admin-session.js";
import { toPublicRecord } from "./public-record.js";
import { recordOpening } from "./round-opening.js";
import { ADMIN_OWNER, type Peer, type ServerContext } from "./server-context.js";
import { THRESHOLD_PURPOSE } from "./threshold-record.js";

export async function adminOpening(
  ctx: ServerContext,
  peer: Peer,
  msg: MessageOf<"admin.opening">,
): Promise<void> {
  try {
    const revealTo = revealKey(msg.revealTo);
    const record = await ctx.c.store.get(msg.recordId);
    // Ownership first, as over HTTP: a record that is not the admin's (a requester's, or a
    // multisig set split among holders) is answered as if it did not exist.
    if (!record || record.holders !== undefined || record.owner !== ADMIN_OWNER) {
      throw new DkeygenError(ErrorCodes.NOT_FOUND, "No such key was issued to the admin.");
    }
    if (record.purpose === THRESHOLD_PURPOSE) {
      throw new DkeygenError(
        ErrorCodes.FORBIDDEN,
        "A threshold key exists only as its holders' shares: it has no opening.",
      );
    }
    const payload = await recordOpening(ctx.c.store, record);
    const opening = sealJsonTo(
      revealTo,
      payload,
      openingAad(msg.requestId, record.id, ctx.fingerprint),
      ctx.c.random,
    );
    ctx.c.logger.info(
      { recordId: record.id, purpose: record.purpose },
      "record opening sent to the admin, sealed to its one-off key",
    );
    ctx.send(peer, {
      type: "admin.opening.result",
      v: PROTOCOL_VERSION,
      requestId: msg.requestId,
      record: toPublicRecord(record, record.owner, record.holders),
      opening,
    });
  } catch (error) {
    commandFailed(ctx, peer, msg.requestId, error, "The record's opening could not be sent.");
  }
}
