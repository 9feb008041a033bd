/**
 * Capped exponential backoff with full jitter: the n-th delay is random(0, min(max, initial * 2^n)).
 * Full jitter spreads the clients of a relay that restarts over the whole window instead of
 * bringing them all back at once.
 */
export interface Backoff {
  /** The next delay, in ms; each call widens the window until it reaches the cap. */
  next(): number;
  /** Start over from the initial window (after a connection that stayed up). */
  reset(): void;
}

export function backoff(initialMs = 500, maxMs = 10_000): Backoff {
  let attempt = 0;
  return {
    next() {
      const cap = Math.min(maxMs, initialMs * 2 ** attempt);
      // Stop counting once the cap is reached (2^attempt would overflow to Infinity eventually).
      if (cap < maxMs) attempt++;
      return Math.random() * cap;
    },
    reset() {
      attempt = 0;
    },
  };
}
