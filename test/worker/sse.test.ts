import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ANON } from "./helpers";

/** Reads an SSE response until `done(text)` holds or `ms` pass; returns what was read. */
async function readUntil(res: Response, done: (text: string) => boolean, ms = 3000): Promise<string> {
  const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = Date.now() + ms;
  try {
    while (!done(text)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; read so far:\n${text}`);
      const chunk = await Promise.race([
        reader.read(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out; read:\n${text}`)), left)),
      ]);
      if (chunk.done) break;
      text += chunk.value;
    }
  } finally {
    await reader.cancel();
  }
  return text;
}

/** Parses SSE text into events (only the fields the relay uses). */
function parse(text: string): { id?: string; event?: string; data?: string }[] {
  return text
    .split("\n\n")
    .filter((block) => block.includes("data:"))
    .map((block) =>
      Object.fromEntries(block.split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)])),
    );
}

describe("SSE adapter", () => {
  it("streams with anti-buffering headers, replays after Last-Event-ID, then goes live", async () => {
    const room = env.ROOM.getByName("sse-resume");
    for (const text of ["one", "two", "three"]) await room.publish("sse-resume", { text }, ANON);
    const res = await SELF.fetch("https://relay.test/rooms/sse-resume/sse", { headers: { "Last-Event-ID": "1" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    expect(res.headers.get("Cache-Control")).toBe("no-cache, no-transform");
    expect(res.headers.get("X-Accel-Buffering")).toBe("no");
    setTimeout(() => room.publish("sse-resume", { text: "four" }, ANON), 100);
    const text = await readUntil(res, (t) => t.includes('"four"'));
    expect(text.startsWith("retry: 1000\n\n")).toBe(true);
    const events = parse(text);
    expect(events.map((e) => e.event)).toEqual(["subscribed", "message", "message", "message"]);
    expect(events.slice(1).map((e) => [e.id, JSON.parse(e.data as string).text])).toEqual([
      ["2", "two"],
      ["3", "three"],
      ["4", "four"],
    ]);
    // `subscribed` carries the offset the stream starts after, so a reconnect before the first
    // message resumes from there.
    expect(events[0].id).toBe("1");
  });

  it("treats an empty Last-Event-ID as none: ?since= still counts, and a bad one is still refused", async () => {
    await env.ROOM.getByName("sse-empty-id").publish("sse-empty-id", { text: "kept" }, ANON);
    const headers = { "Last-Event-ID": "" };
    const res = await SELF.fetch("https://relay.test/rooms/sse-empty-id/sse?since=0", { headers });
    const events = parse(await readUntil(res, (t) => t.includes('"kept"')));
    expect(events.map((e) => e.event)).toEqual(["subscribed", "message"]);
    const bad = await SELF.fetch("https://relay.test/rooms/sse-empty-id/sse?since=-5", { headers });
    expect(bad.status).toBe(400);
  });

  it("takes ?since= for a first connect and tells of a gap for another epoch", async () => {
    await env.ROOM.getByName("sse-epoch").publish("sse-epoch", { text: "only" }, ANON);
    const res = await SELF.fetch("https://relay.test/rooms/sse-epoch/sse?since=0&epoch=someother");
    const events = parse(await readUntil(res, (t) => t.includes('"only"')));
    expect(events.map((e) => e.event)).toEqual(["subscribed", "gap", "message"]);
    expect(JSON.parse(events[1].data as string)).toMatchObject({ kind: "gap", reason: "epoch" });
    // The gap is acknowledged by its id: a reconnect from there is not told again.
    expect(events.map((e) => e.id)).toEqual(["0", "0", "1"]);
  });

  it("gives a live-only subscription the head of the log as its id, so a reconnect misses nothing", async () => {
    const room = env.ROOM.getByName("sse-live");
    for (const text of ["old", "older"]) await room.publish("sse-live", { text }, ANON);
    const res = await SELF.fetch("https://relay.test/rooms/sse-live/sse");
    const [subscribed] = parse(await readUntil(res, (t) => t.includes("event: subscribed")));
    expect(subscribed).toMatchObject({ id: "2", event: "subscribed" });
    // What the EventSource sends when it reconnects: only what came after it first connected.
    await room.publish("sse-live", { text: "while away" }, ANON);
    const again = await SELF.fetch("https://relay.test/rooms/sse-live/sse", { headers: { "Last-Event-ID": "2" } });
    const events = parse(await readUntil(again, (t) => t.includes("while away")));
    expect(events.filter((e) => e.event === "message").map((e) => JSON.parse(e.data as string).text)).toEqual([
      "while away",
    ]);
  });

  it("replays a long resume in parts: the stream ends at REPLAY_MAX_BYTES and Last-Event-ID goes on", async () => {
    const room = env.ROOM.getByName("sse-parts");
    for (let i = 1; i <= 30; i++) await room.publish("sse-parts", { text: `part ${i}` }, ANON);
    const seen: string[] = [];
    let lastId = "0";
    let connections = 0;
    while (seen.length < 30 && connections < 10) {
      connections++;
      const res = await SELF.fetch("https://relay.test/rooms/sse-parts/sse", { headers: { "Last-Event-ID": lastId } });
      // The room closes the bridge after about 2 KiB (REPLAY_MAX_BYTES in vitest.config.ts): the stream ends.
      const text = await readUntil(res, (t) => t.includes('"part 30"'));
      const events = parse(text);
      // Each part ends with a `disconnect` event saying so, and `retry: 0`: go on at once.
      if (!text.includes('"part 30"')) {
        expect(text).toMatch(/retry: 0\n\nevent: disconnect\ndata: .*\n\n$/);
        expect(JSON.parse(events.at(-1)?.data as string)).toMatchObject({ code: "replay_paused", reconnect: true });
      }
      for (const e of events.filter((x) => x.event === "message")) {
        seen.push(JSON.parse(e.data as string).text);
        lastId = e.id as string;
      }
    }
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => `part ${i + 1}`));
    expect(connections).toBeGreaterThan(2);
  });

  it("writes heartbeat comments while idle", async () => {
    const res = await SELF.fetch("https://relay.test/rooms/sse-idle/sse");
    const text = await readUntil(res, (t) => t.includes(": heartbeat\n\n"), 4000);
    expect(text).toContain("event: subscribed");
  });

  it("answers 400 for a malformed Last-Event-ID", async () => {
    const res = await SELF.fetch("https://relay.test/rooms/sse-bad/sse", { headers: { "Last-Event-ID": "12abc" } });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "invalid_argument" } });
  });

  it("lists SSE subscribers in presence while they are connected", async () => {
    const res = await SELF.fetch("https://relay.test/rooms/sse-presence/sse?user=eve");
    await readUntil(res.clone(), (t) => t.includes("subscribed"));
    const presence = (await (await SELF.fetch("https://relay.test/rooms/sse-presence/presence")).json()) as {
      members: { user: string; transports: string[] }[];
    };
    expect(presence.members.map((m) => [m.user, m.transports])).toContainEqual(["eve", ["sse"]]);
    await res.body?.cancel();
  });
});
