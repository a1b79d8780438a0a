/**
 * Transport interfaces: a message-oriented, ordered, bidirectional connection. The server and
 * clients depend only on these; `ws.ts` implements them over WebSocket (RFC 6455) and
 * `memory.ts` in memory for tests.
 */

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface Connection {
  /** The peer's address, for logs ("127.0.0.1:53122", "memory#3"). */
  readonly remote: string;
  readonly isOpen: boolean;
  /** Sends one frame. Frames sent after close are dropped. */
  send(frame: string): void;
  close(code?: number, reason?: string): void;
  onFrame(handler: (frame: Buffer) => void): void;
  onClose(handler: (info: CloseInfo) => void): void;
  /** Transport-level faults (oversized frame, protocol violation, socket error). */
  onError(handler: (error: Error) => void): void;
}

export interface Listener {
  /** Where peers connect, e.g. "ws://127.0.0.1:7420". */
  readonly url: string;
  onConnection(handler: (connection: Connection) => void): void;
  close(): Promise<void>;
}

/** Close codes used by dkeygen (RFC 6455 §7.4; 4000–4999 are for applications). */
export const CloseCodes = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_BIG: 1009,
  PROTOCOL_ERROR: 4000,
  HANDSHAKE_TIMEOUT: 4001,
  REFUSED: 4003,
  HEARTBEAT_TIMEOUT: 4008,
} as const;
