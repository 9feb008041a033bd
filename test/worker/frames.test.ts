import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ServerFrameSchema } from "../../src/gen/relay/v1/relay_pb";
import { type EventData, eventJson, toChatEvent } from "../../src/protocol/events";
import { encodeAck, encodeEvent, encodeEvents } from "../../src/protocol/frames";

const event = (seq: number, text: string): EventData => ({
  room: "r",
  seq,
  epoch: "e1",
  id: `id-${seq}`,
  user: "ann",
  timeMs: 1_700_000_000_000 + seq,
  kind: "message",
  text,
});

/** What protobuf-es itself makes of a ServerFrame: the frames built from the event's JSON must equal it. */
const reference = (frame: Parameters<typeof create<typeof ServerFrameSchema>>[1]) =>
  toJsonString(ServerFrameSchema, create(ServerFrameSchema, frame));

describe("json frames built around the event's JSON", () => {
  it("encode an ack exactly as protobuf-es does, with and without duplicate", () => {
    const e = event(7, 'quote " and ünïcode');
    for (const duplicate of [false, true]) {
      expect(encodeAck("json", e, duplicate, eventJson(e))).toBe(
        reference({ frame: { case: "ack", value: { event: toChatEvent(e), duplicate } } }),
      );
    }
  });

  it("encode an event and a batch exactly as protobuf-es does, and a batch reads back in order", () => {
    const es = [event(1, "a"), event(2, "b"), event(3, "c")];
    expect(encodeEvent("json", es[0])).toBe(reference({ frame: { case: "event", value: toChatEvent(es[0]) } }));
    const [batch] = encodeEvents("json", es, es.map(eventJson));
    expect(batch).toBe(reference({ frame: { case: "batch", value: { events: es.map(toChatEvent) } } }));
    const back = fromJsonString(ServerFrameSchema, batch as string);
    expect(back.frame.case === "batch" && back.frame.value.events.map((x) => x.text)).toEqual(["a", "b", "c"]);
    expect(encodeEvents("plain", es, es.map(eventJson))).toEqual(es.map(eventJson));
  });
});
