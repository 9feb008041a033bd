/**
 * Resuming a subscription: by Last-Event-ID (SSE), by ?since= (SSE and WebSocket), with a wrong
 * epoch, past the end of the log, and past what retention keeps (on a second dev server with
 * HISTORY_MAX_COUNT=5).
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type ChatEventJson,
  getJson,
  publishJson,
  type ServerFrameJson,
  SseClient,
  uniqueRoom,
  WsClient,
  waitFor,
  wsUrl,
} from "./clients";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "./dev-server";

let cleanup: (() => unknown)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.map((f) => f()));
  cleanup = [];
});

/** What any subscriber received, as plain ChatEvents in order (plain, json and SSE alike). */
type Sub = { events(): ChatEventJson[]; close(): unknown };

function sseSub(url: string, lastEventId?: string): Sub & { client: SseClient } {
  const client = new SseClient(url, { lastEventId });
  const sub = { client, events: () => client.events.map((e) => e.data), close: () => client.close() };
  cleanup.push(sub.close);
  return sub;
}

async function wsSub(url: string, protocol?: string): Promise<Sub & { client: WsClient }> {
  const client = await WsClient.open(url, protocol);
  const sub = {
    client,
    events: () => client.frames.map((f) => ((f as ServerFrameJson).event ?? f) as ChatEventJson),
    close: () => client.close(),
  };
  cleanup.push(sub.close);
  return sub;
}

const seqs = (events: ChatEventJson[]) => events.filter((e) => e.kind === "message").map((e) => Number(e.seq));
const kinds = (events: ChatEventJson[]) => events.map((e) => e.kind);

async function waitSeqs(sub: Sub, n: number, timeoutMs = 5000): Promise<ChatEventJson[]> {
  await waitFor(
    `${n} messages`,
    () => seqs(sub.events()).length >= n,
    timeoutMs,
    () => sub.events(),
  );
  return sub.events();
}

async function fill(baseUrl: string, room: string, n: number): Promise<ChatEventJson[]> {
  const out: ChatEventJson[] = [];
  for (let i = 1; i <= n; i++) {
    const r = await publishJson(baseUrl, room, { text: `m${i}`, id: `${room}-${i}` });
    expect(r.status).toBe(201);
    out.push(r.body);
  }
  return out;
}

