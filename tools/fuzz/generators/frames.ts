/**
 * Hostile WebSocket frames, one slice per mode. Plain: text that is not UTF-8 or holds U+FFFD,
 * oversized text, binary frames, empty frames, fragmented ones (plain-mode text that is valid
 * would be a publish, so none is sent). relay.v1.json: truncated JSON, wrong types, huge and
 * deeply nested JSON, bytes that are not UTF-8, lone surrogates, several or unknown oneof cases,
 * random mutations of a valid frame, binary frames. relay.v1.proto: random bytes, wrong wire
 * types, truncated messages, lying lengths, strings that are not UTF-8, several oneof cases,
 * unterminated and deeply nested groups, overlong varints, text frames.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ClientFrameSchema } from "../../../src/gen/relay/v1/relay_pb";
import { wsFrameMayPass } from "../oracle";
import type { Rng } from "../prng";
import { type FuzzContext, frameAttempt, type Slice, show } from "../slice";
import type { FrameInput, WsMode } from "../ws-session";
import { awkwardString, mutate, nestedJson, textOfBytes, withBadUtf8 } from "./strings";

type Gen = (rng: Rng, ctx: FuzzContext) => { kind: string; frame: FrameInput };

const utf8 = (s: string) => Buffer.from(s);
const text = (s: string | Uint8Array, fragments?: number): FrameInput => ({
  data: typeof s === "string" ? utf8(s) : s,
  binary: false,
  fragments,
});
const binary = (b: Uint8Array): FrameInput => ({ data: b, binary: true });

/** Bytes over the text limit: in the frame limit (the text is refused) or over it (the frame is). */
function overSize(rng: Rng, ctx: FuzzContext): number {
  const max = ctx.maxMessageBytes;
  return rng.weighted([
    [4, rng.int(max + 1, max + 1024)],
    [4, rng.size(max + 1025, 256 * 1024)],
    [1, rng.int(900 * 1024, 1100 * 1024)],
  ]);
}

const PLAIN: [number, Gen][] = [
  [
    4,
    (rng) => ({
      kind: "not UTF-8",
      frame: text(withBadUtf8(rng, rng.chars(rng.int(0, 200), "hello ")), rng.int(1, 3)),
    }),
  ],
  [2, (rng) => ({ kind: "U+FFFD", frame: text(`${awkwardString(rng, rng.int(0, 30))}\ufffd`) })],
  [3, (rng, ctx) => ({ kind: "oversized text", frame: text(textOfBytes(rng, overSize(rng, ctx)), rng.int(1, 4)) })],
  [3, (rng) => ({ kind: "binary", frame: binary(rng.bytes(rng.size(0, 4000))) })],
  [1, (rng, ctx) => ({ kind: "oversized binary", frame: binary(rng.bytes(overSize(rng, ctx))) })],
  [1, () => ({ kind: "empty", frame: text("") })],
];

/** Templates of relay.v1.json frames, valid and not, for truncation and mutation. */
function jsonTemplate(rng: Rng): string {
  return rng.pick([
    () => JSON.stringify({ publish: { text: awkwardString(rng, rng.int(1, 20)), id: `id-${rng.int(0, 99)}` } }),
    () => JSON.stringify({ publish: { text: "hello", user: awkwardString(rng, rng.int(1, 10)) } }),
    () => JSON.stringify({ pong: { id: String(rng.int(0, 1e6)) } }),
    () => JSON.stringify({ refresh: { token: "x.y.z" } }),
  ])();
}

