/**
 * SseAdapter: `GET /rooms/:room/sse`. The Worker holds the client's event stream and one internal
 * hibernatable WebSocket to the room (DESIGN.md: a stream served from the Durable Object itself
 * would keep it awake and billed), and turns each room frame into an SSE event:
 * `id:` the offset (see {@link sseId}), `event:` the kind, `data:` the ChatEvent JSON.
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { type Env, readLimits } from "../../config";
import { parseEpoch, parseOffset, parseUser } from "../../worker/params";
import { openRoomSocket } from "../../worker/room-client";

/** How long an EventSource waits before reconnecting, sent as `retry:`. */
const RETRY_MS = 1000;

interface EventHead {
  kind: string;
  seq?: string;
  firstSeq?: string;
  lastSeq?: string;
}

/**
 * The `id:` of an event, which EventSource sends back as `Last-Event-ID` when it reconnects: the
 * offset on messages; on `subscribed`, the offset the stream starts after (the client's `since`, or
 * the head of the log for a live-only stream), so a reconnect before the first message misses
 * nothing; on `gap`, the offset just before the first retained event, so the gap is told once.
 */
function sseId(e: EventHead, since: number | undefined): string | undefined {
  switch (e.kind) {
    case "message":
      return e.seq;
    case "subscribed":
      return String(since ?? e.lastSeq ?? 0);
    case "gap":
      return e.firstSeq ? String(Number(e.firstSeq) - 1) : (e.lastSeq ?? "0");
    default:
      return undefined;
  }
}

export async function sseRoute(c: Context<{ Bindings: Env }>): Promise<Response> {
  const room = c.req.param("room") as string;
  const limits = readLimits(c.env);
  // The header is what a reconnecting EventSource sends; `?since=` is for the first connect.
  const since = parseOffset(c.req.header("Last-Event-ID") ?? c.req.query("since"), "Last-Event-ID / since");
  const ws = await openRoomSocket(c.env, room, {
    transport: "sse",
    since,
    epoch: parseEpoch(c.req.query("epoch")),
    user: parseUser(c.req.query("user")),
  });

  const res = streamSSE(c, async (stream) => {
    let pending = 0;
    let finish = () => {};
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const write = (chunk: string, events = 1) => {
      pending += events;
      // A client this far behind is dropped rather than buffered without bound: it reconnects
      // with its Last-Event-ID and catches up from the log.
      if (pending > limits.streamMaxQueuedEvents) return finish();
      stream.write(chunk).then(() => {
        pending -= events;
      });
    };
    const sseEvent = (e: EventHead, data: string) => {
      const id = sseId(e, since);
      return `${id === undefined ? "" : `id: ${id}\n`}event: ${e.kind}\ndata: ${data}\n\n`;
    };
    ws.addEventListener("message", (m) => {
      if (typeof m.data !== "string") return;
      const frame = JSON.parse(m.data) as { event?: EventHead; batch?: { events: EventHead[] } };
      // `{"event":<ChatEvent JSON>}`: the inner JSON is the data line as it is.
      if (frame.event) write(sseEvent(frame.event, m.data.slice(9, -1)));
      // `{"batch":{"events":[...]}}` (events published together): one chunk for all of them.
      else if (frame.batch) {
        const { events } = frame.batch;
        write(events.map((e) => sseEvent(e, JSON.stringify(e))).join(""), events.length);
      }
    });
    ws.addEventListener("close", finish);
    ws.addEventListener("error", finish);
    stream.onAbort(finish);
    // With `enable_request_signal` the request's signal fires once the runtime notices the client
    // has gone, which (locally, TOOLCHAIN.md) is at the next write: heartbeats bound that delay.
    c.req.raw.signal.addEventListener("abort", finish);
    await stream.write(`retry: ${RETRY_MS}\n\n`);
    // Comments keep proxies and load balancers from closing an idle stream; they do not reach
    // the room, so they do not keep it from hibernating.
    const heartbeat = setInterval(() => write(": heartbeat\n\n"), limits.heartbeatMs);
    await finished;
    clearInterval(heartbeat);
    try {
      ws.close(1000, "stream ended");
    } catch {
      // Already closed by the room.
    }
  });
  // Hono's helper sets the content type; these stop proxies from buffering or transforming. Set on
  // the context too: middleware that runs after (CORS) rebuilds the response from the context's headers.
  for (const [name, value] of [
    ["Cache-Control", "no-cache, no-transform"],
    ["X-Accel-Buffering", "no"],
  ]) {
    res.headers.set(name, value);
    c.header(name, value);
  }
  return res;
}
