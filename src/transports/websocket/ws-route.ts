/**
 * `GET /rooms/:room/ws`: a browser's or service's WebSocket, handed to the room's Durable Object
 * as it is (the room accepts it with the Hibernation API, picks its format from its subprotocol,
 * and closes it with the close code of the errors table when it ends it). Query: `since` (resume
 * after this offset), `epoch` (the epoch of `since`), `user` (an anonymous client's name),
 * `presence=1` (join and leave events too: needs the `presence` right), `token` (or
 * `Authorization: Bearer`).
 *
 * A caller refused for its token or rights is accepted here and closed at once with the table's
 * close code: a browser cannot read the status of a refused upgrade, only a close code.
 */
import type { Principal } from "../../auth/rights";
import { discardBody } from "../../edge/body";
import { admit } from "../../edge/caller";
import type { RelayContext } from "../../edge/context";
import { regionOf } from "../../edge/region";
import { forwardWebSocket } from "../../edge/room-client";
import { CODES, RelayError } from "../../errors";
import { closedUpgrade } from "../../protocol/close";
import { formatFromProtocols } from "../../protocol/formats";
import { parseFlag, parseUser } from "../../protocol/rules";

export async function wsRoute(c: RelayContext): Promise<Response> {
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    await discardBody(c.req.raw);
    throw new RelayError("upgrade_required", "this route takes a WebSocket upgrade (Upgrade: websocket)");
  }
  const room = c.var.room;
  const name = parseUser(c.req.query("user"));
  let who: Principal;
  let presence: boolean;
  try {
    presence = parseFlag(c.req.query("presence"), "presence");
    const also = presence ? "presence" : undefined;
    who = await admit(c.req.raw, c.var.settings, "subscribe", room, { queryToken: true, name, also });
  } catch (e) {
    const err = RelayError.from(e);
    const { protocol } = formatFromProtocols(c.req.header("Sec-WebSocket-Protocol") ?? null);
    return closedUpgrade(CODES[err.code].close, err.message, protocol);
  }
  return forwardWebSocket(c.env, c.req.raw, {
    room,
    via: "websocket",
    since: c.req.query("since"),
    epoch: c.req.query("epoch"),
    who,
    presence,
    region: regionOf(c.req.raw, c.var.settings),
  });
}
