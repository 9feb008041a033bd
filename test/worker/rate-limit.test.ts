import { describe, expect, it } from "vitest";
import { RateLimiter } from "../../src/room/rate-limit";

describe("RateLimiter", () => {
  it("allows a burst of `rate`, then refills at `rate` per second per key", () => {
    const limiter = new RateLimiter(2);
    const a = {};
    const b = {};
    expect([limiter.take(a, 0), limiter.take(a, 0), limiter.take(a, 0)]).toEqual([true, true, false]);
    expect(limiter.take(b, 0)).toBe(true);
    expect(limiter.take(a, 499)).toBe(false);
    expect(limiter.take(a, 500)).toBe(true);
    expect([limiter.take(a, 10_000), limiter.take(a, 10_000), limiter.take(a, 10_000)]).toEqual([true, true, false]);
  });

  it("never limits with a rate of 0", () => {
    const limiter = new RateLimiter(0);
    for (let i = 0; i < 1000; i++) expect(limiter.take({}, 0)).toBe(true);
  });
});