const WRONG_TYPES = [
  '{"publish":{"text":1}}',
  '{"publish":{"text":true}}',
  '{"publish":{"text":null,"id":"a"}}',
  '{"publish":{"text":["hi"]}}',
  '{"publish":{"text":{"a":"hi"}}}',
  '{"publish":{"text":"hi","id":7}}',
  '{"publish":{"text":"hi","user":{}}}',
  '{"publish":{"text":"hi","user":1e400}}',
  '{"publish":"hi"}',
  '{"publish":["hi"]}',
  '{"publish":1}',
  '{"publish":null}',
  '{"publish":{}}',
  '{"pong":{"id":"abc"}}',
  '{"pong":{"id":-1}}',
  '{"pong":{"id":1.5}}',
  '{"pong":{"id":"18446744073709551616"}}',
  '{"pong":{"id":1e308}}',
  '{"pong":[]}',
  '{"pong":"1"}',
  '{"refresh":{"token":1}}',
  '{"refresh":{}}',
  '{"refresh":"x"}',
  "[]",
  "null",
  "1",
  '"publish"',
  "true",
  "{}",
  "",
  " ",
  '{"publish":{"text":"hi"},"pong":{"id":"1"}}',
  '{"pong":{"id":"1"},"refresh":{"token":"t"}}',
  '{"ping":{"id":"1"}}',
  '{"event":{"text":"hi"}}',
  '{"ack":{}}',
  '{"Publish":{"text":"hi"}}',
  '{"publish":{"Text":"hi"}}',
  '{"publish":{"text":"hi","room":"other"}}',
  '{"publish":{"text":"hi","extra":1}}',
  '\ufeff{"publish":{"text":"hi"}}',
  "{'publish':{'text':'hi'}}",
  '{"publish":{"text":"hi",}}',
  '{"publish":{"text":"hi"}}{"publish":{"text":"hi"}}',
  '{"publish":{"text":"hi"}} x',
  '{"publish":{"text":"\\x41"}}',
  '{"publish":{"text":"a\\u12"}}',
  '{"publish":{"text":NaN}}',
  '{"publish":{"text":"",  "id":"empty-text"}}',
];

const JSON_GENS: [number, Gen][] = [
  [
    3,
    (rng) => {
      const t = jsonTemplate(rng);
      return { kind: "truncated JSON", frame: text(t.slice(0, rng.int(0, t.length - 1))) };
    },
  ],
  [4, (rng) => ({ kind: "wrong types", frame: text(rng.pick(WRONG_TYPES)) })],
  [
    2,
    (rng, ctx) => {
      const size = overSize(rng, ctx);
      return {
        kind: "huge",
        frame: text(JSON.stringify({ publish: { text: textOfBytes(rng, size) } }), rng.int(1, 3)),
      };
    },
  ],
  [
    2,
    (rng, ctx) => {
      const pad = " ".repeat(overSize(rng, ctx));
      return { kind: "huge whitespace", frame: text(`{"publish":${pad}{"text":"hi"}}`) };
    },
  ],
  [
    3,
    (rng) => {
      const deep = nestedJson(rng, rng.size(50, 6000));
      const where = rng.pick(["text", "id", "user", "extra", "root", "pong"]);
      const f =
        where === "root"
          ? deep
          : where === "pong"
            ? `{"pong":{"id":${deep}}}`
            : `{"publish":{"text":${where === "text" ? deep : '"hi"'},"${where}":${deep}}}`;
      return { kind: "deeply nested", frame: text(f) };
    },
  ],
  [3, (rng) => ({ kind: "not UTF-8", frame: text(withBadUtf8(rng, jsonTemplate(rng))) })],
  [
    2,
    (rng) => {
      const field = rng.pick(["text", "id", "user"]);
      const lone = rng.pick(["\\ud800", "\\udc00", "\\udbff", "a\\ud83d", "\\ude00b"]);
      const f = field === "text" ? `{"publish":{"text":"x${lone}"}}` : `{"publish":{"text":"hi","${field}":"${lone}"}}`;
      return { kind: "lone surrogate", frame: text(f) };
    },
  ],
  [3, (rng) => ({ kind: "mutated", frame: text(mutate(rng, utf8(jsonTemplate(rng)))) })],
  [
    1,
    (rng) => ({
      kind: "binary",
      frame: binary(rng.chance(0.5) ? utf8(jsonTemplate(rng)) : rng.bytes(rng.size(0, 500))),
    }),
  ],
  [1, (rng) => ({ kind: "U+FFFD", frame: text(`{"publish":{"text":"\ufffd${rng.int(0, 9)}"}}`) })],
  [
    1,
    (rng) => {
      const bad = rng.pick([
        { text: "" },
        { text: "hi", id: "x".repeat(129) },
        { text: "hi", id: "a b\u0001" },
        { text: "hi", user: "u".repeat(65) },
        { text: "hi", user: "a\u0000b" },
      ]);
      return { kind: "refused by the rules", frame: text(JSON.stringify({ publish: bad })) };
    },
  ],
];

