/**
 * The formats a subscriber's socket to the room can speak, and how each encodes events and
 * control frames. A WebSocket client picks one by subprotocol:
 * - "plain" (none): text frames are message texts; the server sends ChatEvent JSON, one per frame;
 * - "json" (`relay.v1.json`): ClientFrame / ServerFrame in the protobuf JSON mapping;
 * - "proto" (`relay.v1.proto`): ClientFrame / ServerFrame, binary protobuf.
 * A Worker-side bridge (the edge subscription behind SSE and Connect) asks for the bytes its
 * transport writes, so that a batch of events crosses the Worker as one write, never parsed:
 * - "event-stream": the `text/event-stream` framing (WHATWG HTML, server-sent events);
 * - "envelope-json" / "envelope-proto": length-prefixed messages (a flags byte and a big-endian
 *   uint32 length before each ChatEvent), the framing of Connect and gRPC-Web streams.
 * Bridge formats send events as binary frames, control frames (ping, error) as ServerFrame JSON
 * text, and take ClientFrames as binary protobuf.
 */
import { create, fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type ErrorData, RelayError } from "../errors";
import { ClientFrameSchema, ServerFrameSchema } from "../gen/relay/v1/relay_pb";
import type { EncodedEvent } from "./events";
import type { PublishInput } from "./rules";

export const FORMATS = ["plain", "json", "proto", "event-stream", "envelope-json", "envelope-proto"] as const;

/** The wire format of one socket to the room. */
export type Format = (typeof FORMATS)[number];

/** Formats only a Worker-side bridge asks for. */
export type BridgeFormat = "event-stream" | "envelope-json" | "envelope-proto";

export function isFormat(value: string | null): value is Format {
  return (FORMATS as readonly (string | null)[]).includes(value);
}

function isBridge(format: Format): format is BridgeFormat {
  return format === "event-stream" || format === "envelope-json" || format === "envelope-proto";
}

/** The subprotocol names of the WebSocket formats that have one. */
export const SUBPROTOCOLS = { json: "relay.v1.json", proto: "relay.v1.proto" } as const;

/** Picks a WebSocket client's format from its `Sec-WebSocket-Protocol` offer; the first supported name wins. */
export function formatFromProtocols(header: string | null): { format: Format; protocol?: string } {
  for (const name of (header ?? "").split(",").map((s) => s.trim())) {
    if (name === SUBPROTOCOLS.json) return { format: "json", protocol: name };
    if (name === SUBPROTOCOLS.proto) return { format: "proto", protocol: name };
  }
  return { format: "plain" };
}

/** A frame ready to send: text, or bytes. */
export type Frame = string | Uint8Array;

/** The size a frame is counted as (UTF-16 units for text: close enough to its UTF-8 bytes for bounds). */
export function frameSize(f: Frame): number {
  return typeof f === "string" ? f.length : f.byteLength;
}

const utf8 = new TextEncoder();
const ENVELOPE_HEAD = 5;

/** Length-prefixed messages, one per event, in one buffer. */
function envelopes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + ENVELOPE_HEAD + p.byteLength, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at + 1, p.byteLength); // flags byte 0: not compressed, not the end
    out.set(p, at + ENVELOPE_HEAD);
    at += ENVELOPE_HEAD + p.byteLength;
  }
  return out;
}

/** One event in the event-stream framing: its resume offset as `id:`, its kind as `event:`. */
function sseEvent(e: EncodedEvent): string {
  const id = e.resumeId;
  return `${id === undefined ? "" : `id: ${id}\n`}event: ${e.data.kind}\ndata: ${e.json}\n\n`;
}

/**
 * Events published (or replayed) together, for one format: one frame carrying them all, except
 * in plain mode, whose clients read each frame as one event. In json and proto a single event is
 * `ServerFrame.event`, several are `ServerFrame.batch`.
 */
export function encodeEvents(format: Format, events: readonly EncodedEvent[]): Frame[] {
  switch (format) {
    case "plain":
      return events.map((e) => e.json);
    case "json":
      // ServerFrame{event} / {batch} in the JSON mapping is exactly this, around each event's JSON.
      return events.length === 1
        ? [`{"event":${events[0].json}}`]
        : [`{"batch":{"events":[${events.map((e) => e.json).join(",")}]}}`];
    case "proto": {
      // ServerFrame field 1 (event) or 4 (batch of field-1 events), around each event's bytes.
      const w = new BinaryWriter();
      if (events.length === 1) w.tag(1, WireType.LengthDelimited).bytes(events[0].proto);
      else {
        w.tag(4, WireType.LengthDelimited).fork();
        for (const e of events) w.tag(1, WireType.LengthDelimited).bytes(e.proto);
        w.join();
      }
      return [w.finish()];
    }
    case "event-stream":
      return [utf8.encode(events.map(sseEvent).join(""))];
    case "envelope-json":
      return [envelopes(events.map((e) => e.jsonBytes))];
    case "envelope-proto":
      return [envelopes(events.map((e) => e.proto))];
  }
}

