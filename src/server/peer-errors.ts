/**
 * The key generation server's error path: what a peer gets whose message was rejected (an `error`
 * reply, a log line, a disconnect once it keeps erring or its session's integrity is gone), or
 * whose handshake was refused; and the guard every message handler runs in, so that whatever a
 * handler throws, synchronously or as a rejection, takes that path.
 */
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import { CloseCodes } from "../transport/types.js";
import type { Peer, RejectContext, ServerContext } from "./server-context.js";

/** Answers a rejected message with an `error`, logs it, and closes the session if fatal. */
export function rejectPeer(
  ctx: Pick<ServerContext, "c" | "send">,
  peer: Peer,
  error: unknown,
  context: RejectContext = {},
  integrity = false,
): void {
  if (!isDkeygenError(error)) {
    // Our own bug, not the peer's fault: log it loudly and answer without details.
    ctx.c.logger.error(
      { remote: peer.connection.remote, err: describeError(error) },
      "internal error",
    );
    error = new DkeygenError(ErrorCodes.OPERATIONAL, "The server could not process the message.");
  }
  const e = error as DkeygenError;
  const { fatal } = peer.machine.reject(e.code, integrity);
  ctx.c.logger.warn(
    {
      remote: peer.connection.remote,
      contributorId: peer.contributorId,
      code: e.code,
      ...context,
    },
    `rejected: ${e.message}`,
  );
  ctx.send(peer, {
    type: "error",
    v: PROTOCOL_VERSION,
    code: e.code,
    message: e.message,
    fatal,
    ...(context.roundId === undefined ? {} : { roundId: context.roundId }),
    ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
  });
  if (fatal) closePeer(peer, CloseCodes.PROTOCOL_ERROR, e.code);
}

/** Refuses a peer outright (a failed handshake): error, log, event, close. */
export function refusePeer(
  ctx: Pick<ServerContext, "c" | "send" | "emit">,
  peer: Peer,
  error: DkeygenError,
): void {
  ctx.c.logger.warn(
    { remote: peer.connection.remote, code: error.code },
    `refused: ${error.message}`,
  );
  ctx.emit({
    type: "peer.rejected",
    remote: peer.connection.remote,
    code: error.code,
    message: error.message,
  });
  ctx.send(peer, {
    type: "error",
    v: PROTOCOL_VERSION,
    code: error.code,
    message: error.message,
    fatal: true,
  });
  closePeer(peer, CloseCodes.REFUSED, error.code);
}

/** Ends a peer's session and closes its connection with `code`. */
export function closePeer(peer: Peer, code: number, reason: string): void {
  if (peer.machine.state !== "closed") peer.machine.transition("closed");
  peer.connection.close(code, reason);
}

/**
 * The one place a peer's message is handled: whatever `work` throws, synchronously or as a
 * rejection, goes to the peer's error path (an `error` reply, a log line, maybe a disconnect).
 * Every handler runs through here, so no message can leave a promise rejected unhandled.
 */
export function guard(
  ctx: Pick<ServerContext, "c" | "reject">,
  peer: Peer,
  work: () => void | Promise<void>,
): void {
  let pending: void | Promise<void>;
  try {
    pending = work();
  } catch (error) {
    rejectSafely(ctx, peer, error);
    return;
  }
  if (pending instanceof Promise) {
    pending.catch((error: unknown) => rejectSafely(ctx, peer, error));
  }
}

function rejectSafely(ctx: Pick<ServerContext, "c" | "reject">, peer: Peer, error: unknown): void {
  if (peer.machine.state === "closed") return;
  try {
    ctx.reject(peer, error);
  } catch (failure) {
    // Answering failed too: nothing is left to tell the peer.
    ctx.c.logger.error(
      { remote: peer.connection.remote, err: describeError(failure) },
      "internal error while rejecting a message",
    );
  }
}