/** A ClientFrame written field by field, with wire types that may be wrong. */
function protoFields(rng: Rng): Uint8Array {
  const w = new BinaryWriter();
  for (let n = rng.int(1, 4); n > 0; n--) {
    const field = rng.weighted([
      [6, rng.int(1, 3)],
      [1, rng.pick([0, 4, 15, 16, 536870911, 19000])],
    ]);
    const type = rng.pick([WireType.Varint, WireType.Bit64, WireType.LengthDelimited, WireType.Bit32]);
    w.tag(field, type);
    if (type === WireType.Varint) w.uint64(BigInt.asUintN(64, BigInt(rng.int(0, 2 ** 31)) << BigInt(rng.int(0, 40))));
    else if (type === WireType.Bit64) w.fixed64(BigInt(rng.int(0, 2 ** 31)));
    else if (type === WireType.Bit32) w.fixed32(rng.int(0, 2 ** 31));
    else {
      const inner = new BinaryWriter();
      for (let k = rng.int(0, 3); k > 0; k--) {
        const f = rng.int(1, 5);
        const t = rng.pick([WireType.Varint, WireType.LengthDelimited]);
        inner.tag(f, t);
        if (t === WireType.Varint) inner.int64(BigInt(rng.int(-5, 5)));
        else inner.bytes(rng.chance(0.5) ? Buffer.from(awkwardString(rng, rng.int(0, 8))) : rng.bytes(rng.int(0, 8)));
      }
      w.bytes(inner.finish());
    }
  }
  return w.finish();
}

function validProto(rng: Rng): Uint8Array {
  const f = rng.chance(0.5)
    ? create(ClientFrameSchema, {
        frame: { case: "publish", value: { text: "hello proto", id: `p-${rng.int(0, 99)}` } },
      })
    : create(ClientFrameSchema, { frame: { case: "pong", value: { id: BigInt(rng.int(0, 1e6)) } } });
  return toBinary(ClientFrameSchema, f);
}

/** A publish whose string field `field` (2 text, 3 id, 4 user) holds bytes that are not UTF-8. */
function protoBadUtf8(rng: Rng): Uint8Array {
  const inner = new BinaryWriter();
  const field = rng.int(2, 4);
  if (field !== 2) inner.tag(2, WireType.LengthDelimited).string("hello");
  inner.tag(field, WireType.LengthDelimited).bytes(withBadUtf8(rng, "abc"));
  return new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(inner.finish()).finish();
}