describe("resume on the shared dev server", () => {
  const baseUrl = inject("baseUrl");

  it("resumes a log longer than REPLAY_MAX_BYTES in parts: EventSource reconnects by itself, nothing lost or repeated", async () => {
    const room = uniqueRoom("parts");
    const n = 120; // about 30 KiB of events: two pauses at the suite's 16 KiB
    await Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (let i = w; i < n; i += 6)
          expect((await publishJson(baseUrl, room, { text: `part ${"x".repeat(100)}` })).status).toBe(201);
      }),
    );
    const sub = sseSub(sse(room, "?since=0"));
    const events = await waitSeqs(sub, n, 15_000);
    expect(seqs(events)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    // It took more than one connection: the room paused the replay and the client resumed.
    expect(sub.client.opens).toBeGreaterThan(1);
    // A WebSocket client sees the pause as close 4002 after a prefix of the log.
    const ws1 = await wsSub(wsUrl(baseUrl, `/rooms/${room}/ws?since=0`));
    const closed = await ws1.client.waitClosed(5000);
    expect(closed.code).toBe(4002);
    const got = seqs(ws1.events());
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i + 1));
  });
  const sse = (room: string, q: string) => `${baseUrl}/rooms/${room}/sse${q}`;
  const ws = (room: string, q: string) => wsUrl(baseUrl, `/rooms/${room}/ws${q}`);

  /** Checks a resumed stream: subscribed, then exactly `expected` offsets, then one live message. */
  async function expectResume(baseRoom: string, sub: Sub, expected: number[], published: ChatEventJson[]) {
    const events = await waitSeqs(sub, expected.length);
    expect(kinds(events)).toEqual(["subscribed", ...expected.map(() => "message")]);
    expect(events[0]).toMatchObject({ kind: "subscribed", epoch: published[0].epoch, firstSeq: "1" });
    expect(events.slice(1)).toEqual(expected.map((s) => published[s - 1]));
    // Live events continue after the replay, with no duplicate in between.
    const live = await publishJson(baseUrl, baseRoom, { text: `live ${published.length + 1}` });
    expect(live.status).toBe(201);
    published.push(live.body);
    const after = await waitSeqs(sub, expected.length + 1);
    expect(seqs(after)).toEqual([...expected, published.length]);
    expect(after.at(-1)).toEqual(live.body);
  }

  it("resumes SSE from a Last-Event-ID header sent on the first connect", async () => {
    const room = uniqueRoom("lei");
    const published = await fill(baseUrl, room, 5);
    const sub = sseSub(sse(room, ""), "2");
    await expectResume(room, sub, [3, 4, 5], published);
    expect(sub.client.requests).toEqual(["2"]);
    expect(sub.client.messages().map((m) => m.lastEventId)).toEqual(["3", "4", "5", "6"]);
  });

  it("prefers Last-Event-ID over ?since= (what a reconnecting EventSource sends)", async () => {
    const room = uniqueRoom("lei2");
    const published = await fill(baseUrl, room, 5);
    await expectResume(room, sseSub(sse(room, "?since=1"), "4"), [5], published);
  });

  it("resumes SSE from ?since=", async () => {
    const room = uniqueRoom("ssince");
    const published = await fill(baseUrl, room, 5);
    await expectResume(room, sseSub(sse(room, "?since=2")), [3, 4, 5], published);
  });

  it("resumes WebSocket (plain and relay.v1.json) from ?since=", async () => {
    const room = uniqueRoom("wsince");
    const published = await fill(baseUrl, room, 5);
    const plain = await wsSub(ws(room, "?since=2"));
    const json = await wsSub(ws(room, "?since=4"), "relay.v1.json");
    const everything = await wsSub(ws(room, "?since=0"), "relay.v1.json");
    await waitSeqs(plain, 3);
    await waitSeqs(json, 1);
    await waitSeqs(everything, 5);
    expect(everything.events().slice(1)).toEqual(published);
    await expectResume(room, plain, [3, 4, 5], published);
    expect(seqs(json.events())).toEqual([5, 6]);
    await waitSeqs(everything, 6);
    expect(seqs(everything.events())).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("without since, a subscription is live only", async () => {
    const room = uniqueRoom("live");
    const published = await fill(baseUrl, room, 3);
    const sub = await wsSub(ws(room, ""), "relay.v1.json");
    const s = sseSub(sse(room, ""));
    await waitFor("subscribed", () => sub.events().length >= 1 && s.events().length >= 1);
    expect(sub.events()[0]).toMatchObject({ kind: "subscribed", firstSeq: "1", lastSeq: "3" });
    const live = await publishJson(baseUrl, room, { text: "now" });
    await waitSeqs(sub, 1);
    await waitSeqs(s, 1);
    for (const x of [sub, s]) {
      expect(kinds(x.events())).toEqual(["subscribed", "message"]);
      expect(x.events()[1]).toEqual(live.body);
    }
    expect(published).toHaveLength(3);
  });

  it("sends a gap with reason epoch when the epoch does not match, then everything retained", async () => {
    const room = uniqueRoom("epoch");
    const published = await fill(baseUrl, room, 3);
    const epoch = published[0].epoch;
    const wrong = await wsSub(ws(room, "?since=2&epoch=notTheEpoch"), "relay.v1.json");
    const wrongSse = sseSub(sse(room, "?since=2&epoch=notTheEpoch"));
    const right = await wsSub(ws(room, `?since=2&epoch=${epoch}`));
    for (const sub of [wrong, wrongSse]) {
      const events = await waitSeqs(sub, 3);
      expect(kinds(events)).toEqual(["subscribed", "gap", "message", "message", "message"]);
      expect(events[1]).toMatchObject({ kind: "gap", reason: "epoch", epoch, room, firstSeq: "1", lastSeq: "3" });
      expect(events[1].seq).toBeUndefined();
      expect(events[1].text).toContain("notTheEpoch");
      expect(events.slice(2)).toEqual(published);
    }
    expect(wrongSse.client.events.map((e) => e.type)).toEqual(["subscribed", "gap", "message", "message", "message"]);
    // The ids acknowledge the gap: the subscription started after 2; the gap resets to before 1.
    expect(wrongSse.client.events.map((e) => e.lastEventId)).toEqual(["2", "0", "1", "2", "3"]);
    // The matching epoch resumes normally: no gap.
    const events = await waitSeqs(right, 1);
    expect(kinds(events)).toEqual(["subscribed", "message"]);
    expect(events[1]).toEqual(published[2]);
  });

  it("sends a gap with reason ahead when since is past the end of the log", async () => {
    const room = uniqueRoom("ahead");
    const published = await fill(baseUrl, room, 3);
    const sub = await wsSub(ws(room, "?since=99"));
    const s = sseSub(sse(room, ""), "42");
    for (const x of [sub, s]) {
      const events = await waitSeqs(x, 3);
      expect(kinds(events)).toEqual(["subscribed", "gap", "message", "message", "message"]);
      expect(events[1]).toMatchObject({ kind: "gap", reason: "ahead", lastSeq: "3" });
      expect(events.slice(2)).toEqual(published);
    }
  });
});

describe("resume past retention (HISTORY_MAX_COUNT=5)", () => {
  let server: DevServer;
  beforeAll(async () => {
    server = await startDevServer({ vars: { HISTORY_MAX_COUNT: "5" } });
  }, READY_TIMEOUT_MS + 15_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("sends a gap with reason retention, then only the retained events", async () => {
    const baseUrl = server.baseUrl;
    const room = uniqueRoom("ret");
    const published = await fill(baseUrl, room, 8);
    const retained = published.slice(3);

    const history = await getJson<{ events: ChatEventJson[]; firstSeq: string; lastSeq: string }>(
      baseUrl,
      `/rooms/${room}/messages?since=0`,
    );
    expect(history.body.events).toEqual(retained);
    expect(history.body).toMatchObject({ firstSeq: "4", lastSeq: "8" });

    const wsOld = await wsSub(wsUrl(baseUrl, `/rooms/${room}/ws?since=1`), "relay.v1.json");
    const sseOld = sseSub(`${baseUrl}/rooms/${room}/sse`, "2");
    for (const sub of [wsOld, sseOld]) {
      const events = await waitSeqs(sub, 5);
      expect(kinds(events)).toEqual(["subscribed", "gap", "message", "message", "message", "message", "message"]);
      expect(events[1]).toMatchObject({ kind: "gap", reason: "retention", firstSeq: "4", lastSeq: "8" });
      expect(events.slice(2)).toEqual(retained);
    }
    expect(sseOld.client.events[1].type).toBe("gap");

    // Resuming exactly at the retained edge is not a gap.
    const edge = await wsSub(wsUrl(baseUrl, `/rooms/${room}/ws?since=3`));
    const events = await waitSeqs(edge, 5);
    expect(kinds(events)).toEqual(["subscribed", "message", "message", "message", "message", "message"]);
    expect(events.slice(1)).toEqual(retained);

    // A duplicate of an id that is no longer retained is a new publish.
    const again = await publishJson(baseUrl, room, { text: "m1 again", id: `${room}-1` });
    expect(again.status).toBe(201);
    expect(again.body.seq).toBe("9");
  });
});
