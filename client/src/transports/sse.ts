/**
 * Server-Sent Events: `GET /rooms/:room/sse?since=&epoch=&user=&token=&presence=1`, read with
 * fetch and eventsource-parser rather than EventSource, which cannot be told where to resume after
 * a renewal, cannot send headers, and does not exist in Node 20. Each event's `data:` is ChatEvent
 * JSON; the last one, `disconnect`, says why the stream ended (relay.v1.Disconnect). A refusal
 * before the stream is an HTTP error with the relay's JSON. Publish, history and presence go over
 * HTTP.
 */
import { createParser } from "eventsource-parser";
import { wireFromJson } from "../core/events.js";
import { httpError, httpHistory, httpPresence, httpPublish, streamUrl } from "../core/http.js";
import type { DisconnectJson } from "../gen/relay/v1/relay_pb.js";
import { type End, streamLife, type Transport, type TransportConfig, type Wire } from "./transport.js";

export function sseTransport(c: TransportConfig): Transport {
  return {
    name: "sse",
    publish: (input, token) => httpPublish(c, input, token),
    history: (since, limit, token) => httpHistory(c, since, limit, token),
    presence: (token) => httpPresence(c, token),
    open(p, sink) {
      const life = streamLife(sink);
      const { finish } = life;
      const url = streamUrl(c, "sse", p);
      (async () => {
        let res: Response;
        try {
          res = await c.fetch(url.href, { headers: { accept: "text/event-stream" }, signal: life.signal });
        } catch (e) {
          return finish({
            code: "network",
            message: String((e as Error).message ?? e),
            reconnect: true,
            beforeOpen: true,
          });
        }
        if (!res.ok || !res.body) {
          const err = await httpError(res);
          return finish({ code: err.code, message: err.message, reconnect: err.retryable });
        }
        let batch: Wire[] = [];
        let end: End | undefined;
        const parser = createParser({
          onEvent(e) {
            if (e.event === "disconnect") {
              const d = JSON.parse(e.data) as DisconnectJson;
              end = { code: d.code ?? "closed", message: d.message ?? "", reconnect: !!d.reconnect };
            } else batch.push(wireFromJson(JSON.parse(e.data)));
          },
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        try {
          while (!life.done()) {
            const { value, done: eof } = await reader.read();
            if (eof) break;
            life.poke();
            parser.feed(value);
            // What one read brought is delivered together (one snapshot update for a replay's batch).
            if (batch.length > 0 && !life.done()) {
              const events = batch;
              batch = [];
              sink.events(events);
            }
          }
        } catch (e) {
          end ??= { code: "network", message: String((e as Error).message ?? e), reconnect: true };
        }
        finish(end ?? { code: "network", message: "the stream ended", reconnect: true });
      })();
      return { close: life.close };
    },
  };
}
