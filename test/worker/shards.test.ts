/**
 * Fan-out shards inside workerd (ROOM_SHARD_SUBSCRIBERS = 10 in this project, so a few dozen
 * subscribers make several shards; test/e2e/shards.test.ts has hundreds): a room's subscribers past 10 are placed on shard objects near them, every subscriber gets every event
 * once in the room's order, and a restart of a shard or of the leader mid-stream loses nothing.
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ANON, sleep } from "./helpers";

interface Subscriber {
  seqs: number[];
  reconnects: number;
  /** Why the relay closed it, each time. */
  closes: string[];
  /** Frames that were neither events nor the opening's (errors, unexpected kinds). */
  odd: unknown[];
  ws: WebSocket;
  close(): void;
}

/**
 * A relay.v1.json subscriber in `region` that, like a real client, resumes after its last offset
 * (with the epoch) whenever the relay closes it.
 */
async function subscriber(room: string, region: string, query = ""): Promise<Subscriber> {
  const s: Subscriber = {
    seqs: [],
    reconnects: 0,
    closes: [],
    odd: [],
    ws: undefined as unknown as WebSocket,
    close: () => {},
  };
  let epoch = "";
  let stopped = false;
  const open = async (): Promise<void> => {
    const since = s.seqs.length > 0 ? `&since=${s.seqs[s.seqs.length - 1]}&epoch=${epoch}` : "";
    const res = await SELF.fetch(`https://relay.test/rooms/${room}/ws?x=1${query}${since}`, {
      headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "relay.v1.json", "X-Relay-Test-Region": region },
    });
    const ws = res.webSocket;
    if (!ws) throw new Error(`no upgrade: ${res.status} ${await res.text()}`);
    ws.accept();
    s.ws = ws;
    ws.addEventListener("message", (m) => {
      const f = JSON.parse(m.data as string);
      if (f.ping !== undefined) return ws.send(JSON.stringify({ pong: f.ping }));
      const events = f.batch ? f.batch.events : f.event ? [f.event] : [];
      if (events.length === 0) s.odd.push(f);
      for (const e of events) {
        if (e.kind === "subscribed" || e.kind === "gap") {
          epoch = e.epoch;
          if (e.kind === "gap") s.odd.push(e);
        } else if (e.kind === undefined || e.kind === "message") s.seqs.push(Number(e.seq));
      }
    });
    ws.addEventListener("close", (e) => {
      if (stopped) return;
      s.closes.push(`${e.code} ${e.reason}`);
      s.reconnects++;
      setTimeout(() => open().catch((e) => s.odd.push(String(e))), 20);
    });
  };
  s.close = () => {
    stopped = true;
    s.ws.close();
  };
  await open();
  return s;
}

/** `n` subscribers, opened 10 at a time (the first 10 land on the room's own object). */
async function subscribers(room: string, n: number, region: (i: number) => string): Promise<Subscriber[]> {
  const subs: Subscriber[] = [];
  for (let i = 0; i < n; i += 10) {
    const batch = Array.from({ length: Math.min(10, n - i) }, (_, j) => subscriber(room, region(i + j)));
    subs.push(...(await Promise.all(batch)));
  }
  return subs;
}

async function stats(room: string) {
  const res = await SELF.fetch(`https://relay.test/rooms/${room}/stats`);
  return (await res.json()) as { shards: number; connections: Record<string, number>; lastSeq: string };
}

async function publish(room: string, from: number, to: number): Promise<void> {
  const leader = env.ROOM.getByName(room);
  for (let i = from; i <= to; i++) {
    const r = await leader.publish(room, { text: `m${i}`, id: `m${i}` }, ANON);
    expect(r.ok).toBe(true);
  }
}

async function waitUntil(what: string, ok: () => boolean, ms = 10_000, subs: Subscriber[] = []): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) {
      const summary = subs
        .filter((x) => x.seqs.length < 60)
        .map((x) => `${x.seqs.length}/${x.closes.join(";")}/${JSON.stringify(x.odd).slice(0, 200)}`);
      throw new Error(`timed out waiting for ${what}: ${summary.join(" ")}`);
    }
    await sleep(20);
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Aborts a Durable Object as a crash would: its memory is gone, its sockets are dropped. */
async function restart(name: string): Promise<void> {
  await runInDurableObject(env.ROOM.getByName(name), (_room, state) => {
    try {
      state.abort("restarted by the test");
    } catch {
      // abort() throws in the caller by design.
    }
  }).catch(() => undefined);
}

interface Watcher {
  /** `join:<user>` and `leave:<user>`, in the order they came (a snapshot's joins first). */
  seen: string[];
  count(what: string): number;
  ws: WebSocket;
}

