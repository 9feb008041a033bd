/**
 * What the client's end-to-end tests share: a client that records everything it is told, the
 * checks "every message once, in order", and two small proxies in front of a relay: a TCP proxy
 * that can be taken down and up again (a client offline, then back), and an HTTP proxy that
 * forwards plain HTTP but refuses WebSocket upgrades (what "auto" falls back from).
 */

import { request as httpRequest, createServer as httpServer } from "node:http";
import { createConnection, createServer as netServer, type Socket } from "node:net";
import {
  type ClientOptions,
  type ClientSnapshot,
  createClient,
  type Member,
  type RelayClient,
  type RelayEvent,
  type RelayGap,
} from "@edge-relay/client";
import WebSocket from "ws";
import { waitFor } from "../clients";

export const TRANSPORTS = ["websocket", "sse", "connect"] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** A client and everything it delivered. */
export interface Recorded {
  client: RelayClient;
  messages: RelayEvent[];
  gaps: RelayGap[];
  states: ClientSnapshot[];
  joins: Member[];
  leaves: Member[];
  texts(): string[];
}

const open: RelayClient[] = [];

/** A client of `room` with fast reconnects, `ws` as its WebSocket, recording what it delivers. */
export function record(url: string, room: string, opts: Partial<ClientOptions> = {}): Recorded {
  const client = createClient({ url, room, WebSocket, backoff: { initialMs: 50, maxMs: 400 }, ...opts });
  open.push(client);
  const r: Recorded = {
    client,
    messages: [],
    gaps: [],
    states: [],
    joins: [],
    leaves: [],
    texts: () => r.messages.map((m) => m.text),
  };
  client.on("message", (m) => r.messages.push(m));
  client.on("gap", (g) => r.gaps.push(g));
  client.on("state", (s) => r.states.push(s));
  client.on("join", (m) => r.joins.push(m));
  client.on("leave", (m) => r.leaves.push(m));
  return r;
}

/** Closes every client made by record(). */
export function closeClients(): void {
  for (const c of open.splice(0)) c.close();
}

export function connected(r: Recorded, timeoutMs = 10_000): Promise<unknown> {
  return waitFor(
    "the client to connect",
    () => r.client.getSnapshot().state === "connected",
    timeoutMs,
    () => r.client.getSnapshot(),
  );
}

export function received(r: Recorded, n: number, timeoutMs = 10_000): Promise<unknown> {
  return waitFor(
    `${n} messages`,
    () => r.messages.length >= n,
    timeoutMs,
    () => ({
      snapshot: r.client.getSnapshot(),
      texts: r.texts(),
    }),
  );
}

/** Every message once, in order: offsets strictly increasing in one epoch, no id twice. */
export function assertOnceInOrder(messages: RelayEvent[]): void {
  for (let i = 1; i < messages.length; i++) {
    if (messages[i].epoch === messages[i - 1].epoch && messages[i].seq <= messages[i - 1].seq) {
      throw new Error(`out of order or twice: seq ${messages[i - 1].seq} then ${messages[i].seq}`);
    }
  }
  const ids = new Set(messages.map((m) => m.id));
  if (ids.size !== messages.length) throw new Error("an id was delivered twice");
}

/**
 * A TCP proxy to the relay's port that can go down (cut every connection, refuse new ones), freeze
 * (its connections stay open but carry nothing, new ones are refused: a network that went away
 * without a word) and come up again (frozen connections are cut then).
 */
export async function tcpProxy(targetPort: number): Promise<{
  url: string;
  down(): void;
  freeze(): void;
  up(): void;
  close(): Promise<void>;
}> {
  let isUp = true;
  let frozen = false;
  const sockets = new Set<Socket>();
  const server = netServer((inbound) => {
    if (!isUp) return inbound.destroy();
    const outbound = createConnection({ host: "127.0.0.1", port: targetPort });
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    inbound.pipe(outbound).pipe(inbound);
    inbound.on("close", () => outbound.destroy());
    outbound.on("close", () => inbound.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    down() {
      isUp = false;
      for (const s of sockets) s.destroy();
    },
    freeze() {
      isUp = false;
      frozen = true;
      for (const s of sockets) {
        s.unpipe();
        s.pause();
      }
    },
    up() {
      if (frozen) for (const s of sockets) s.destroy();
      frozen = false;
      isUp = true;
    },
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * An HTTP proxy like the ones that break WebSockets: plain requests (streamed both ways, so SSE
 * works) are forwarded; an `Upgrade: websocket` is answered 403. Counts what it saw.
 */
export async function noUpgradeProxy(targetPort: number): Promise<{
  url: string;
  upgradesRefused: () => number;
  close(): Promise<void>;
}> {
  let refused = 0;
  const sockets = new Set<Socket>();
  const server = httpServer((req, res) => {
    const out = httpRequest(
      { host: "127.0.0.1", port: targetPort, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on("error", () => res.destroy());
    req.pipe(out);
    res.on("close", () => out.destroy());
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("upgrade", (_req, socket) => {
    refused++;
    socket.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    upgradesRefused: () => refused,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** The port of a base URL. */
export const portOf = (url: string) => Number(new URL(url).port);

export { WebSocket };
