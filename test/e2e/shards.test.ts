/**
 * Fan-out shards end to end: a `wrangler dev` of this file's own with a shard size of 50
 * (ROOM_SHARD_SUBSCRIBERS) and the test hook that lets a client choose its region
 * (X-Relay-Test-Region). One room, 300 subscribers over real sockets: 150 WebSockets (`ws`:
 * relay.v1.json, relay.v1.proto, plain), 75 SSE (`eventsource`) and 75 Connect Subscribe calls
 * (connect-node: Connect JSON, Connect binary, gRPC-Web), in three regions. The first 50 sit on the
 * room's own object (the leader); the leader places the other 250 on shards (`<room>/<region>/<n>`).
 *
 * Stats and presence count every shard's connections; messages published over HTTP and over a
 * WebSocket that sits on a shard (its publishes go to the leader; its ack comes back) reach every
 * subscriber once, in order; a subscriber of each transport that drops mid-stream and resumes by
 * offset (`?since=`, `Last-Event-ID`, SubscribeRequest.since), landing on a shard again, ends up
 * with every message once.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { ChatService } from "../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../tools/dev-server";
import {
  type ChatEventJson,
  type ConnectProtocol,
  connectTransports,
  deferred,
  getJson,
  publishJson,
  publishText,
  SseClient,
  StreamRecorder,
  sleep,
  uniqueRoom,
  WS_PROTOCOL,
  WsClient,
  type WsMode,
  waitFor,
  waitForAsync,
  wsUrl,
} from "./clients";

/** ROOM_SHARD_SUBSCRIBERS of this file's server. */
const SHARD_SIZE = 50;
const REGION_HEADER = "X-Relay-Test-Region";
const REGIONS = ["weur", "enam", "apac"] as const;
/** Subscribers by transport: the spec list below cycles websocket, websocket, sse, connect. */
const TOTAL = 300;
const OPEN_BATCH = 25;
/** Published over HTTP; a few more go over a WebSocket on a shard. */
const HTTP_MESSAGES = 50;
const WS_MESSAGES = 5;
const N = HTTP_MESSAGES + WS_MESSAGES;

type Transport = "websocket" | "sse" | "connect";

/** One subscriber: the events of every connection it had, in order (a resumer has two). */
interface Sub {
  index: number;
  user: string;
  transport: Transport;
  /** ws-json, ws-proto, ws-plain, sse, connect-json, connect-proto, grpc-web. */
  kind: string;
  region: string;
  /** Events of the connections closed so far, then those of the open one. */
  earlier: ChatEventJson[][];
  current(): ChatEventJson[];
  /** Whether the open connection is still as it was opened (no close, no reconnect, no error). */
  healthy(): string | undefined;
  close(): Promise<void>;
  /** A WebSocket subscriber's open socket. */
  socket?: () => WsClient;
  /** Opens a new connection that resumes after `since` in `epoch` (the old one must be closed). */
  resume(since: string, epoch: string): Promise<void>;
}

const T0 = Date.now();
/** Milliseconds since this file started, for diagnostics. */
const at = () => Date.now() - T0;
const events = (s: Sub) => [...s.earlier.flat(), ...s.current()];
const messages = (s: Sub) => events(s).filter((e) => e.kind === "message");
const subscribedEvents = (s: Sub) => events(s).filter((e) => e.kind === "subscribed");

let server: DevServer;
let baseUrl: string;
const room = uniqueRoom("shards");
const subs: Sub[] = [];

beforeAll(async () => {
  server = await startDevServer({
    vars: { ROOM_SHARD_SUBSCRIBERS: String(SHARD_SIZE), RELAY_TEST_HOOKS: "true", MAX_CONNECTIONS_PER_USER: "100000" },
  });
  baseUrl = server.baseUrl;
}, READY_TIMEOUT_MS + 10_000);

afterAll(async () => {
  await Promise.allSettled(subs.map((s) => s.close()));
  await server?.stop();
}, 30_000);

