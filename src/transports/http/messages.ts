/**
 * Plain HTTP into a room:
 * - `POST /rooms/:room/messages`: JSON `{"text", "id"?, "user"?}` or a `text/plain` body (then the
 *   id may come in an `Idempotency-Key` header, the user in `?user=`). 201 with the stored event;
 *   200 with the original event for a retry of an id already stored.
 * - `GET /rooms/:room/messages?since=&limit=`: a page of the log.
 * - `GET /rooms/:room/presence`: who is connected now.
 * - `GET /rooms/:room/stats`: the room's counters.
 */
import type { Context } from "hono";
import { type Env, readLimits } from "../../config";
import { RelayError, unwrap } from "../../errors";
import { eventJson } from "../../protocol/events";
import type { PublishInput } from "../../room/publish";
import { readBodyBytes } from "../../worker/body";
import { parseOffset, parseUser } from "../../worker/params";
import { roomStub } from "../../worker/room-client";

type Ctx = Context<{ Bindings: Env }>;

function parsePublishBody(contentType: string, body: string, c: Ctx): PublishInput {
  if (contentType.startsWith("text/plain")) {
    return { text: body, id: c.req.header("Idempotency-Key"), user: parseUser(c.req.query("user")) };
  }
  if (!contentType.startsWith("application/json")) {
    throw new RelayError("invalid_argument", "Content-Type must be application/json or text/plain");
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new RelayError("invalid_argument", "body is not valid JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new RelayError("invalid_argument", 'body must be a JSON object like {"text": "hi"}');
  }
  const { text, id, user } = json as Record<string, unknown>;
  for (const [name, v] of Object.entries({ id, user })) {
    if (v !== undefined && typeof v !== "string") throw new RelayError("invalid_argument", `${name} must be a string`);
  }
  return {
    text: text as string,
    id: (id as string | undefined) ?? c.req.header("Idempotency-Key"),
    user: (user as string | undefined) ?? parseUser(c.req.query("user")),
  };
}

export async function publishRoute(c: Ctx): Promise<Response> {
  const limits = readLimits(c.env);
  const bytes = await readBodyBytes(c.req.raw, limits.maxFrameBytes);
  let body: string;
  try {
    body = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new RelayError("invalid_argument", "body is not valid UTF-8");
  }
  const input = parsePublishBody((c.req.header("Content-Type") ?? "").toLowerCase(), body, c);
  const room = c.req.param("room") as string;
  const { event, duplicate } = unwrap(await roomStub(c.env, room).publish(room, input));
  return c.body(eventJson(event), duplicate ? 200 : 201, { "Content-Type": "application/json" });
}

export async function historyRoute(c: Ctx): Promise<Response> {
  const room = c.req.param("room") as string;
  const since = parseOffset(c.req.query("since"), "since") ?? 0;
  const limit = parseOffset(c.req.query("limit"), "limit") ?? 0;
  const page = unwrap(await roomStub(c.env, room).history(room, since, limit));
  // The HistoryResponse JSON mapping, built around the events' own JSON (every field present).
  const body = `{"events":[${page.events.map(eventJson).join(",")}],"epoch":${JSON.stringify(page.epoch)},"firstSeq":"${page.firstSeq}","lastSeq":"${page.lastSeq}","hasMore":${page.hasMore}}`;
  return c.body(body, 200, { "Content-Type": "application/json" });
}

export async function presenceRoute(c: Ctx): Promise<Response> {
  const room = c.req.param("room") as string;
  const members = await roomStub(c.env, room).presence();
  return c.json({
    room,
    members: members.map((m) => ({ user: m.user, transport: m.transport, connectedAtMs: String(m.connectedAtMs) })),
  });
}

export async function statsRoute(c: Ctx): Promise<Response> {
  const room = c.req.param("room") as string;
  const s = await roomStub(c.env, room).stats();
  return c.json({ room, ...s });
}
