/** The relay's errors and subscription ends as ConnectErrors, from the one table in errors.ts. */
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import { CODES, type Disconnect, RelayError } from "../../errors";

/** A RelayError (or anything thrown) as a ConnectError; internals stay out of the message. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  const err = RelayError.from(e);
  if (err.code === "internal") console.error("connect handler error", e);
  return new ConnectError(err.message, codeFromString(CODES[err.code].connect) ?? Code.Internal);
}

/** How a subscription's end reaches a Connect client: the table's code, the end's message. */
export function disconnectError(d: Disconnect): ConnectError {
  return new ConnectError(d.message, codeFromString(CODES[d.code].connect) ?? Code.Internal);
}
