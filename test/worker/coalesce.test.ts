/**
 * Coalescing: events published in one burst share one fan-out, sent as one `ServerFrame.batch`
 * per json or proto subscriber (one frame per event in plain mode), and every transport still
 * delivers them one by one, in order, exactly once.
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { describe, expect, it } from "vitest";
import { type ChatEvent, ChatService } from "../../src/gen/relay/v1/relay_pb";
import { type Room, Room as RoomClass } from "../../src/index.ts";
import { ANON, connect, connectEveryMode, sleep, track, WHO } from "./helpers";

/** How many fan-outs the room has made: a burst that went out as one batch adds one. */
const fanouts = async (room: string) => (await env.ROOM.getByName(room).stats()).flushes;

/**
 * Publishes `texts` in one synchronous burst inside the room, as a burst of frames arrives. With
 * `vars`, through a room object made with those settings on the same storage and sockets.
 */
async function burst(room: string, texts: string[], vars?: Partial<typeof env>): Promise<void> {
  await runInDurableObject(env.ROOM.getByName(room), (instance: Room, state) => {
    const target = vars ? new RoomClass(state, { ...env, ...vars }) : instance;
    for (const text of texts) target.publish(room, { text }, ANON);
  });
}

const texts = (events: { text: string; kind: string }[]) =>
  events.filter((e) => e.kind === "message").map((e) => e.text);

