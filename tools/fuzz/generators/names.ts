/**
 * Invalid user names and idempotency ids, one slice per transport. Each publish carries a valid
 * text, so only the name or the id can make the relay refuse it: too long (in characters or code
 * points), control characters, lone surrogates, non-ASCII ids, wrong JSON types, strings that are
 * not UTF-8 in protobuf. HTTP: the JSON body, `?user=` and `Idempotency-Key`; WebSocket: `?user=`
 * on the upgrade and the fields of relay.v1.json / relay.v1.proto publish frames; SSE: `?user=`;
 * Connect: Publish's fields. Any of them stored is a failure (the slice's room must stay empty).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ClientFrameSchema, PublishRequestSchema } from "../../../src/gen/relay/v1/relay_pb";
import { CONTENT_TYPES as CT, envelope } from "../connect-wire";
import { httpPublishMayPass, protoPublishMayPass, publishMayPass, wellFormed, wsFrameMayPass } from "../oracle";
import type { Rng } from "../prng";
import {
  connectAttempt,
  type FuzzContext,
  frameAttempt,
  headerValue,
  httpAttempt,
  type Slice,
  show,
  sseAttempt,
  upgradeAttempt,
} from "../slice";
import { AWKWARD, NOT_UTF8 } from "./strings";

const CONTROLS = ["\u0000", "\u0001", "\n", "\r", "\t", "\u001f", "\u007f", "\u0085", "\u009f"];

function badUser(rng: Rng): unknown {
  return rng.weighted<() => unknown>([
    [3, () => "u".repeat(rng.size(65, 5000))],
    [2, () => rng.pick(["😀", "é", "\u202e", "a"]).repeat(65)],
    [4, () => `a${rng.pick(CONTROLS)}${rng.pick(AWKWARD)}`],
    [2, () => rng.pick(["\ud800", "a\udc00", "\udbff\udbff", "x\ud83d"])],
    [1, () => rng.pick([1, true, {}, ["ann"], 0])],
  ])();
}

function badId(rng: Rng): unknown {
  return rng.weighted<() => unknown>([
    [3, () => "x".repeat(rng.size(129, 5000))],
    [4, () => `id${rng.pick([...CONTROLS, "é", "😀", "\u00a0", "\u3000", "ＩＤ"])}`],
    [2, () => rng.pick(["\ud800", "a\udc00"])],
    [1, () => rng.pick([1, true, {}, ["k"], 0])],
  ])();
}

/** A publish with a valid text and a bad user, a bad id, or both. */
function badFields(rng: Rng): { text: string; user?: unknown; id?: unknown } {
  const text = `names ${rng.int(0, 1e9)}`;
  const which = rng.int(0, 2);
  return { text, user: which !== 1 ? badUser(rng) : undefined, id: which !== 0 ? badId(rng) : undefined };
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** ?user= as percent-encoded UTF-8 (a lone surrogate has none: such a name is not sent this way). */
function userQuery(v: unknown): string | undefined {
  return typeof v === "string" && wellFormed(v) ? `user=${encodeURIComponent(v)}` : undefined;
}

/** PublishRequest fields (text, then a user or id holding bytes that are not UTF-8). */
function fieldsNotUtf8(rng: Rng, text: string): Uint8Array {
  const w = new BinaryWriter().tag(2, WireType.LengthDelimited).string(text);
  w.tag(rng.pick([3, 4]), WireType.LengthDelimited).bytes(Uint8Array.from([0x61, ...rng.pick(NOT_UTF8)]));
  return w.finish();
}

export function nameSlices(ctx: FuzzContext): Slice[] {
  const room = `${ctx.prefix}-names`;
  const max = ctx.maxMessageBytes;
  return [
    {
      name: "names http",
      room,
      make(rng) {
        const f = badFields(rng);
        if (rng.chance(0.6)) {
          const body = Buffer.from(JSON.stringify(f));
          if (httpPublishMayPass("application/json", body, {}, max)) return undefined;
          const path = `/rooms/${room}/messages`;
          return httpAttempt(
            `JSON ${show(body.toString(), 80)}`,
            { method: "POST", path, headers: { "Content-Type": "application/json" }, body },
            true,
          );
        }
        // text/plain: the user in ?user=, the id in Idempotency-Key (Latin-1 bytes, controls dropped).
        const query = userQuery(f.user);
        const id = str(f.id) === undefined ? undefined : headerValue(str(f.id) as string);
        if (query === undefined && id === undefined) return undefined;
        const user = query === undefined ? undefined : (f.user as string);
        if (httpPublishMayPass("text/plain", Buffer.from(f.text), { user, idempotencyKey: id }, max)) return undefined;
        const headers: Record<string, string> = { "Content-Type": "text/plain" };
        if (id !== undefined) headers["Idempotency-Key"] = id;
        const path = `/rooms/${room}/messages${query ? `?${query}` : ""}`;
        return httpAttempt(
          `text/plain ${show(path, 80)} Idempotency-Key ${show(id ?? "(none)")}`,
          { method: "POST", path, headers, body: f.text },
          true,
        );
      },
    },
    {
      name: "names sse",
      make(rng) {
        const query = userQuery(badUser(rng));
        if (!query) return undefined;
        const path = `/rooms/${room}/sse?${query}`;
        return sseAttempt(`GET ${show(path)}`, path);
      },
    },
    {
      name: "names ws",
      room,
      make(rng) {
        const f = badFields(rng);
        const how = rng.pick(["upgrade", "json", "proto"] as const);
        if (how === "upgrade") {
          const query = userQuery(f.user ?? badUser(rng));
          if (!query) return undefined;
          const path = `/rooms/${room}/ws?${query}`;
          return upgradeAttempt(
            `upgrade ${show(path)}`,
            path,
            rng.chance(0.5) ? { "Sec-WebSocket-Protocol": "relay.v1.json" } : {},
          );
        }
        let data: Uint8Array;
        if (how === "json") data = Buffer.from(JSON.stringify({ publish: f }));
        else if (rng.chance(0.3)) {
          data = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(fieldsNotUtf8(rng, f.text)).finish();
        } else {
          const value = { text: f.text, user: str(f.user) ?? "", id: str(f.id) ?? "" };
          data = toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "publish", value } }));
        }
        const binary = how === "proto";
        if (wsFrameMayPass(how, data, binary, max)) return undefined;
        return frameAttempt(`${how} publish ${show(data, 80)}`, how, room, { data, binary });
      },
    },
    {
      name: "names connect",
      room,
      make(rng) {
        const f = badFields(rng);
        const grpcWeb = rng.chance(0.4);
        const binary = grpcWeb || rng.chance(0.5);
        let payload: Uint8Array;
        if (!binary) {
          // Wrong JSON types count as refused: the protobuf JSON mapping has no number for a string.
          if (publishMayPass(f, max)) return undefined;
          payload = Buffer.from(JSON.stringify({ room, ...f }));
        } else if (rng.chance(0.3)) {
          const roomField = new BinaryWriter().tag(1, WireType.LengthDelimited).string(room).finish();
          payload = Buffer.concat([roomField, fieldsNotUtf8(rng, f.text)]);
        } else {
          const value = { room, text: f.text, user: str(f.user) ?? "", id: str(f.id) ?? "" };
          payload = toBinary(PublishRequestSchema, create(PublishRequestSchema, value));
        }
        // Judged on the bytes that go out (a lone surrogate goes out as U+FFFD).
        if (binary && protoPublishMayPass(payload, max)) return undefined;
        const contentType = grpcWeb ? CT.grpcWebProto : binary ? CT.connectProto : CT.connectJson;
        const kind = grpcWeb ? "grpc-web" : "connect-unary";
        const body = grpcWeb ? envelope(0, payload) : payload;
        return connectAttempt(
          `Publish ${show(payload, 80)} (${contentType})`,
          { kind, method: "Publish", contentType, body, binary },
          true,
        );
      },
    },
  ];
}
