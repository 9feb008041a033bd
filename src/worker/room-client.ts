/**
 * The Worker's side of a room: its Durable Object stub, and the internal WebSocket through which
 * the SSE and Connect adapters subscribe (../shared/DESIGN.md: every subscriber is a hibernatable
 * WebSocket on the room, so a room with only streamed listeners can still hibernate).
 */
import type { Env } from "../config";
import { type ErrorCode, RelayError } from "../errors";
import type { Transport } from "../room/subscriber";

/** The room's Durable Object. Callers have checked the name (invalid names never create one). */
export function roomStub(env: Env, room: string): DurableObjectStub<import("../room/room").Room> {
  return env.ROOM.getByName(room);
}

/** What a subscription asks the room for. */
export interface SubscribeOptions {
  transport: Transport;
  user?: string;
  since?: number;
  epoch?: string;
}

/** The internal URL of the room's subscribe endpoint (only the Worker builds it). */
export function subscribeUrl(room: string, o: SubscribeOptions): string {
  const q = new URLSearchParams({ room, transport: o.transport });
  if (o.user) q.set("user", o.user);
  if (o.since !== undefined) q.set("since", String(o.since));
  if (o.epoch) q.set("epoch", o.epoch);
  return `https://room.internal/subscribe?${q}`;
}

/**
 * Opens a bridge socket to the room in `relay.v1.json` mode (or `protocol`) and accepts it. A
 * refusal from the room (room full) is thrown as the room's own RelayError.
 */
export async function openRoomSocket(
  env: Env,
  room: string,
  o: SubscribeOptions,
  protocol = "relay.v1.json",
): Promise<WebSocket> {
  const res = await roomStub(env, room).fetch(subscribeUrl(room, o), {
    headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": protocol },
  });
  if (!res.webSocket) {
    const body = (await res.json().catch(() => null)) as { error?: { code: ErrorCode; message: string } } | null;
    throw new RelayError(body?.error?.code ?? "internal", body?.error?.message ?? `room answered ${res.status}`);
  }
  // Binary frames as ArrayBuffers (the default is Blob), so they decode synchronously, in order.
  (res.webSocket as WebSocket & { binaryType: string }).binaryType = "arraybuffer";
  res.webSocket.accept();
  return res.webSocket;
}
