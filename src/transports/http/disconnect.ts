/**
 * `POST /rooms/:room/disconnect` (admin token): `{"user": "alice"}` ends every connection of that
 * user in the room, on every transport, with `removed` (WebSocket close 4509, an SSE `disconnect`
 * event, Connect `permission_denied`). Answers `{"disconnected": <count>}`.
 */
import { readBody } from "../../edge/body";
import { admit } from "../../edge/caller";
import type { RelayContext } from "../../edge/context";
import { roomStub } from "../../edge/room-client";
import { RelayError } from "../../errors";
import { parseUser } from "../../protocol/rules";

export async function disconnectRoute(c: RelayContext): Promise<Response> {
  const { settings, room } = c.var;
  await admit(c.req.raw, settings, "admin", room);
  const bytes = await readBody(c.req.raw, { maxBytes: 4096, timeoutMs: settings.bodyTimeoutMs });
  let user: string | undefined;
  try {
    user = parseUser((JSON.parse(new TextDecoder().decode(bytes)) as { user?: unknown }).user);
  } catch {
    user = undefined;
  }
  if (user === undefined) throw new RelayError("invalid_argument", 'body must be JSON like {"user": "alice"}');
  const disconnected = await roomStub(c.env, room).disconnectUser(user);
  return c.json({ disconnected });
}
