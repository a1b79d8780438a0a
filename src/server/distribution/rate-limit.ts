/**
 * Request rate limits: a fixed-window counter per key (a client address, a credential). Two
 * independent limits apply to every request — per address before authentication, per credential
 * after it — which a single registration of @fastify/rate-limit cannot express, hence this small
 * counter. A limit of 0 disables it.
 */

/** A request limit: `hit` counts one request of `key`; 0 if admitted, else seconds to wait. */
export interface WindowLimiter {
  hit(key: string, now: number): number | Promise<number>;
}

/** Makes the limiter `name` ("credential", "otp") with `max` requests per `windowMs`. */
export type WindowLimiterFactory = (name: string, max: number, windowMs: number) => WindowLimiter;

/** Limiters counted in this process's memory. */
export const memoryWindows: WindowLimiterFactory = (_name, max, windowMs) =>
  new FixedWindowLimiter({ max, windowMs });

export class FixedWindowLimiter implements WindowLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  #windowStart = 0;
  #counts = new Map<string, number>();

  constructor(options: { max: number; windowMs: number }) {
    this.#max = options.max;
    this.#windowMs = options.windowMs;
  }

  /** Counts one request for `key`; returns 0 if allowed, else seconds until the window resets. */
  hit(key: string, now: number): number {
    if (this.#max <= 0) return 0;
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now - (now % this.#windowMs);
      this.#counts = new Map();
    }
    const count = (this.#counts.get(key) ?? 0) + 1;
    this.#counts.set(key, count);
    if (count <= this.#max) return 0;
    return Math.max(1, Math.ceil((this.#windowStart + this.#windowMs - now) / 1000));
  }
}
