/**
 * Fixed-window request limits that hold across every process on one PostgreSQL store (the
 * per-credential rate limit and the per-requester OTP quota, docs/PROTOCOL.md §12.2): the
 * database counts each window (table `request_windows`, schema version 5) on its own clock, and
 * hands a process permission for requests in chunks (`dkeygen_take_requests`), which the process
 * spends from memory. So most requests cost no query, and the sum over all processes within a
 * window never exceeds the limit.
 *
 * What chunks cost: a process may hold permission it does not use while another is refused, so a
 * requester can be refused up to (processes − 1) × chunk requests early in a window, never late.
 * The chunk is 1/64 of the limit (at least 1): at most a few percent with a few processes.
 * A window the database says is spent is remembered here until it ends (no query per refusal).
 */
import type { PostgresKeyStore } from "../../store/postgres.js";
import type { WindowLimiter, WindowLimiterFactory } from "./rate-limit.js";

/** What the database granted: requests, and milliseconds left in its window. */
export interface WindowGrant {
  granted: number;
  remainingMs: number;
}

/** Asks the database for up to `want` of `max` requests of `key`'s current window. */
export type TakeRequests = (
  name: string,
  key: string,
  windowMs: number,
  want: number,
  max: number,
) => Promise<WindowGrant>;

/** Chunks are this fraction of the limit. */
const CHUNK_DIVISOR = 64;

interface Local {
  /** Requests this process may still admit in the window. */
  tokens: number;
  /** When the window ends (this process's Date.now()). */
  endsAt: number;
  /** The database said the window is spent. */
  spent: boolean;
  /** A grant being fetched: concurrent requests wait for it instead of asking again. */
  fetching?: Promise<void>;
}

export class SharedWindowLimiter implements WindowLimiter {
  readonly #name: string;
  readonly #max: number;
  readonly #windowMs: number;
  readonly #chunk: number;
  readonly #take: TakeRequests;
  readonly #local = new Map<string, Local>();

  constructor(options: { name: string; max: number; windowMs: number; take: TakeRequests }) {
    this.#name = options.name;
    this.#max = options.max;
    this.#windowMs = options.windowMs;
    this.#take = options.take;
    this.#chunk = Math.max(1, Math.floor(options.max / CHUNK_DIVISOR));
  }

  /** 0 when the request is admitted, else seconds until the window ends (sync when it can). */
  hit(key: string, _now: number): number | Promise<number> {
    if (this.#max <= 0) return 0;
    const local = this.#local.get(key);
    const at = Date.now();
    if (local && at < local.endsAt) {
      if (local.tokens > 0) {
        local.tokens -= 1;
        return 0;
      }
      if (local.spent) return Math.max(1, Math.ceil((local.endsAt - at) / 1000));
    }
    return this.#fetch(key).then(() => this.hit(key, _now));
  }

  /** Fetches a chunk for `key` (one fetch at a time per key); a new window starts over. */
  #fetch(key: string): Promise<void> {
    let local = this.#local.get(key);
    if (local?.fetching) return local.fetching;
    if (!local) {
      local = { tokens: 0, endsAt: 0, spent: false };
      this.#local.set(key, local);
    }
    const state = local;
    const asked = Date.now();
    state.fetching = this.#take(this.#name, key, this.#windowMs, this.#chunk, this.#max)
      .then(({ granted, remainingMs }) => {
        // Asked for only when none were left, or the window ended (what was left is void).
        state.tokens = granted;
        state.endsAt = asked + remainingMs;
        state.spent = granted === 0;
      })
      .finally(() => {
        state.fetching = undefined;
      });
    return state.fetching;
  }
}

/** Grants from a PostgreSQL store's `dkeygen_take_requests` (schema version 5). */
export function postgresTake(store: PostgresKeyStore): TakeRequests {
  return (name, key, windowMs, want, max) =>
    store.transaction(async (query) => {
      const [row] = await query<{ granted: number; remaining_ms: number }>(
        "SELECT granted, remaining_ms FROM dkeygen_take_requests($1, $2, $3, $4, $5)",
        [name, key, windowMs, want, max],
      );
      return { granted: row!.granted, remainingMs: row!.remaining_ms };
    });
}

/** Limiters counted in a PostgreSQL store, for every process on it. */
export function postgresWindows(store: PostgresKeyStore): WindowLimiterFactory {
  const take = postgresTake(store);
  return (name, max, windowMs) => new SharedWindowLimiter({ name, max, windowMs, take });
}
