/**
 * Tokens: a fixed string, or a function that gets a new one. The client reads the JWT's `exp`
 * (without verifying anything: that is the relay's job) to know when to refresh: `refreshBeforeMs`
 * before expiry, or at 3/4 of the token's lifetime when that is sooner (short-lived tokens).
 */
import type { TokenOption } from "../types.js";

export interface Tokens {
  /** True when a new token can be had (a function was given). */
  readonly renewable: boolean;
  /** The current token (a new one when none or it is due for refresh, or when `fresh`); undefined: anonymous. */
  get(fresh?: boolean): Promise<string | undefined>;
  /** When the current token should be replaced (ms since the epoch), or undefined: never. */
  refreshAt(): number | undefined;
}

/** The `exp` claim of a JWT in ms, or 0 when it has none or is not a JWT. */
export function expiryMs(token: string): number {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part)).exp;
    return typeof exp === "number" ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}

export function tokens(option: TokenOption | undefined, refreshBeforeMs = 30_000): Tokens {
  let current: { token: string; expMs: number; gotAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const refreshAt = () => {
    if (!current?.expMs) return undefined;
    const lifetime = current.expMs - current.gotAt;
    return current.expMs - Math.min(refreshBeforeMs, lifetime / 4);
  };
  const take = (token: string) => {
    current = { token, expMs: expiryMs(token), gotAt: Date.now() };
    return token;
  };
  return {
    renewable: typeof option === "function",
    refreshAt,
    async get(fresh = false) {
      if (option === undefined) return undefined;
      if (typeof option === "string") return current?.token ?? take(option);
      const due = refreshAt();
      if (current && !fresh && (due === undefined || Date.now() < due)) return current.token;
      // One call at a time: a refresh and a reconnect asking together share it.
      pending ??= Promise.resolve()
        .then(option)
        .then(take)
        .finally(() => {
          pending = undefined;
        });
      return pending;
    },
  };
}
