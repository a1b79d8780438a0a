/**
 * The one registry of dkeygen's errors. Every error the product raises on purpose is a
 * `DkeygenError` with a stable `code`; the code decides the CLI exit status and the HTTP status
 * (see `exitCodeFor` / `httpStatusFor`), and docs/PROTOCOL.md lists the wire-visible ones.
 *
 * Messages are full sentences meant for humans. They never contain secret material: callers pass
 * identifiers (round id, contributor id, fingerprints), never keys, phrases or plaintexts.
 */

/** Stable error codes. Never renumber or rename one that has shipped; add new ones at the end. */
export const ErrorCodes = {
  /** A command line that does not parse or asks for something impossible. */
  USAGE: "E_USAGE",
  /** Input from a file or argument that is not what it must be (bad hex, bad PEM, ...). */
  INVALID_INPUT: "E_INVALID_INPUT",
  /** A wire frame larger than the protocol allows; rejected before parsing. */
  FRAME_TOO_LARGE: "E_FRAME_TOO_LARGE",
  /** A wire frame that is not JSON, or not one of the protocol's messages. */
  MALFORMED_MESSAGE: "E_MALFORMED_MESSAGE",
  /** A message the peer may not send in the connection's current state. */
  UNEXPECTED_MESSAGE: "E_UNEXPECTED_MESSAGE",
  /** The peer speaks another protocol version. */
  VERSION_MISMATCH: "E_VERSION_MISMATCH",
  /** A contributor that is not enrolled, or an enrollment token that is unknown, used or expired. */
  NOT_ENROLLED: "E_NOT_ENROLLED",
  /** Admin access refused. */
  UNAUTHORIZED: "E_UNAUTHORIZED",
  /** A signature or MAC that does not verify (a join, a contribution, an admin frame, a proof). */
  BAD_SIGNATURE: "E_BAD_SIGNATURE",
  /** A ciphertext that does not decrypt. Deliberately says nothing about why. */
  DECRYPTION_FAILED: "E_DECRYPTION_FAILED",
  /** A contribution for a round that is unknown, closed, or not addressed to its sender. */
  WRONG_ROUND: "E_WRONG_ROUND",
  /** A second contribution from the same contributor to the same round. */
  DUPLICATE_CONTRIBUTION: "E_DUPLICATE_CONTRIBUTION",
  /** A contribution that arrived after its round's deadline. */
  LATE_CONTRIBUTION: "E_LATE_CONTRIBUTION",
  /** A round that ended with fewer accepted contributions than the quorum. */
  QUORUM_NOT_MET: "E_QUORUM_NOT_MET",
  /** A commit or reveal for a round that is in its other phase (a reveal before the commit set). */
  WRONG_PHASE: "E_WRONG_PHASE",
  /**
   * A reveal that does not match what was committed: its envelope's hash is not the sender's
   * commitment, or the commit set it countersigns is not the one the server sent.
   */
  COMMITMENT_MISMATCH: "E_COMMITMENT_MISMATCH",
  /** A round aborted because a committed contributor did not reveal; the culprits are named. */
  ROUND_ABORTED: "E_ROUND_ABORTED",
  /** The server's key is not the one this client pinned. */
  PIN_MISMATCH: "E_PIN_MISMATCH",
  /** A key store that cannot be opened or written safely. */
  STORE_CORRUPT: "E_STORE_CORRUPT",
  /** A record id that the store does not hold. */
  NOT_FOUND: "E_NOT_FOUND",
  /** A peer that did not answer in time. */
  TIMEOUT: "E_TIMEOUT",
  /** The server is busy (a round is running, the pool is empty, ...); retry later. */
  UNAVAILABLE: "E_UNAVAILABLE",
  /** A failure of the machine or of a dependency: disk, network, OS. */
  OPERATIONAL: "E_OPERATIONAL",
  /** A passphrase-protected key file opened without (or with the wrong) passphrase. */
  KEY_LOCKED: "E_KEY_LOCKED",
  /** Too many failed verifications for a subject: it is locked until unlocked or the lock expires. */
  LOCKED: "E_LOCKED",
  /** Too many requests from one credential or address; retry after the indicated time. */
  RATE_LIMITED: "E_RATE_LIMITED",
  /** An HTTP request body over the size limit. */
  PAYLOAD_TOO_LARGE: "E_PAYLOAD_TOO_LARGE",
  /**
   * A TLS handshake that failed: the server's certificate is not trusted (unknown CA, wrong name,
   * expired), or client and server share no TLS version, or one side does not speak TLS.
   */
  TLS: "E_TLS",
  /**
   * An answer from the distribution server whose MAC is missing or does not verify (forged,
   * altered, meant for another request, or from a registration without a response key). Raised
   * by the requesting client; never sent by the server.
   */
  ANSWER_NOT_AUTHENTIC: "E_ANSWER_NOT_AUTHENTIC",
  /**
   * A two-factor enrollment for an account that already has one (or one in progress), asked
   * without `replace`.
   */
  ALREADY_ENROLLED: "E_ALREADY_ENROLLED",
  /**
   * A request refused to everyone, the record's owner and the admin included: what it asks for
   * never leaves the server (a nonce record's derivation secret, PROTOCOL §9.1).
   */
  FORBIDDEN: "E_FORBIDDEN",
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface DkeygenErrorOptions {
  /** Who is to blame, when a peer misbehaved: a contributor id, a requester name, an address. */
  culprit?: string;
  /** For E_UNAVAILABLE, E_LOCKED, E_RATE_LIMITED: seconds after which a retry may succeed. */
  retryAfterSeconds?: number;
  /**
   * What a remote peer (an HTTP client) is told instead of `message`, when the message is for the
   * operator only: a database's address and driver error stay in the server's log.
   */
  answer?: string;
  cause?: unknown;
}

export class DkeygenError extends Error {
  readonly code: ErrorCode;
  readonly culprit: string | undefined;
  readonly retryAfterSeconds: number | undefined;
  /** DkeygenErrorOptions.answer: what a remote peer is told, when not `message`. */
  readonly answer: string | undefined;

  constructor(code: ErrorCode, message: string, options: DkeygenErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DkeygenError";
    this.code = code;
    this.culprit = options.culprit;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.answer = options.answer;
  }

  /** The public face of the error: what may go on the wire, in logs or in `--json` output. */
  toJSON(): { code: ErrorCode; message: string; culprit?: string } {
    return this.culprit === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, culprit: this.culprit };
  }
}

