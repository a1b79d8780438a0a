/**
 * The admin session after admin.ready: every message arrives in an `admin.frame` (sequence
 * number + MAC under the session key, protocol/admin-channel.ts) and every answer leaves in one.
 * One function per command:
 *
 *   admin.generate   runs a round (optionally for a registered requester) and answers with the
 *                    record's public part, and with its secret part sealed to a one-off key when
 *                    the request names one (`revealTo`)
 *   admin.status     contributors connected, enrolled, rounds running, the key store's head
 *   admin.export     a record's derivation secret and parameters, sealed to a one-off key, to
 *                    re-derive it for audit (derivation-export.ts; a nonce record's: refused)
 *   admin.opening    an admin-owned record's opening, sealed to a one-off key, for
 *                    `dkeygen audit record --admin` (admin-opening.ts)
 *   admin.threshold.keygen, .refresh, .recover, .sign
 *                    a threshold key's sessions: admin-threshold-commands.ts
 *
 * A frame that fails its check ends the session (its integrity is gone); a command that fails
 * gets an `error` with its requestId and the session goes on.
 */
import { multisig } from "../derive/multisig.js";
import { DkeygenError, ErrorCodes, isDkeygenError } from "../errors.js";
import type { EnvelopeWire, MessageOf } from "../protocol/messages.js";
import { exportAad, revealAad } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import { adminOpening } from "./admin-opening.js";
import { revealKey, sealJsonTo } from "./admin-reveal.js";
import { type AdminServices, commandFailed, ownerId } from "./admin-session.js";
import {
  adminThresholdKeygen,
  adminThresholdRecover,
  adminThresholdRefresh,
  adminThresholdSign,
} from "./admin-threshold-commands.js";
import { derivationExport } from "./derivation-export.js";
import { toPublicRecord } from "./public-record.js";
import { ADMIN_OWNER, type Peer, type ServerContext } from "./server-context.js";
import { readStoredSecret } from "./stored-secret.js";

export function handleAdminFrame(
  ctx: ServerContext,
  services: AdminServices,
  peer: Peer,
  frame: MessageOf<"admin.frame">,
): void | Promise<void> {
  let inner: ReturnType<NonNullable<Peer["admin"]>["open"]>;
  try {
    inner = peer.admin!.open(frame);
  } catch (error) {
    const integrity = isDkeygenError(error, ErrorCodes.BAD_SIGNATURE);
    // An authentic body that is no valid command: answered with its requestId when it has a
    // readable one, so an admin with several requests open knows which one failed.
    const requestId = integrity ? undefined : readableRequestId(frame.body);
    ctx.reject(peer, error, requestId === undefined ? {} : { requestId }, integrity);
    return;
  }
  if (inner.type === "admin.generate") return adminGenerate(ctx, services, peer, inner);
  if (inner.type === "admin.status") return adminStatus(ctx, services, peer, inner);
  if (inner.type === "admin.export") return adminExport(ctx, peer, inner);
  if (inner.type === "admin.opening") return adminOpening(ctx, peer, inner);
  if (inner.type === "admin.threshold.keygen")
    return adminThresholdKeygen(ctx, services, peer, inner);
  if (inner.type === "admin.threshold.sign") return adminThresholdSign(ctx, services, peer, inner);
  if (inner.type === "admin.threshold.refresh") {
    return adminThresholdRefresh(ctx, services, peer, inner);
  }
  if (inner.type === "admin.threshold.recover") {
    return adminThresholdRecover(ctx, services, peer, inner);
  }
  // admin-channel.ts lets only those eight through towards the server.
  throw new DkeygenError(ErrorCodes.UNEXPECTED_MESSAGE, `Unexpected ${inner.type} message.`);
}

