/**
 * The formats a socket to the room can speak: json and proto frames are built around each event's
 * own encoding, so they must equal what protobuf-es makes of the same ServerFrame; the bridge
 * formats must read back with the protocols' own parsers (Connect's envelope reader, an
 * event-stream parser).
 */
import { create, fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import { createAsyncIterable, pipe, transformSplitEnvelope } from "@connectrpc/connect/protocol";
import { describe, expect, it } from "vitest";
import { ChatEventSchema, ClientFrameSchema, ServerFrameSchema } from "../../src/gen/relay/v1/relay_pb";
import { EncodedEvent, type EventData, eventJson, toChatEvent } from "../../src/protocol/events";
import {
  decodeClientFrame,
  encodeAck,
  encodeError,
  encodeEvents,
  encodePing,
  formatFromProtocols,
} from "../../src/protocol/formats";

const event = (seq: number, text: string, extra: Partial<EventData> = {}): EncodedEvent =>
  new EncodedEvent({
    room: "r",
    seq,
    epoch: "e1",
    id: `id-${seq}`,
    user: "ann",
    timeMs: 1_700_000_000_000 + seq,
    kind: "message",
    text,
    ...extra,
  });

type Init = Parameters<typeof create<typeof ServerFrameSchema>>[1];
const json = (frame: Init) => toJsonString(ServerFrameSchema, create(ServerFrameSchema, frame));
const binary = (frame: Init) => toBinary(ServerFrameSchema, create(ServerFrameSchema, frame));

describe("json and proto frames", () => {
  const es = [event(1, "a"), event(2, 'quote " and ünïcode 🎉'), event(3, "c")];

  it("encode an event and a batch exactly as protobuf-es does", () => {
    const one = { frame: { case: "event", value: toChatEvent(es[0].data) } } as const;
    const all = { frame: { case: "batch", value: { events: es.map((e) => toChatEvent(e.data)) } } } as const;
    expect(encodeEvents("json", [es[0]])).toEqual([json(one)]);
    expect(encodeEvents("json", es)).toEqual([json(all)]);
    expect(encodeEvents("proto", [es[0]])).toEqual([binary(one)]);
    expect(encodeEvents("proto", es)).toEqual([binary(all)]);
    // Plain mode: one bare ChatEvent per frame, whatever the batch.
    expect(encodeEvents("plain", es)).toEqual(es.map((e) => toJsonString(ChatEventSchema, toChatEvent(e.data))));
  });

  it("encode acks, errors and pings exactly as protobuf-es does", () => {
    for (const duplicate of [false, true]) {
      const ack = { frame: { case: "ack", value: { event: toChatEvent(es[1].data), duplicate } } } as const;
      expect(encodeAck("json", es[1], duplicate)).toBe(json(ack));
      expect(encodeAck("proto", es[1], duplicate)).toEqual(binary(ack));
    }
    expect(encodeAck("plain", es[1], false)).toBeUndefined();
    expect(encodeAck("event-stream", es[1], false)).toBeUndefined();
    const error = { code: "rate_limited" as const, message: "slow down" };
    expect(encodeError("json", error, "k")).toBe(json({ frame: { case: "error", value: { ...error, id: "k" } } }));
    expect(encodePing("proto", 7)).toEqual(binary({ frame: { case: "ping", value: { id: 7n } } }));
    expect(encodePing("envelope-proto", 7)).toBe('{"ping":{"id":"7"}}');
    expect(encodePing("plain", 7)).toBeUndefined();
  });

  it("carry resumeAfter on subscribed and gap events", () => {
    const subscribed = event(0, "", { kind: "subscribed", resumeAfter: 41, firstSeq: 1, lastSeq: 50 });
    const frame = fromJsonString(ServerFrameSchema, encodeEvents("json", [subscribed])[0] as string);
    expect(frame.frame.case === "event" && frame.frame.value.resumeAfter).toBe(41n);
  });

  it("write an event's JSON exactly as protobuf-es does: every field set or left out, awkward strings", () => {
    const texts = ["", "a", 'q " \\ \n \t \u0000 \u2028 ünï 🎉 </script>', "\uFEFFbom", "x".repeat(3000)];
    const extras: Partial<EventData>[] = [
      {},
      { kind: "gap", firstSeq: 3, lastSeq: 9, reason: "retention", resumeAfter: 9 },
      { kind: "subscribed", firstSeq: 0, reason: "" },
      { kind: "" as EventData["kind"], timeMs: -5 },
      { seq: 2 ** 53 - 1, timeMs: 0 },
    ];
    for (const text of texts) {
      for (const extra of extras) {
        const data: EventData = { ...event(7, text).data, room: text && "r", id: text, user: text, ...extra };
        expect(eventJson(data)).toBe(toJsonString(ChatEventSchema, toChatEvent(data)));
      }
    }
  });

  it("pick the format from the subprotocol offer", () => {
    expect(formatFromProtocols(null)).toEqual({ format: "plain" });
    expect(formatFromProtocols("chat, relay.v1.proto, relay.v1.json")).toEqual({
      format: "proto",
      protocol: "relay.v1.proto",
    });
  });
});

describe("bridge formats", () => {
  const es = [
    event(0, "", { kind: "subscribed", resumeAfter: 9, firstSeq: 1, lastSeq: 9 }),
    event(10, "line one\nline two"),
    event(11, "ü"),
  ];

  it("event-stream: one chunk, an event each with the offset to resume after as its id", () => {
    const [frame] = encodeEvents("event-stream", es);
    const blocks = new TextDecoder()
      .decode(frame as Uint8Array)
      .split("\n\n")
      .filter(Boolean)
      .map((b) =>
        Object.fromEntries(b.split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)])),
      );
    expect(blocks.map((b) => [b.id, b.event])).toEqual([
      ["9", "subscribed"],
      ["10", "message"],
      ["11", "message"],
    ]);
    // A newline in a text is escaped in its JSON: one `data:` line per event.
    expect(JSON.parse(blocks[1].data).text).toBe("line one\nline two");
  });

  it("envelopes: Connect's own envelope reader gets each event back, in json and in binary", async () => {
    for (const format of ["envelope-json", "envelope-proto"] as const) {
      const [frame] = encodeEvents(format, es);
      const out = [];
      for await (const env of pipe(createAsyncIterable([frame as Uint8Array]), transformSplitEnvelope(1 << 20))) {
        expect(env.flags).toBe(0);
        out.push(
          format === "envelope-proto"
            ? fromBinary(ChatEventSchema, env.data)
            : fromJsonString(ChatEventSchema, new TextDecoder().decode(env.data)),
        );
      }
      expect(out.map((e) => [e.kind, e.seq, e.text])).toEqual(
        es.map((e) => [e.data.kind, BigInt(e.data.seq), e.data.text]),
      );
    }
  });
});

describe("client frames", () => {
  it("decode publishes and pongs, and refuse the rest with invalid_argument", () => {
    expect(decodeClientFrame("plain", "hi")).toEqual({ publish: { text: "hi" } });
    expect(decodeClientFrame("plain", "")).toEqual({ receipt: true });
    expect(decodeClientFrame("json", '{"pong":{"id":"5"}}')).toEqual({ pong: 5 });
    const pong = toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "pong", value: { id: 6n } } }));
    expect(decodeClientFrame("envelope-json", pong.buffer as ArrayBuffer)).toEqual({ pong: 6 });
    for (const [format, data] of [
      ["plain", new ArrayBuffer(2)],
      ["json", "{"],
      ["json", "{}"],
      ["proto", "text"],
      ["event-stream", "{}"],
    ] as const) {
      expect(() => decodeClientFrame(format, data), `${format} ${String(data)}`).toThrowError(
        expect.objectContaining({ code: "invalid_argument" }),
      );
    }
  });
});
