/**
 * Idle: memory per idle connection (resident memory of the workerd processes before and after
 * opening them), and whether the room's object is evicted (hibernates) while only subscribers of
 * one transport are attached: `GET /rooms/:room/stats` tells when the object was constructed.
 */
import { randomUUID } from "node:crypto";
import { connectSubscribeBody, openSockets, openStream, type StreamClient } from "../lib/clients";
import { workerdRssBytes } from "../lib/procs";
import { type BenchServer, roomWsUrl } from "../lib/servers";
import type { SubscriberTransport } from "./fanout";

export interface IdleResult {
  transport: SubscriberTransport;
  connections: number;
  kibPerConnection: number;
  evicted: boolean;
  waitedSeconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startedAt(server: BenchServer, room: string): Promise<number> {
  const res = await fetch(`${server.baseUrl}/rooms/${room}/stats`);
  return ((await res.json()) as { objectStartedAtMs: number }).objectStartedAtMs;
}

export async function idle(
  server: BenchServer,
  transport: SubscriberTransport,
  connections: number,
  waitMs: number,
): Promise<IdleResult> {
  const room = `idle-${randomUUID().slice(0, 8)}`;
  await startedAt(server, room);
  await sleep(1000);
  const before = workerdRssBytes();
  let closeAll = () => {};
  if (transport === "websocket") {
    const sockets = await openSockets(roomWsUrl(server, room), connections);
    closeAll = () => {
      for (const s of sockets) s.terminate();
    };
  } else {
    const streams: StreamClient[] = [];
    for (let i = 0; i < connections; i++) {
      streams.push(
        transport === "sse"
          ? openStream(`${server.baseUrl}/rooms/${room}/sse`, {}, () => {})
          : openStream(
              `${server.baseUrl}/relay.v1.ChatService/Subscribe`,
              {
                method: "POST",
                headers: { "Content-Type": "application/connect+json" },
                body: connectSubscribeBody(room),
              },
              () => {},
            ),
      );
      if (i % 50 === 49) await Promise.all(streams.slice(-50).map((s) => s.opened));
    }
    await Promise.all(streams.map((s) => s.opened));
    closeAll = () => {
      for (const s of streams) s.close();
    };
  }
  await sleep(1000);
  const after = workerdRssBytes();
  const t0 = await startedAt(server, room);
  // Nothing reaches the room while we wait: heartbeats are written by the Worker, not the room.
  await sleep(waitMs);
  const t1 = await startedAt(server, room);
  closeAll();
  return {
    transport,
    connections,
    kibPerConnection: (after - before) / connections / 1024,
    evicted: t1 > t0,
    waitedSeconds: waitMs / 1000,
  };
}
