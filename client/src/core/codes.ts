/**
 * The relay's error table (src/errors.ts CODES), as much of it as a client needs: which code a
 * WebSocket close code stands for, and whether reconnecting (or retrying a publish) can help.
 * A copy, so that the WebSocket entry stays small; test/e2e/client/codes.test.ts compares it with
 * the server's table so the two cannot drift.
 */

/** close code -> [error code, reconnect?] */
export const CLOSE_CODES: Record<number, [code: string, reconnect: boolean]> = {
  4500: ["invalid_argument", false],
  1007: ["invalid_encoding", false],
  1009: ["too_large", false],
  4001: ["rate_limited", true],
  4000: ["room_full", true],
  4501: ["upgrade_required", false],
  4504: ["not_found", false],
  4540: ["unauthenticated", false],
  4440: ["token_expired", true],
  1008: ["permission_denied", false],
  4004: ["too_many_connections", true],
  4008: ["deadline_exceeded", true],
  1011: ["internal", true],
  4002: ["replay_paused", true],
  4003: ["too_slow", true],
  1001: ["going_away", true],
  4509: ["removed", false],
};

/**
 * Whether an error code is worth retrying (reconnecting, or sending a publish again with its id).
 * Codes outside the table ("network", "timeout", a normal close) are: they say nothing about the request.
 */
export function retryable(code: string): boolean {
  for (const k in CLOSE_CODES) if (CLOSE_CODES[k][0] === code) return CLOSE_CODES[k][1];
  return !FINAL_LOCAL.includes(code);
}

/** The client's own codes that no retry changes. */
const FINAL_LOCAL = ["closed", "queue_full"];

/** What a WebSocket close means: the table's code, or for others "closed" (1000) / "going_away" / by range. */
export function fromCloseCode(close: number, reason: string): { code: string; message: string; reconnect: boolean } {
  const known = CLOSE_CODES[close];
  if (known) return { code: known[0], message: reason || known[0], reconnect: known[1] };
  // 4500-4999: "don't reconnect without changing something" (README, Errors); anything else
  // (1000 normal, 1005 none, 1006 a dropped connection, 1012 restart, 4000-4499) reconnects.
  const final = close >= 4500 && close <= 4999;
  return {
    code: close === 1000 || close === 1005 ? "closed" : final ? "unknown" : "network",
    message: reason || `closed with ${close}`,
    reconnect: !final,
  };
}
