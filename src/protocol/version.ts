/** Protocol constants shared by every peer. docs/PROTOCOL.md §"Framing" is their specification. */

/** The wire protocol version, carried as `v` in every message and bound into every signature. */
export const PROTOCOL_VERSION = 4;

/** No frame a peer sends the server may exceed this many bytes; it is checked before any parsing. */
export const MAX_FRAME_BYTES = 64 * 1024;

/**
 * No frame the server sends a contributor may exceed this many bytes: a `log.checkpoint` carries
 * round entries (≈ 100 KiB for 256 contributors). Peer → server frames stay at MAX_FRAME_BYTES.
 */
export const MAX_SERVER_FRAME_BYTES = 2 * 1024 * 1024;

/** How long a peer has after connecting to authenticate (join or admin.auth). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** The server pings every connection this often; a peer that misses two pings is dropped. */
export const HEARTBEAT_INTERVAL_MS = 15_000;

/** Size of the server's per-connection challenge and of a seed phrase, in bytes. */
export const CHALLENGE_BYTES = 32;
export const SEED_PHRASE_BYTES = 32;