function wsSub(index: number, mode: WsMode, region: string): Promise<Sub> {
  const user = `u${index}`;
  const headers = { [REGION_HEADER]: region };
  let ws: WsClient;
  const open = async (query: string) => {
    ws = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws?user=${user}&${query}`), WS_PROTOCOL[mode], {
      flowControl: true,
      headers,
      timeoutMs: 15_000,
    });
    void ws.whenClosed.then(() => {
      closedAt = at();
    });
  };
  let closedAt = 0;
  const sub: Sub = {
    index,
    user,
    transport: "websocket",
    kind: `ws-${mode}`,
    region,
    earlier: [],
    current: () => ws.events,
    socket: () => ws,
    healthy: () =>
      ws.closeFrame
        ? `closed ${JSON.stringify(ws.closeFrame)} at ${closedAt} ms`
        : ws.errors.length > 0
          ? `errors ${JSON.stringify(ws.errors)}`
          : undefined,
    close: () => ws.close(),
    resume: async (since, epoch) => {
      sub.earlier.push([...ws.events]);
      await open(`since=${since}&epoch=${epoch}`);
    },
  };
  return open("since=0").then(() => sub);
}

function sseSub(index: number, region: string): Sub {
  const user = `u${index}`;
  const headers = { [REGION_HEADER]: region };
  let sse = new SseClient(`${baseUrl}/rooms/${room}/sse?user=${user}&since=0`, { headers });
  const sub: Sub = {
    index,
    user,
    transport: "sse",
    kind: "sse",
    region,
    earlier: [],
    current: () => sse.events.map((e) => ({ ...e.data, kind: e.type })),
    healthy: () =>
      sse.opens !== 1 || sse.disconnects.length > 0 || sse.refusals.length > 0 || sse.errors.length > 0
        ? `opens ${sse.opens}, disconnects ${JSON.stringify(sse.disconnects)}, refusals ${JSON.stringify(sse.refusals)}, errors ${JSON.stringify(sse.errors)}`
        : undefined,
    close: async () => sse.close(),
    resume: async (since, epoch) => {
      sub.earlier.push(sub.current());
      // Last-Event-ID, as EventSource sends it when it reconnects by itself.
      sse = new SseClient(`${baseUrl}/rooms/${room}/sse?user=${user}&epoch=${epoch}`, { headers, lastEventId: since });
    },
  };
  return sub;
}

function connectSub(index: number, protocol: ConnectProtocol, client: Client<typeof ChatService>, region: string): Sub {
  const user = `u${index}`;
  const headers = { [REGION_HEADER]: region };
  let endedAt = 0;
  const open = (since: bigint, epoch = "") => {
    const r = new StreamRecorder((signal) => client.subscribe({ room, since, epoch, user }, { signal, headers }));
    void r.done.then(() => {
      endedAt = at();
    });
    return r;
  };
  let rec = open(0n);
  const sub: Sub = {
    index,
    user,
    transport: "connect",
    kind: protocol,
    region,
    earlier: [],
    current: () => rec.events,
    healthy: () => (rec.ended ? `ended ${rec.error?.message ?? "normally"} at ${endedAt} ms` : undefined),
    close: () => rec.stop(),
    resume: async (since, epoch) => {
      sub.earlier.push([...rec.events]);
      rec = open(BigInt(since), epoch);
    },
  };
  return sub;
}

async function publishedSoFar(): Promise<number> {
  const r = await getJson<{ lastSeq?: string }>(baseUrl, `/rooms/${room}/messages?since=0&limit=1`);
  return Number(r.body.lastSeq ?? 0);
}

interface StatsWithShards {
  connections: Record<string, number>;
  shards?: number;
  lastSeq?: string;
}
interface PresenceJson {
  room: string;
  members: { user: string; connections?: number; transports?: string[] }[];
}

let explained = false;
/** On a failure (once per run): which subscribers are not as opened, and what the server printed. */
function explainFailure(): void {
  if (explained) return;
  explained = true;
  const unwell = subs.map((s) => [s.index, s.kind, s.region, s.healthy()] as const).filter(([, , , h]) => h);
  console.log(`${unwell.length} subscribers not as opened:\n${unwell.map((u) => u.join(" ")).join("\n")}`);
  console.log(`server output (tail):\n${server?.output().slice(-20_000)}`);
}

describe("fan-out shards over real sockets", () => {
  const expectedConnections: Record<Transport, number> = { websocket: 0, sse: 0, connect: 0 };

  it(`opens ${TOTAL} subscribers over WebSocket, SSE and Connect in three regions`, { timeout: 60_000 }, async () => {
    onTestFailed(explainFailure);
    const transports = connectTransports(baseUrl);
    const clients = Object.fromEntries(
      Object.entries(transports).map(([k, t]) => [k, createClient(ChatService, t)]),
    ) as Record<ConnectProtocol, Client<typeof ChatService>>;
    const wsModes: WsMode[] = ["json", "proto", "plain"];
    const connectProtocols: ConnectProtocol[] = ["connect-json", "connect-proto", "grpc-web"];
    let wsCount = 0;
    let connectCount = 0;
    const specs = Array.from({ length: TOTAL }, (_, i) => {
      const transport: Transport = (["websocket", "websocket", "sse", "connect"] as const)[i % 4];
      const region = REGIONS[i % REGIONS.length];
      if (transport === "websocket") return () => wsSub(i, wsModes[wsCount++ % 3], region);
      if (transport === "sse") return async () => sseSub(i, region);
      const protocol = connectProtocols[connectCount++ % 3];
      return async () => connectSub(i, protocol, clients[protocol], region);
    });
    const started = Date.now();
    // In batches, each one subscribed before the next: the first 50 are the leader's, the rest on shards.
    for (let i = 0; i < TOTAL; i += OPEN_BATCH) {
      const settled = await Promise.allSettled(specs.slice(i, i + OPEN_BATCH).map((open) => open()));
      const batch = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      subs.push(...batch);
      const failed = settled.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      await waitFor(
        `subscribers ${i}-${i + batch.length - 1} to be subscribed (${at()} ms)`,
        () => batch.every((s) => subscribedEvents(s).length === 1),
        15_000,
        () => batch.filter((s) => subscribedEvents(s).length !== 1).map((s) => [s.kind, s.healthy(), s.current()]),
      );
    }
    console.log(`opened ${TOTAL} subscribers in ${Date.now() - started} ms`);
    for (const s of subs) expectedConnections[s.transport]++;
    expect(expectedConnections).toEqual({ websocket: 150, sse: 75, connect: 75 });
    expect(new Set(subs.map((s) => s.kind)).size).toBe(7);
    for (const s of subs) {
      expect(s.healthy(), `${s.kind} ${s.user}`).toBeUndefined();
      // An empty room: subscribed (since 0), nothing to replay.
      expect(events(s).map((e) => e.kind)).toEqual(["subscribed"]);
    }
  });

  it("counts every shard's connections in stats", async () => {
    onTestFailed(explainFailure);
    const r = await getJson<StatsWithShards>(baseUrl, `/rooms/${room}/stats`);
    expect(r.status).toBe(200);
    console.log(`stats: ${JSON.stringify({ shards: r.body.shards, connections: r.body.connections })}`);
    expect(r.body.connections).toEqual(expectedConnections);
    // 250 subscribers past the leader's 50, in shards of at most 50 (per region: at least one each).
    expect(r.body.shards).toBeGreaterThanOrEqual(Math.max(4, REGIONS.length));
  });

  it("counts every shard's connections in presence", async () => {
    onTestFailed(explainFailure);
    const r = await getJson<PresenceJson>(baseUrl, `/rooms/${room}/presence`);
    expect(r.status).toBe(200);
    const members = r.body.members;
    expect(members.reduce((n, m) => n + (m.connections ?? 0), 0)).toBe(TOTAL);
    expect(members).toHaveLength(TOTAL);
    const byUser = new Map(members.map((m) => [m.user, m]));
    for (const s of subs)
      expect(byUser.get(s.user), s.user).toMatchObject({ connections: 1, transports: [s.transport] });
  });

  it("delivers every message to every subscriber once, in order, while one of each transport resumes on a shard", {
    timeout: 60_000,
  }, async () => {
    onTestFailed(explainFailure);
    // Past the leader's 50, so on a shard: a publisher, and a resumer of each transport (whose new
    // connection lands on a shard too, the leader being full).
    const onShard = subs.filter((s) => s.index >= SHARD_SIZE);
    const publisher = onShard.find((s) => s.kind === "ws-json") as Sub;
    const resumers = (["ws-proto", "sse", "connect-proto"] as const).map(
      (k) => onShard.find((s) => s.kind === k && s !== publisher) as Sub,
    );
    expect(resumers.every(Boolean)).toBe(true);
    const publisherWs = () => (publisher.socket as () => WsClient)();

    const started = Date.now();
    const texts = new Map<number, string>();
    const record = (seq: string | undefined, text: string) => {
      expect(seq).toBeDefined();
      expect(texts.has(Number(seq))).toBe(false);
      texts.set(Number(seq), text);
    };
    const resumed = deferred();
    let published = 0;
    const httpPublish = async (i: number) => {
      // Mixed: JSON and text/plain, ASCII and not.
      const text = i % 7 === 0 ? `http ${i} · ünïcødé 🛰️` : `http ${i}`;
      const r =
        i % 2 === 0
          ? await publishJson(baseUrl, room, { text, id: `h${i}` })
          : await publishText(baseUrl, room, text, `h${i}`);
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      record(r.body.seq, text);
      published++;
    };
    const publishing = (async () => {
      for (let i = 1; i <= 25; i++) {
        await httpPublish(i);
        await sleep(10);
      }
      for (let j = 1; j <= WS_MESSAGES; j++) {
        const text = `ws ${j}`;
        const acks = publisherWs().acks.length;
        publisherWs().publish(text, `w${j}`);
        const ack = await waitFor(
          `the ack of ${text}`,
          () => publisherWs().acks[acks],
          10_000,
          () => publisher.current().slice(-3),
        );
        expect(ack.duplicate ?? false).toBe(false);
        expect(ack.event).toMatchObject({ text, id: `w${j}`, kind: "message" });
        record(ack.event.seq, text);
        published++;
      }
      for (let i = 26; i <= HTTP_MESSAGES; i++) {
        // The last ten wait for the resumers to be back: they get part of the stream as a replay, part live.
        if (i === HTTP_MESSAGES - 9) await resumed.promise;
        await httpPublish(i);
        await sleep(10);
      }
    })();

    // The resumers drop once they have a few messages, and come back a few messages later.
    const drop = await (async () => {
      await waitFor("the resumers to have 5 messages", () => resumers.every((s) => messages(s).length >= 5), 15_000);
      const at = resumers.map((s) => messages(s).at(-1) as ChatEventJson);
      await Promise.all(resumers.map((s) => s.close()));
      // What each had when it went: messages that arrived between the last look and the close count too.
      return resumers.map((s, k) => ({ s, last: messages(s).at(-1) ?? at[k] }));
    })();
    try {
      const latest = Math.max(...drop.map((d) => Number(d.last.seq)));
      await waitFor("a few messages to pass while they are away", () => published >= latest + 5, 15_000);
      await Promise.all(drop.map((d) => d.s.resume(d.last.seq as string, d.last.epoch)));
      await waitFor(
        "the resumers to be subscribed again",
        () => drop.every((d) => d.s.current().some((e) => e.kind === "subscribed")),
        15_000,
        () => drop.map((d) => [d.s.kind, d.s.healthy(), d.s.current()]),
      );
    } finally {
      resumed.resolve();
    }
    await publishing;
    const publishedMs = Date.now() - started;
    expect(published).toBe(N);
    expect([...texts.keys()].sort((a, b) => a - b)).toEqual(range(N));

    await waitFor(
      `${N} messages on every subscriber`,
      () => subs.every((s) => messages(s).length >= N),
      30_000,
      () =>
        subs
          .filter((s) => messages(s).length < N)
          .slice(0, 10)
          .map((s) => ({ user: s.user, kind: s.kind, got: messages(s).length, health: s.healthy() })),
    );
    console.log(`published ${N} in ${publishedMs} ms; every subscriber had them all after ${Date.now() - started} ms`);
    // Anything extra (a duplicate) would arrive right behind the rest.
    await sleep(300);
    const expected = range(N).map((seq) => ({ seq: String(seq), text: texts.get(seq) }));
    for (const s of subs) {
      const got = messages(s).map((e) => ({ seq: e.seq, text: e.text }));
      expect(got, `${s.kind} ${s.user} (${s.region})`).toEqual(expected);
      expect(
        events(s).filter((e) => e.kind !== "message" && e.kind !== "subscribed"),
        `${s.kind} ${s.user}`,
      ).toEqual([]);
      expect(s.healthy(), `${s.kind} ${s.user}`).toBeUndefined();
    }
    for (const { s, last } of drop) {
      const opens = subscribedEvents(s);
      expect(opens, s.kind).toHaveLength(2);
      expect(opens[1]).toMatchObject({ resumeAfter: last.seq, epoch: last.epoch });
      // It missed some while away (a replay), and got the last ten live.
      expect(Number(opens[1].lastSeq)).toBeGreaterThan(Number(last.seq));
      expect(Number(opens[1].lastSeq)).toBeLessThan(N);
    }

    // The publisher's acks, one per publish.
    expect(publisherWs().acks.map((a) => a.event.text)).toEqual(range(WS_MESSAGES).map((j) => `ws ${j}`));
    const r = await getJson<StatsWithShards>(baseUrl, `/rooms/${room}/stats`);
    expect(r.body.lastSeq).toBe(String(N));
    expect(await publishedSoFar()).toBe(N);
  });

  it("counts the resumed connections once in stats and presence", async () => {
    onTestFailed(explainFailure);
    // A closed SSE or Connect stream is noticed at its next write (a message, a heartbeat) at the latest.
    let last: unknown;
    const members = await waitForAsync(
      "stats and presence to count each subscriber once",
      async () => {
        const s = await getJson<StatsWithShards>(baseUrl, `/rooms/${room}/stats`);
        const p = await getJson<PresenceJson>(baseUrl, `/rooms/${room}/presence`);
        const n = p.body.members.reduce((a, m) => a + (m.connections ?? 0), 0);
        last = { stats: s.body.connections, presence: n };
        const same = JSON.stringify(sorted(s.body.connections)) === JSON.stringify(sorted(expectedConnections));
        return same && n === TOTAL ? p.body.members : undefined;
      },
      20_000,
      () => last,
    );
    expect(members).toHaveLength(TOTAL);
    const byUser = new Map(members.map((m) => [m.user, m]));
    for (const s of subs)
      expect(byUser.get(s.user), s.user).toMatchObject({ connections: 1, transports: [s.transport] });
  });
});

const sorted = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).sort());
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