export function isDkeygenError(error: unknown, code?: ErrorCode): error is DkeygenError {
  return error instanceof DkeygenError && (code === undefined || error.code === code);
}

/** Process exit status for an error: 2 for usage errors, 1 for every other failure. */
export function exitCodeFor(error: unknown): 1 | 2 {
  return isDkeygenError(error, ErrorCodes.USAGE) ? 2 : 1;
}

const HTTP_STATUS: Record<ErrorCode, number> = {
  E_USAGE: 400,
  E_INVALID_INPUT: 400,
  E_FRAME_TOO_LARGE: 413,
  E_MALFORMED_MESSAGE: 400,
  E_UNEXPECTED_MESSAGE: 409,
  E_VERSION_MISMATCH: 400,
  E_NOT_ENROLLED: 403,
  E_UNAUTHORIZED: 401,
  E_BAD_SIGNATURE: 401,
  E_DECRYPTION_FAILED: 400,
  E_WRONG_ROUND: 409,
  E_DUPLICATE_CONTRIBUTION: 409,
  E_LATE_CONTRIBUTION: 409,
  E_QUORUM_NOT_MET: 503,
  E_WRONG_PHASE: 409,
  E_COMMITMENT_MISMATCH: 409,
  E_ROUND_ABORTED: 503,
  E_PIN_MISMATCH: 502,
  E_STORE_CORRUPT: 500,
  E_NOT_FOUND: 404,
  E_TIMEOUT: 504,
  E_UNAVAILABLE: 503,
  E_OPERATIONAL: 500,
  E_KEY_LOCKED: 500,
  E_LOCKED: 423,
  E_RATE_LIMITED: 429,
  E_PAYLOAD_TOO_LARGE: 413,
  E_TLS: 502,
  E_ANSWER_NOT_AUTHENTIC: 502,
  E_ALREADY_ENROLLED: 409,
  E_FORBIDDEN: 403,
};

/** HTTP status for an error; anything that is not a DkeygenError is an internal error (500). */
export function httpStatusFor(error: unknown): number {
  return error instanceof DkeygenError ? HTTP_STATUS[error.code] : 500;
}

/** A short description of any thrown value that is safe to log (no stack, no payloads). */
export function describeError(error: unknown): string {
  if (error instanceof DkeygenError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
