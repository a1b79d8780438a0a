/**
 * Reconnection delays: exponential backoff with "full jitter" (a uniform delay between zero and
 * the exponential cap), so many clients that lost the same server do not return in lockstep.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000 };

/** The delay before reconnection attempt `attempt` (0-based); `unit` is a uniform draw in [0,1). */
export function backoffDelay(attempt: number, options: BackoffOptions, unit: number): number {
  const cap = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(cap / 2 + (unit * cap) / 2);
}