async function adminGenerate(
  ctx: ServerContext,
  services: AdminServices,
  peer: Peer,
  msg: MessageOf<"admin.generate">,
): Promise<void> {
  try {
    const revealTo = msg.revealTo === undefined ? undefined : revealKey(msg.revealTo);
    const split = msg.holders === undefined ? undefined : await splitSet(ctx, msg);
    const owner = msg.owner === undefined ? ADMIN_OWNER : await ownerId(ctx, msg.owner);
    const record = await services.runRound({
      purpose: msg.purpose,
      params: split?.params ?? msg.params,
      owner,
      ...(split === undefined ? {} : { holders: split.holders }),
    });
    let secret: EnvelopeWire | undefined;
    if (revealTo) {
      const { output } = await readStoredSecret(ctx.c.store, record.id);
      secret = sealJsonTo(
        revealTo,
        output,
        revealAad(msg.requestId, record.id, ctx.fingerprint),
        ctx.c.random,
      );
      ctx.c.logger.info(
        { recordId: record.id },
        "secret part revealed to the admin, sealed to its one-off key",
      );
    }
    ctx.send(peer, {
      type: "admin.round",
      v: PROTOCOL_VERSION,
      requestId: msg.requestId,
      record: toPublicRecord(record, record.owner, record.holders),
      ...(secret === undefined ? {} : { secret }),
    });
  } catch (error) {
    commandFailed(ctx, peer, msg.requestId, error, "The round could not be completed.");
  }
}

/** Seals record `msg.recordId`'s derivation export to the request's one-off key. */
async function adminExport(
  ctx: ServerContext,
  peer: Peer,
  msg: MessageOf<"admin.export">,
): Promise<void> {
  try {
    const revealTo = revealKey(msg.revealTo);
    const record = await ctx.c.store.get(msg.recordId);
    if (!record) throw new DkeygenError(ErrorCodes.NOT_FOUND, `No record ${msg.recordId}.`);
    const payload = await derivationExport(ctx.c.store, record);
    const secret = sealJsonTo(
      revealTo,
      payload,
      exportAad(msg.requestId, record.id, ctx.fingerprint),
      ctx.c.random,
    );
    ctx.c.logger.info(
      { recordId: record.id, purpose: record.purpose },
      "derivation secret exported to the admin, sealed to its one-off key",
    );
    ctx.send(peer, {
      type: "admin.export.result",
      v: PROTOCOL_VERSION,
      requestId: msg.requestId,
      record: toPublicRecord(record, record.owner, record.holders),
      secret,
    });
  } catch (error) {
    commandFailed(ctx, peer, msg.requestId, error, "The derivation secret could not be exported.");
  }
}

/**
 * `admin.generate` with `holders` (`dkeygen generate multisig --holders a,b,c`): a multisig set
 * whose key i is for `holders[i]` alone. Checks the request and gives the parameters with `n`
 * defaulting to the number of holders, and the holders' registration ids. No owner and no
 * `revealTo`: either would hand one party every key, which is what splitting the set prevents.
 */
async function splitSet(
  ctx: ServerContext,
  msg: MessageOf<"admin.generate">,
): Promise<{ params: Record<string, unknown>; holders: string[] }> {
  const names = msg.holders!;
  const refuse = (message: string) => new DkeygenError(ErrorCodes.INVALID_INPUT, message);
  if (msg.purpose !== "multisig") {
    throw refuse(`Only a multisig set is split among holders; ${msg.purpose} takes no holders.`);
  }
  if (msg.owner !== undefined) {
    throw refuse("A multisig set split among holders has no one owner: name holders or an owner.");
  }
  if (msg.revealTo !== undefined) {
    throw refuse(
      "A multisig set split among holders is not revealed to the admin: each holder fetches its own key.",
    );
  }
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated !== undefined) throw refuse(`Holder ${repeated} is named twice.`);
  const params = { ...msg.params, n: msg.params.n ?? names.length };
  const { n } = multisig.parseParams(params);
  if (n !== names.length) {
    throw refuse(`A set of ${n} keys needs ${n} holders; ${names.length} were named.`);
  }
  const holders: string[] = [];
  for (const name of names) holders.push(await ownerId(ctx, name));
  return { params, holders };
}

function adminStatus(
  ctx: ServerContext,
  services: AdminServices,
  peer: Peer,
  msg: MessageOf<"admin.status">,
): void {
  const chain = (ctx.c.store as { chain?: { lines: number; head: string } }).chain;
  ctx.send(peer, {
    type: "admin.status.result",
    v: PROTOCOL_VERSION,
    requestId: msg.requestId,
    contributors: services.connectedContributors,
    enrolled: ctx.c.registry.size,
    roundsRunning: services.roundsRunning,
    store: {
      kind: ctx.c.store.kind,
      ...(chain === undefined ? {} : { lines: chain.lines, head: chain.head }),
    },
  });
}

/** The `requestId` of a JSON body, if it has one of the wire's form (else undefined). */
function readableRequestId(body: string): string | undefined {
  try {
    const value = JSON.parse(body) as { requestId?: unknown };
    const id = value?.requestId;
    return typeof id === "string" && /^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}
