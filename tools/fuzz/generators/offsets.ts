/**
 * Bad resume points and page sizes, one slice per transport: `since`, `limit`, `Last-Event-ID`
 * and `epoch` that are negative, huge, 2^53 and around it, floats, hex, empty, padded, or written
 * in other scripts' digits; in the query (raw bytes or percent-encoded), in the SSE header, and in
 * Connect History/Subscribe requests (JSON numbers and strings of every kind; binary varints that
 * are overlong or past 64 bits). Every request here only reads.
 */
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { wellFormedCall } from "../connect-wire";
import { allOf, epochRule, offsetRule, type Rule } from "../oracle";
import type { Rng } from "../prng";
import {
  connectAttempt,
  expectFrom,
  type FuzzContext,
  headerValue,
  httpAttempt,
  pathBytes,
  type Slice,
  show,
  sseAttempt,
  upgradeAttempt,
} from "../slice";

const OFFSETS = [
  "-1",
  "-0",
  "0",
  "1",
  "9007199254740991",
  "9007199254740992",
  "9007199254740993",
  "-9007199254740993",
  "18446744073709551615",
  "18446744073709551616",
  "99999999999999999999999",
  "1e3",
  "1E3",
  "1.5",
  "1.0",
  "0.0000001",
  "0x10",
  "0X1F",
  "0b1",
  "0o7",
  "",
  " ",
  "  1",
  "1 ",
  "+1",
  "١٢٣",
  "１２",
  "٠",
  "०१२",
  "๑",
  "¹",
  "NaN",
  "Infinity",
  "-Infinity",
  "00000000000000001",
  "0000000000000001",
  "1_000",
  "1,2",
  "1;2",
  "4294967295",
  "4294967296",
  "2147483648",
  "1\u0000",
];

const EPOCHS = ["", "x".repeat(65), "x".repeat(60_000), "a b", "../", "ü", "%00", "a.b", "-_-", "mx0bg0r3193cfe58"];

function offset(rng: Rng): string {
  return rng.weighted<() => string>([
    [6, () => rng.pick(OFFSETS)],
    [2, () => `${rng.pick(["", "-", "+"])}${rng.chars(rng.int(1, 30), "0123456789")}`],
    [1, () => `${rng.chars(rng.int(1, 5), "0123456789")}.${rng.chars(rng.int(1, 5), "0123456789")}`],
    [1, () => rng.chars(rng.int(1, 6), "0123456789٠١٢٣०१२๑１２³")],
  ])();
}

/** A query value: percent-encoded, or raw UTF-8 bytes (what node:http may send) with controls encoded. */
function q(rng: Rng, v: string): string {
  if (rng.chance(0.5)) return encodeURIComponent(Buffer.from(v).toString());
  return pathBytes(v, "#&%+");
}

