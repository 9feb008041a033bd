/**
 * Events as every transport sends them: the room's plain data ({@link EventData}) and its one
 * schema, `relay.v1.ChatEvent`, in the protobuf JSON mapping or binary encoding.
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { type ChatEvent, ChatEventSchema } from "../gen/relay/v1/relay_pb";

/** What an event is; see ChatEvent.kind in proto/relay/v1/relay.proto. */
export type EventKind = "message" | "subscribed" | "gap" | "heartbeat" | "error";

/** Why a resume cannot deliver what was asked; see ChatEvent.reason. */
export type GapReason = "retention" | "epoch" | "ahead";

/**
 * An event as plain data: what crosses the Worker ↔ Durable Object RPC boundary and what the
 * room fans out. Numbers, not bigints: offsets and times stay far below 2^53.
 */
export interface EventData {
  room: string;
  seq: number;
  epoch: string;
  id: string;
  user: string;
  timeMs: number;
  kind: EventKind;
  text: string;
  firstSeq?: number;
  lastSeq?: number;
  reason?: GapReason;
}

/** The protobuf message for an event. */
export function toChatEvent(e: EventData): ChatEvent {
  return create(ChatEventSchema, {
    room: e.room,
    seq: BigInt(e.seq),
    epoch: e.epoch,
    id: e.id,
    user: e.user,
    timeMs: BigInt(e.timeMs),
    kind: e.kind,
    text: e.text,
    firstSeq: BigInt(e.firstSeq ?? 0),
    lastSeq: BigInt(e.lastSeq ?? 0),
    reason: e.reason ?? "",
  });
}

/** The event in the protobuf JSON mapping, as SSE `data:` and plain WebSocket mode send it. */
export function eventJson(e: EventData): string {
  return toJsonString(ChatEventSchema, toChatEvent(e));
}
