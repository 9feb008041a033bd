/**
 * `GET /rooms/:room/ws`: a browser's or service's WebSocket, handed to the room's Durable Object
 * as it is (the room accepts it with the Hibernation API, picks its format from its subprotocol,
 * and closes it with the close code of the errors table when it ends it). Query: `since` (resume
 * after this offset), `epoch` (the epoch of `since`), `user`.
 */
import { discardBody } from "../../edge/body";
import type { RelayContext } from "../../edge/context";
import { forwardWebSocket } from "../../edge/room-client";
import { RelayError } from "../../errors";

export async function wsRoute(c: RelayContext): Promise<Response> {
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    await discardBody(c.req.raw);
    throw new RelayError("upgrade_required", "this route takes a WebSocket upgrade (Upgrade: websocket)");
  }
  return forwardWebSocket(c.env, c.req.raw, {
    room: c.var.room,
    via: "websocket",
    since: c.req.query("since"),
    epoch: c.req.query("epoch"),
    user: c.req.query("user"),
  });
}
