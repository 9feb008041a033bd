/**
 * Hostile bodies for `POST /rooms/:room/messages`: wrong, missing and look-alike content types;
 * JSON that is invalid, of the wrong shape or types, deeply nested, with lone surrogates; bodies
 * that are not UTF-8, oversized, empty, random. A body the relay may accept as a publish (oracle.ts)
 * is never sent, so the slice's room must stay empty.
 */
import { httpPublishMayPass } from "../oracle";
import type { Rng } from "../prng";
import { type FuzzContext, httpAttempt, raw, type Slice, show } from "../slice";
import { awkwardString, mutate, nestedJson, textOfBytes, withBadUtf8 } from "./strings";

const ACCEPTED_TYPES = [
  "application/json",
  "text/plain",
  "application/json; charset=utf-8",
  "TEXT/PLAIN; charset=UTF-8",
  "text/plain;charset=utf-16",
  " application/json ",
];

const WRONG_TYPES = [
  "",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/octet-stream",
  "application/jsonx",
  "text/plainjunk",
  "application/json+junk",
  "text/html",
  "application/proto",
  "application/grpc-web+proto",
  "*/*",
  "application/json, text/plain",
  "json",
  "text/",
  ";",
  "application/json\u00ff",
  "t".repeat(10_000),
];

const BAD_JSON = [
  '{"text":"hi"',
  '{"text":hi}',
  "{'text':'hi'}",
  '{"text":"hi",}',
  '{"text":"hi"}{"text":"hi"}',
  '{"text":"hi"} x',
  "[]",
  '["hi"]',
  "null",
  "1",
  '"hi"',
  "true",
  '{"text":1}',
  '{"text":null}',
  '{"text":["hi"]}',
  '{"text":{"a":1}}',
  '{"text":"hi","id":1}',
  '{"text":"hi","user":false}',
  '{"text":"hi","id":null}',
  '{"text":"hi","user":null}',
  '{"text":""}',
  "{}",
  '{"text":"a\\ud800b"}',
  '{"text":"hi","user":"\\udc00"}',
  '{"text":"hi","id":"\\ud83d"}',
  '{"text":"\\u0000","user":"a\\u0001"}',
  '\ufeff{"text":"hi"}',
  '{"text":"a\\u12"}',
  '{"text":NaN}',
];

type Body = { kind: string; contentType?: string; body: Uint8Array };

function bodyOf(rng: Rng, ctx: FuzzContext): Body {
  const max = ctx.maxMessageBytes;
  const type = rng.chance(0.75) ? rng.pick(ACCEPTED_TYPES) : rng.pick(WRONG_TYPES);
  const contentType = rng.chance(0.03) ? undefined : type;
  const json = (o: unknown) => Buffer.from(JSON.stringify(o));
  const make = rng.weighted<() => Omit<Body, "contentType">>([
    [4, () => ({ kind: "invalid or wrong-shape JSON", body: Buffer.from(rng.pick(BAD_JSON)) })],
    [2, () => ({ kind: "mutated JSON", body: mutate(rng, json({ text: "hello", id: "m-1" })) })],
    [3, () => ({ kind: "not UTF-8", body: withBadUtf8(rng, rng.chance(0.5) ? '{"text":"hi"}' : "hello there") })],
    [
      3,
      () => {
        const size = rng.weighted([
          [3, rng.int(max + 1, max + 1024)],
          [3, rng.size(max + 1025, 512 * 1024)],
          [1, rng.int(1 << 20, 3 << 20)],
        ]);
        const text = textOfBytes(rng, size);
        return { kind: "oversized", body: rng.chance(0.5) ? json({ text }) : Buffer.from(text) };
      },
    ],
    [2, () => ({ kind: "empty", body: new Uint8Array(0) })],
    [2, () => ({ kind: "deeply nested JSON", body: Buffer.from(`{"text":${nestedJson(rng, rng.size(10, 5000))}}`) })],
    [2, () => ({ kind: "random bytes", body: rng.bytes(rng.size(1, 3000)) })],
    [
      2,
      () => {
        const bad = rng.pick([
          { text: "hi", id: "x".repeat(rng.int(129, 2000)) },
          { text: "hi", id: `a b${awkwardString(rng, 3)}` },
          { text: "hi", user: "u".repeat(rng.int(65, 3000)) },
          { text: "hi", user: `a\u0000${awkwardString(rng, 3)}` },
          { text: awkwardString(rng, 5), user: "\u007f" },
        ]);
        return { kind: "refused by the rules", body: json(bad) };
      },
    ],
  ]);
  return { ...make(), contentType };
}

export function bodySlices(ctx: FuzzContext): Slice[] {
  const room = `${ctx.prefix}-bodies`;
  return [
    {
      name: "bodies http",
      room,
      make(rng) {
        const b = bodyOf(rng, ctx);
        const headers: Record<string, string> = {};
        if (b.contentType !== undefined) headers["Content-Type"] = raw(b.contentType);
        const extra: { idempotencyKey?: string; user?: string } = {};
        if (rng.chance(0.2)) extra.idempotencyKey = rng.pick(["", "k-1", "x".repeat(200), "a b", "é"]);
        if (rng.chance(0.2)) extra.user = rng.pick(["ann", "u".repeat(70), "a\u0001b", ""]);
        if (extra.idempotencyKey !== undefined) headers["Idempotency-Key"] = raw(extra.idempotencyKey);
        const query = extra.user === undefined ? "" : `?user=${encodeURIComponent(extra.user)}`;
        if (b.body.length <= ctx.maxMessageBytes + 1024) {
          if (httpPublishMayPass(b.contentType, b.body, extra, ctx.maxMessageBytes)) return undefined;
        }
        const path = `/rooms/${room}/messages${query}`;
        const input = `${b.kind}: POST ${show(path, 50)} type ${show(b.contentType ?? "(none)", 30)} body ${show(b.body)}`;
        return httpAttempt(input, { method: "POST", path, headers, body: b.body }, true);
      },
    },
  ];
}
