/**
 * Slow consumer: a subscriber that stops reading should be disconnected, not buffered without
 * bound. One room with a reading subscriber (WebSocket `relay.v1.json`) and a paused one: a
 * WebSocket `relay.v1.json` whose TCP socket is paused (`ws._socket.pause()`), or an SSE stream
 * whose response body is not read (node:http, response paused). One publisher sends `messages`
 * texts of `messageBytes` at a steady rate, at most `window` ahead of the reading subscriber. Measured: the workerd processes' resident memory before, at its peak and
 * after; whether the room dropped the paused subscriber (its connection count, polled while
 * publishing); then the paused client reads again and we see what reached it (every message, or
 * part and a close code / the end of the stream); and the memory once it has gone.
 */
import { randomUUID } from "node:crypto";
import { get, type IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type WebSocket from "ws";
import { type Closed, closedBy, openJsonSocket, openPublisher, scan, streamScanner } from "../lib/clients";
import { type BenchServer, roomWsUrl } from "../lib/servers";
import { type MemorySample, sampleRss, until } from "./memory";

export type PausedTransport = "websocket" | "sse";

export interface SlowConsumerResult {
  paused: PausedTransport;
  messages: number;
  messageBytes: number;
  /** Memory before publishing, at the highest sample while publishing, and once every message reached the reading subscriber (+2 s). */
  before: MemorySample;
  peak: MemorySample;
  after: MemorySample;
  /** Memory 10 s after the paused client went away. */
  released: MemorySample;
  /** Whether the room's count of the paused transport's connections dropped while publishing. */
  droppedByRoom: boolean;
  /** When it dropped, at the latest: messages acked and seconds since the first publish when the poll that saw it answered. */
  droppedAtMessage?: number;
  droppedAfterSeconds?: number;
  /** What the paused client got once it read again: messages, and how its stream ended. */
  pausedDelivered: number;
  /** WebSocket: the close code it read ("none" when it got every message and no close). SSE: "ended" or "none". */
  pausedEnd: string;
  /** SSE: the data of a last `disconnect` event, if the stream ended with one. */
  disconnect?: string;
  /** Messages the reading subscriber got (must be every message). */
  readerDelivered: number;
  publishSeconds: number;
  completed: boolean;
  /** The relay closed the reading subscriber or the publisher (e.g. 4003): publishing stopped there. */
  closedByRelay?: string;
  /** Why the run stopped early, when a socket closed otherwise (see MemoryResult): it is run again. */
  interrupted?: string;
}

export interface SlowConsumerOptions {
  messages: number;
  messageBytes: number;
  window: number;
  /**
   * Publishes per second at most. A steady rate, not a flood: under the local runtimes a flood on
   * one socket holds up the frames other sockets send (docs/runtime-notes.md), the reader's
   * confirmations included, and that is not what this measures.
   */
  ratePerSecond: number;
  /** Bound on publishing; the paused client's catch-up is bounded by `drainMs`. */
  timeoutMs: number;
  drainMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connections(server: BenchServer, room: string): Promise<Record<string, number> | undefined> {
  try {
    const res = await fetch(`${server.baseUrl}/rooms/${room}/stats`, { signal: AbortSignal.timeout(5000) });
    return ((await res.json()) as { connections: Record<string, number> }).connections;
  } catch {
    return undefined; // a busy runtime may not answer in time: the next poll will
  }
}

/** A paused client: reading nothing until `resume()`, then counting what it gets and how it ends. */
interface PausedClient {
  resume(): void;
  delivered(): number;
  /** The end it saw, once it ended. */
  end(): string | undefined;
  disconnect(): string | undefined;
  close(): void;
}

async function pausedWebSocket(url: string): Promise<PausedClient> {
  let delivered = 0;
  let end: string | undefined;
  const ws: WebSocket = await openJsonSocket(url, (d) => scan(d, () => delivered++));
  ws.on("close", (code: number) => {
    end = String(code);
  });
  ws.on("error", () => {});
  const socket = (ws as unknown as { _socket: Socket })._socket;
  socket.pause();
  return {
    resume: () => socket.resume(),
    delivered: () => delivered,
    end: () => end,
    disconnect: () => undefined,
    close: () => ws.terminate(),
  };
}

async function pausedSse(url: string): Promise<PausedClient> {
  let delivered = 0;
  let end: string | undefined;
  let tail = "";
  const onChunk = streamScanner(() => delivered++);
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = get(url, { agent: false, headers: { Accept: "text/event-stream" } }, (res) => {
      req.setTimeout(0); // from here on the client is silent on purpose
      resolve(res);
    });
    req.once("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("SSE response timed out")));
  });
  if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}`);
  // Paused: node reads at most its buffer's worth, then stops reading the socket (TCP backpressure).
  res.pause();
  const ended = () => {
    end ??= "ended";
  };
  res.once("end", ended);
  res.once("error", ended);
  return {
    resume: () => {
      res.on("data", (chunk: Buffer) => {
        onChunk(chunk);
        tail = (tail + chunk.toString("latin1")).slice(-4096);
      });
      res.resume();
    },
    delivered: () => delivered,
    end: () => end,
    disconnect: () => /event: disconnect\ndata: (.*)\n/.exec(tail)?.[1],
    close: () => res.destroy(),
  };
}

export async function slowConsumer(
  server: BenchServer,
  paused: PausedTransport,
  o: SlowConsumerOptions,
): Promise<SlowConsumerResult> {
  const room = `slow-${randomUUID().slice(0, 8)}`;
  const url = roomWsUrl(server, room);
  let readerDelivered = 0;
  let readerClosed: Closed | undefined;
  let pump = () => {};
  const reader = await openJsonSocket(url, (d) => {
    scan(d, () => readerDelivered++);
    pump();
  });
  reader.once("close", (code: number) => {
    readerClosed ??= closedBy("reader", code);
  });
  const client =
    paused === "websocket" ? await pausedWebSocket(url) : await pausedSse(`${server.baseUrl}/rooms/${room}/sse`);
  // Paced by the reading subscriber: at most `window` messages it has not got yet.
  const publisher = await openPublisher(url, o.window, o.messageBytes, () => readerDelivered);
  pump = publisher.pump;
  const closedEarly = () => readerClosed ?? publisher.closed();
  const cleanup = () => {
    publisher.close();
    reader.terminate();
    client.close();
  };
  try {
    // Every subscription has reached the room: the reader, the paused client and the publisher.
    const expected: Record<string, number> = paused === "websocket" ? { websocket: 3 } : { websocket: 2, sse: 1 };
    const dropped = (now?: Record<string, number>) => now !== undefined && (now[paused] ?? 0) < expected[paused];
    let initial: Record<string, number> | undefined;
    const settleDeadline = Date.now() + 10_000;
    while (Date.now() < settleDeadline) {
      initial = await connections(server, room);
      if (initial && Object.entries(expected).every(([t, n]) => (initial?.[t] ?? 0) >= n)) break;
      await sleep(200);
    }
    await sleep(1000);
    const before = sampleRss(0);
    let peak = before;
    let droppedAtMessage: number | undefined;
    let droppedAfterSeconds: number | undefined;
    const t0 = performance.now();
    const deadline = Date.now() + o.timeoutMs;
    const pace = setInterval(() => {
      const due = Math.ceil(((performance.now() - t0) / 1000) * o.ratePerSecond);
      publisher.publishUpTo(Math.min(o.messages, due));
    }, 20);
    const all = () => {
      const c = publisher.counts();
      return c.acked + c.errors >= o.messages && readerDelivered >= c.acked;
    };
    let completed = false;
    while (Date.now() < deadline && closedEarly() === undefined) {
      if (all()) {
        completed = true;
        break;
      }
      const s = sampleRss(publisher.counts().acked);
      if (s.rssMiB > peak.rssMiB) peak = s;
      if (droppedAtMessage === undefined && dropped(await connections(server, room))) {
        // When the answer came (a busy room may take a while to give it): an upper bound.
        droppedAtMessage = publisher.counts().acked;
        droppedAfterSeconds = (performance.now() - t0) / 1000;
      }
      await sleep(500);
    }
    clearInterval(pace);
    const publishSeconds = (performance.now() - t0) / 1000;
    await sleep(2000);
    const after = sampleRss(publisher.counts().acked);
    if (after.rssMiB > peak.rssMiB) peak = after;
    if (droppedAtMessage === undefined) {
      if (dropped(await connections(server, room))) {
        droppedAtMessage = publisher.counts().acked;
        droppedAfterSeconds = publishSeconds;
      }
    }
    // The paused client reads again: every message, or what it got before the relay let it go.
    client.resume();
    const acked = publisher.counts().acked;
    await until(() => client.end() !== undefined || client.delivered() >= acked, Date.now() + o.drainMs, 50);
    // A close right behind the last message: give it a moment to arrive.
    if (client.end() === undefined) await until(() => client.end() !== undefined, Date.now() + 1000, 50);
    const pausedDelivered = client.delivered();
    const pausedEnd = client.end() ?? "none";
    const disconnect = client.disconnect();
    const stopped = closedEarly();
    cleanup();
    await sleep(10_000);
    const released = sampleRss(acked);
    return {
      paused,
      messages: o.messages,
      messageBytes: o.messageBytes,
      before,
      peak,
      after,
      released,
      droppedByRoom: droppedAtMessage !== undefined,
      droppedAtMessage,
      droppedAfterSeconds,
      pausedDelivered,
      pausedEnd,
      disconnect,
      readerDelivered,
      publishSeconds,
      completed: completed && stopped === undefined,
      closedByRelay: stopped?.byRelay ? stopped.what : undefined,
      interrupted: stopped && !stopped.byRelay ? stopped.what : undefined,
    };
  } finally {
    cleanup();
  }
}
