/**
 * Per-connection publish rate: a token bucket of `rate` tokens refilled at `rate` per second.
 * Kept in memory only: after hibernation a connection starts with a full bucket, which is right,
 * since a hibernated room has been idle.
 */
export class RateLimiter {
  readonly #buckets = new WeakMap<object, { tokens: number; atMs: number }>();

  constructor(readonly ratePerSecond: number) {}

  /** Takes one token for `key`; false when the bucket is empty (or true always when rate is 0). */
  take(key: object, nowMs: number): boolean {
    if (this.ratePerSecond <= 0) return true;
    const b = this.#buckets.get(key) ?? { tokens: this.ratePerSecond, atMs: nowMs };
    b.tokens = Math.min(this.ratePerSecond, b.tokens + ((nowMs - b.atMs) / 1000) * this.ratePerSecond);
    b.atMs = nowMs;
    this.#buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
