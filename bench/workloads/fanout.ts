/**
 * Fan-out: one room, S subscribers, one publisher sending 100-byte messages with at most `window`
 * messages in flight (sent but not yet delivered to every subscriber). Deliveries per second and
 * publish-to-receive latency over every delivery; every message must reach every subscriber once.
 * Subscribers are WebSockets, or (mixed) a third each on WebSocket, SSE and Connect.
 */
import { randomUUID } from "node:crypto";
import type WebSocket from "ws";
import { connectSubscribeBody, messageText, openSockets, openStream, type StreamClient, scan } from "../lib/clients";
import { loadCpuSeconds, serverCpuSeconds } from "../lib/procs";
import type { BenchServer } from "../lib/servers";
import { roomWsUrl } from "../lib/servers";
import { percentile } from "../lib/stats";

export type SubscriberTransport = "websocket" | "sse" | "connect";

export interface FanoutOptions {
  subscribers: number;
  /** Transports of the subscribers, shared round-robin (relay only for SSE and Connect). */
  transports: SubscriberTransport[];
  window: number;
  durationMs: number;
  warmupMs: number;
  /** Bytes of each published text (100; a floor run can use the size of the relay's event frame). */
  messageBytes?: number;
  /** Which floor, when the server is the floor worker. */
  floorKind?: "floor" | "floor-sql";
  /** The relay's WebSocket subprotocol for subscribers and the publisher: `relay.v1.json` (what clients use) or plain (none). */
  protocol?: string;
}

export interface FanoutResult extends Record<string, number> {
  deliveriesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  messages: number;
  lost: number;
  duplicated: number;
  serverCpuPerDeliveryUs: number;
  loadCpuPerDeliveryUs: number;
  /** Server and load generator CPU, in cores busy over the measured window. */
  serverCores: number;
  loadCores: number;
  /** Events per fan-out (the relay's mean batch over the whole run; 1 on a floor). */
  eventsPerFlush: number;
  /**
   * Microseconds the room's own object spent fanning out per message in the measured window, by
   * its clock (RoomStats.fanOutUs: its own subscribers and its pushes to shards); 0 on a floor.
   */
  roomFanOutUsPerMessage: number;
}

/** Per-transport figures of a mixed run. */
export type PerTransport = Record<SubscriberTransport, { deliveriesPerSec: number; p50Ms: number; p99Ms: number }>;

