/**
 * `GET /rooms/:room/sse`: Server-Sent Events, a thin face over one edge subscription. The room
 * sends the event-stream bytes itself (`id:` the offset to resume after, `event:` the kind,
 * `data:` the ChatEvent JSON; protocol/formats.ts), which go out as they are, one write per
 * batch; this adds the `retry:` line, heartbeat comments, and the end: a last `disconnect` event
 * whose data is relay.v1.Disconnect, then the end of the stream. A refusal before the stream
 * starts (a token or right refused, a bad resume point, a full room) is an HTTP error, which
 * EventSource does not retry.
 *
 * Hono's streamSSE is not used: it formats one event per write, and wraps the body in two
 * JavaScript streams; the room's bytes need neither (edge/byte-stream.ts).
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { byteStream } from "../../edge/byte-stream";
import { admit } from "../../edge/caller";
import type { RelayContext } from "../../edge/context";
import { regionOf } from "../../edge/region";
import { RoomSubscription } from "../../edge/subscription";
import type { Disconnect } from "../../errors";
import { DisconnectSchema } from "../../gen/relay/v1/relay_pb";
import { parseFlag, parseUser } from "../../protocol/rules";

/** How long an EventSource waits before reconnecting, sent as `retry:`. */
const RETRY_MS = 1000;
const utf8 = new TextEncoder();
/** A comment: EventSource ignores it; proxies see traffic; the runtime notices a client that has gone. */
const HEARTBEAT = utf8.encode(": heartbeat\n\n");

const HEADERS: [string, string][] = [
  ["Content-Type", "text/event-stream; charset=utf-8"],
  // Stop proxies from buffering or transforming the stream.
  ["Cache-Control", "no-cache, no-transform"],
  ["X-Accel-Buffering", "no"],
];

/** The last event of a stream: why it ended (its JSON has no line breaks, so it is one `data:` line). */
function disconnectEvent(end: Disconnect): Uint8Array {
  const data = toJsonString(DisconnectSchema, create(DisconnectSchema, end), { alwaysEmitImplicit: true });
  // A paused replay goes on at once: EventSource reconnects after `retry`.
  const retry = end.code === "replay_paused" ? "retry: 0\n\n" : "";
  return utf8.encode(`${retry}event: disconnect\ndata: ${data}\n\n`);
}

export async function sseRoute(c: RelayContext): Promise<Response> {
  const room = c.var.room;
  // A refusal (token, rights) is an HTTP 401/403 before the stream starts.
  const name = parseUser(c.req.query("user"));
  const presence = parseFlag(c.req.query("presence"), "presence");
  const also = presence ? "presence" : undefined;
  const who = await admit(c.req.raw, c.var.settings, "subscribe", room, { queryToken: true, name, also });
  // Hono serves HEAD with the GET route and drops the body: nobody would read this stream, so it
  // must not subscribe (a subscriber per HEAD, never ended, would fill the room).
  if (c.req.method === "HEAD") return new Response(null, { headers: HEADERS });
  const sub = await RoomSubscription.open(c.env, c.var.settings, {
    room,
    via: "sse",
    format: "event-stream",
    // The header is what a reconnecting EventSource sends; `?since=` is for the first connect. An
    // empty header (no event had an id yet) is no header: it must not hide `?since=`.
    since: c.req.header("Last-Event-ID")?.trim() || c.req.query("since"),
    epoch: c.req.query("epoch"),
    who,
    presence,
    region: regionOf(c.req.raw, c.var.settings),
  });
  const out = byteStream();
  // With `enable_request_signal` the request's signal fires once the runtime notices the client
  // has gone, which (locally) is at the next write: heartbeats bound that delay.
  const gone = AbortSignal.any([c.req.raw.signal, out.gone]);
  (async () => {
    await out.write(utf8.encode(`retry: ${RETRY_MS}\n\n`));
    const end = await sub.run({ write: out.write, heartbeat: () => HEARTBEAT }, gone);
    if (end) await out.write(disconnectEvent(end));
    await out.close();
  })();
  return new Response(out.readable, { headers: HEADERS });
}
