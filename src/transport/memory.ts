/**
 * An in-memory transport for tests: two linked connections in one process, delivering frames
 * asynchronously and in order, with the same close semantics as the WebSocket transport.
 */
import { CloseCodes, type CloseInfo, type Connection, type Listener } from "./types.js";

class MemoryConnection implements Connection {
  readonly remote: string;
  peer: MemoryConnection | undefined;
  /** This end may still send (false once either end closed). */
  #open = true;
  /** This end still delivers frames and has not yet reported its close. */
  #live = true;
  readonly #frameHandlers: ((frame: Buffer) => void)[] = [];
  readonly #closeHandlers: ((info: CloseInfo) => void)[] = [];

  constructor(remote: string) {
    this.remote = remote;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  send(frame: string): void {
    const peer = this.peer;
    if (!this.#open || !peer) return;
    const bytes = Buffer.from(frame, "utf8");
    setImmediate(() => {
      if (peer.#live) for (const handler of peer.#frameHandlers) handler(bytes);
    });
  }

  /**
   * Closes both ends. Like a WebSocket closing handshake, frames sent before the close still
   * arrive first (deliveries are queued in order), then both ends report the close.
   */
  close(code: number = CloseCodes.NORMAL, reason = ""): void {
    if (!this.#open) return;
    const peer = this.peer;
    this.#open = false;
    if (peer) peer.#open = false;
    setImmediate(() => {
      this.#shut({ code, reason });
      if (peer) peer.#shut({ code, reason });
    });
  }

  #shut(info: CloseInfo): void {
    if (!this.#live) return;
    this.#live = false;
    this.#open = false;
    for (const handler of this.#closeHandlers) handler(info);
  }

  onFrame(handler: (frame: Buffer) => void): void {
    this.#frameHandlers.push(handler);
  }

  onClose(handler: (info: CloseInfo) => void): void {
    this.#closeHandlers.push(handler);
  }

  onError(): void {}
}

/** A listener that peers reach with `connect()` instead of a socket. */
export class MemoryListener implements Listener {
  readonly url = "memory://dkeygen";
  #count = 0;
  readonly #handlers: ((connection: Connection) => void)[] = [];
  readonly #live = new Set<MemoryConnection>();

  onConnection(handler: (connection: Connection) => void): void {
    this.#handlers.push(handler);
  }

  /** Opens a connection; returns the client's end. */
  connect(): Connection {
    const n = ++this.#count;
    const client = new MemoryConnection(`server#${n}`);
    const server = new MemoryConnection(`memory#${n}`);
    client.peer = server;
    server.peer = client;
    this.#live.add(server);
    server.onClose(() => this.#live.delete(server));
    for (const handler of this.#handlers) handler(server);
    return client;
  }

  async close(): Promise<void> {
    for (const connection of this.#live) connection.close(CloseCodes.GOING_AWAY, "server stopping");
  }
}
