/**
 * Subscriptions end when their client goes or falls behind, whatever the transport, and every
 * end reaches the client in its transport's terms (the edge seam, edge/subscription.ts, and the
 * room's flow control, room/flow.ts). SUBSCRIBER_MAX_BEHIND_BYTES is 64 KiB and the heartbeat 1 s
 * here (vitest.config.ts).
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { describe, expect, it } from "vitest";
import { ClientFrameSchema, ServerFrameSchema } from "../../src/gen/relay/v1/relay_pb";
import { Room } from "../../src/index.ts";
import { ANON, connect, sleep } from "./helpers";

const base = "https://relay.test";
const stats = async (room: string) =>
  (await (await SELF.fetch(`${base}/rooms/${room}/stats`)).json()) as {
    connections: Record<string, number>;
    slowDisconnects: string;
  };
const publishMany = async (room: string, n: number, bytes: number) => {
  const stub = env.ROOM.getByName(room);
  for (let i = 0; i < n; i++) await stub.publish(room, { text: `${i}:`.padEnd(bytes, "x") }, ANON);
};

describe("a subscription ends when its client goes", () => {
  it("HEAD /sse answers the stream's headers and subscribes no one", async () => {
    for (let i = 0; i < 50; i++) {
      const res = await SELF.fetch(`${base}/rooms/heads/sse`, { method: "HEAD" });
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    }
    expect((await stats("heads")).connections).toEqual({});
  });

  it("ends an SSE stream whose client takes nothing for a heartbeat interval", async () => {
    const res = await SELF.fetch(`${base}/rooms/stalled/sse`);
    expect((await stats("stalled")).connections).toEqual({ sse: 1 });
    // Nothing reads the body: its first writes are never taken.
    await sleep(3000);
    expect((await stats("stalled")).connections).toEqual({});
    await res.body?.cancel();
  });

  it("ends SSE and Connect subscriptions when their client cancels", async () => {
    const sse = await SELF.fetch(`${base}/rooms/cancel/sse`);
    const body = JSON.stringify({ room: "cancel" });
    const envelope = encodeEnvelope(0, new TextEncoder().encode(body));
    const sub = await SELF.fetch(`${base}/relay.v1.ChatService/Subscribe`, {
      method: "POST",
      headers: { "Content-Type": "application/connect+json" },
      body: envelope,
    });
    const reader = sub.body?.getReader();
    await reader?.read();
    expect((await stats("cancel")).connections).toEqual({ sse: 1, connect: 1 });
    await sse.body?.cancel();
    await reader?.cancel();
    for (let i = 0; i < 30 && Object.keys((await stats("cancel")).connections).length > 0; i++) await sleep(100);
    expect((await stats("cancel")).connections).toEqual({});
  });
});

describe("one slow-consumer bound (SUBSCRIBER_MAX_BEHIND_BYTES) on every transport", () => {
  it("closes a WebSocket client that does not confirm reading with 4003, and not one that answers pings", async () => {
    const reader = await connect("slow-ws", "relay.v1.proto", "", false);
    const lazy = await connect("slow-ws", "relay.v1.json", "", false);
    let pongs = 0;
    reader.ws.addEventListener("message", (m) => {
      const frame = fromBinary(ServerFrameSchema, new Uint8Array(m.data as ArrayBuffer));
      if (frame.frame.case !== "ping") return;
      pongs++;
      const pong = create(ClientFrameSchema, { frame: { case: "pong", value: { id: frame.frame.value.id } } });
      reader.ws.send(toBinary(ClientFrameSchema, pong));
    });
    // 120 KiB in all: ~2x the bound. Published slowly enough for the pongs to come back.
    for (let i = 0; i < 12; i++) {
      await publishMany("slow-ws", 10, 1024);
      await sleep(20);
    }
    const closed = await lazy.closed;
    expect(closed.code).toBe(4003);
    expect(closed.reason).toMatch(/unread: resume after the last seq/);
    expect(lazy.json().filter((f) => f.ping).length).toBeGreaterThan(0);
    await reader.waitFor(121, 5000);
    expect(pongs).toBeGreaterThan(1);
    expect(reader.ws.readyState).toBe(WebSocket.OPEN);
    expect((await stats("slow-ws")).slowDisconnects).toBe("1");
  });

  it("closes a bridge whose client reads nothing once it is too far behind (before the stall check)", async () => {
    const res = await SELF.fetch(`${base}/rooms/slow-sse/sse`);
    // Over twice the bound at once: closed without waiting for the ping's grace.
    await publishMany("slow-sse", 160, 1024);
    for (let i = 0; i < 20 && (await stats("slow-sse")).slowDisconnects === "0"; i++) await sleep(50);
    const s = await stats("slow-sse");
    expect(s.slowDisconnects).toBe("1");
    expect(s.connections).toEqual({});
    await res.body?.cancel();
  });
});

describe("WebSocket protocol faults", () => {
  it("closes a text frame that was not UTF-8 (the runtime hands it over with U+FFFD) with 1007, unpublished", async () => {
    const s = await connect("utf8");
    s.ws.send("a\uFFFDb");
    expect((await s.closed).code).toBe(1007);
    const page = await env.ROOM.getByName("utf8").history("utf8", 0, 10);
    expect(page.ok && page.value.events).toEqual([]);
  });

  it("answers a close frame with an invalid code with 1002, and a valid one with itself", async () => {
    const bad = await connect("close-codes");
    const good = await connect("close-codes", "relay.v1.json");
    await runInDurableObject(env.ROOM.getByName("close-codes"), (_old, state) => {
      const room = new Room(state, env);
      const [a, b] = state.getWebSockets();
      const byFormat = state.getTags(a).includes("plain") ? [a, b] : [b, a];
      room.webSocketClose(byFormat[0], 1004, "reserved");
      room.webSocketClose(byFormat[1], 4100, "bye");
    });
    expect((await bad.closed).code).toBe(1002);
    expect(await good.closed).toMatchObject({ code: 4100, reason: "bye" });
  });
});

describe("answers bounded in bytes", () => {
  it("pages history by REPLAY_MAX_BYTES as well as by count", async () => {
    await publishMany("big-history", 10, 1024);
    const res = await SELF.fetch(`${base}/rooms/big-history/messages?since=0&limit=10`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as { events: unknown[]; hasMore: boolean };
    expect(page.events.length).toBeGreaterThan(0);
    expect(page.events.length).toBeLessThan(10);
    expect(page.hasMore).toBe(true);
  });
});