const PROTO_GENS: [number, Gen][] = [
  [4, (rng) => ({ kind: "random bytes", frame: binary(rng.bytes(rng.size(1, 600))) })],
  [4, (rng) => ({ kind: "wrong wire types", frame: binary(protoFields(rng)) })],
  [
    2,
    (rng) => {
      const v = validProto(rng);
      return { kind: "truncated", frame: binary(v.subarray(0, rng.int(1, v.length - 1))) };
    },
  ],
  [
    2,
    (rng) => {
      // Field 1 (publish), length-delimited, with a length far past the end.
      const len = rng.pick([0x7fffffff, 0xffffffff, 1000, 2 ** 35]);
      const head = new BinaryWriter().tag(1, WireType.LengthDelimited).uint64(BigInt(len)).finish();
      return { kind: "lying length", frame: binary(Buffer.concat([head, rng.bytes(rng.int(0, 20))])) };
    },
  ],
  [2, (rng) => ({ kind: "not UTF-8 string", frame: binary(protoBadUtf8(rng)) })],
  [
    2,
    (rng) => {
      const publishEmpty = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(new Uint8Array(0)).finish();
      const pong = new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(Uint8Array.of(8, 1)).finish();
      const refresh = new BinaryWriter()
        .tag(3, WireType.LengthDelimited)
        .bytes(Uint8Array.of(10, 1, 120))
        .finish();
      const parts = [publishEmpty, pong, refresh];
      const order = [rng.pick(parts), rng.pick(parts), rng.pick(parts)];
      return { kind: "several oneof cases", frame: binary(Buffer.concat(order)) };
    },
  ],
  [
    2,
    (rng) => {
      // Start-group tags without their ends, or nested thousands deep.
      const depth = rng.size(1, 20000);
      const start = new BinaryWriter().tag(rng.int(1, 9), WireType.StartGroup).finish();
      const end = rng.chance(0.5) ? Buffer.alloc(0) : new BinaryWriter().tag(1, WireType.EndGroup).finish();
      return { kind: "groups", frame: binary(Buffer.concat([...Array(depth).fill(start), end])) };
    },
  ],
  [
    2,
    (rng) => {
      // Publish -> field 9 (unknown) -> field 9 -> ...: length-delimited nesting.
      let inner: Uint8Array = Buffer.from("x");
      for (let d = rng.size(2, 800); d > 0; d--)
        inner = new BinaryWriter().tag(9, WireType.LengthDelimited).bytes(inner).finish();
      return {
        kind: "deeply nested",
        frame: binary(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(inner).finish()),
      };
    },
  ],
  [
    1,
    (rng) => {
      const overlong = Buffer.from([0x0a, ...Array(rng.int(10, 30)).fill(0xff), 0x01]);
      return { kind: "overlong varint", frame: binary(overlong) };
    },
  ],
  [
    2,
    (rng, ctx) => {
      const f = create(ClientFrameSchema, {
        frame: { case: "publish", value: { text: textOfBytes(rng, overSize(rng, ctx)) } },
      });
      return { kind: "huge", frame: binary(toBinary(ClientFrameSchema, f)) };
    },
  ],
  [1, (rng) => ({ kind: "text frame", frame: text(rng.chance(0.5) ? jsonTemplate(rng) : withBadUtf8(rng, "abc")) })],
  [1, (rng) => ({ kind: "mutated", frame: binary(mutate(rng, validProto(rng))) })],
];

const GENS: Record<WsMode, [number, Gen][]> = { plain: PLAIN, json: JSON_GENS, proto: PROTO_GENS };

export function frameSlices(ctx: FuzzContext): Slice[] {
  return (["plain", "json", "proto"] as const).map((mode) => {
    const room = `${ctx.prefix}-frames-${mode}`;
    return {
      name: `frames ws-${mode}`,
      room,
      make(rng: Rng) {
        const { kind, frame } = rng.weighted(GENS[mode])(rng, ctx);
        if (wsFrameMayPass(mode, frame.data, frame.binary, ctx.maxMessageBytes)) return undefined;
        // Plain mode: a binary frame within the size limit gets one error frame before the sentinel's.
        const before = mode === "plain" && frame.binary && frame.data.length <= ctx.maxMessageBytes + 1024 ? 1 : 0;
        const what = `${kind}: ${frame.binary ? "binary" : "text"} ${show(frame.data)}${frame.fragments && frame.fragments > 1 ? ` in ${frame.fragments} fragments` : ""}`;
        return frameAttempt(what, mode, room, frame, before);
      },
    };
  });
}
