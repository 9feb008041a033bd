/**
 * The relay's one error type. Every failure is a {@link RelayError} with a stable code; each
 * transport maps the code to its own terms in one table (HTTP status here, WebSocket close codes in
 * protocol/close-codes.ts, Connect codes in the Connect adapter).
 */
export type ErrorCode =
  | "invalid_argument"
  | "too_large"
  | "rate_limited"
  | "room_full"
  | "upgrade_required"
  | "not_found"
  | "unauthenticated"
  | "permission_denied"
  | "internal";

/** HTTP status of each code, for JSON error bodies `{"error":{"code","message"}}`. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_argument: 400,
  too_large: 413,
  rate_limited: 429,
  room_full: 503,
  upgrade_required: 426,
  not_found: 404,
  unauthenticated: 401,
  permission_denied: 403,
  internal: 500,
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
  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
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
