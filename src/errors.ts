/**
 * The relay's one error type and the one table that renders every way a request or a connection
 * can end in each transport's own terms: HTTP status (with a JSON body `{"error":{"code","message"}}`),
 * Connect code, WebSocket close code, and whether a client should reconnect. Every transport reads
 * this table; none has a mapping of its own. The README's error table is this table.
 */

/**
 * What went wrong, or why a subscription ended. The first group are errors; `replay_paused`,
 * `too_slow` and `going_away` end a subscription that the client resumes.
 */
export type ErrorCode =
  | "invalid_argument"
  | "invalid_encoding"
  | "too_large"
  | "rate_limited"
  | "room_full"
  | "upgrade_required"
  | "not_found"
  | "unauthenticated"
  | "token_expired"
  | "permission_denied"
  | "too_many_connections"
  | "deadline_exceeded"
  | "internal"
  | "replay_paused"
  | "too_slow"
  | "going_away"
  | "removed";

/** A Connect error code, as Connect writes it on the wire (`codeFromString` turns it into `Code`). */
export type ConnectCodeName =
  | "invalid_argument"
  | "resource_exhausted"
  | "failed_precondition"
  | "not_found"
  | "unauthenticated"
  | "token_expired"
  | "permission_denied"
  | "too_many_connections"
  | "deadline_exceeded"
  | "internal"
  | "unavailable";

export interface CodeRendering {
  /** HTTP status of a JSON error answer. */
  http: number;
  connect: ConnectCodeName;
  /**
   * WebSocket close code when this ends a connection. 4000-4499: reconnect (with backoff) and
   * resume; 4500-4999: don't reconnect without changing something; 1xxx as RFC 6455 says.
   */
  close: number;
  /** Whether a client may reconnect (resuming from its last offset) and expect it to work. */
  reconnect: boolean;
}

/** Every code in every transport's terms. Close codes are unique among the codes a room closes with. */
export const CODES: Record<ErrorCode, CodeRendering> = {
  invalid_argument: { http: 400, connect: "invalid_argument", close: 4500, reconnect: false },
  /** Text that is not valid Unicode: a lone surrogate, or a WebSocket text frame that is not UTF-8 (1007, RFC 6455). */
  invalid_encoding: { http: 400, connect: "invalid_argument", close: 1007, reconnect: false },
  /** 1009 Message Too Big: the frame was not published. */
  too_large: { http: 413, connect: "resource_exhausted", close: 1009, reconnect: false },
  rate_limited: { http: 429, connect: "resource_exhausted", close: 4001, reconnect: true },
  /** The room is at MAX_CONNECTIONS_PER_ROOM. */
  room_full: { http: 503, connect: "resource_exhausted", close: 4000, reconnect: true },
  upgrade_required: { http: 426, connect: "failed_precondition", close: 4501, reconnect: false },
  not_found: { http: 404, connect: "not_found", close: 4504, reconnect: false },
  /** No token where one is needed, or one that fails (signature, algorithm, form, `nbf`, unknown key). */
  unauthenticated: { http: 401, connect: "unauthenticated", close: 4540, reconnect: false },
  /** The token's `exp` passed: on connecting, or while connected. Reconnect with a fresh token. */
  token_expired: { http: 401, connect: "unauthenticated", close: 4440, reconnect: true },
  /** 1008 Policy Violation: a valid token without the right, or an origin that may not call. */
  permission_denied: { http: 403, connect: "permission_denied", close: 1008, reconnect: false },
  /** The user has MAX_CONNECTIONS_PER_USER connections in the room already. */
  too_many_connections: { http: 429, connect: "resource_exhausted", close: 4004, reconnect: true },
  /** A request body that did not arrive in BODY_TIMEOUT_SECONDS. */
  deadline_exceeded: { http: 408, connect: "deadline_exceeded", close: 4008, reconnect: true },
  /** 1011 Internal Error. */
  internal: { http: 500, connect: "internal", close: 1011, reconnect: true },
  /** A resume's replay reached REPLAY_MAX_BYTES: resume at once from the last offset received. */
  replay_paused: { http: 200, connect: "unavailable", close: 4002, reconnect: true },
  /** More than SUBSCRIBER_MAX_BEHIND_BYTES unread: resume from the last offset received. */
  too_slow: { http: 429, connect: "resource_exhausted", close: 4003, reconnect: true },
  /** The room's object went away (restart, deploy, eviction of a stream): resume. */
  going_away: { http: 503, connect: "unavailable", close: 1001, reconnect: true },
  /** An admin ended this user's connections (POST /rooms/:room/disconnect). */
  removed: { http: 403, connect: "permission_denied", close: 4509, reconnect: false },
};

/** An error with a code from {@link ErrorCode}; its message is safe to show to clients. */
export class RelayError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "RelayError";
  }

  /** Normalises anything thrown into a RelayError, keeping internal details out of the message. */
  static from(e: unknown): RelayError {
    if (e instanceof RelayError) return e;
    return new RelayError("internal", "internal error");
  }

  /** The JSON body every HTTP route answers with on failure. */
  toJSON(): { error: ErrorData } {
    return { error: { code: this.code, message: this.message } };
  }

  get http(): number {
    return CODES[this.code].http;
  }
}

/** Plain-data form of an error, for crossing the Worker ↔ Durable Object RPC boundary. */
export interface ErrorData {
  code: ErrorCode;
  message: string;
}

/** The result of a room operation across RPC: errors are values, not exceptions (RPC drops their fields). */
export type Result<T> = { ok: true; value: T } | { ok: false; error: ErrorData };

/** The value of a room's result, or its error thrown as a RelayError. */
export function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw new RelayError(r.error.code, r.error.message);
  return r.value;
}

/** Why a subscription ended: one value, rendered by each transport from {@link CODES}. */
export interface Disconnect {
  code: ErrorCode;
  message: string;
  reconnect: boolean;
}

/** The subscription end for `code`. */
export function disconnect(code: ErrorCode, message: string): Disconnect {
  return { code, message, reconnect: CODES[code].reconnect };
}

const BY_CLOSE = new Map<number, ErrorCode>();
for (const [code, r] of Object.entries(CODES) as [ErrorCode, CodeRendering][]) {
  if (!BY_CLOSE.has(r.close)) BY_CLOSE.set(r.close, code);
}

/**
 * How a WebSocket close reads as a subscription end: a code from the table, 1000 as a normal end
 * (`undefined`), and anything else (1006 after a crash, 1012 restart, ...) as `going_away`.
 */
export function disconnectFromClose(closeCode: number, reason: string): Disconnect | undefined {
  if (closeCode === 1000 || closeCode === 1005) return undefined;
  const code = BY_CLOSE.get(closeCode) ?? "going_away";
  return disconnect(code, reason || `closed with ${closeCode}`);
}
