/**
 * Hostile Connect and gRPC-Web calls, one slice per protocol family. Bodies of unary Connect calls
 * (no envelope) and length-prefixed envelopes of gRPC-Web and Connect streams: bad flags, lengths
 * larger or smaller than the data, truncated, the compressed flag without an encoding, oversized,
 * random bytes, two messages, trailing bytes; wrong and missing content types; odd timeout,
 * encoding and protocol-version headers; unknown methods. A Publish carries a message the rules
 * refuse, except inside a gRPC-Web envelope broken in a way that must be refused as a whole; a
 * unary Connect body that might still be a valid publish (oracle.ts) is not sent.
 */
import { create, type DescMessage, fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import {
  ChatMessageSchema,
  HistoryRequestSchema,
  PresenceRequestSchema,
  PublishRequestSchema,
  SubscribeRequestSchema,
} from "../../../src/gen/relay/v1/relay_pb";
import { CONTENT_TYPES as CT, concat, envelope } from "../connect-wire";
import { publishMayPass, validRoom } from "../oracle";
import type { Rng } from "../prng";
import { type Call, connectAttempt, type FuzzContext, type Slice, show } from "../slice";
import { awkwardString, mutate, textOfBytes } from "./strings";

type Method = "Publish" | "History" | "Presence" | "Subscribe" | "Chat";
const SCHEMA: Record<Method, DescMessage> = {
  Publish: PublishRequestSchema,
  History: HistoryRequestSchema,
  Presence: PresenceRequestSchema,
  Subscribe: SubscribeRequestSchema,
  Chat: ChatMessageSchema,
};

/** A request message of `method`; a Publish is one the rules refuse unless `valid`. */
function message(rng: Rng, ctx: FuzzContext, method: Method, room: string, valid: boolean): Record<string, unknown> {
  switch (method) {
    case "Publish": {
      if (valid) return { room, text: `envelope ${rng.int(0, 1e6)}`, id: `e-${rng.int(0, 1e6)}` };
      return rng.pick([
        { room, text: "" },
        { room, text: textOfBytes(rng, rng.int(ctx.maxMessageBytes + 1, ctx.maxMessageBytes + 900)) },
        { room, text: "hi", id: "x".repeat(129) },
        { room, text: "hi", user: "a\u0001" },
        { room: "no spaces", text: "hi" },
        { room: "", text: "hi" },
      ]);
    }
    case "History":
      return { room, since: String(rng.int(0, 5)), limit: rng.int(0, 2000) };
    case "Presence":
      return { room };
    case "Subscribe":
      return rng.chance(0.5) ? { room, since: "0" } : { room };
    case "Chat":
      return {
        room,
        user: awkwardString(rng, 3),
        message: rng.chance(0.5) ? "" : textOfBytes(rng, ctx.maxMessageBytes + 10),
      };
  }
}

function encode(method: Method, m: Record<string, unknown>, binary: boolean): Uint8Array {
  const schema = SCHEMA[method];
  const msg = create(schema, m as never);
  return binary ? toBinary(schema, msg) : Buffer.from(toJsonString(schema, msg));
}

/** Whether a unary Connect Publish body may be stored (decoded the way Connect does). */
function unaryMayPass(body: Uint8Array, binary: boolean, max: number): boolean {
  try {
    const m = binary
      ? fromBinary(PublishRequestSchema, body)
      : fromJsonString(PublishRequestSchema, Buffer.from(body).toString(), { ignoreUnknownFields: true });
    return validRoom(m.room) && publishMayPass(m, max);
  } catch {
    return false;
  }
}

/** Ways to break an envelope; `refused`: the whole request must be refused, whatever it carries. */
const ENVELOPE_OPS: [
  number,
  { name: string; refused: boolean; apply(rng: Rng, p: Uint8Array, max: number): Uint8Array },
][] = [
  [3, { name: "well-formed", refused: false, apply: (_r, p) => envelope(0, p) }],
  [
    3,
    {
      name: "length too large",
      refused: true,
      apply: (r, p) => envelope(0, p, p.length + r.pick([1, 5, 1000, 2 ** 31, 2 ** 32 - 1])),
    },
  ],
  [
    3,
    { name: "length too small", refused: true, apply: (r, p) => envelope(0, p, Math.max(0, p.length - r.int(1, 6))) },
  ],
  [3, { name: "truncated", refused: true, apply: (r, p) => envelope(0, p).subarray(0, r.int(0, 4 + p.length)) }],
  [2, { name: "compressed flag", refused: true, apply: (r, p) => envelope(0x01 | (r.chance(0.3) ? 0x04 : 0), p) }],
  [2, { name: "trailer flag", refused: true, apply: (_r, p) => envelope(0x80, p) }],
  [
    2,
    { name: "odd flags", refused: false, apply: (r, p) => envelope(r.pick([0x02, 0x04, 0x08, 0x40, 0x7e, 0xfe]), p) },
  ],
  [2, { name: "two messages", refused: true, apply: (_r, p) => concat(envelope(0, p), envelope(0, p)) }],
  [2, { name: "trailing bytes", refused: true, apply: (r, p) => concat(envelope(0, p), r.bytes(r.int(1, 4))) }],
  [1, { name: "empty body", refused: true, apply: () => new Uint8Array(0) }],
  [2, { name: "random bytes", refused: false, apply: (r) => r.bytes(r.size(1, 2000)) }],
  [
    2,
    {
      name: "oversized",
      refused: false,
      apply: (r, p, max) =>
        envelope(
          0,
          concat(
            p,
            r.bytes(
              r.weighted([
                [4, r.int(max + 1030, 64 * 1024)],
                [1, r.int(1 << 20, 2 << 20)],
              ]),
            ),
          ),
        ),
    },
  ],
];

const ODD_HEADERS: Record<string, string>[] = [
  { "Connect-Timeout-Ms": "-1" },
  { "Connect-Timeout-Ms": "abc" },
  { "Connect-Timeout-Ms": "99999999999999999999" },
  { "Connect-Timeout-Ms": "1" },
  { "grpc-timeout": "1n" },
  { "grpc-timeout": "garbage" },
  { "grpc-timeout": "99999999H" },
  { "Connect-Protocol-Version": "2" },
  { "grpc-encoding": "gzip" },
  { "connect-content-encoding": "br" },
  { "Connect-Accept-Encoding": "zstd, x" },
  { "Content-Encoding": "gzip" },
];

const WRONG_TYPES = [
  undefined,
  "",
  "text/plain",
  "application/grpc",
  "application/grpc+proto",
  "application/grpc-web-text",
  "application/xml",
  "application/connect+thrift",
  "application/grpc-web+thrift",
];

interface Family {
  name: string;
  /** The call's kind for `method`, and its content type (binary or JSON). */
  call(method: Method, binary: boolean): { kind: Call["kind"]; contentType: string; enveloped: boolean };
}

const CONNECT: Family = {
  name: "envelopes connect",
  call(method, binary) {
    const stream = method === "Subscribe" || method === "Chat";
    if (stream)
      return {
        kind: "connect-stream",
        contentType: binary ? CT.connectStreamProto : CT.connectStreamJson,
        enveloped: true,
      };
    return { kind: "connect-unary", contentType: binary ? CT.connectProto : CT.connectJson, enveloped: false };
  },
};

const GRPC_WEB: Family = {
  name: "envelopes grpc-web",
  call(_method, binary) {
    return { kind: "grpc-web", contentType: binary ? CT.grpcWebProto : CT.grpcWebJson, enveloped: true };
  },
};

function makeCall(
  rng: Rng,
  ctx: FuzzContext,
  family: Family,
  room: string,
): { input: string; call: Call; publishes: boolean } | undefined {
  const method = rng.weighted<Method>([
    [4, "Publish"],
    [2, "History"],
    [1, "Presence"],
    [3, "Subscribe"],
    [1, "Chat"],
  ]);
  const binary = rng.chance(0.6);
  const shape = family.call(method, binary);
  const op = shape.enveloped ? rng.weighted(ENVELOPE_OPS) : undefined;
  // A valid Publish only where the envelope itself must make the call fail.
  const valid = method === "Publish" && family === GRPC_WEB && op?.refused === true && rng.chance(0.7);
  let payload = encode(method, message(rng, ctx, method, room, valid), binary);
  let what: string = op?.name ?? "body";
  if (!shape.enveloped) {
    const bodyOp = rng.weighted<[string, () => Uint8Array]>([
      [3, ["as is", () => payload]],
      [2, ["truncated", () => payload.subarray(0, rng.int(0, Math.max(0, payload.length - 1)))]],
      [2, ["mutated", () => mutate(rng, payload)]],
      [1, ["trailing bytes", () => concat(payload, rng.bytes(rng.int(1, 8)))]],
      [2, ["random bytes", () => rng.bytes(rng.size(0, 2000))]],
      [1, ["oversized", () => concat(payload, Buffer.from(" ".repeat(rng.int(ctx.maxMessageBytes + 1030, 200_000))))]],
      [1, ["empty", () => new Uint8Array(0)]],
    ]);
    what = bodyOp[0];
    payload = bodyOp[1]();
  }
  let body = op ? op.apply(rng, payload, ctx.maxMessageBytes) : payload;
  let contentType: string | undefined = shape.contentType;
  let headers: Record<string, string> = rng.chance(0.15) ? { ...rng.pick(ODD_HEADERS) } : {};
  let name: string = method;
  if (rng.chance(0.1)) {
    contentType = rng.pick(WRONG_TYPES);
    what += `, content type ${contentType ?? "none"}`;
  }
  if (rng.chance(0.05)) {
    name = rng.pick(["Shout", "publish", "Publish/extra", "", "Publish%00", "..%2fPublish"]);
    what += ", unknown method";
  }
  if (method === "Publish" && !shape.enveloped && name === "Publish") {
    const ct = (contentType ?? "").toLowerCase();
    if (
      (ct === CT.connectJson || ct === CT.connectProto) &&
      unaryMayPass(body, ct === CT.connectProto, ctx.maxMessageBytes)
    )
      return undefined;
  }
  if (valid && (contentType !== shape.contentType || name !== "Publish" || Object.keys(headers).length)) {
    // Keep the one thing that must make it fail the envelope: the other changes could hide it.
    contentType = shape.contentType;
    name = "Publish";
    headers = {};
    body = op
      ? op.apply(rng, encode(method, message(rng, ctx, method, room, true), binary), ctx.maxMessageBytes)
      : body;
    what = op?.name ?? what;
  }
  const input = `${name} ${what}${valid ? " (valid message inside)" : ""}${Object.keys(headers).length ? ` ${JSON.stringify(headers)}` : ""}: ${contentType ?? "(no type)"} ${show(body, 48)}`;
  return {
    input,
    call: { kind: shape.kind, method: name, contentType, body, headers, binary },
    publishes: method === "Publish",
  };
}

export function envelopeSlices(ctx: FuzzContext): Slice[] {
  return [CONNECT, GRPC_WEB].map((family) => {
    const room = `${ctx.prefix}-${family === CONNECT ? "connect" : "grpcweb"}`;
    return {
      name: family.name,
      room,
      make(rng: Rng) {
        const c = makeCall(rng, ctx, family, room);
        return c && connectAttempt(c.input, c.call, c.publishes);
      },
    };
  });
}
