/**
 * WebSocket transport (RFC 6455) on the `ws` library, over TLS (wss://, tls.ts) when the listener
 * is given a certificate. The frame size limit is enforced by `ws` while reading (maxPayload),
 * before a frame is buffered whole or parsed. The server pings every connection each heartbeat
 * interval and drops one that has not answered the previous ping; a client drops a server that
 * has gone silent for two and a half intervals.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { MAX_FRAME_BYTES } from "../protocol/version.js";
import {
  plainToTlsHint,
  type TlsServerOptions,
  tlsClientSettings,
  tlsFailure,
  tlsServerSettings,
} from "./tls.js";
import { CloseCodes, type CloseInfo, type Connection, type Listener } from "./types.js";

class WsConnection implements Connection {
  readonly remote: string;
  readonly #socket: WebSocket;
  alive = true;
  readonly #frameHandlers: ((frame: Buffer) => void)[] = [];
  readonly #closeHandlers: ((info: CloseInfo) => void)[] = [];
  readonly #errorHandlers: ((error: Error) => void)[] = [];
  /** Frames that arrived before anyone listened (the first frame can come with the handshake). */
  #early: Buffer[] | undefined = [];
  #closed: CloseInfo | undefined;

  constructor(socket: WebSocket, remote: string) {
    this.#socket = socket;
    this.remote = remote;
    socket.on("pong", () => {
      this.alive = true;
    });
    socket.on("message", (data) => {
      const frame = Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.isBuffer(data)
          ? data
          : Buffer.from(data as ArrayBuffer);
      if (this.#early) this.#early.push(frame);
      else for (const handler of this.#frameHandlers) handler(frame);
    });
    socket.on("close", (code, reason) => {
      this.#closed = { code, reason: reason.toString("utf8") };
      for (const handler of this.#closeHandlers) handler(this.#closed);
    });
    socket.on("error", (error) => {
      for (const handler of this.#errorHandlers) handler(error);
    });
  }

  get socket(): WebSocket {
    return this.#socket;
  }

  get isOpen(): boolean {
    return this.#socket.readyState === WebSocket.OPEN;
  }

  send(frame: string): void {
    if (this.isOpen) this.#socket.send(frame);
  }

  close(code: number = CloseCodes.NORMAL, reason = ""): void {
    if (this.#socket.readyState === WebSocket.CLOSED) return;
    this.#socket.close(code, reason.slice(0, 120));
    // A peer that never completes the closing handshake is cut off.
    setTimeout(() => this.#socket.terminate(), 2000).unref();
  }

  terminate(): void {
    this.#socket.terminate();
  }

  onFrame(handler: (frame: Buffer) => void): void {
    this.#frameHandlers.push(handler);
    const early = this.#early;
    if (early) {
      this.#early = undefined;
      for (const frame of early) handler(frame);
    }
  }

  onClose(handler: (info: CloseInfo) => void): void {
    this.#closeHandlers.push(handler);
    const closed = this.#closed;
    if (closed) setImmediate(() => handler(closed));
  }

  onError(handler: (error: Error) => void): void {
    this.#errorHandlers.push(handler);
  }
}

export interface WsListenOptions {
  host: string;
  port: number;
  heartbeatMs: number;
  /** Serve wss:// with this certificate and key; plain ws:// without. */
  tls?: TlsServerOptions;
  /** Told of each TLS handshake that failed (a client that does not trust us, a plain client). */
  onTlsError?: (error: Error, remote: string) => void;
}

/** What a request that is not a WebSocket upgrade gets (as `ws` answers on its own server). */
function upgradeRequired(_request: IncomingMessage, response: ServerResponse): void {
  const body = STATUS_CODES[426]!;
  response.writeHead(426, { "Content-Length": body.length, "Content-Type": "text/plain" });
  response.end(body);
}

/** Listens for WebSocket connections; resolves once the port is bound. */
export async function listenWs(options: WsListenOptions): Promise<Listener> {
  const http: Server = options.tls
    ? createHttpsServer(tlsServerSettings(options.tls), upgradeRequired)
    : createHttpServer(upgradeRequired);
  if (options.tls) {
    http.on("tlsClientError", (error: Error, socket: Socket) =>
      options.onTlsError?.(error, `${socket.remoteAddress}:${socket.remotePort}`),
    );
  }
  const server = new WebSocketServer({
    server: http,
    maxPayload: MAX_FRAME_BYTES,
    perMessageDeflate: false,
    clientTracking: false,
  });
  await new Promise<void>((resolve, reject) => {
    http.once("listening", resolve);
    // `ws` re-emits the HTTP server's errors on the WebSocket server (and throws if none listens).
    server.once("error", reject);
    http.listen(options.port, options.host);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const connections = new Set<WsConnection>();
  const handlers: ((c: Connection) => void)[] = [];

  server.on("connection", (socket, request) => {
    const remote = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
    const connection = new WsConnection(socket, remote);
    connections.add(connection);
    socket.on("close", () => connections.delete(connection));
    for (const handler of handlers) handler(connection);
  });

  const heartbeat = setInterval(() => {
    for (const connection of connections) {
      if (!connection.alive) {
        connection.terminate();
        continue;
      }
      connection.alive = false;
      connection.socket.ping();
    }
  }, options.heartbeatMs);
  heartbeat.unref();

  return {
    url: `${options.tls ? "wss" : "ws"}://${host}:${address.port}`,
    onConnection(handler) {
      handlers.push(handler);
    },
    async close() {
      clearInterval(heartbeat);
      for (const connection of connections)
        connection.close(CloseCodes.GOING_AWAY, "server stopping");
      server.close();
      // Resolves once every connection has ended (peers answer the close, or are cut off).
      await new Promise<void>((resolve) => http.close(() => resolve()));
      for (const connection of connections) connection.terminate();
    },
  };
}

export interface WsDialOptions {
  /** Give up connecting after this long. */
  timeoutMs?: number;
  /** The largest frame accepted from the server (default MAX_FRAME_BYTES). */
  maxPayload?: number;
  /** wss:// only: trust only these CA certificates (PEM) instead of the system's. */
  ca?: string;
}

/**
 * Connects to a WebSocket server. The returned connection is silent-server aware once
 * `watchHeartbeat(intervalMs)` is called with the interval the server announced.
 */
export async function dialWs(
  url: string,
  options: WsDialOptions = {},
): Promise<Connection & { watchHeartbeat(intervalMs: number): void }> {
  const socket = new WebSocket(url, {
    maxPayload: options.maxPayload ?? MAX_FRAME_BYTES,
    perMessageDeflate: false,
    handshakeTimeout: options.timeoutMs ?? 10_000,
    ...(url.startsWith("wss:") ? tlsClientSettings(options.ca) : {}),
  });
  // Listen before the handshake completes: the server's first frame can arrive with it.
  const connection = new WsConnection(socket, url);
  await new Promise<void>((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", (error) =>
      reject(tlsFailure(error, url) ?? plainToTlsHint(error, url) ?? error),
    );
    socket.once("unexpected-response", (_request, response) =>
      reject(
        Object.assign(
          new Error(`${url} answered HTTP ${response.statusCode}, not a WebSocket upgrade`),
          { statusCode: response.statusCode },
        ),
      ),
    );
  });
  let watchdog: NodeJS.Timeout | undefined;
  socket.on("close", () => clearTimeout(watchdog));
  return Object.assign(connection, {
    watchHeartbeat(intervalMs: number) {
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => socket.terminate(), intervalMs * 2.5);
        watchdog.unref();
      };
      socket.on("ping", arm);
      socket.on("message", arm);
      arm();
    },
  });
}