/** A relay.v1.json connection of `user` in `region` that does not resume; `presence`: it asks for joins and leaves. */
async function watcher(room: string, region: string, user: string, presence = true): Promise<Watcher> {
  const res = await SELF.fetch(`https://relay.test/rooms/${room}/ws?user=${user}${presence ? "&presence=1" : ""}`, {
    headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "relay.v1.json", "X-Relay-Test-Region": region },
  });
  const ws = res.webSocket;
  if (!ws) throw new Error(`no upgrade: ${res.status} ${await res.text()}`);
  ws.accept();
  const w: Watcher = { seen: [], count: (what) => w.seen.filter((x) => x === what).length, ws };
  ws.addEventListener("message", (m) => {
    const f = JSON.parse(m.data as string);
    if (f.ping !== undefined) return ws.send(JSON.stringify({ pong: f.ping }));
    for (const e of f.batch ? f.batch.events : f.event ? [f.event] : []) {
      if (e.kind === "join" || e.kind === "leave") w.seen.push(`${e.kind}:${e.user}`);
    }
  });
  return w;
}

describe("fan-out shards", { timeout: 60_000 }, () => {
  it("places subscribers past 10 on shards in their region, and every one gets every event once, in order", async () => {
    const room = "shards-basic";
    const subs = await subscribers(room, 60, (i) => (i % 2 === 0 ? "weur" : "enam"));
    const s = await stats(room);
    // 10 on the leader, 50 over shards of at most 10: three per region.
    expect(s.shards).toBe(6);
    expect(s.connections.websocket).toBe(60);
    await publish(room, 1, 40);
    await waitUntil("every event everywhere", () => subs.every((x) => x.seqs.length >= 40));
    await sleep(100);
    for (const x of subs) {
      expect(x.seqs).toEqual(range(40));
      expect(x.odd).toEqual([]);
    }
    for (const x of subs) x.close();
  });

  it("loses nothing when a shard restarts mid-stream: its subscribers resume, the others never notice", async () => {
    const room = "shards-shard-restart";
    const subs = await subscribers(room, 40, () => "weur");
    expect((await stats(room)).shards).toBe(3);
    const going = publish(room, 1, 60);
    await waitUntil("the stream to be under way", () => subs.every((x) => x.seqs.length >= 10));
    const onShard = (await env.ROOM.getByName(`${room}/weur/0`).stats()).connections.websocket;
    expect(onShard).toBe(10);
    await restart(`${room}/weur/0`);
    await going;
    await waitUntil("every event everywhere", () => subs.every((x) => x.seqs.length >= 60), 10_000, subs);
    await sleep(100);
    for (const x of subs) expect(x.seqs).toEqual(range(60));
    // The shard's subscribers were dropped and came back; the leader's and the other shard's stayed.
    expect(subs.filter((x) => x.reconnects > 0).length).toBe(onShard);
    for (const x of subs) x.close();
  });

  it("loses nothing when the leader restarts mid-stream: shards catch up from its log", async () => {
    const room = "shards-leader-restart";
    const subs = await subscribers(room, 40, () => "enam");
    const going = publish(room, 1, 30);
    await waitUntil("the stream to be under way", () => subs.every((x) => x.seqs.length >= 5));
    await going;
    // Stored but not yet fanned out to the shards when the leader goes: they must still get it.
    const leader = env.ROOM.getByName(room);
    await runInDurableObject(leader, async (instance) => {
      for (let i = 31; i <= 35; i++) await instance.publish(room, { text: `m${i}` }, ANON);
    });
    await restart(room);
    await publish(room, 36, 60);

    await waitUntil("every event everywhere", () => subs.every((x) => x.seqs.length >= 60), 10_000, subs);
    await sleep(100);
    for (const x of subs) expect(x.seqs).toEqual(range(60));
    const resumed = subs.filter((x) => x.reconnects > 0).length;
    expect(resumed).toBe(10);
    for (const x of subs) x.close();
  });

  it("fills the client's region's shards, counts every shard in stats and presence, and disconnects a user on all of them", async () => {
    const room = "shards-regions";
    const subs = await subscribers(room, 10, () => "weur");
    const bobs = [await subscriber(room, "apac", "&user=bob"), await subscriber(room, "weur", "&user=bob")];
    const apac = await subscribers(room, 10, () => "apac");
    // The leader's 10, then bob in apac and weur, then the rest of apac on apac's shards (10 at most each).
    const on = async (name: string) => (await env.ROOM.getByName(name).stats()).connections.websocket ?? 0;
    const [apac0, apac1] = [await on(`${room}/apac/0`), await on(`${room}/apac/1`)];
    expect(apac0 + apac1).toBe(11);
    expect(apac0).toBeLessThanOrEqual(10);
    expect(await on(`${room}/weur/0`)).toBe(1);
    const s = await stats(room);
    expect(s.shards).toBe(3);
    expect(s.connections.websocket).toBe(22);
    const res = await SELF.fetch(`https://relay.test/rooms/${room}/presence`);
    const members = ((await res.json()) as { members: { user: string; connections: number; transports: string[] }[] })
      .members;
    expect(members.find((m) => m.user === "bob")).toMatchObject({ connections: 2, transports: ["websocket"] });
    expect(members.reduce((n, m) => n + m.connections, 0)).toBe(22);
    // An admin's disconnect reaches both of bob's shards.
    for (const b of bobs) b.close = () => {};
    expect(await env.ROOM.getByName(room).disconnectUser("bob")).toBe(2);
    await waitUntil("bob's sockets to close", () => bobs.every((b) => b.ws.readyState === WebSocket.CLOSED));
    for (const x of [...subs, ...apac]) x.close();
  });

  it("tells presence subscribers on every object of a user's first connection in the room, and of their last", async () => {
    const room = "shards-presence";
    const onLeader = await watcher(room, "weur", "watch-leader");
    const fillers = await subscribers(room, 9, () => "weur");
    const onShard = await watcher(room, "weur", "watch-shard");
    const watchers = [onLeader, onShard];
    await waitUntil(
      "the snapshots",
      () => onLeader.count("join:watch-leader") + onShard.count("join:watch-shard") === 2,
    );
    const both = (what: string) => () => watchers.every((w) => w.count(what) >= 1);

    // Alice: two connections, both on shards (the leader is full).
    const alice = [await watcher(room, "weur", "alice", false), await watcher(room, "apac", "alice", false)];
    await waitUntil("alice's join everywhere", both("join:alice"));
    alice[0].ws.close();
    await sleep(300);
    alice[1].ws.close();
    await waitUntil("alice's leave everywhere", both("leave:alice"));

    // Bob: one connection on the leader (a filler made room), one on a shard.
    fillers[0].close();
    await sleep(200);
    const bob = [await watcher(room, "weur", "bob", false), await watcher(room, "weur", "bob", false)];
    await waitUntil("bob's join everywhere", both("join:bob"));
    bob[0].ws.close();
    await sleep(300);
    bob[1].ws.close();
    await waitUntil("bob's leave everywhere", both("leave:bob"));
    // Once each: the second connection was no join, the first to close no leave.
    for (const w of watchers) {
      expect(
        w.seen.filter((x) => /:(alice|bob)$/.test(x)),
        w.seen.join(" "),
      ).toEqual(["join:alice", "leave:alice", "join:bob", "leave:bob"]);
    }

    // Carol's shard restarts (her socket goes with it, and no leave is reported): its next push
    // answer says it holds no one, and the leader tells the room she left.
    const dave = await watcher(room, "weur", "dave", false); // the leader is full again
    await watcher(room, "oc", "carol", false);
    await waitUntil("carol's join", () => onLeader.count("join:carol") === 1);
    await restart(`${room}/oc/0`);
    expect(onLeader.count("leave:carol")).toBe(0);
    await publish(room, 1, 1);
    await waitUntil("carol's leave", () => onLeader.count("leave:carol") === 1);
    for (const x of fillers.slice(1)) x.close();
    for (const w of [...watchers, dave]) w.ws.close();
  });

  it("retires a shard once it is empty, and opens a new one when the room grows again", async () => {
    const room = "shards-retire";
    const subs = await subscribers(room, 15, () => "oc");
    expect((await stats(room)).shards).toBe(1);
    for (const x of subs.slice(10)) x.close();
    // Past the 10 s a shard is kept after its last placement, its next push answer retires it.
    await sleep(10_500);
    await publish(room, 1, 1);
    let retired = false;
    for (let i = 0; i < 50 && !retired; i++) {
      retired = (await stats(room)).shards === 0;
      if (!retired) await sleep(100);
    }
    expect(retired).toBe(true);
    const more = await subscribers(room, 5, () => "oc");
    expect((await stats(room)).shards).toBe(1);
    await publish(room, 2, 3);
    await waitUntil("every event everywhere", () =>
      [...subs.slice(0, 10).map((x) => x.seqs.length >= 3), ...more.map((x) => x.seqs.length >= 2)].every(Boolean),
    );
    for (const x of subs.slice(0, 10)) expect(x.seqs).toEqual([1, 2, 3]);
    for (const x of more) expect(x.seqs).toEqual([2, 3]);
    for (const x of [...subs.slice(0, 10), ...more]) x.close();
  });
});
