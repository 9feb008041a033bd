import { env, listDurableObjectIds, runInDurableObject, SELF } from "cloudflare:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ClientFrameSchema, ServerFrameSchema } from "../../src/gen/relay/v1/relay_pb";
import { Room } from "../../src/index.ts";
import { ANON, connect, connectEveryMode, sleep, track, WHO } from "./helpers";

const publish = (text: string, id = "") => JSON.stringify({ publish: { text, id } });

describe("Room fan-out", () => {
  it("sends every message to every subscriber, in every mode, in one order", async () => {
    const { plain, json, proto } = await connectEveryMode("fan");

    // One publisher after another: frames on different sockets have no order between them.
    json.ws.send(publish("from json", "j1"));
    await plain.waitFor(2);
    plain.ws.send("from plain");
    await plain.waitFor(3);
    proto.ws.send(
      toBinary(
        ClientFrameSchema,
        create(ClientFrameSchema, { frame: { case: "publish", value: { text: "from proto" } } }),
      ),
    );
    await plain.waitFor(4);
    const rpc = await env.ROOM.getByName("fan").publish("fan", { text: "from rpc", user: "svc" }, ANON);
    expect(rpc.ok && rpc.value.event.seq).toBe(4);

    // subscribed + 4 events (+ acks for json and proto publishers).
    await Promise.all([plain.waitFor(5), json.waitFor(6), proto.waitFor(6)]);
    const plainEvents = plain.json().filter((e) => e.kind === "message");
    const jsonEvents = json.json().flatMap((f) => (f.event ? [f.event] : []));
    const protoEvents = proto.frames
      .map((f) => fromBinary(ServerFrameSchema, new Uint8Array(f as ArrayBuffer)).frame)
      .flatMap((f) => (f.case === "event" && f.value.kind === "message" ? [f.value] : []));

    expect(plainEvents.map((e) => e.text)).toEqual(["from json", "from plain", "from proto", "from rpc"]);
    expect(jsonEvents.filter((e) => e.kind === "message")).toEqual(plainEvents);
    expect(protoEvents.map((e) => [Number(e.seq), e.id, e.text])).toEqual(
      plainEvents.map((e) => [Number(e.seq), e.id, e.text]),
    );
    expect(plainEvents.map((e) => e.seq)).toEqual(["1", "2", "3", "4"]);
    expect(plainEvents[0]).toMatchObject({ room: "fan", id: "j1", user: "anonymous", kind: "message" });
    expect(plainEvents[0].epoch).toBe(plain.json()[0].epoch);
    expect(plainEvents[0].timeMs).toMatch(/^\d+$/);

    const ack = json.json().find((f) => f.ack);
    expect(ack.ack.event).toEqual(plainEvents[0]);
    const protoAck = proto.frames
      .map((f) => fromBinary(ServerFrameSchema, new Uint8Array(f as ArrayBuffer)).frame)
      .find((f) => f.case === "ack");
    expect(protoAck?.case === "ack" && protoAck.value.event?.seq).toBe(3n);
  });

  it("starts each subscription with `subscribed`, replays from `since`, then goes live", async () => {
    const room = env.ROOM.getByName("replay");
    for (const text of ["a", "b", "c"]) await room.publish("replay", { text }, ANON);
    const s = await connect("replay", "relay.v1.json", "?since=1");
    await s.waitFor(3);
    const [subscribed, ...replayed] = s.json().map((f) => f.event);
    expect(subscribed).toMatchObject({ kind: "subscribed", firstSeq: "1", lastSeq: "3" });
    expect(replayed.map((e) => e.text)).toEqual(["b", "c"]);
    await room.publish("replay", { text: "d" }, ANON);
    await s.waitFor(4);
    expect(s.json()[3].event.text).toBe("d");
  });

  it("answers a retried id with the original event and does not fan it out again", async () => {
    const watcher = await connect("dedupe");
    const json = await connect("dedupe", "relay.v1.json");
    // One at a time: vitest-pool-workers dispatches each socket message to the object through an
    // async import, so two frames sent back to back can arrive out of order in these tests (never
    // seen under wrangler dev; test/e2e checks the order there).
    json.ws.send(publish("once", "same-id"));
    await json.waitFor(3); // subscribed, event, ack
    json.ws.send(publish("twice?", "same-id"));
    await json.waitFor(4);
    const acks = json
      .json()
      .filter((f) => f.ack)
      .map((f) => f.ack);
    expect(acks).toHaveLength(2);
    expect(acks[1].duplicate).toBe(true);
    expect(acks[1].event).toEqual(acks[0].event);
    const viaRpc = await env.ROOM.getByName("dedupe").publish("dedupe", { text: "x", id: "same-id" }, ANON);
    expect(viaRpc.ok && viaRpc.value).toMatchObject({ duplicate: true, event: { seq: 1, text: "once" } });
    await watcher.waitFor(2);
    expect(watcher.json().filter((e) => e.kind === "message")).toHaveLength(1);
  });
});

