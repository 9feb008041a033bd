/** Bounded waits, unique room names and a deferred promise. */
import { randomUUID } from "node:crypto";
import { jsonish } from "./jsonish";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A room name no other test uses. */
export function uniqueRoom(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Polls `check` until it returns a value other than undefined/false; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false,
  timeoutMs = 5000,
  describe?: () => unknown,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      const state = describe ? `\nstate: ${jsonish(describe()).slice(0, 4000)}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state}`);
    }
    await sleep(10);
  }
}

/** Like {@link waitFor} for an async check (polled every 50 ms). */
export async function waitForAsync<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 5000,
  describe?: () => unknown,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      const state = describe ? `\nstate: ${jsonish(describe()).slice(0, 4000)}` : `\nlast: ${jsonish(v)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state}`);
    }
    await sleep(50);
  }
}

/** `p`, or a rejection naming `what` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A promise with its resolve function outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve: (v: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