/** A uint64 field as a varint: overlong, past 64 bits, or a negative int64's ten bytes. */
function oddVarint(rng: Rng, field: number): Uint8Array {
  const tag = (field << 3) | WireType.Varint;
  return rng.pick([
    () =>
      new BinaryWriter()
        .tag(field, WireType.Varint)
        .int64(BigInt(-rng.int(1, 1e9)))
        .finish(),
    () =>
      new BinaryWriter()
        .tag(field, WireType.Varint)
        .uint64(2n ** 64n - 1n)
        .finish(),
    () =>
      new BinaryWriter()
        .tag(field, WireType.Varint)
        .uint64(2n ** 53n + BigInt(rng.int(0, 9)))
        .finish(),
    () => Uint8Array.from([tag, ...Array(rng.int(10, 14)).fill(0xff), 0x01]),
    () => Uint8Array.from([tag, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
    () => new BinaryWriter().tag(field, WireType.Bit64).fixed64(7n).finish(),
  ])();
}

/** A JSON token for a uint64/uint32 field. */
function jsonNumber(rng: Rng): string {
  return rng.weighted<() => string>([
    [4, () => JSON.stringify(offset(rng))],
    [
      3,
      () =>
        rng.pick([
          "-1",
          "1.5",
          "1e3",
          "1e400",
          "-0",
          "9007199254740993",
          "18446744073709551616",
          "4294967296",
          "true",
          "null",
          "[]",
          "{}",
          '"0x10"',
        ]),
    ],
  ])();
}

/**
 * SSE's resume point: the `Last-Event-ID` header (what a reconnecting EventSource sends; an empty
 * one names no offset), else `?since=`. With both, which wins is left open unless they agree, and
 * so is a header with spaces around it (whether the HTTP stack strips them is not the relay's
 * doing). `from`: the offset to resume after, when there is one to check.
 */
function resumePoint(header: string | undefined, since: string | undefined): { rule: Rule; from?: string } {
  const pick = (v: string | undefined) => ({ rule: offsetRule(v), from: v || undefined });
  if (header !== undefined && header !== header.replace(/^[ \t]+|[ \t]+$/g, "")) return { rule: "either" };
  if (header === undefined || header === "") return pick(since);
  if (since === undefined || since === "") return pick(header);
  const a = offsetRule(header);
  if (a !== offsetRule(since)) return { rule: "either" };
  return { rule: a, from: a === "valid" && BigInt(header) === BigInt(since) ? header : undefined };
}

export function offsetSlices(ctx: FuzzContext): Slice[] {
  const room = `${ctx.prefix}-offsets`;
  return [
    {
      name: "offsets http",
      make(rng) {
        const since = rng.chance(0.8) ? offset(rng) : undefined;
        const limit = rng.chance(0.6) ? offset(rng) : undefined;
        const parts = [];
        if (since !== undefined) parts.push(`since=${q(rng, since)}`);
        if (limit !== undefined) parts.push(`limit=${q(rng, limit)}`);
        const path = `/rooms/${room}/messages?${parts.join("&")}`;
        const a = httpAttempt(`GET ${show(path)}`, { method: "GET", path });
        a.expect = expectFrom(allOf(offsetRule(since), offsetRule(limit)));
        return a;
      },
    },
    {
      name: "offsets sse",
      make(rng) {
        const since = rng.chance(0.6) ? offset(rng) : undefined;
        const lastEventId = rng.chance(0.5) ? headerValue(offset(rng)) : undefined;
        const epoch = rng.chance(0.3) ? rng.pick(EPOCHS) : undefined;
        const parts = [];
        const headers: Record<string, string> = {};
        if (since !== undefined) parts.push(`since=${q(rng, since)}`);
        if (lastEventId !== undefined) headers["Last-Event-ID"] = lastEventId;
        if (epoch !== undefined) parts.push(`epoch=${q(rng, epoch)}`);
        const path = `/rooms/${room}/sse?${parts.join("&")}`;
        const a = sseAttempt(`GET ${show(path)} Last-Event-ID ${show(lastEventId ?? "(none)")}`, path, headers);
        const { rule, from } = resumePoint(lastEventId, since);
        const all = allOf(rule, epochRule(epoch));
        a.expect = expectFrom(all, all === "valid" && from ? String(BigInt(from)) : undefined);
        return a;
      },
    },
    {
      name: "offsets ws",
      make(rng) {
        const since = offset(rng);
        const epoch = rng.chance(0.3) ? rng.pick(EPOCHS) : undefined;
        const parts = [`since=${q(rng, since)}`];
        if (epoch !== undefined) parts.push(`epoch=${q(rng, epoch)}`);
        const path = `/rooms/${room}/ws?${parts.join("&")}`;
        const protocol = rng.pick([undefined, "relay.v1.json", "relay.v1.proto"]);
        const a = upgradeAttempt(`upgrade ${show(path)}`, path, protocol ? { "Sec-WebSocket-Protocol": protocol } : {});
        a.expect = expectFrom(allOf(offsetRule(since), epochRule(epoch)));
        return a;
      },
    },
    {
      name: "offsets connect",
      make(rng) {
        const method = rng.pick(["History", "Subscribe"] as const);
        const grpcWeb = rng.chance(0.4);
        const binary = rng.chance(0.5);
        let payload: Uint8Array;
        if (binary) {
          const w = new BinaryWriter().tag(1, WireType.LengthDelimited).string(room).finish();
          const parts = [w, oddVarint(rng, 2)];
          if (method === "History" && rng.chance(0.6)) parts.push(oddVarint(rng, 3));
          if (method === "Subscribe" && rng.chance(0.3))
            parts.push(new BinaryWriter().tag(3, WireType.LengthDelimited).string(rng.pick(EPOCHS)).finish());
          payload = Buffer.concat(parts);
        } else {
          const extra = method === "History" && rng.chance(0.6) ? `,"limit":${jsonNumber(rng)}` : "";
          const epoch = method === "Subscribe" && rng.chance(0.3) ? `,"epoch":${JSON.stringify(rng.pick(EPOCHS))}` : "";
          payload = Buffer.from(`{"room":"${room}","since":${jsonNumber(rng)}${extra}${epoch}}`);
        }
        const { kind, contentType, body } = wellFormedCall(method, payload, { binary, grpcWeb });
        return connectAttempt(`${method} ${show(payload)} (${contentType})`, {
          kind,
          method,
          contentType,
          body,
          binary,
        });
      },
    },
  ];
}
