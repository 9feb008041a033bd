/**
 * WebSocket close codes the relay sends, and whether a client should reconnect after each.
 * Codes 4000-4499 mean "reconnect (with backoff) and resume"; 4500-4999 mean "do not reconnect
 * without changing something". The README's error table documents each one.
 */
import type { ErrorCode } from "../errors";

/**
 * 4002: a resume's replay reached REPLAY_MAX_BYTES. Not an error: reconnect at once, resuming from
 * the last offset received, to get the next part.
 */
export const REPLAY_CONTINUE = 4002;

/** The close code for an error that ends a connection. */
export const CLOSE_CODE: Record<ErrorCode, number> = {
  /** 1009 Message Too Big (RFC 6455): the frame was not published. Reconnect with smaller frames. */
  too_large: 1009,
  /** 1008 Policy Violation: not allowed (authentication, origin). Don't reconnect as is. */
  unauthenticated: 1008,
  permission_denied: 1008,
  /** 1011 Internal Error: reconnect with backoff and resume. */
  internal: 1011,
  /** 4000: the room is at MAX_CONNECTIONS_PER_ROOM. Reconnect with backoff. */
  room_full: 4000,
  /** 4001: too many publishes. (Today a rate-limited publish gets an error frame and the socket stays.) */
  rate_limited: 4001,
  /** 4500: the request cannot succeed as made. Don't reconnect without changing it. */
  invalid_argument: 4500,
  not_found: 4500,
  upgrade_required: 4500,
};

/** The close code for `code`. */
export function closeCode(code: ErrorCode): number {
  return CLOSE_CODE[code];
}

/**
 * Closes `ws`, tolerating a socket that is already closed. Codes that may not be sent on the wire
 * (1005 no status, 1006 abnormal, 1015 TLS) become 1000; the reason is cut to the 123 bytes a close
 * frame allows.
 */
export function closeSocket(ws: WebSocket, code: number, reason: string): void {
  const sendable = code === 1005 || code === 1006 || code === 1015 ? 1000 : code;
  try {
    ws.close(sendable, reason.slice(0, 120));
  } catch {
    // Already closed.
  }
}
