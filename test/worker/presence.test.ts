/**
 * Presence inside workerd: one member per user (connections and transports counted), and the
 * join and leave events a subscriber asks for with `presence=1`: the members now, then a join at a
 * user's first connection and a leave at their last, however the connection ended.
 */
import { env, SELF } from "cloudflare:test";
import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import { connect, sleep, type TestSocket } from "./helpers";

/** The presence events a json socket has received, as `kind:user:connections`. */
function presenceEvents(s: TestSocket): string[] {
  return s
    .json()
    .map((f) => f.event)
    .filter((e) => e && (e.kind === "join" || e.kind === "leave"))
    .map((e) => `${e.kind}:${e.user}:${e.member?.connections ?? 0}`);
}

async function until(what: string, ok: () => boolean, ms = 2000): Promise<void> {
  for (const end = Date.now() + ms; !ok(); await sleep(10)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

const members = async (room: string) =>
  ((await (await SELF.fetch(`https://relay.test/rooms/${room}/presence`)).json()) as { members: unknown[] }).members;

describe("presence events", () => {
  it("sends the members now, then joins and leaves by user, not by connection", async () => {
    const room = "pres-ev";
    const ann = await connect(room, "relay.v1.json", "?user=ann");
    await ann.waitFor(1);
    const watcher = await connect(room, "relay.v1.json", "?user=wes&presence=1");
    // subscribed, then the members now (ann, and wes itself), earliest first.
    await until("the snapshot", () => presenceEvents(watcher).length === 2);
    expect(watcher.json()[0].event.kind).toBe("subscribed");
    expect(presenceEvents(watcher)).toEqual(["join:ann:1", "join:wes:1"]);
    const snapshot = watcher.json()[1].event;
    expect(snapshot.member).toMatchObject({ user: "ann", connections: 1, transports: ["websocket"] });
    expect(snapshot.seq).toBeUndefined();

    // Bob's first connection is a join; his second (another tab) is not.
    const bob1 = await connect(room, "relay.v1.json", "?user=bob");
    await until("bob's join", () => presenceEvents(watcher).length === 3);
    const bob2 = await connect(room, undefined, "?user=bob");
    await bob2.waitFor(1);
    const sse = await SELF.fetch(`https://relay.test/rooms/${room}/sse?user=bob`);
    await sleep(100);
    expect(presenceEvents(watcher)).toEqual(["join:ann:1", "join:wes:1", "join:bob:1"]);
    const bob = ((await members(room)) as { user: string }[]).find((m) => m.user === "bob");
    expect(bob).toMatchObject({ connections: 3, transports: ["sse", "websocket"] });

    // Closing two of bob's three is no leave; the last one is, at once on a WebSocket.
    await sse.body?.cancel();
    bob1.ws.close(1000, "tab closed");
    await sleep(200);
    expect(presenceEvents(watcher)).toHaveLength(3);
    bob2.ws.close(1000, "last tab closed");
    await until("bob's leave", () => presenceEvents(watcher).length === 4);
    expect(presenceEvents(watcher)[3]).toBe("leave:bob:0");
    // Ann, who did not ask, got no presence events.
    expect(presenceEvents(ann)).toEqual([]);
    ann.ws.close();
    watcher.ws.close();
  });

  it("tells a leave once when the room ends the connection (an admin's removal)", async () => {
    const room = "pres-removed";
    const watcher = await connect(room, "relay.v1.json", "?user=wes&presence=1");
    await until("the snapshot", () => presenceEvents(watcher).length === 1);
    const eve = await connect(room, "relay.v1.json", "?user=eve");
    await until("eve's join", () => presenceEvents(watcher).length === 2);
    const removed = await env.ROOM.getByName(room).disconnectUser("eve");
    expect(removed).toBe(1);
    expect((await eve.closed).code).toBe(4509);
    await sleep(100);
    expect(presenceEvents(watcher)).toEqual(["join:wes:1", "join:eve:1", "leave:eve:0"]);
    watcher.ws.close();
  });

  it("streams join and leave events on SSE, with no id (they are not in the log)", async () => {
    const room = "pres-sse";
    const ctrl = new AbortController();
    const res = await SELF.fetch(`https://relay.test/rooms/${room}/sse?user=sue&presence=true`, {
      signal: ctrl.signal,
    });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    const read = async (want: string) => {
      const end = Date.now() + 3000;
      while (!text.includes(want) && Date.now() < end) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      expect(text).toContain(want);
    };
    await read('"user":"sue"');
    const tom = await connect(room, "relay.v1.json", "?user=tom");
    await read('"user":"tom"');
    tom.ws.close();
    await read("event: leave");
    const blocks = text.split("\n\n").filter((b) => b.includes("event: join") || b.includes("event: leave"));
    expect(blocks.map((b) => b.split("\n")[0])).toEqual(["event: join", "event: join", "event: leave"]);
    await reader.cancel();
  });

  it("refuses presence=1 without the presence right, and a flag that is not one", async () => {
    const bad = await SELF.fetch("https://relay.test/rooms/pres-bad/sse?presence=maybe");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "invalid_argument" } });
    const token = await sign(
      { sub: "ivy", exp: Math.floor(Date.now() / 1000) + 60, relay: { subscribe: ["*"] } },
      "worker-test-secret",
      "HS256",
    );
    const denied = await SELF.fetch(`https://relay.test/rooms/pres-bad/sse?presence=1&token=${token}`);
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ error: { code: "permission_denied" } });
    const ws = await connect("pres-bad", "relay.v1.json", `?presence=1&token=${token}`);
    expect((await ws.closed).code).toBe(1008);
    // Without presence=1 the same token subscribes.
    const ok = await connect("pres-bad", "relay.v1.json", `?token=${token}`);
    await ok.waitFor(1);
    expect(ok.json()[0].event.kind).toBe("subscribed");
    ok.ws.close();
  });
});