describe("coalescing a burst", () => {
  it("sends a burst as one batch frame per json and proto subscriber, one frame per event in plain mode", async () => {
    const { plain, json, proto } = await connectEveryMode("co-modes");
    const before = await env.ROOM.getByName("co-modes").stats();

    await burst("co-modes", ["a", "b", "c", "d"]);
    await Promise.all([plain.waitFor(5), json.waitFor(5), proto.waitFor(5)]);

    // One frame on the wire for json and proto (the helper splits it into events for reading).
    expect(json.batches).toHaveLength(1);
    expect(proto.batches).toHaveLength(1);
    const batch = JSON.parse(json.batches[0] as string);
    expect(batch.batch.events.map((e: ChatEvent) => [e.seq, e.text])).toEqual([
      ["1", "a"],
      ["2", "b"],
      ["3", "c"],
      ["4", "d"],
    ]);
    expect(plain.batches).toHaveLength(0);
    expect(texts(plain.json())).toEqual(["a", "b", "c", "d"]);
    expect(texts(json.json().map((f) => f.event))).toEqual(["a", "b", "c", "d"]);

    const after = await env.ROOM.getByName("co-modes").stats();
    expect(after.flushes - before.flushes).toBe(1);
    expect(after.flushedEvents - before.flushedEvents).toBe(4);
  });

  it("sends a lone publish at once as a single event frame", async () => {
    const json = await connect("co-lone", "relay.v1.json");
    await json.waitFor(1);
    await env.ROOM.getByName("co-lone").publish("co-lone", { text: "alone" }, ANON);
    await json.waitFor(2);
    expect(json.batches).toHaveLength(0);
    expect(JSON.parse(json.frames[1] as string).event.text).toBe("alone");
  });

  it("acks a publisher in the order it published, with the batch's log write (one commit); refusals at once", async () => {
    const pub = await connect("co-acks", "relay.v1.json");
    await pub.waitFor(1);
    await runInDurableObject(env.ROOM.getByName("co-acks"), (instance: Room, state) => {
      const [ws] = state.getWebSockets();
      for (const text of ["x", "y", "z"]) instance.webSocketMessage(ws, JSON.stringify({ publish: { text } }));
      instance.webSocketMessage(ws, "not json");
    });
    await pub.waitFor(1 + 3 + 4);
    const kinds = pub.json().map((f) => (f.event ? `event:${f.event.text ?? f.event.kind}` : Object.keys(f)[0]));
    expect(kinds).toEqual(["event:subscribed", "error", "ack", "ack", "ack", "event:x", "event:y", "event:z"]);
    expect(
      pub
        .json()
        .filter((f) => f.ack)
        .map((f) => f.ack.event.seq),
    ).toEqual(["1", "2", "3"]);
  });

  it("sends a plain-mode publisher's event at once: its echo is its only answer", async () => {
    const json = await connect("co-plain", "relay.v1.json");
    await json.waitFor(1);
    await runInDurableObject(env.ROOM.getByName("co-plain"), async (instance: Room, state) => {
      const plain = track(
        (
          await instance.fetch(
            new Request(`https://room.internal/subscribe?room=co-plain&who=${WHO}`, {
              headers: { Upgrade: "websocket" },
            }),
          )
        ).webSocket as WebSocket,
      );
      await plain.waitFor(1);
      const server = state.getWebSockets("plain")[0];
      instance.publish("co-plain", { text: "queued" }, ANON);
      instance.webSocketMessage(server, "from plain");
      instance.webSocketMessage(server, "again");
    });
    await json.waitFor(4);
    // "queued" went out with the first plain publish, in order; nothing waited for the timer.
    expect(json.batches.map((b) => JSON.parse(b as string).batch.events.map((e: ChatEvent) => e.text))).toEqual([
      ["queued", "from plain"],
    ]);
    expect(texts(json.json().map((f) => f.event))).toEqual(["queued", "from plain", "again"]);
  });

  it("bounds a batch: a burst of 150 goes out as 100 events, then 50", async () => {
    const json = await connect("co-cap", "relay.v1.json");
    await json.waitFor(1);
    await burst(
      "co-cap",
      Array.from({ length: 150 }, (_, i) => `m${i}`),
    );
    await json.waitFor(151);
    expect(json.batches.map((b) => JSON.parse(b as string).batch.events.length)).toEqual([100, 50]);
    expect(texts(json.json().map((f) => f.event))).toEqual(Array.from({ length: 150 }, (_, i) => `m${i}`));
  });

  it("bounds a batch in bytes: large events share a frame only up to 256 KiB", async () => {
    const json = await connect("co-big", "relay.v1.json");
    await json.waitFor(1);
    // 360 KB at once is more than this suite's slow-subscriber bound (64 KiB): a larger one here.
    await burst(
      "co-big",
      Array.from({ length: 6 }, (_, i) => `${i}`.padEnd(60_000, "x")),
      { SUBSCRIBER_MAX_BEHIND_BYTES: String(1 << 20) },
    );
    await json.waitFor(7);
    expect(json.batches.map((b) => JSON.parse(b as string).batch.events.length)).toEqual([4, 2]);
  });

  it("replays in batches: a resume gets its missed events in one frame, after `subscribed`", async () => {
    const room = env.ROOM.getByName("co-replay");
    for (const text of ["r1", "r2", "r3"]) await room.publish("co-replay", { text }, ANON);
    const json = await connect("co-replay", "relay.v1.json", "?since=0");
    await json.waitFor(4);
    expect(JSON.parse(json.frames[0] as string).event.kind).toBe("subscribed");
    expect(json.batches).toHaveLength(1);
    expect(texts(json.json().map((f) => f.event))).toEqual(["r1", "r2", "r3"]);
  });

  it("gives a subscription that arrives before the burst's fan-out every event once", async () => {
    const live = await connect("co-join", "relay.v1.json");
    await live.waitFor(1);
    const joined = await runInDurableObject(env.ROOM.getByName("co-join"), async (instance: Room) => {
      for (const text of ["p", "q"]) instance.publish("co-join", { text }, ANON);
      // Subscribes while p and q are stored but not yet fanned out.
      const res = await instance.fetch(
        new Request(`https://room.internal/subscribe?room=co-join&since=0&who=${WHO}`, {
          headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "relay.v1.json" },
        }),
      );
      return track(res.webSocket as WebSocket);
    });
    await env.ROOM.getByName("co-join").publish("co-join", { text: "r" }, ANON);
    await Promise.all([joined.waitFor(4), live.waitFor(4)]);
    await sleep(100);
    expect(texts(joined.json().map((f) => f.event))).toEqual(["p", "q", "r"]);
    expect(texts(live.json().map((f) => f.event))).toEqual(["p", "q", "r"]);
  });

  it("delivers a burst to an SSE client as one event each, with its own id", async () => {
    const res = await SELF.fetch("https://relay.test/rooms/co-sse/sse");
    const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const readUntil = async (pred: (t: string) => boolean) => {
      const deadline = Date.now() + 3000;
      while (!pred(text) && Date.now() < deadline) {
        const r = await reader.read();
        if (r.done) break;
        text += r.value;
      }
    };
    await readUntil((t) => t.includes("event: subscribed"));
    const before = await fanouts("co-sse");
    await burst("co-sse", ["s1", "s2", "s3"]);
    await readUntil((t) => t.includes('"s3"'));
    await reader.cancel();
    // The bridge got the burst as one batch frame, and split it.
    expect((await fanouts("co-sse")) - before).toBe(1);
    const messages = text
      .split("\n\n")
      .filter((b) => b.includes("event: message"))
      .map((b) => {
        const line = (name: string) =>
          b
            .split("\n")
            .find((l) => l.startsWith(`${name}: `))
            ?.slice(name.length + 2);
        return [line("id"), JSON.parse(line("data") as string).text];
      });
    expect(messages).toEqual([
      ["1", "s1"],
      ["2", "s2"],
      ["3", "s3"],
    ]);
  });

  it("delivers a burst to a Connect subscriber as one event each", async () => {
    const fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
      SELF.fetch(input as RequestInfo, { ...init, redirect: "manual" })) as typeof globalThis.fetch;
    const client = createClient(
      ChatService,
      createConnectTransport({ baseUrl: "https://relay.test", fetch, useBinaryFormat: true }),
    );
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 3000);
    const events: ChatEvent[] = [];
    const before = await fanouts("co-connect");
    for await (const e of client.subscribe({ room: "co-connect" }, { signal: ac.signal })) {
      events.push(e);
      if (e.kind === "subscribed") await burst("co-connect", ["c1", "c2", "c3"]);
      if (e.text === "c3") break;
    }
    clearTimeout(timer);
    expect((await fanouts("co-connect")) - before).toBe(1);
    expect(events.map((e) => [e.kind, e.seq, e.text])).toEqual([
      ["subscribed", 0n, ""],
      ["message", 1n, "c1"],
      ["message", 2n, "c2"],
      ["message", 3n, "c3"],
    ]);
  });
});
