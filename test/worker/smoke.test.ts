import { env, SELF } from "cloudflare:test";
import { expect, it } from "vitest";
import { ANON } from "./helpers";

it("answers /healthz", async () => {
  const res = await SELF.fetch("https://relay.test/healthz");
  expect(await res.json()).toEqual({ ok: true });
});

it("answers /rooms/:room/stats as relay.v1.RoomStats in the JSON mapping, every field present", async () => {
  await env.ROOM.getByName("stats").publish("stats", { text: "one" }, ANON);
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
    shards: 0,
    fanOutUs: expect.stringMatching(/^\d+$/),
  });
  await sse.body?.cancel();
  ws.webSocket?.close();
});

it("lets browsers call only from the relay's own origin (under a host it is served as) or ALLOWED_ORIGINS", async () => {
  const open = (url: string, origin?: string) =>
    SELF.fetch(url, { headers: origin ? { Upgrade: "websocket", Origin: origin } : { Upgrade: "websocket" } });
  // A foreign page, and a page whose own name resolves here (DNS rebinding: Host is its name).
  for (const [url, origin] of [
    ["https://relay.test/rooms/origins/ws", "https://evil.example"],
    ["https://relay.test/rooms/origins/ws", "https://relay.test"],
    ["http://localhost:8787/rooms/origins/ws", "null"],
  ]) {
    const refused = await open(url, origin);
    expect(refused.status, origin).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: "permission_denied" } });
  }
  for (const [url, origin] of [
    ["https://relay.test/rooms/origins/ws", undefined],
    ["https://relay.test/rooms/origins/ws", "https://app.example"],
    ["https://relay.test/rooms/origins/ws", "HTTPS://APP.EXAMPLE"],
    ["http://localhost:8787/rooms/origins/ws", "http://localhost:8787"],
    ["http://localhost:8787/rooms/origins/ws", "HTTP://LOCALHOST:8787"],
    ["https://relay-a.someone.workers.dev/rooms/origins/ws", "https://relay-a.someone.workers.dev"],
  ]) {
    const res = await open(url as string, origin);
    expect(res.status, String(origin)).toBe(101);
    res.webSocket?.accept();
    res.webSocket?.close();
  }
});

it("refuses a browser's same-origin read (no Origin, Sec-Fetch-Site) under a host the relay is not served as", async () => {
  const read = (url: string) => SELF.fetch(url, { headers: { "Sec-Fetch-Site": "same-origin" } });
  // A page on evil.example, rebound to the relay's address: its EventSource and fetches carry no Origin.
  const rebound = await read("https://evil.example/rooms/rebound/messages");
  expect(rebound.status).toBe(403);
  expect(await rebound.json()).toMatchObject({ error: { code: "permission_denied" } });
  expect((await read("http://localhost:8787/rooms/rebound/messages")).status).toBe(200);
  // curl and servers send no Sec-Fetch-Site: any host.
  expect((await SELF.fetch("https://evil.example/rooms/rebound/messages")).status).toBe(200);
});
