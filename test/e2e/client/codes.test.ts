/**
 * The client's copy of the error table (client/src/core/codes.ts) is the server's (src/errors.ts
 * CODES): the same close code for every code, the same reconnect flag, and nothing more.
 */
import { expect, it } from "vitest";
import { CLOSE_CODES, fromCloseCode, retryable } from "../../../client/src/core/codes";
import { CODES } from "../../../src/errors";

it("maps every close code of src/errors.ts to the same code and reconnect flag", () => {
  const server = Object.fromEntries(
    Object.entries(CODES).map(([code, r]) => [String(r.close), [code, r.reconnect]] as const),
  );
  expect(CLOSE_CODES).toEqual(server);
  for (const [code, r] of Object.entries(CODES)) {
    expect(fromCloseCode(r.close, "why")).toEqual({ code, message: "why", reconnect: r.reconnect });
    expect(retryable(code)).toBe(r.reconnect);
  }
});

it("reconnects after a normal close, a dropped connection or an unknown 4000-4499; not after 4500-4999", () => {
  for (const close of [1000, 1005, 1006, 1012, 4100]) expect(fromCloseCode(close, "").reconnect).toBe(true);
  for (const close of [4600, 4999]) expect(fromCloseCode(close, "").reconnect).toBe(false);
  expect(retryable("network")).toBe(true);
  expect(retryable("closed")).toBe(false);
  expect(retryable("queue_full")).toBe(false);
});