describe("bad input keeps the room serving", () => {
  it("answers a malformed frame with an error frame and keeps the connection", async () => {
    const other = await connect("bad-frames");
    const s = await connect("bad-frames", "relay.v1.json");
    s.ws.send("{not json");
    s.ws.send(JSON.stringify({ nothing: 1 }));
    s.ws.send(new Uint8Array([1, 2, 3]));
    s.ws.send(publish(""));
    s.ws.send(publish("fine", "ok-1"));
    await s.waitFor(7);
    const errors = s
      .json()
      .filter((f) => f.error)
      .map((f) => f.error.code);
    expect(errors).toEqual(["invalid_argument", "invalid_argument", "invalid_argument", "invalid_argument"]);
    expect(s.json().find((f) => f.ack)?.ack.event.text).toBe("fine");
    await other.waitFor(2);
    expect(other.json()[1].text).toBe("fine");
  });

  it("refuses a text over the limit with an error frame naming its id; closes a frame over the frame limit with 1009", async () => {
    const other = await connect("big");
    const json = await connect("big", "relay.v1.json");
    json.ws.send(publish("x".repeat(65537), "too-big-1"));
    await json.waitFor(2);
    expect(json.json()[1].error).toMatchObject({ code: "too_large", id: "too-big-1" });
    json.ws.send(publish("fits", "fits-1"));
    await json.waitFor(4);
    expect(json.json().find((f) => f.ack)?.ack.event.text).toBe("fits");
    const s = await connect("big");
    s.ws.send("x".repeat(65537 + 1024));
    const closed = await s.closed;
    expect(closed.code).toBe(1009);
    const ok = await env.ROOM.getByName("big").publish("big", { text: "still here" }, ANON);
    expect(ok.ok).toBe(true);
    await other.waitFor(3);
    expect(other.json().map((e) => e.text)).toEqual([undefined, "fits", "still here"]);
  });

  it("rejects publishes over the per-connection rate with rate_limited, without closing", async () => {
    const s = await connect("rate", "relay.v1.json");
    await runInDurableObject(env.ROOM.getByName("rate"), (_old, state) => {
      // Synchronous calls share one timestamp, so exactly the burst (5) gets through.
      const room = new Room(state, { ...env, PUBLISH_RATE_PER_SECOND: "5" });
      const [ws] = state.getWebSockets();
      for (let i = 0; i < 8; i++) room.webSocketMessage(ws, publish(`m${i}`, `r${i}`));
    });
    await s.waitFor(1 + 5 + 5 + 3);
    const errors = s.json().filter((f) => f.error);
    expect(errors.map((f) => [f.error.code, f.error.id])).toEqual([
      ["rate_limited", "r5"],
      ["rate_limited", "r6"],
      ["rate_limited", "r7"],
    ]);
    expect(s.json().filter((f) => f.ack)).toHaveLength(5);
    // The connection stays open and publishes again once the bucket refills (5/s: one token per 200 ms).
    await sleep(250);
    await runInDurableObject(env.ROOM.getByName("rate"), (_old, state) => {
      new Room(state, { ...env, PUBLISH_RATE_PER_SECOND: "5" }).webSocketMessage(
        state.getWebSockets()[0],
        publish("again"),
      );
    });
    await s.waitFor(16);
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
    expect(s.json().findLast((f) => f.ack).ack.event.text).toBe("again");
  });

  it("answers 400 for an invalid room name without creating a Durable Object", async () => {
    const before = (await listDurableObjectIds(env.ROOM)).length;
    for (const path of ["bad%20name/messages", `${"a".repeat(65)}/sse`, "caf%C3%A9/ws", "a%2Fb/presence"]) {
      const res = await SELF.fetch(`https://relay.test/rooms/${path}`, { headers: { Upgrade: "websocket" } });
      expect(res.status, path).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_argument" } });
    }
    expect((await listDurableObjectIds(env.ROOM)).length).toBe(before);
  });
});