/**
 * A publish acknowledgement, carrying the stored event (json and proto; plain mode's answer is
 * the echo of the event, and a bridge's publisher sees its event like everyone else).
 */
export function encodeAck(format: Format, e: EncodedEvent, duplicate: boolean): Frame | undefined {
  if (format === "json") return `{"ack":{"event":${e.json}${duplicate ? ',"duplicate":true' : ""}}}`;
  if (format !== "proto") return undefined;
  const w = new BinaryWriter().tag(2, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).bytes(e.proto);
  if (duplicate) w.tag(2, WireType.Varint).bool(true);
  return w.join().finish();
}

/** A ServerFrame in the socket's encoding: binary in proto mode, JSON text otherwise. */
function control(format: Format, frame: ReturnType<typeof create<typeof ServerFrameSchema>>): Frame {
  return format === "proto" ? toBinary(ServerFrameSchema, frame) : toJsonString(ServerFrameSchema, frame);
}

/** An error frame; `id` names the publish it answers. */
export function encodeError(format: Format, error: ErrorData, id = ""): Frame {
  return control(format, create(ServerFrameSchema, { frame: { case: "error", value: { ...error, id } } }));
}

/** A flow-control ping (none in plain mode, which has no way to answer). */
export function encodePing(format: Format, id: number): Frame | undefined {
  if (format === "plain") return undefined;
  return control(format, create(ServerFrameSchema, { frame: { case: "ping", value: { id: BigInt(id) } } }));
}

/**
 * The liveness check's text frame, in every WebSocket mode: the room has the runtime answer it
 * with itself (`setWebSocketAutoResponse`), so it never wakes the room (see Heartbeat in the proto).
 */
export const HEARTBEAT_TEXT = '{"heartbeat":{}}';

/** The answer to a heartbeat that reached the room (a binary one in proto mode). */
export function encodeHeartbeat(format: Format): Frame {
  return format === "proto"
    ? control(format, create(ServerFrameSchema, { frame: { case: "heartbeat", value: {} } }))
    : HEARTBEAT_TEXT;
}

/** The answer to a refresh: the connection now lives until `expMs`. */
export function encodeRefreshed(format: Format, expMs: number): Frame {
  return control(
    format,
    create(ServerFrameSchema, { frame: { case: "refreshed", value: { expiresAtMs: BigInt(expMs) } } }),
  );
}

/** What a client frame asks for. */
export type ClientMessage =
  | { publish: PublishInput }
  | { pong: number }
  /** A new token for the connection (docs/auth.md). */
  | { refresh: string }
  /** Plain mode: an empty text frame publishes nothing and confirms what was received. */
  | { receipt: true }
  /**
   * A relay.v1.proto client's binary liveness check, or a JSON one spelled differently: the exact
   * text HEARTBEAT_TEXT never reaches the room (the runtime answers it), in any mode.
   */
  | { heartbeat: true };

/** Decodes one client frame, or throws an `invalid_argument` RelayError saying what is wrong with it. */
export function decodeClientFrame(format: Format, data: string | ArrayBuffer): ClientMessage {
  if (format === "plain") {
    if (typeof data !== "string") throw new RelayError("invalid_argument", "plain mode takes text frames");
    return data === "" ? { receipt: true } : { publish: { text: data } };
  }
  let frame: ReturnType<typeof fromBinary<typeof ClientFrameSchema>>;
  try {
    if (format === "json") {
      if (typeof data !== "string") throw new Error("relay.v1.json takes text frames");
      frame = fromJsonString(ClientFrameSchema, data);
    } else {
      if (typeof data === "string")
        throw new Error(`${isBridge(format) ? format : "relay.v1.proto"} takes binary frames`);
      frame = fromBinary(ClientFrameSchema, new Uint8Array(data));
    }
  } catch (e) {
    // protobuf-es refuses a string with a lone surrogate as "invalid UTF8": the rules' own code.
    const message = (e as Error).message;
    throw new RelayError(
      /invalid UTF-?8/i.test(message) ? "invalid_encoding" : "invalid_argument",
      `malformed frame: ${message}`,
    );
  }
  switch (frame.frame.case) {
    case "publish":
      return { publish: frame.frame.value };
    case "pong":
      return { pong: Number(frame.frame.value.id) };
    case "refresh":
      return { refresh: frame.frame.value.token };
    case "heartbeat":
      return { heartbeat: true };
    default:
      throw new RelayError("invalid_argument", "frame has none of publish, pong, refresh, heartbeat");
  }
}

/** A ClientFrame a bridge sends: binary protobuf. */
export function encodeClientFrame(
  message: { publish: PublishInput & { text: string } } | { pong: number },
): Uint8Array {
  const frame =
    "pong" in message
      ? create(ClientFrameSchema, { frame: { case: "pong", value: { id: BigInt(message.pong) } } })
      : create(ClientFrameSchema, {
          frame: {
            case: "publish",
            value: {
              text: message.publish.text,
              id: String(message.publish.id ?? ""),
              user: String(message.publish.user ?? ""),
            },
          },
        });
  return toBinary(ClientFrameSchema, frame);
}
