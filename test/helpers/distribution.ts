/** Fixtures for the distribution server: registered requesting clients and raw HTTP calls. */
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { RequesterClient } from "../../src/client/requester.js";
import {
  loadOrCreateRequesterKeys,
  saveCredential,
  writeRequesterConfig,
} from "../../src/client/requester-state.js";
import { Secret } from "../../src/crypto/secret.js";
import { addRequester } from "../../src/server/requesters.js";
import type { TestServer } from "./ceremony.js";

export interface TestRequester {
  name: string;
  client: RequesterClient;
  credential: string;
  dataDir: string;
  fingerprint: string;
}

/** Makes a requester's key pair, registers it with the server and returns a ready client. */
export async function registerTestRequester(
  server: TestServer,
  name: string,
): Promise<TestRequester> {
  const dataDir = join(server.root, `requester-${name}`);
  const keys = await loadOrCreateRequesterKeys(dataDir);
  const pem = keys.publicKey.export({ type: "spki", format: "pem" }) as string;
  const { credential } = await addRequester(server.dataDir, name, pem);
  await saveCredential(dataDir, credential);
  await writeRequesterConfig(dataDir, { server: server.httpUrl! });
  const client = new RequesterClient({
    server: server.httpUrl!,
    credential: new Secret(new Uint8Array(Buffer.from(credential))),
    privateKey: keys.privateKey,
    fingerprint: keys.fingerprint,
    ...(server.ca === undefined ? {} : { ca: server.ca }),
  });
  return { name, client, credential, dataDir, fingerprint: keys.fingerprint };
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
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
  return { status: response.status, headers: response.headers, body: parsed };
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
