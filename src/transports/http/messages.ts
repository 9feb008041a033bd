/**
 * Plain HTTP into a room:
 * - `POST /rooms/:room/messages`: JSON `{"text", "id"?, "user"?}` or a `text/plain` body (then the
 *   id may come in an `Idempotency-Key` header, the user in `?user=`). 201 with the stored event;
 *   200 with the original event for a retry of an id already stored.
 * - `GET /rooms/:room/messages?since=&limit=`: a page of the log.
 * - `GET /rooms/:room/presence`: who is connected now.
 * - `GET /rooms/:room/stats`: the room's counters.
 * Every answer is the protobuf JSON mapping of a message of proto/relay/v1/relay.proto. Each route
 * admits its caller first (publish: `publish`; history: `subscribe`; presence and stats:
 * `presence`); a token holder's events carry its `sub` as their user.
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { discardBody, readBody } from "../../edge/body";
import { admit } from "../../edge/caller";
import type { RelayContext } from "../../edge/context";
import { roomPresence, roomStub } from "../../edge/room-client";
import { RelayError, unwrap } from "../../errors";
import { PresenceResponseSchema, RoomStatsSchema } from "../../gen/relay/v1/relay_pb";
import { eventJson } from "../../protocol/events";
import { type PublishInput, parseOffset } from "../../protocol/rules";

/** Every field present, as clients of the HTTP routes expect (the JSON mapping omits defaults). */
const ALL_FIELDS = { alwaysEmitImplicit: true } as const;

/** Decodes a whole body at once (no stream state carries over between calls), refusing bytes that are not UTF-8. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** The media type of a Content-Type header, without parameters, lower case. */
function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0].trim().toLowerCase();
}

/** The fields of a JSON publish body, as strings; anything else is refused before it reaches the room. */
function parseJsonBody(body: string): { text?: unknown; id?: string; user?: string } {
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
  for (const [name, v] of Object.entries({ text, id, user })) {
    if (v !== undefined && typeof v !== "string") throw new RelayError("invalid_argument", `${name} must be a string`);
  }
  return { text, id: id as string | undefined, user: user as string | undefined };
}

export async function publishRoute(c: RelayContext): Promise<Response> {
  const { maxFrameBytes, bodyTimeoutMs } = c.var.settings;
  const who = await admit(c.req.raw, c.var.settings, "publish", c.var.room);
  const type = mediaType(c.req.header("Content-Type"));
  if (type !== "application/json" && type !== "text/plain") {
    await discardBody(c.req.raw);
    throw new RelayError("invalid_argument", "Content-Type must be application/json or text/plain");
  }
  const bytes = await readBody(c.req.raw, { maxBytes: maxFrameBytes, timeoutMs: bodyTimeoutMs });
  let body: string;
  try {
    body = strictUtf8.decode(bytes);
  } catch {
    throw new RelayError("invalid_encoding", "body is not valid UTF-8");
  }
  const fromJson = type === "application/json" ? parseJsonBody(body) : { text: body };
  const input: PublishInput = {
    text: fromJson.text,
    id: fromJson.id ?? c.req.header("Idempotency-Key"),
    user: fromJson.user ?? c.req.query("user"),
  };
  const room = c.var.room;
  const { event, duplicate } = unwrap(await roomStub(c.env, room).publish(room, input, who));
  return c.body(eventJson(event), duplicate ? 200 : 201, { "Content-Type": "application/json" });
}

export async function historyRoute(c: RelayContext): Promise<Response> {
  const room = c.var.room;
  await admit(c.req.raw, c.var.settings, "subscribe", room);
  const since = parseOffset(c.req.query("since"), "since") ?? 0;
  const limit = parseOffset(c.req.query("limit"), "limit") ?? 0;
  const page = unwrap(await roomStub(c.env, room).history(room, since, limit));
  // The HistoryResponse JSON mapping, built around the events' own JSON (every field present).
  const body = `{"events":[${page.events.map(eventJson).join(",")}],"epoch":${JSON.stringify(page.epoch)},"firstSeq":"${page.firstSeq}","lastSeq":"${page.lastSeq}","hasMore":${page.hasMore}}`;
  return c.body(body, 200, { "Content-Type": "application/json" });
}

export async function presenceRoute(c: RelayContext): Promise<Response> {
  const room = c.var.room;
  await admit(c.req.raw, c.var.settings, "presence", room);
  const msg = await roomPresence(c.env, room);
  return c.body(toJsonString(PresenceResponseSchema, msg, ALL_FIELDS), 200, { "Content-Type": "application/json" });
}

export async function statsRoute(c: RelayContext): Promise<Response> {
  const room = c.var.room;
  await admit(c.req.raw, c.var.settings, "presence", room);
  const s = await roomStub(c.env, room).stats();
  const msg = create(RoomStatsSchema, {
    room,
    epoch: s.epoch,
    firstSeq: BigInt(s.firstSeq),
    lastSeq: BigInt(s.lastSeq),
    connections: s.connections,
    objectStartedAtMs: BigInt(s.objectStartedAtMs),
    flushes: BigInt(s.flushes),
    flushedEvents: BigInt(s.flushedEvents),
    slowDisconnects: BigInt(s.slowDisconnects),
    shards: s.shards,
    fanOutUs: BigInt(s.fanOutUs),
  });
  return c.body(toJsonString(RoomStatsSchema, msg, ALL_FIELDS), 200, { "Content-Type": "application/json" });
}
