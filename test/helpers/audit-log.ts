/**
 * Fixtures for auditing the transparency log: rounds a raw peer takes part in (completing, or
 * withholding its reveal so the round aborts naming it), the log as the server holds it, a
 * checkpoint signed with the server's real log key over any leaves (what a lying server can sign),
 * and a tiny HTTP server that proxies the real distribution server's log routes, changing what a
 * test says.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isDkeygenError } from "../../src/errors.js";
import type { MessageOf } from "../../src/protocol/messages.js";
import type { LogIdentity } from "../../src/server/transparency-log.js";
import {
  deriveLogSecretKey,
  logOriginOf,
  STORE_HEAD_EXTENSION,
} from "../../src/server/transparency-log.js";
import { signCheckpoint } from "../../src/tlog/checkpoint.js";
import { hashLeaf, rootOf } from "../../src/tlog/merkle.js";
import { ed25519NoteSigner } from "../../src/tlog/note-keys.js";
import { buildContribution, commitAndReveal, type RawPeer, type TestServer } from "./ceremony.js";

/** One round asked by the admin, in which `peer` takes part as `act` says. */
export async function roundWith(
  server: TestServer,
  peer: RawPeer,
  act: (open: MessageOf<"round.open">) => Promise<void>,
): Promise<unknown> {
  const admin = await server.admin();
  const pending = admin.generate("totp", {});
  pending.catch(() => {});
  try {
    const open = await peer.next("round.open", 10_000);
    await act(open);
    return await pending;
  } catch (error) {
    return error;
  } finally {
    admin.close();
  }
}

/** A round that completes with `peer`'s contribution. */
export async function completedRound(server: TestServer, peer: RawPeer): Promise<void> {
  const result = await roundWith(server, peer, async (open) => {
    await commitAndReveal(peer, open);
  });
  if (result instanceof Error) throw result;
}

/** A round `peer` commits to and then withholds its reveal from: it aborts, naming `peer`. */
export async function abortedRound(server: TestServer, peer: RawPeer): Promise<void> {
  const result = await roundWith(server, peer, async (open) => {
    peer.send(buildContribution(peer, open).commit);
    await peer.next("round.commits", 10_000, open.roundId);
  });
  if (!isDkeygenError(result, "E_ROUND_ABORTED")) {
    throw new Error(`the round did not abort: ${String(result)}`);
  }
}

/** The log as the server holds it now: identity, checkpoint note, leaves. */
export async function logOf(
  server: TestServer,
): Promise<{ identity: LogIdentity; checkpoint: string; leaves: Uint8Array[] }> {
  const log = server.server.log;
  await log.ready();
  const checkpoint = await log.checkpoint();
  const size = Number(checkpoint.split("\n")[1]);
  return { identity: log.identity(), checkpoint, leaves: await log.entries(0, size) };
}

/**
 * A checkpoint over `leaves` signed with the server's real log key (derived from its RSA key as
 * the server derives it): what a server that lies about its log can publish. `root` overrides
 * the root (a fork at the same size).
 */
export function signedCheckpoint(
  server: TestServer,
  leaves: readonly Uint8Array[],
  options: { root?: Uint8Array; size?: number } = {},
): string {
  const identity = server.server.c.identity;
  const origin = logOriginOf(identity.fingerprint);
  const signer = ed25519NoteSigner(origin, deriveLogSecretKey(identity.privateKey));
  return signCheckpoint(
    {
      origin,
      size: options.size ?? leaves.length,
      rootHash: options.root ?? rootOf(leaves.map(hashLeaf)),
      extensions: [`${STORE_HEAD_EXTENSION} 1 ${"0".repeat(64)}`],
    },
    signer,
  );
}

/** A changed view of the log: a route's path (without query) and what it answers instead. */
export interface LogView {
  /** The leaves served by /v1/log/entries (else the real server's). */
  leaves?: readonly Uint8Array[];
  /** The note served by /v1/log/checkpoint (else the real server's). */
  checkpoint?: string;
  /** Changes the real answer's body of any route (after `leaves` and `checkpoint`). */
  rewrite?: (path: string, body: string) => string;
}

/**
 * An HTTP server in front of the real distribution server: every GET is forwarded, and its answer
 * changed as `view` says. Returns its URL and a function that stops it.
 */
export async function logProxy(
  target: string,
  view: LogView,
): Promise<{ url: string; close: () => Promise<void> }> {
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? "/", "http://proxy");
    let status = 200;
    let type = "application/json; charset=utf-8";
    let body: string;
    if (url.pathname === "/v1/log/entries" && view.leaves !== undefined) {
      const start = Number(url.searchParams.get("start"));
      const end = Math.min(Number(url.searchParams.get("end")), start + 1000, view.leaves.length);
      const entries = view.leaves.slice(start, Math.max(start, end)).map((leaf, i) => {
        let entry: unknown = null;
        try {
          entry = JSON.parse(Buffer.from(leaf).toString("utf8"));
        } catch {
          // a leaf that is not JSON has no parse to show
        }
        return { index: start + i, leaf: Buffer.from(leaf).toString("base64"), entry };
      });
      body = JSON.stringify({ size: view.leaves.length, entries });
    } else if (url.pathname === "/v1/log/checkpoint" && view.checkpoint !== undefined) {
      type = "text/plain; charset=utf-8";
      body = view.checkpoint;
    } else {
      const real = await fetch(`${target}${url.pathname}${url.search}`);
      status = real.status;
      type = real.headers.get("content-type") ?? type;
      body = await real.text();
    }
    if (view.rewrite) body = view.rewrite(url.pathname, body);
    response.writeHead(status, { "content-type": type });
    response.end(body);
  };
  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500);
      response.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A leaf with one field of its entry changed (still canonical JSON: the keys keep their order). */
export function changedLeaf(leaf: Uint8Array, change: (entry: Record<string, unknown>) => void) {
  const entry = JSON.parse(Buffer.from(leaf).toString("utf8")) as Record<string, unknown>;
  change(entry);
  return new Uint8Array(Buffer.from(JSON.stringify(entry)));
}