describe("a freshly constructed room (what hibernation leaves) handles everything", () => {
  it("serves messages, publishes, history, presence and closes on a new instance", async () => {
    const stub = env.ROOM.getByName("fresh");
    const s = await connect("fresh", "relay.v1.json", "?user=ann");
    const plain = await connect("fresh");
    s.ws.send(publish("before", "b1"));
    await s.waitFor(3);

    await runInDurableObject(stub, async (_old, state) => {
      // A new object on the same storage and sockets, as after eviction.
      const fresh = new Room(state, env);
      const sockets = state.getWebSockets();
      expect(sockets).toHaveLength(2);
      const jsonSocket = sockets.find((ws) => state.getTags(ws).includes("json")) as WebSocket;
      fresh.webSocketMessage(jsonSocket, publish("after", "a1"));
      const pub = await fresh.publish("fresh", { text: "by rpc" }, ANON);
      expect(pub.ok && pub.value.event.seq).toBe(3);
      const history = fresh.history("fresh", 0, 10);
      expect(history.ok && history.value.events.map((e) => e.text)).toEqual(["before", "after", "by rpc"]);
      expect((await fresh.presence()).map((m) => [m.user, m.connections, m.transports]).sort()).toEqual([
        ["ann", 1, ["websocket"]],
        ["anonymous", 1, ["websocket"]],
      ]);
      const res = await fresh.fetch(
        new Request(`https://room.internal/subscribe?room=fresh&since=1&who=${WHO}`, {
          headers: { Upgrade: "websocket" },
        }),
      );
      const late = track(res.webSocket as WebSocket);
      await late.waitFor(3);
      expect(late.json().map((e) => e.text ?? e.kind)).toEqual(["subscribed", "after", "by rpc"]);
      const plainSocket = sockets.find((ws) => state.getTags(ws).includes("plain")) as WebSocket;
      fresh.webSocketClose(plainSocket, 1005, "");
    });

    await s.waitFor(6);
    const texts = s.json().flatMap((f) => (f.event?.kind === "message" ? [f.event.text] : []));
    expect(texts).toEqual(["before", "after", "by rpc"]);
    expect(
      s
        .json()
        .filter((f) => f.ack)
        .map((f) => f.ack.event.id),
    ).toEqual(["b1", "a1"]);
    // The room answered the close itself, with 1000 for "no status" (1005 may not be sent).
    expect((await plain.closed).code).toBe(1000);
  });

  it("pauses a replay at REPLAY_MAX_BYTES with close 4002; resuming from the last seq gets the rest once", async () => {
    const stub = env.ROOM.getByName("parts");
    for (let i = 1; i <= 25; i++) await stub.publish("parts", { text: `p${i}` }, ANON);
    const texts: string[] = [];
    let since = 0;
    let closes = 0;
    while (texts.length < 25 && closes < 10) {
      const s = await connect("parts", undefined, `?since=${since}`);
      const closed = await Promise.race([s.closed, new Promise<null>((r) => setTimeout(() => r(null), 500))]);
      const events = s.json().filter((e) => e.kind === "message");
      texts.push(...events.map((e) => e.text));
      since = Number(events.at(-1)?.seq ?? since);
      if (closed) {
        expect(closed.code).toBe(4002);
        closes++;
      }
      s.ws.close();
    }
    expect(texts).toEqual(Array.from({ length: 25 }, (_, i) => `p${i + 1}`));
    expect(closes).toBeGreaterThanOrEqual(1);
  });

  it("refuses connections past MAX_CONNECTIONS_PER_ROOM: close 4000 for WebSockets, 503 for bridges", async () => {
    await connect("full");
    await runInDurableObject(env.ROOM.getByName("full"), async (_old, state) => {
      const small = new Room(state, { ...env, MAX_CONNECTIONS_PER_ROOM: "1" });
      const ws = await small.fetch(
        new Request(`https://room.internal/subscribe?room=full&who=${WHO}`, { headers: { Upgrade: "websocket" } }),
      );
      const refused = track(ws.webSocket as WebSocket);
      expect((await refused.closed).code).toBe(4000);
      const sse = await small.fetch(
        new Request(`https://room.internal/subscribe?room=full&format=event-stream&who=${WHO}`, {
          headers: { Upgrade: "websocket" },
        }),
      );
      expect(sse.status).toBe(503);
      expect(await sse.json()).toMatchObject({ error: { code: "room_full" } });
    });
  });
});
