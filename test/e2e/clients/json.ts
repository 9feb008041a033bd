/** The relay's messages as JSON clients see them (the protobuf JSON mapping), and conversions to it. */
import { toJson } from "@bufbuild/protobuf";
import { type ChatEvent, ChatEventSchema } from "../../../src/gen/relay/v1/relay_pb";

/** A ChatEvent in the protobuf JSON mapping (default values omitted, 64-bit integers as strings). */
export interface ChatEventJson {
  room: string;
  seq?: string;
  epoch: string;
  id?: string;
  user?: string;
  timeMs: string;
  kind: string;
  text?: string;
  firstSeq?: string;
  lastSeq?: string;
  reason?: string;
  resumeAfter?: string;
  /** On join and leave. */
  member?: { user: string; connectedAtMs?: string; connections?: number; transports?: string[] };
}

export interface ErrorJson {
  code: string;
  message: string;
  id?: string;
}

/** A server frame on `relay.v1.json` (and `relay.v1.proto`, decoded to the same JSON). */
export interface ServerFrameJson {
  event?: ChatEventJson;
  ack?: { event: ChatEventJson; duplicate?: boolean };
  error?: ErrorJson;
  ping?: { id: string };
}

/** relay.v1.Disconnect: the data of the SSE `disconnect` event. */
export interface DisconnectJson {
  code: string;
  message: string;
  reconnect: boolean;
}

/** A ChatEvent message in the protobuf JSON mapping, as JSON clients see it. */
export function eventToJson(e: ChatEvent): ChatEventJson {
  return toJson(ChatEventSchema, e) as unknown as ChatEventJson;
}

/** The `message` events among `frames` (plain mode: bare ChatEvents; json mode: `{event}` frames). */
export function messagesOf(frames: unknown[]): ChatEventJson[] {
  return frames
    .map((f) => ((f as ServerFrameJson).event ?? f) as ChatEventJson)
    .filter((e) => (e as ChatEventJson).kind === "message");
}
