/**
 * WebSocket frames in the three modes a socket to the room can speak:
 * - "plain" (no subprotocol): text frames are message texts; the server sends ChatEvent JSON,
 *   and errors as `{"error":{"code","message"}}`;
 * - "json" (`relay.v1.json`): ClientFrame / ServerFrame in the protobuf JSON mapping;
 * - "proto" (`relay.v1.proto`): ClientFrame / ServerFrame, binary protobuf.
 */
import { create, fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import type { ErrorData } from "../errors";
import { RelayError } from "../errors";
import { ClientFrameSchema, type PublishRequest, ServerFrameSchema } from "../gen/relay/v1/relay_pb";
import { type EventData, eventJson, toChatEvent } from "./events";

/** The wire mode of one socket. */
export type Mode = "plain" | "json" | "proto";

/** The subprotocol names of the modes that have one. */
export const SUBPROTOCOLS = { json: "relay.v1.json", proto: "relay.v1.proto" } as const;

/** Picks the mode from a `Sec-WebSocket-Protocol` offer; the first supported name wins. */
export function modeFromProtocols(header: string | null): { mode: Mode; protocol?: string } {
  for (const name of (header ?? "").split(",").map((s) => s.trim())) {
    if (name === SUBPROTOCOLS.json) return { mode: "json", protocol: name };
    if (name === SUBPROTOCOLS.proto) return { mode: "proto", protocol: name };
  }
  return { mode: "plain" };
}

/** A frame ready to send: text for plain and JSON modes, bytes for proto. */
export type Frame = string | Uint8Array;

/** One event encoded for a mode. */
export function encodeEvent(mode: Mode, e: EventData, json?: string): Frame {
  switch (mode) {
    case "plain":
      return json ?? eventJson(e);
    case "json":
      // ServerFrame{event} in the JSON mapping is exactly this; no second reflection pass.
      return `{"event":${json ?? eventJson(e)}}`;
    case "proto":
      return toBinary(
        ServerFrameSchema,
        create(ServerFrameSchema, { frame: { case: "event", value: toChatEvent(e) } }),
      );
  }
}

/**
 * Events of one flush, encoded for a mode: one frame carrying them all in json and proto modes
 * (`ServerFrame.batch`, or `event` when there is only one), one frame per event in plain mode
 * (whose clients read each frame as one event). `jsons[i]` is `eventJson(events[i])` (unused, and
 * may be empty, in proto mode).
 */
export function encodeEvents(mode: Mode, events: readonly EventData[], jsons: readonly string[]): Frame[] {
  if (events.length === 1) return [encodeEvent(mode, events[0], jsons[0])];
  switch (mode) {
    case "plain":
      return [...jsons];
    case "json":
      return [`{"batch":{"events":[${jsons.join(",")}]}}`];
    case "proto":
      return [
        toBinary(
          ServerFrameSchema,
          create(ServerFrameSchema, { frame: { case: "batch", value: { events: events.map(toChatEvent) } } }),
        ),
      ];
  }
}

/**
 * A publish acknowledgement (json and proto modes; plain mode has none). In json mode it is built
 * around the event's JSON (`json`, shared with the fan-out): ServerFrame{ack} in the JSON mapping
 * is exactly this, `duplicate` omitted when false.
 */
export function encodeAck(mode: "json" | "proto", e: EventData, duplicate: boolean, json = eventJson(e)): Frame {
  switch (mode) {
    case "json":
      return `{"ack":{"event":${json}${duplicate ? ',"duplicate":true' : ""}}}`;
    case "proto":
      return toBinary(
        ServerFrameSchema,
        create(ServerFrameSchema, { frame: { case: "ack", value: { event: toChatEvent(e), duplicate } } }),
      );
  }
}

/** An error frame; `id` names the publish it answers. */
export function encodeError(mode: Mode, error: ErrorData, id = ""): Frame {
  const frame = create(ServerFrameSchema, { frame: { case: "error", value: { ...error, id } } });
  return mode === "proto" ? toBinary(ServerFrameSchema, frame) : toJsonString(ServerFrameSchema, frame);
}

/**
 * Decodes one client frame into a publish request, or throws an `invalid_argument` RelayError
 * saying what is wrong with it.
 */
export function decodePublish(mode: Mode, data: string | ArrayBuffer): PublishRequest {
  if (mode === "plain") {
    if (typeof data !== "string") throw new RelayError("invalid_argument", "plain mode takes text frames");
    return { $typeName: "relay.v1.PublishRequest", room: "", text: data, id: "", user: "" };
  }
  let frame: ReturnType<typeof fromBinary<typeof ClientFrameSchema>>;
  try {
    if (mode === "json") {
      if (typeof data !== "string") throw new Error("relay.v1.json takes text frames");
      frame = fromJsonString(ClientFrameSchema, data);
    } else {
      if (typeof data === "string") throw new Error("relay.v1.proto takes binary frames");
      frame = fromBinary(ClientFrameSchema, new Uint8Array(data));
    }
  } catch (e) {
    throw new RelayError("invalid_argument", `malformed frame: ${(e as Error).message}`);
  }
  if (frame.frame.case !== "publish") throw new RelayError("invalid_argument", "frame has no publish");
  return frame.frame.value;
}
