import { env, SELF } from "cloudflare:test";
import { expect, it } from "vitest";

it("answers /healthz", async () => {
  const res = await SELF.fetch("https://relay.test/healthz");
  expect(await res.json()).toEqual({ ok: true });
});

it("answers /rooms/:room/stats as relay.v1.RoomStats in the JSON mapping, every field present", async () => {
  await env.ROOM.getByName("stats").publish("stats", { text: "one" });
  const ws = await SELF.fetch("https://relay.test/rooms/stats/ws", { headers: { Upgrade: "websocket" } });
  ws.webSocket?.accept();
  const sse = await SELF.fetch("https://relay.test/rooms/stats/sse");
  const res = await SELF.fetch("https://relay.test/rooms/stats/stats");
  const body = (await res.json()) as Record<string, unknown>;
  // 64-bit integers as strings, lowerCamelCase names, connections by the transport each one named.
  expect(body).toEqual({
    room: "stats",
    epoch: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
    firstSeq: "1",
    lastSeq: "1",
    connections: { websocket: 1, sse: 1 },
    objectStartedAtMs: expect.stringMatching(/^\d+$/),
    flushes: "1",
    flushedEvents: "1",
    slowDisconnects: "0",
  });
  await sse.body?.cancel();
  ws.webSocket?.close();
});

it("lets browsers open a WebSocket only from the relay's own origin or ALLOWED_ORIGINS", async () => {
  const open = (origin?: string) =>
    SELF.fetch("https://relay.test/rooms/origins/ws", {
      headers: origin ? { Upgrade: "websocket", Origin: origin } : { Upgrade: "websocket" },
    });
  const refused = await open("https://evil.example");
  expect(refused.status).toBe(403);
  expect(await refused.json()).toMatchObject({ error: { code: "permission_denied" } });
  for (const origin of [undefined, "https://relay.test", "https://app.example"]) {
    const res = await open(origin);
    expect(res.status, String(origin)).toBe(101);
    res.webSocket?.accept();
    res.webSocket?.close();
  }
});
