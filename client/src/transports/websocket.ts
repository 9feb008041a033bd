/**
 * WebSocket: `GET /rooms/:room/ws?since=&epoch=&user=&token=&presence=1` with the `relay.v1.json`
 * subprotocol. Server frames are ServerFrame JSON ({event}, {batch}, {ack}, {error}, {ping},
 * {refreshed}); the client sends ClientFrame JSON ({publish}, {pong}, {refresh}). A ping is answered
 * at once: the room counts everything after the last answered ping as unread, and closes a socket
 * too far behind. Refusals arrive as close codes (browsers cannot read a refused upgrade's status).
 * History and presence go over HTTP. Only `import type` from the generated code, so this file
 * (and the WebSocket entry) carry no protobuf runtime.
 */
import { fromCloseCode } from "../core/codes.js";
import { wireFromJson } from "../core/events.js";
import { httpHistory, httpPresence, streamUrl } from "../core/http.js";
import type { ServerFrameJson } from "../gen/relay/v1/relay_pb.js";
import type { End, Transport, TransportConfig } from "./transport.js";

/** The part of the WebSocket API the client uses (browsers' and the `ws` package's alike). */
interface Socket {
  onopen: ((e: unknown) => void) | null;
  onmessage: ((e: { data: unknown }) => void) | null;
  onclose: ((e: { code: number; reason: string }) => void) | null;
  onerror: ((e: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
type SocketConstructor = new (url: string, protocols?: string | string[]) => Socket;

/** An upgrade that neither opens nor fails within this (a proxy holding it) counts as refused. */
const OPEN_TIMEOUT_MS = 10_000;
/**
 * Liveness: after this much silence the client sends `{"heartbeat":{}}` (answered in kind by the
 * runtime, without waking the room), and a connection that stays silent for HEARTBEAT_ANSWER_MS
 * more is dead (a lost network, a sleeping laptop: no close ever comes) and is replaced.
 */
const HEARTBEAT_AFTER_MS = 5_000;
const HEARTBEAT_ANSWER_MS = 5_000;

export function webSocketTransport(c: TransportConfig): Transport {
  const WS = (c.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket) as SocketConstructor | undefined;
  return {
    name: "websocket",
    history: (since, limit, token) => httpHistory(c, since, limit, token),
    presence: (token) => httpPresence(c, token),
    open(p, sink) {
      const url = streamUrl(c, "ws", p);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      let opened = false;
      let done = false;
      let watch: ReturnType<typeof setInterval> | undefined;
      /** When a frame last arrived, and when a heartbeat was sent that has no answer yet (0: none). */
      let heard = 0;
      let asked = 0;
      const finish = (end: End) => {
        clearInterval(watch);
        if (done) return;
        done = true;
        clearTimeout(timer);
        sink.ended(end);
      };
      const stopped = () => {
        done = true;
      };
      if (!WS) {
        queueMicrotask(() =>
          finish({
            code: "network",
            message: "no WebSocket: pass options.WebSocket",
            reconnect: false,
            beforeOpen: true,
          }),
        );
        return { close: stopped };
      }
      let ws: Socket;
      try {
        ws = new WS(url.href, "relay.v1.json");
      } catch (e) {
        queueMicrotask(() => finish({ code: "network", message: String(e), reconnect: true, beforeOpen: true }));
        return { close: stopped };
      }
      const send = (frame: unknown) => {
        try {
          ws.send(JSON.stringify(frame));
        } catch {
          // Closing: the close handler reports it, and unanswered publishes go again on the next socket.
        }
      };
      const timer = setTimeout(() => {
        if (opened) return;
        finish({ code: "timeout", message: "the WebSocket did not open", reconnect: true, beforeOpen: true });
        ws.close();
      }, OPEN_TIMEOUT_MS);
      ws.onopen = () => {
        opened = true;
        heard = Date.now();
        clearTimeout(timer);
      };
      const node = ws as Socket & {
        _closeFrameReceived?: boolean;
        _closeCode?: number;
        _closeMessage?: unknown;
        terminate?(): void;
      };
      watch = setInterval(() => {
        if (!opened || done) return;
        // The `ws` package fires `close` only when the TCP connection ends, which workerd does ~10 s
        // after a room's own close frame (token expiry, too slow, removed: docs/runtime-notes.md).
        // It keeps the received frame's code, so the session ends when the frame arrives.
        if (node._closeFrameReceived) {
          ws.onclose?.({ code: node._closeCode ?? 1005, reason: String(node._closeMessage ?? "") });
          node.terminate?.();
          return;
        }
        const now = Date.now();
        if (asked && now - asked >= HEARTBEAT_ANSWER_MS) {
          finish({ code: "timeout", message: "no answer to a heartbeat: the connection is dead", reconnect: true });
          if (node.terminate) node.terminate();
          else ws.close();
        } else if (!asked && now - heard >= HEARTBEAT_AFTER_MS) {
          asked = now;
          send({ heartbeat: {} });
        }
      }, 250);
      ws.onmessage = (m) => {
        if (done || typeof m.data !== "string") return;
        heard = Date.now();
        asked = 0;
        let f: ServerFrameJson;
        try {
          f = JSON.parse(m.data);
        } catch {
          return;
        }
        // First, before anything that may take time: the room is waiting for it.
        if (f.ping) send({ pong: f.ping });
        else if (f.event) sink.events([wireFromJson(f.event)]);
        else if (f.batch) sink.events((f.batch.events ?? []).map(wireFromJson));
        else if (f.ack?.event) sink.ack(wireFromJson(f.ack.event), !!f.ack.duplicate);
        else if (f.error) sink.refused(f.error.id ?? "", f.error.code ?? "unknown", f.error.message ?? "");
        else if (f.refreshed) sink.refreshed(Number(f.refreshed.expiresAtMs ?? 0));
      };
      // An error is always followed by a close; `ws` throws on an error event nobody listens to.
      ws.onerror = () => {};
      ws.onclose = (e) => {
        const end: End = opened
          ? fromCloseCode(e.code, e.reason)
          : {
              code: "network",
              message: e.reason || "the WebSocket could not be opened",
              reconnect: true,
              beforeOpen: true,
            };
        // Closed for the frame we sent (too large, not UTF-8): the publish fails, not the client.
        if (e.code === 1009 || e.code === 1007) end.publishFault = true;
        finish(end);
      };
      return {
        publish: (input) => send({ publish: input }),
        refresh: (token) => send({ refresh: { token } }),
        close() {
          done = true;
          clearTimeout(timer);
          clearInterval(watch);
          try {
            ws.close(1000);
          } catch {
            // Already closed.
          }
        },
      };
    },
  };
}
