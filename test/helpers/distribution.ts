/** Fixtures for the distribution server: registered requesting clients and raw HTTP calls. */
import { createSecretKey, type KeyObject } from "node:crypto";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { RequesterClient } from "../../src/client/requester.js";
import {
  loadOrCreateRequesterKeys,
  saveCredential,
  writeRequesterConfig,
} from "../../src/client/requester-state.js";
import { Secret } from "../../src/crypto/secret.js";
import { deriveResponseKey } from "../../src/protocol/answer-auth.js";
import { addRequester } from "../../src/server/requesters.js";
import type { TestServer } from "./ceremony.js";

export interface TestRequester {
  name: string;
  /** The registration id (what records' owner and claims' requester hold). */
  id: string;
  client: RequesterClient;
  credential: string;
  dataDir: string;
  fingerprint: string;
}

/**
 * Makes a requester's key pair (in `requester-<name>`, or `requester-<name>-<folder>` for another
 * key under the same name), registers it with the server and returns a ready client.
 */
export async function registerTestRequester(
  server: TestServer,
  name: string,
  options: { folder?: string; replace?: boolean } = {},
): Promise<TestRequester> {
  const dataDir = join(
    server.root,
    options.folder === undefined ? `requester-${name}` : `requester-${name}-${options.folder}`,
  );
  const keys = await loadOrCreateRequesterKeys(dataDir);
  const pem = keys.publicKey.export({ type: "spki", format: "pem" }) as string;
  const { credential, id } = await addRequester(server.dataDir, name, pem, {
    replace: options.replace === true,
  });
  await saveCredential(dataDir, credential);
  await writeRequesterConfig(dataDir, { server: server.httpUrl! });
  const client = new RequesterClient({
    server: server.httpUrl!,
    credential: new Secret(new Uint8Array(Buffer.from(credential))),
    privateKey: keys.privateKey,
    fingerprint: keys.fingerprint,
    ...(server.ca === undefined ? {} : { ca: server.ca }),
  });
  return { name, id, client, credential, dataDir, fingerprint: keys.fingerprint };
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  /** The body exactly as received. */
  text: string;
}

/** A raw HTTP call, for what a well-behaved client would never send. */
export async function http(
  server: TestServer,
  method: string,
  path: string,
  options: { credential?: string; body?: string | object; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  const body =
    options.body === undefined
      ? undefined
      : typeof options.body === "string"
        ? options.body
        : JSON.stringify(options.body);
  const response = await fetch(`${server.httpUrl}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(options.credential ? { authorization: `Bearer ${options.credential}` } : {}),
      ...options.headers,
    },
    ...(body === undefined ? {} : { body }),
  });
  const text = await response.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { raw: text };
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

export interface RawConnection {
  socket: Socket;
  /** Everything the server has written so far. */
  answer(): string;
  /** Resolves when the connection is closed. */
  closed: Promise<void>;
}

/**
 * A plain TCP connection to the distribution server, for bytes no HTTP client would send (or
 * sends in one piece): collects what the server writes until the connection closes.
 */
export async function rawConnection(server: TestServer): Promise<RawConnection> {
  const { port } = new URL(server.httpUrl!);
  const socket = connect(Number(port), "127.0.0.1");
  let answer = "";
  socket.on("data", (d) => {
    answer += d;
  });
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  return { socket, answer: () => answer, closed };
}

/** The response key (PROTOCOL §12.8) of a credential `dkr_<name>.<secret>`, as a client has it. */
export function responseKeyOf(credential: string): KeyObject {
  const [, name, secret] = /^dkr_([^.]+)\.(.+)$/.exec(credential)!;
  return createSecretKey(deriveResponseKey(name!, secret!));
}
