/**
 * `GET /rooms/:room/ws`: a browser's or service's WebSocket, handed to the room's Durable Object
 * as it is (the room accepts it with the Hibernation API and picks the mode from its subprotocol).
 * Query: `since` (resume after this offset), `epoch` (the epoch of `since`), `user`. A browser page
 * on another origin needs that origin in ALLOWED_ORIGINS (403 otherwise).
 */
import type { Context } from "hono";
import { type Env, readLimits } from "../../config";
import { RelayError } from "../../errors";
import { originAllowed } from "../../worker/origin";
import { parseEpoch, parseOffset, parseUser } from "../../worker/params";
import { roomStub, subscribeUrl } from "../../worker/room-client";

export async function wsRoute(c: Context<{ Bindings: Env }>): Promise<Response> {
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    throw new RelayError("upgrade_required", "this route takes a WebSocket upgrade (Upgrade: websocket)");
  }
  if (!originAllowed(c.req.header("Origin"), c.req.url, readLimits(c.env).allowedOrigins)) {
    throw new RelayError("permission_denied", "this origin may not open a WebSocket here (see ALLOWED_ORIGINS)");
  }
  const room = c.req.param("room") as string;
  const url = subscribeUrl(room, {
    transport: "websocket",
    since: parseOffset(c.req.query("since"), "since"),
    epoch: parseEpoch(c.req.query("epoch")),
    user: parseUser(c.req.query("user")),
  });
  return roomStub(c.env, room).fetch(new Request(url, c.req.raw));
}
