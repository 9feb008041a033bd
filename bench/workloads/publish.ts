/**
 * Durable publish throughput: acknowledged publishes per second into one room, with `window`
 * publishes in flight, over WebSocket (`relay.v1.json` acks; on the SQLite floor the echo of each
 * insert is the ack), HTTP POST and Connect Publish. The HTTP floor is a Worker answering a POST
 * with no Durable Object behind it: the runtime's cost of an HTTP request.
 */
import { randomUUID } from "node:crypto";
import { messageText, openSockets } from "../lib/clients";
import { loadCpuSeconds, serverCpuSeconds } from "../lib/procs";
import { type BenchServer, roomWsUrl } from "../lib/servers";

/** `websocket-plain`: the relay's plain mode, where the echo of the stored event is the only answer. */
export type PublishTransport = "websocket" | "websocket-plain" | "http" | "connect";

export interface PublishResult extends Record<string, number> {
  acksPerSec: number;
  serverCpuPerPublishUs: number;
  serverCores: number;
  loadCores: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function publishThroughput(
  server: BenchServer,
  transport: PublishTransport,
  o: { window: number; durationMs: number; warmupMs: number },
): Promise<PublishResult> {
  const room = `pub-${randomUUID().slice(0, 8)}`;
  let acked = 0;
  let running = true;
  let n = 0;
  let stop = async () => {};
  if (transport === "websocket" || transport === "websocket-plain") {
    const json = server.target === "relay" && transport === "websocket";
    const [ws] = await openSockets(roomWsUrl(server, room, "floor-sql"), 1, json ? "relay.v1.json" : undefined);
    let inflight = 0;
    const send = () => {
      while (running && inflight < o.window) {
        const text = messageText(n++);
        ws.send(json ? JSON.stringify({ publish: { text } }) : text);
        inflight++;
      }
    };
    ws.on("message", (d: Buffer) => {
      // In json mode the relay sends an event and an ack per publish: count the acks. The floor's
      // echo is its ack, and so is the relay's in plain mode (sent once the event is stored).
      if (json && d.indexOf('{"ack"') !== 0) return;
      acked++;
      inflight--;
      send();
    });
    send();
    stop = async () => ws.terminate();
  } else {
    const url =
      server.target === "floor"
        ? `${server.baseUrl}/publish`
        : transport === "http"
          ? `${server.baseUrl}/rooms/${room}/messages`
          : `${server.baseUrl}/relay.v1.ChatService/Publish`;
    const worker = async () => {
      while (running) {
        const body = JSON.stringify(
          transport === "http" ? { text: messageText(n++) } : { room, text: messageText(n++) },
        );
        const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body });
        await res.arrayBuffer();
        if (res.ok) acked++;
      }
    };
    const workers = Array.from({ length: o.window }, worker);
    stop = async () => {
      await Promise.all(workers);
    };
  }
  await sleep(o.warmupMs);
  const a0 = acked;
  const cpu0 = { server: serverCpuSeconds(), load: loadCpuSeconds() };
  const t0 = performance.now();
  await sleep(o.durationMs);
  const elapsed = (performance.now() - t0) / 1000;
  const count = acked - a0;
  const cpu1 = { server: serverCpuSeconds(), load: loadCpuSeconds() };
  running = false;
  await stop();
  return {
    acksPerSec: count / elapsed,
    serverCpuPerPublishUs: ((cpu1.server - cpu0.server) / count) * 1e6,
    serverCores: (cpu1.server - cpu0.server) / elapsed,
    loadCores: (cpu1.load - cpu0.load) / elapsed,
  };
}
