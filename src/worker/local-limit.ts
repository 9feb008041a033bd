/**
 * `npm start` only: a bound on open connections, so that `wrangler dev` refuses the ones past what
 * it can hold instead of dying. Its front process (a workerd that proxies every request to the
 * Worker's own workerd) holds 6 file descriptors per WebSocket (2 sockets, 2 splice pipes) and 2 per
 * SSE or Connect stream, and exits for good ("accept: Too many open files") when it reaches its
 * open-file limit. scripts/start.mjs sets LOCAL_MAX_CONNECTIONS from that limit (README, "Local
 * scale"). Past it a new WebSocket, SSE stream or Connect Subscribe/Chat call is refused as
 * `room_full` (HTTP 503 with the JSON error, also for a WebSocket upgrade; Connect
 * `resource_exhausted`), and the open ones go on. Unset or 0, as on Cloudflare and in the tests:
 * nothing happens here.
 *
 * The count is this isolate's, which locally is the whole server's. SSE and Connect streams pass
 * through the Worker, which sees them end. A WebSocket is handed to its room, so it is counted per
 * room when it opens, and at the limit the rooms are asked (their stats, at most once a second) how
 * many are still open: between two recounts the count can only be too high, never too low.
 */
import type { Next } from "hono";
import type { RelayContext } from "../edge/context";
import { roomStub } from "../edge/room-client";
import { RelayError } from "../errors";
import { ChatService } from "../gen/relay/v1/relay_pb";
import type { RoomName } from "../protocol/rules";
import { toConnectError } from "../transports/connect/errors";
import { refusal, streamProtocolOf } from "../transports/connect/stream-call";

const STREAM_CALLS = new Set(
  [ChatService.method.subscribe.name, ChatService.method.chat.name].map((m) => `/${ChatService.typeName}/${m}`),
);
const RECOUNT_MS = 1000;

/** Open WebSockets per room: counted up as they open, set to the room's own count by a recount. */
const sockets = new Map<RoomName, number>();
/** Open SSE and Connect streams. */
let streams = 0;
let recountedAtMs = 0;

function openConnections(): number {
  let n = streams;
  for (const count of sockets.values()) n += count;
  return n;
}

/** Asks every room with counted WebSockets how many it holds now. */
async function recount(c: RelayContext): Promise<void> {
  await Promise.all(
    [...sockets.keys()].map(async (room) => {
      const before = sockets.get(room) ?? 0;
      const held = await roomStub(c.env, room)
        .stats()
        .then((s) => s.connections.websocket ?? 0)
        .catch(() => before);
      // Sockets admitted while the room answered are kept on top (some may be in `held` already: too high, never too low).
      const now = held + Math.max(0, (sockets.get(room) ?? 0) - before);
      if (now > 0) sockets.set(room, now);
      else sockets.delete(room);
    }),
  );
}

/** What kind of connection the request opens, if it opens one that stays. */
function kindOf(c: RelayContext): "websocket" | "stream" | undefined {
  const { method, path } = c.req;
  if (method === "GET" && c.var.room !== undefined) {
    if (path.endsWith("/ws") && c.req.header("Upgrade")?.toLowerCase() === "websocket") return "websocket";
    if (path.endsWith("/sse")) return "stream";
  }
  if (method === "POST" && STREAM_CALLS.has(path)) return "stream";
  return undefined;
}

function refuse(c: RelayContext, kind: "websocket" | "stream", limit: number): Response {
  const err = new RelayError(
    "room_full",
    `local server full: LOCAL_MAX_CONNECTIONS=${limit} (npm start sets it from the open-file limit; README: Local scale)`,
  );
  // A WebSocket is refused before the upgrade, unlike the relay's other refusals (which a browser
  // can read as a close code): an accepted socket costs the front process 6 descriptors until its
  // close is through, a refused upgrade 2, and a burst of them comes out of the same reserve.
  const p =
    kind === "stream" && c.req.method === "POST" ? streamProtocolOf(c.req.header("Content-Type") ?? null) : undefined;
  if (p) return refusal(p, toConnectError(err));
  throw err;
}

/** The middleware: refuses a connection past LOCAL_MAX_CONNECTIONS, counts the admitted ones until they end. */
export async function localLimit(c: RelayContext, next: Next): Promise<Response | undefined> {
  const limit = c.var.settings.localMaxConnections;
  const kind = limit > 0 ? kindOf(c) : undefined;
  if (kind === undefined) {
    await next();
    return;
  }
  if (openConnections() >= limit) {
    // One request recounts, and only it waits: a promise shared with other requests would hang
    // them all if this one's client left (its I/O is cancelled with it).
    if (Date.now() - recountedAtMs >= RECOUNT_MS) {
      recountedAtMs = Date.now();
      await recount(c);
    }
    if (openConnections() >= limit) return refuse(c, kind, limit);
  }
  // Counted before the request goes on, so that requests arriving together cannot all pass.
  if (kind === "websocket") {
    const room = c.var.room;
    sockets.set(room, (sockets.get(room) ?? 0) + 1);
    await next();
    if (c.res.status !== 101) sockets.set(room, Math.max(0, (sockets.get(room) ?? 1) - 1));
    return;
  }
  streams++;
  let counted = true;
  const end = () => {
    if (counted) streams--;
    counted = false;
  };
  try {
    await next();
  } finally {
    const body = c.res?.body;
    if (!body) end();
    else {
      // The stream is counted until its body ends: finished, or cancelled by a client that left.
      const { readable, writable } = new TransformStream();
      body.pipeTo(writable).then(end, end);
      c.res = new Response(readable, c.res);
    }
  }
}
