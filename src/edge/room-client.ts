/**
 * The Worker's side of a room: its Durable Object stub, and the one place that turns what a
 * client asked for (a room, a resume point, who it is, from any transport) into the room's internal
 * subscribe URL, checking every value with the rules of protocol/rules.ts on the way.
 */

import { create } from "@bufbuild/protobuf";
import type { Principal } from "../auth/rights";
import { RelayError } from "../errors";
import { type PresenceResponse, PresenceResponseSchema } from "../gen/relay/v1/relay_pb";
import { toPresenceMember } from "../protocol/events";
import type { BridgeFormat } from "../protocol/formats";
import { parseEpoch, parseOffset, parseVia, type RoomName } from "../protocol/rules";
import type { Room } from "../room/room";
import { isRegion, type Region } from "../room/shards";
import type { Env } from "./env";

/** The room's Durable Object. Only a checked {@link RoomName} gets one: an invalid name never creates an object. */
export function roomStub(env: Env, room: RoomName): DurableObjectStub<Room> {
  return env.ROOM.getByName(room);
}

/** Who is connected to the room now, one member per user on every transport, as relay.v1.PresenceResponse. */
export async function roomPresence(env: Env, room: RoomName): Promise<PresenceResponse> {
  const members = await roomStub(env, room).presence();
  return create(PresenceResponseSchema, { room, members: members.map(toPresenceMember) });
}

/** What a client asks of a subscription, as its transport gave it (checked here, once for all). */
export interface SubscribeRequest {
  room: RoomName;
  /** The client-facing transport, reported by presence and stats. */
  via: string;
  /** Who subscribes: admitted by edge/caller.ts. */
  who: Principal;
  /** The offset to resume after: `?since=`, `Last-Event-ID`, a protobuf uint64. */
  since?: string | bigint;
  /** The epoch `since` belongs to. */
  epoch?: string;
  /** A bridge's format; a client WebSocket's comes from its subprotocol. */
  format?: BridgeFormat;
  /** Presence events too (the caller was admitted for `presence`). */
  presence?: boolean;
  /** Where the client is (edge/region.ts): a fan-out shard for it is placed there. */
  region?: Region;
}

/** The internal URL of the room's subscribe endpoint; throws `invalid_argument` for a bad value. */
export function subscribeUrl(r: SubscribeRequest): string {
  const q = new URLSearchParams({ room: r.room, via: parseVia(r.via), who: JSON.stringify(r.who) });
  const since = parseOffset(r.since, "since");
  const epoch = parseEpoch(r.epoch);
  if (since !== undefined) q.set("since", String(since));
  if (epoch !== undefined) q.set("epoch", epoch);
  if (r.format) q.set("format", r.format);
  if (r.presence) q.set("presence", "1");
  if (r.region) q.set("region", r.region);
  return `https://room.internal/subscribe?${q}`;
}

/**
 * Asks the room to take a subscriber. Past its share of subscribers the room's object answers
 * with the fan-out shard it placed the subscriber on (307, room/shards.ts), which then takes it:
 * a shard object near the client (its location hint), subscribed to the room's own.
 */
async function subscribe(env: Env, r: SubscribeRequest, request: (url: string) => Request): Promise<Response> {
  const url = subscribeUrl(r);
  const res = await roomStub(env, r.room).fetch(request(url));
  if (res.status !== 307) return res;
  const { shard, region } = await res.json<{ shard: string; region: string }>();
  const hint = isRegion(region) && region !== "any" ? { locationHint: region } : undefined;
  const onShard = `${url}&${new URLSearchParams({ shard })}`;
  return env.ROOM.getByName(shard, hint).fetch(request(onShard));
}

/** Hands a client's WebSocket upgrade to its room, which accepts it (hibernatable) itself. */
export function forwardWebSocket(env: Env, request: Request, r: SubscribeRequest): Promise<Response> {
  return subscribe(env, r, (url) => new Request(url, request));
}

/**
 * Opens a bridge socket to the room in a bridge format and accepts it. A refusal from the room
 * (room full) is thrown as the room's own RelayError.
 */
export async function openBridge(env: Env, r: SubscribeRequest & { format: BridgeFormat }): Promise<WebSocket> {
  const res = await subscribe(env, r, (url) => new Request(url, { headers: { Upgrade: "websocket" } }));
  const ws = res.webSocket;
  if (!ws) {
    const body = (await res.json().catch(() => null)) as { error?: RelayError } | null;
    const code = body?.error?.code ?? "internal";
    throw new RelayError(code, body?.error?.message ?? `room answered ${res.status}`);
  }
  // Binary frames as ArrayBuffers (the default is Blob), so they are written synchronously, in order.
  (ws as WebSocket & { binaryType: string }).binaryType = "arraybuffer";
  ws.accept();
  return ws;
}
