/**
 * What only the plain HTTP routes and the raw SSE wire promise (everything shared by the
 * transports is in behaviour/): history pages by `since` and `limit`, presence across transports,
 * and the exact bytes of an SSE stream.
 */
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, inject, it } from "vitest";
import { ChatService } from "../../src/gen/relay/v1/relay_pb";
import {
  type ChatEventJson,
  connectTransports,
  getJson,
  type HistoryJson,
  publishJson,
  SseClient,
  StreamRecorder,
  uniqueRoom,
  WsClient,
  waitFor,
  waitForAsync,
  wsUrl,
} from "./clients";

const baseUrl = inject("baseUrl");
const DIGITS = /^\d+$/;

interface PresenceJson {
  room: string;
  members: { user: string; transports: string[]; connections: number; connectedAtMs: string }[];
}

let cleanup: (() => unknown)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.map((f) => f()));
  cleanup = [];
});

describe("history", () => {
  it("pages the history with since and limit", async () => {
    const room = uniqueRoom("hist");
    const empty = await getJson<HistoryJson>(baseUrl, `/rooms/${room}/messages`);
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ events: [], firstSeq: "0", lastSeq: "0", hasMore: false });
    const epoch = empty.body.epoch;
    expect(epoch).toMatch(/^[A-Za-z0-9_-]+$/);

    const published: ChatEventJson[] = [];
    for (let i = 1; i <= 7; i++) {
      const r = await publishJson(baseUrl, room, { text: `m${i}`, id: `id-${i}` });
      expect(r.status).toBe(201);
      published.push(r.body);
    }
    const page = async (q: string) => {
      const r = await getJson<HistoryJson>(baseUrl, `/rooms/${room}/messages${q}`);
      expect(r.status).toBe(200);
      expect(r.contentType).toMatch(/^application\/json/);
      expect(r.body).toMatchObject({ epoch, firstSeq: "1", lastSeq: "7" });
      return r.body;
    };
    const p1 = await page("?since=0&limit=3");
    expect(p1.events).toEqual(published.slice(0, 3));
    expect(p1.hasMore).toBe(true);
    const p2 = await page(`?since=${p1.events[2].seq}&limit=3`);
    expect(p2.events).toEqual(published.slice(3, 6));
    expect(p2.hasMore).toBe(true);
    const p3 = await page(`?since=${p2.events[2].seq}&limit=3`);
    expect(p3.events).toEqual(published.slice(6));
    expect(p3.hasMore).toBe(false);
    const p4 = await page("?since=7&limit=3");
    expect(p4.events).toEqual([]);
    expect(p4.hasMore).toBe(false);
    const exact = await page("?since=4&limit=3");
    expect(exact.events.map((e) => e.seq)).toEqual(["5", "6", "7"]);
    expect(exact.hasMore).toBe(false);
    const all = await page("");
    expect(all.events).toEqual(published);
    expect(all.hasMore).toBe(false);
  });
});

describe("presence", () => {
  it("lists who is connected on every transport, and drops whoever leaves", async () => {
    const room = uniqueRoom("pres");
    const ws = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws?user=alice`), undefined, { flowControl: true });
    cleanup.push(() => ws.close());
    const sse = new SseClient(`${baseUrl}/rooms/${room}/sse?user=bob`);
    cleanup.push(() => sse.close());
    const client = createClient(ChatService, connectTransports(baseUrl)["connect-json"]);
    const sub = new StreamRecorder((signal) => client.subscribe({ room }, { signal }));
    cleanup.push(() => sub.stop());
    await ws.waitFrames(1);
    await sse.waitEvents(1);
    await waitFor("the Connect stream", () => sub.events.length > 0);

    const members = async () => {
      const r = await getJson<PresenceJson>(baseUrl, `/rooms/${room}/presence`);
      expect(r.status).toBe(200);
      expect(r.body.room).toBe(room);
      for (const m of r.body.members) expect(m.connectedAtMs).toMatch(DIGITS);
      return r.body.members.map((m) => `${m.transports.join("+")}:${m.user}:${m.connections}`).sort();
    };
    expect(await members()).toEqual(["connect:anonymous:1", "sse:bob:1", "websocket:alice:1"]);
    // Connect's Presence says the same.
    const viaConnect = await client.presence({ room });
    expect(viaConnect.members.map((m) => `${m.transports.join("+")}:${m.user}:${m.connections}`).sort()).toEqual(
      await members(),
    );

    await ws.close();
    await waitForAsync("alice to leave", async () => (await members()).length === 2);
    expect(await members()).toEqual(["connect:anonymous:1", "sse:bob:1"]);
  });
});

describe("the SSE wire", () => {
  /** Reads a stream's text until `until` holds (bounded), then cancels it. */
  async function read(path: string, headers: Record<string, string>, until: (text: string) => boolean) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 5000);
    try {
      const res = await fetch(baseUrl + path, { headers, signal: ctrl.signal });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
      expect(res.headers.get("cache-control")).toContain("no-cache");
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = "";
      while (!until(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      await reader.cancel();
      return text.split("\n\n").filter((b) => b !== "");
    } finally {
      clearTimeout(timer);
      ctrl.abort();
    }
  }

  it("sends retry: 1000, then typed events whose id is the offset to resume after", async () => {
    const room = uniqueRoom("ssewire");
    const first = await publishJson(baseUrl, room, { text: "one" });
    const second = await publishJson(baseUrl, room, { text: "two" });
    const blocks = await read(
      `/rooms/${room}/sse?since=0`,
      {},
      (t) => t.split("event: message").length > 2 && t.endsWith("\n\n"),
    );
    expect(blocks[0]).toBe("retry: 1000");
    // `subscribed` carries the offset the stream starts after (0: omitted from its JSON).
    expect(blocks[1]).toMatch(/^id: 0\nevent: subscribed\ndata: \{.*\}$/);
    expect(blocks[1]).not.toContain("resumeAfter");
    expect(blocks[2]).toBe(`id: 1\nevent: message\ndata: ${JSON.stringify(first.body)}`);
    expect(blocks[3]).toBe(`id: 2\nevent: message\ndata: ${JSON.stringify(second.body)}`);

    // Resuming after 1 (Last-Event-ID): `subscribed` has id 1 and resumeAfter "1".
    const resumed = await read(
      `/rooms/${room}/sse`,
      { "Last-Event-ID": "1" },
      (t) => t.includes("event: message") && t.endsWith("\n\n"),
    );
    expect(resumed[1]).toMatch(/^id: 1\nevent: subscribed\ndata: \{.*"resumeAfter":"1".*\}$/);
    expect(resumed[2]).toBe(`id: 2\nevent: message\ndata: ${JSON.stringify(second.body)}`);
  });
});