/** What the bench reads of `GET /rooms/:room/stats` (64-bit counters come as strings). */
interface RoomStatsJson {
  flushes: string;
  flushedEvents: string;
  fanOutUs: string;
  shards: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function fanout(
  server: BenchServer,
  o: FanoutOptions,
): Promise<{ result: FanoutResult; perTransport: Partial<PerTransport> }> {
  const room = `fan-${randomUUID().slice(0, 8)}`;
  const maxMessages = 200_000;
  const sentAt = new Float64Array(maxMessages);
  const remaining = new Int32Array(maxMessages);
  let sent = 0;
  let inflight = 0;
  let measuring = false;
  let duplicated = 0;
  let publisher: WebSocket | undefined;
  const latencies: Record<SubscriberTransport, number[]> = { websocket: [], sse: [], connect: [] };
  const counts: Record<SubscriberTransport, number> = { websocket: 0, sse: 0, connect: 0 };

  const publish = () => {
    while (publisher && inflight < o.window && sent < maxMessages) {
      remaining[sent] = o.subscribers;
      sentAt[sent] = performance.now();
      const text = messageText(sent, o.messageBytes);
      publisher.send(o.protocol ? JSON.stringify({ publish: { text } }) : text);
      sent++;
      inflight++;
    }
  };
  const deliver = (transport: SubscriberTransport) => (n: number) => {
    if (n < 0 || n >= sent) return;
    const left = --remaining[n];
    if (left < 0) {
      duplicated++;
      return;
    }
    if (measuring) {
      counts[transport]++;
      latencies[transport].push(performance.now() - sentAt[n]);
    }
    if (left === 0) {
      inflight--;
      publish();
    }
  };

  // Subscribers.
  const per = (t: SubscriberTransport) =>
    Math.floor(o.subscribers / o.transports.length) +
    (o.transports.indexOf(t) < o.subscribers % o.transports.length ? 1 : 0);
  const sockets: WebSocket[] = [];
  const streams: StreamClient[] = [];
  for (const t of o.transports) {
    const n = per(t);
    if (t === "websocket") {
      const onDelivery = deliver("websocket");
      const ws = await openSockets(roomWsUrl(server, room, o.floorKind), n, o.protocol, (d) =>
        scan(d, onDelivery, true),
      );
      sockets.push(...ws);
    } else {
      const onDelivery = deliver(t);
      for (let i = 0; i < n; i++) {
        const c =
          t === "sse"
            ? openStream(`${server.baseUrl}/rooms/${room}/sse`, {}, onDelivery)
            : openStream(
                `${server.baseUrl}/relay.v1.ChatService/Subscribe`,
                {
                  method: "POST",
                  headers: { "Content-Type": "application/connect+json" },
                  body: connectSubscribeBody(room),
                },
                onDelivery,
              );
        streams.push(c);
        if (i % 50 === 49) await c.opened;
      }
      await Promise.all(streams.map((c) => c.opened));
    }
  }
  await sleep(500); // let every subscription reach the room
  const roomStats = async () =>
    server.target === "relay"
      ? ((await (await fetch(`${server.baseUrl}/rooms/${room}/stats`)).json()) as RoomStatsJson)
      : undefined;
  // The room's counters before and after (RoomStats.fanOutUs over flushedEvents: the whole run's mean;
  // read while nothing is published, so that the request does not wait behind a flooded room).
  const stats0 = await roomStats();
  // The publisher speaks the subscribers' protocol: in plain mode the echo of each publish is its
  // answer, which the relay sends at once, so a plain publisher's events are not batched.
  [publisher] = await openSockets(roomWsUrl(server, room, o.floorKind), 1, o.protocol);

  publish();
  await sleep(o.warmupMs);
  measuring = true;
  const start = performance.now();
  const cpu0 = { server: serverCpuSeconds(), load: loadCpuSeconds() };
  const sentBefore = sent;
  await sleep(o.durationMs);
  measuring = false;
  const elapsed = (performance.now() - start) / 1000;
  const cpu1 = { server: serverCpuSeconds(), load: loadCpuSeconds() };

  const stopAt = sent;
  publisher.removeAllListeners();
  const last = publisher;
  publisher = undefined; // stop publishing; let what is in flight arrive
  const drainUntil = Date.now() + 10_000;
  while (inflight > 0 && Date.now() < drainUntil) await sleep(20);
  const stats1 = await roomStats();

  let eventsPerFlush = 1;
  let roomFanOutUsPerMessage = 0;
  if (stats0 && stats1) {
    eventsPerFlush = Number(stats1.flushedEvents) / Math.max(1, Number(stats1.flushes));
    const events = Number(stats1.flushedEvents) - Number(stats0.flushedEvents);
    roomFanOutUsPerMessage = (Number(stats1.fanOutUs) - Number(stats0.fanOutUs)) / Math.max(1, events);
  }
  let lost = 0;
  for (let i = 0; i < stopAt; i++) lost += Math.max(0, remaining[i]);
  for (const s of [...sockets, last]) s.terminate();
  for (const c of streams) c.close();

  const all = [...latencies.websocket, ...latencies.sse, ...latencies.connect];
  const deliveries = counts.websocket + counts.sse + counts.connect;
  // A relay that refused its clients (a token needed, a limit) delivers nothing: that is no figure.
  if (deliveries === 0) {
    throw new Error(`fan-out on ${server.target} (${server.runtime}): nothing delivered; were the clients refused?`);
  }
  const perTransport: Partial<PerTransport> = {};
  for (const t of o.transports) {
    perTransport[t] = {
      deliveriesPerSec: counts[t] / elapsed,
      p50Ms: percentile(latencies[t], 50),
      p99Ms: percentile(latencies[t], 99),
    };
  }
  return {
    result: {
      deliveriesPerSec: deliveries / elapsed,
      p50Ms: percentile(all, 50),
      p99Ms: percentile(all, 99),
      messages: stopAt - sentBefore,
      lost,
      duplicated,
      serverCpuPerDeliveryUs: ((cpu1.server - cpu0.server) / deliveries) * 1e6,
      loadCpuPerDeliveryUs: ((cpu1.load - cpu0.load) / deliveries) * 1e6,
      serverCores: (cpu1.server - cpu0.server) / elapsed,
      loadCores: (cpu1.load - cpu0.load) / elapsed,
      eventsPerFlush,
      roomFanOutUsPerMessage,
    },
    perTransport,
  };
}
