/**
 * Resume: the time to deliver 10,000 missed events to a client that resumes from offset 0, per
 * transport (WebSocket `?since=0`, SSE `?since=0`, Connect Subscribe `since: 0`).
 */
import { randomUUID } from "node:crypto";
import { connectSubscribeBody, messageText, openSockets, openStream, scan } from "../lib/clients";
import { type BenchServer, roomWsUrl } from "../lib/servers";
import type { SubscriberTransport } from "./fanout";

/** Fills a fresh room with `count` events (WebSocket `relay.v1.json`, acks awaited); returns its name. */
export async function fillRoom(server: BenchServer, count: number): Promise<string> {
  const room = `resume-${randomUUID().slice(0, 8)}`;
  const [ws] = await openSockets(roomWsUrl(server, room), 1, "relay.v1.json");
  let acked = 0;
  let sent = 0;
  await new Promise<void>((resolve) => {
    const send = () => {
      while (sent < count && sent - acked < 64) ws.send(JSON.stringify({ publish: { text: messageText(sent++) } }));
    };
    ws.on("message", (d: Buffer) => {
      if (d.indexOf('{"ack"') !== 0) return;
      if (++acked === count) resolve();
      else send();
    });
    send();
  });
  ws.terminate();
  return room;
}

/** Seconds until a client resuming from 0 has all `count` events (bounded by 60 s). */
export async function resumeSeconds(
  server: BenchServer,
  room: string,
  transport: SubscriberTransport,
  count: number,
): Promise<number> {
  let got = 0;
  const t0 = performance.now();
  let close = () => {};
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`resume over ${transport}: ${got}/${count} in 60 s`)), 60_000);
    const onDelivery = () => {
      if (++got === count) {
        clearTimeout(timer);
        resolve();
      }
    };
    if (transport === "websocket") {
      openSockets(roomWsUrl(server, room, "floor", "?since=0"), 1, undefined, (d) => scan(d, onDelivery)).then(
        ([ws]) => {
          close = () => ws.terminate();
        },
        reject,
      );
    } else {
      const c =
        transport === "sse"
          ? openStream(`${server.baseUrl}/rooms/${room}/sse?since=0`, {}, onDelivery)
          : openStream(
              `${server.baseUrl}/relay.v1.ChatService/Subscribe`,
              {
                method: "POST",
                headers: { "Content-Type": "application/connect+json" },
                body: connectSubscribeBody(room, 0),
              },
              onDelivery,
            );
      close = () => c.close();
    }
  });
  try {
    await done;
    return (performance.now() - t0) / 1000;
  } finally {
    close();
  }
}
