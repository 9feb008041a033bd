/**
 * Publish rates: token buckets of `rate` tokens refilled at `rate` per second, kept in memory
 * only (after hibernation they start full, which is right: a hibernated room has been idle).
 * - {@link RateLimiter}: per connection (PUBLISH_RATE_PER_SECOND), keyed by the socket.
 * - {@link UserRateLimiter}: per user in the room (USER_PUBLISH_RATE_PER_SECOND), keyed by the
 *   caller's key, so it holds across the user's connections, transports and reconnects.
 */
interface Bucket {
  tokens: number;
  atMs: number;
}

/** Takes one token from `b` (refilled to `nowMs`); false when it is empty. */
function takeFrom(b: Bucket, rate: number, nowMs: number): boolean {
  b.tokens = Math.min(rate, b.tokens + ((nowMs - b.atMs) / 1000) * rate);
  b.atMs = nowMs;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

export class RateLimiter {
  readonly #buckets = new WeakMap<object, Bucket>();

  constructor(readonly ratePerSecond: number) {}

  /** Takes one token for `key`; false when the bucket is empty (or true always when rate is 0). */
  take(key: object, nowMs: number): boolean {
    if (this.ratePerSecond <= 0) return true;
    let b = this.#buckets.get(key);
    if (!b) {
      b = { tokens: this.ratePerSecond, atMs: nowMs };
      this.#buckets.set(key, b);
    }
    return takeFrom(b, this.ratePerSecond, nowMs);
  }
}

/** Buckets kept before full ones are dropped (a full bucket is the same as none). */
const MAX_USERS = 10_000;

export class UserRateLimiter {
  readonly #buckets = new Map<string, Bucket>();

  constructor(readonly ratePerSecond: number) {}

  take(key: string, nowMs: number): boolean {
    if (this.ratePerSecond <= 0) return true;
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= MAX_USERS) this.#prune(nowMs);
      b = { tokens: this.ratePerSecond, atMs: nowMs };
      this.#buckets.set(key, b);
    }
    return takeFrom(b, this.ratePerSecond, nowMs);
  }

  /** Drops the buckets that have refilled: they would start full anyway. */
  #prune(nowMs: number): void {
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((nowMs - b.atMs) / 1000) * this.ratePerSecond >= this.ratePerSecond) this.#buckets.delete(key);
    }
  }
}
