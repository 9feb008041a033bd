/** The relay's error codes in Connect terms, in one table. */
import { Code, ConnectError } from "@connectrpc/connect";
import { type ErrorCode, RelayError } from "../../errors";

export const CONNECT_CODE: Record<ErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  too_large: Code.ResourceExhausted,
  rate_limited: Code.ResourceExhausted,
  room_full: Code.ResourceExhausted,
  upgrade_required: Code.FailedPrecondition,
  not_found: Code.NotFound,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  internal: Code.Internal,
};

/** A RelayError (or anything thrown) as a ConnectError; internals stay out of the message. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  const err = RelayError.from(e);
  if (err.code === "internal") console.error("connect handler error", e);
  return new ConnectError(err.message, CONNECT_CODE[err.code]);
}
