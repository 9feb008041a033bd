/**
 * One room, every transport: subscribers on WebSocket (plain and relay.v1.json) and SSE, publishers
 * on WebSocket (json and plain) and HTTP (JSON and text/plain). Everyone sees the same log.
 */
import { afterEach, describe, expect, inject, it } from "vitest";
import {
  type ChatEventJson,
  getJson,
  messagesOf,
  publishJson,
  publishText,
  type ServerFrameJson,
  SseClient,
  uniqueRoom,
  WsClient,
  waitFor,
  waitForAsync,
  wsUrl,
} from "./clients";

const baseUrl = inject("baseUrl");
const DIGITS = /^\d+$/;

interface HistoryJson {
  events: ChatEventJson[];
  epoch: string;
  firstSeq: string;
  lastSeq: string;
  hasMore: boolean;
}

interface PresenceJson {
  room: string;
  members: { user: string; transport: string; connectedAtMs: string }[];
}

let cleanup: (() => unknown)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.map((f) => f()));
  cleanup = [];
});

async function openWs(room: string, query: string, protocol?: string): Promise<WsClient> {
  const c = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws${query}`), protocol);
  cleanup.push(() => c.close());
  return c;
}

function openSse(room: string, query: string): SseClient {
  const c = new SseClient(`${baseUrl}/rooms/${room}/sse${query}`);
  cleanup.push(() => c.close());
  return c;
}

function expectMessageShape(e: ChatEventJson, room: string, epoch: string): void {
  expect(Object.keys(e).sort()).toEqual(["epoch", "id", "kind", "room", "seq", "text", "timeMs", "user"]);
  expect(e.room).toBe(room);
  expect(e.epoch).toBe(epoch);
  expect(e.kind).toBe("message");
  expect(e.seq).toMatch(DIGITS);
  expect(e.timeMs).toMatch(DIGITS);
  expect(typeof e.id).toBe("string");
  expect(typeof e.user).toBe("string");
  expect(typeof e.text).toBe("string");
}

describe("cross-transport fan-out", () => {
  it("delivers every publish, from every transport, to every subscriber in the same order", async () => {
    const room = uniqueRoom("xt");
    const plain = await openWs(room, "?user=plain-sub");
    const json = await openWs(room, "?user=json-sub", "relay.v1.json");
    const sse = openSse(room, "?user=sse-sub");
    expect(plain.protocol).toBe("");
    expect(json.protocol).toBe("relay.v1.json");

    // The first frame of every subscription is `subscribed`, with the room's epoch and no seq; on SSE
    // its id is the offset the stream starts after (0: the room was empty).
    await plain.waitFrames(1);
    await json.waitFrames(1);
    await sse.waitEvents(1);
    const subPlain = plain.frames[0] as ChatEventJson;
    const subJson = (json.frames[0] as ServerFrameJson).event as ChatEventJson;
    const subSse = sse.events[0];
    expect(subSse.type).toBe("subscribed");
    expect(subSse.lastEventId).toBe("0");
    const epoch = subPlain.epoch;
    expect(epoch).toMatch(/^[A-Za-z0-9_-]+$/);
    for (const s of [subPlain, subJson, subSse.data]) {
      expect(s).toMatchObject({ room, epoch, kind: "subscribed" });
      expect(s.seq).toBeUndefined();
      expect(s.timeMs).toMatch(DIGITS);
    }

    // Presence lists all three, with their transports.
    const presence = await getJson<PresenceJson>(baseUrl, `/rooms/${room}/presence`);
    expect(presence.status).toBe(200);
    expect(presence.body.room).toBe(room);
    const members = presence.body.members.map((m) => `${m.transport}:${m.user}`).sort();
    expect(members).toEqual(["sse:sse-sub", "websocket:json-sub", "websocket:plain-sub"]);
    for (const m of presence.body.members) expect(m.connectedAtMs).toMatch(DIGITS);

    // 1: WebSocket json with a client id; the publisher gets an ack carrying the stored event.
    const jsonId = `c1-${room}`;
    json.publish("from ws json", jsonId);
    const ack = await json.waitFrame<ServerFrameJson>((f) => f.ack !== undefined);
    expect(ack.ack?.duplicate).toBeUndefined();
    expect(ack.ack?.event).toMatchObject({ seq: "1", id: jsonId, text: "from ws json", user: "json-sub" });
    // 2: WebSocket plain: a text frame is the message (no ack in plain mode).
    plain.send("from ws plain");
    await waitFor("plain publish", () => messagesOf(plain.frames).length >= 2);
    // 3: HTTP JSON, 4: HTTP text/plain with an Idempotency-Key.
    const httpJson = await publishJson(baseUrl, room, { text: "from http json", id: `h1-${room}`, user: "http-user" });
    expect(httpJson.status).toBe(201);
    expect(httpJson.contentType).toMatch(/^application\/json/);
    expectMessageShape(httpJson.body, room, epoch);
    expect(httpJson.body).toMatchObject({ seq: "3", id: `h1-${room}`, user: "http-user", text: "from http json" });
    const httpText = await publishText(baseUrl, room, "from http text", `h2-${room}`);
    expect(httpText.status).toBe(201);
    expect(httpText.body).toMatchObject({ seq: "4", id: `h2-${room}`, user: "anonymous", text: "from http text" });

    await waitFor("4 messages on plain", () => messagesOf(plain.frames).length >= 4);
    await waitFor("4 messages on json", () => messagesOf(json.frames).length >= 4);
    await sse.waitMessages(4);

    const seen = {
      plain: messagesOf(plain.frames),
      json: messagesOf(json.frames),
      sse: sse.messages().map((m) => m.data),
    };
    for (const events of Object.values(seen)) {
      expect(events.map((e) => e.seq)).toEqual(["1", "2", "3", "4"]);
      expect(events.map((e) => e.text)).toEqual(["from ws json", "from ws plain", "from http json", "from http text"]);
      expect(events.map((e) => e.user)).toEqual(["json-sub", "plain-sub", "http-user", "anonymous"]);
      for (const e of events) expectMessageShape(e, room, epoch);
      const times = events.map((e) => Number(e.timeMs));
      expect(times).toEqual([...times].sort((a, b) => a - b));
    }
    // Identical events everywhere (ids included: the server-made id of the plain publish too).
    expect(seen.json).toEqual(seen.plain);
    expect(seen.sse).toEqual(seen.plain);
    expect(seen.plain[0]).toEqual(ack.ack?.event);
    expect(seen.plain[2]).toEqual(httpJson.body);
    expect(seen.plain[3]).toEqual(httpText.body);
    expect(seen.plain[1].id).toMatch(/^[\x21-\x7e]+$/);
    // SSE: the event type is `message` and Last-Event-ID is the offset.
    for (const m of sse.messages()) {
      expect(m.type).toBe("message");
      expect(m.lastEventId).toBe(m.data.seq);
    }
    // Only message events in plain mode besides `subscribed`: no acks, no errors.
    expect(plain.frames).toHaveLength(5);
    expect(json.frames.filter((f) => (f as ServerFrameJson).error)).toEqual([]);
  });

  it("keeps the order of a burst of frames on one connection, for every subscriber", async () => {
    const room = uniqueRoom("burst");
    const watcher = await openWs(room, "");
    const json = await openWs(room, "", "relay.v1.json");
    const texts = Array.from({ length: 40 }, (_, i) => `burst ${i}`);
    for (const text of texts) json.publish(text);
    await watcher.waitFrames(1 + texts.length);
    await json.waitFrames(1 + 2 * texts.length);
    expect(messagesOf(watcher.frames).map((e) => e.text)).toEqual(texts);
    expect(messagesOf(watcher.frames).map((e) => e.seq)).toEqual(texts.map((_, i) => String(i + 1)));
    const acks = json.frames.flatMap((f) => ((f as ServerFrameJson).ack ? [(f as ServerFrameJson).ack] : []));
    expect(acks.map((a) => a?.event.text)).toEqual(texts);
  });

  it("answers a retried id with the original event and never fans it out twice", async () => {
    const room = uniqueRoom("dup");
    const json = await openWs(room, "", "relay.v1.json");
    const sse = openSse(room, "");
    await json.waitFrames(1);
    await sse.waitEvents(1);

    const wsId = `w-${room}`;
    json.publish("first", wsId);
    const ack1 = await json.waitFrame<ServerFrameJson>((f) => f.ack !== undefined);
    const original = ack1.ack?.event as ChatEventJson;
    expect(original.seq).toBe("1");

    const httpId = `h-${room}`;
    const created = await publishJson(baseUrl, room, { text: "second", id: httpId });
    expect(created.status).toBe(201);
    expect(created.body.seq).toBe("2");

    // Retries: same id over HTTP (JSON and text/plain) → 200 with the original event.
    const retryHttp = await publishJson(baseUrl, room, { text: "second, retried", id: httpId });
    expect(retryHttp.status).toBe(200);
    expect(retryHttp.body).toEqual(created.body);
    const retryText = await publishText(baseUrl, room, "second, retried as text", httpId);
    expect(retryText.status).toBe(200);
    expect(retryText.body).toEqual(created.body);
    // An id first used over WebSocket, retried over HTTP: still the original.
    const crossRetry = await publishJson(baseUrl, room, { text: "first again", id: wsId });
    expect(crossRetry.status).toBe(200);
    expect(crossRetry.body).toEqual(original);
    // Retry over WebSocket json → ack with duplicate: true and the original event.
    const acksBefore = json.frames.length;
    json.publish("first, retried", wsId);
    const ack2 = await json.waitFrame<ServerFrameJson>((f) => f.ack !== undefined, acksBefore);
    expect(ack2.ack?.duplicate).toBe(true);
    expect(ack2.ack?.event).toEqual(original);

    // A marker after the retries: once it arrives, any fanned-out duplicate would have arrived before it.
    const marker = await publishJson(baseUrl, room, { text: "marker" });
    expect(marker.status).toBe(201);
    expect(marker.body.seq).toBe("3");
    await waitFor("marker on ws", () => messagesOf(json.frames).length >= 3);
    await sse.waitMessages(3);
    for (const events of [messagesOf(json.frames), sse.messages().map((m) => m.data)]) {
      expect(events.map((e) => e.seq)).toEqual(["1", "2", "3"]);
      expect(events.map((e) => e.text)).toEqual(["first", "second", "marker"]);
    }
    const history = await getJson<HistoryJson>(baseUrl, `/rooms/${room}/messages?since=0`);
    expect(history.body.events.map((e) => e.text)).toEqual(["first", "second", "marker"]);
  });

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

  it("sends SSE with retry: 1000, typed events, and ids: the start offset on subscribed, the seq on messages", async () => {
    const room = uniqueRoom("ssewire");
    const first = await publishJson(baseUrl, room, { text: "one" });
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 5000);
    try {
      const res = await fetch(`${baseUrl}/rooms/${room}/sse?since=0`, { signal: ctrl.signal });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
      expect(res.headers.get("cache-control")).toContain("no-cache");
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = "";
      while (!text.includes("event: message")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      while (!text.endsWith("\n\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      await reader.cancel();
      const blocks = text.split("\n\n").filter((b) => b !== "");
      expect(blocks[0]).toBe("retry: 1000");
      expect(blocks[1]).toMatch(/^id: 0\nevent: subscribed\ndata: \{.*\}$/);
      expect(blocks[2]).toBe(`id: 1\nevent: message\ndata: ${JSON.stringify(first.body)}`);
    } finally {
      clearTimeout(timer);
      ctrl.abort();
    }
  });

  it("drops subscribers from presence when they disconnect", async () => {
    const room = uniqueRoom("pres");
    const ws = await openWs(room, "?user=alice");
    const sse = openSse(room, "?user=bob");
    await ws.waitFrames(1);
    await sse.waitEvents(1);
    const before = await getJson<PresenceJson>(baseUrl, `/rooms/${room}/presence`);
    expect(before.body.members.map((m) => `${m.transport}:${m.user}`).sort()).toEqual(["sse:bob", "websocket:alice"]);
    const members = async () => {
      const r = await getJson<PresenceJson>(baseUrl, `/rooms/${room}/presence`);
      return r.body.members.map((m) => `${m.transport}:${m.user}`).sort();
    };
    await ws.close();
    await waitForAsync("alice to leave", async () => (await members()).length === 1);
    expect(await members()).toEqual(["sse:bob"]);
    // A client that went away is noticed at the next write to its stream: the heartbeat (1 s in this
    // suite) finds it, no publish is needed, and the Worker closes its bridge socket to the room.
    sse.close();
    await waitForAsync("bob to leave", async () => (await members()).length === 0, 8000);
  });
});
