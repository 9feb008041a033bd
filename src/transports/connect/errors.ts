/**
 * The relay's errors and subscription ends as ConnectErrors, from the one table in errors.ts.
 * Connect's codes are coarser than the relay's (resource_exhausted is too_large, rate_limited,
 * too_slow, room_full...; unauthenticated is also token_expired), so every error also carries the
 * relay's own code as metadata, `Relay-Error-Code`, for a client deciding whether to retry.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import { CODES, type Disconnect, type ErrorCode, RelayError } from "../../errors";

/** The metadata key of the relay's own error code (a response header, or a trailer on streams). */
export const ERROR_CODE_KEY = "Relay-Error-Code";

function connectError(message: string, code: ErrorCode): ConnectError {
  const metadata = new Headers({ [ERROR_CODE_KEY]: code });
  return new ConnectError(message, codeFromString(CODES[code].connect) ?? Code.Internal, metadata);
}

/** A RelayError (or anything thrown) as a ConnectError; internals stay out of the message. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  const err = RelayError.from(e);
  if (err.code === "internal") console.error("connect handler error", e);
  return connectError(err.message, err.code);
}

/** How a subscription's end reaches a Connect client: the table's code, the end's message. */
export function disconnectError(d: Disconnect): ConnectError {
  return connectError(d.message, d.code);
}
