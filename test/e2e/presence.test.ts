/**
 * Presence events over real sockets, on every transport: a watcher on WebSocket, one on SSE and
 * one on Connect each ask for presence and see the same joins and leaves. A WebSocket user's leave
 * comes at once (the room gets the close); an SSE or Connect user's once the Worker notices the
 * client has gone, at its next write: a heartbeat (1 s in this suite's server) at the latest.
 */
import { createClient } from "@connectrpc/connect";
import { afterEach, expect, inject, it } from "vitest";
import { ChatService } from "../../src/gen/relay/v1/relay_pb";
import {
  type ChatEventJson,
  connectTransports,
  SseClient,
  StreamRecorder,
  uniqueRoom,
  WsClient,
  waitFor,
  wsUrl,
} from "./clients";

const baseUrl = inject("baseUrl");
/** The suite's server heartbeat (test/e2e/global-setup.ts). */
const HEARTBEAT_MS = 1000;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((c) => c()));
});

const presence = (events: ChatEventJson[]) =>
  events
    .filter((e) => e.kind === "join" || e.kind === "leave")
    .map((e) => `${e.kind}:${e.user}:${e.member?.connections ?? 0}`);

it("tells watchers on every transport who joins and leaves, by user", async () => {
  const room = uniqueRoom("presence");
  const wsWatch = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws?user=w1&presence=1`), "relay.v1.json", {
    flowControl: true,
  });
  cleanup.push(() => wsWatch.close());
  const sseWatch = new SseClient(`${baseUrl}/rooms/${room}/sse?user=w2&presence=1`);
  cleanup.push(() => sseWatch.close());
  const chat = createClient(ChatService, connectTransports(baseUrl)["connect-json"]);
  const connectWatch = new StreamRecorder((signal) => chat.subscribe({ room, presence: true }, { signal }));
  cleanup.push(() => connectWatch.stop());
  const watchers = {
    websocket: () => presence(wsWatch.events),
    sse: () => presence(sseWatch.events.map((e) => ({ ...e.data, kind: e.type }))),
    connect: () => presence(connectWatch.events),
  };
  // Each watcher's snapshot names itself at least; the three users are all there once all joined.
  for (const [name, seen] of Object.entries(watchers)) {
    await waitFor(`${name} to see the three watchers`, () =>
      ["w1", "w2", "anonymous"].every((u) => seen().includes(`join:${u}:1`)),
    );
  }
  const mark = Object.fromEntries(Object.entries(watchers).map(([k, seen]) => [k, seen().length]));
  const since = (k: keyof typeof watchers) => watchers[k]().slice(mark[k]);

  // A user on two transports: one join (their first connection), one leave (their last).
  const ws = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws?user=ada`), "relay.v1.json", { flowControl: true });
  for (const k of Object.keys(watchers) as (keyof typeof watchers)[]) {
    await waitFor(`${k} to see ada join`, () => since(k).length === 1);
    expect(since(k)).toEqual(["join:ada:1"]);
  }
  const sse = new SseClient(`${baseUrl}/rooms/${room}/sse?user=ada`);
  cleanup.push(() => sse.close());
  await sse.waitEvents(1);
  const adaNow = (await (await fetch(`${baseUrl}/rooms/${room}/presence`)).json()) as { members: { user: string }[] };
  expect(adaNow.members.find((m) => m.user === "ada")).toMatchObject({
    connections: 2,
    transports: ["sse", "websocket"],
  });

  // Her WebSocket closes: she still has the SSE stream, so no leave.
  await ws.close();
  // Her SSE stream goes: the Worker notices at its next heartbeat, then the room tells everyone.
  const goneAt = Date.now();
  sse.close();
  for (const k of Object.keys(watchers) as (keyof typeof watchers)[]) {
    await waitFor(`${k} to see ada leave`, () => since(k).length === 2, 3 * HEARTBEAT_MS + 2000);
    expect(since(k)).toEqual(["join:ada:1", "leave:ada:0"]);
  }
  const tookMs = Date.now() - goneAt;
  expect(tookMs).toBeLessThan(3 * HEARTBEAT_MS + 2000);
});

it("sees a WebSocket user leave at once, and a named Connect user within a heartbeat", async () => {
  const room = uniqueRoom("presence-leave");
  const watch = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws?user=watch&presence=1`), "relay.v1.json", {
    flowControl: true,
  });
  cleanup.push(() => watch.close());
  await waitFor("the snapshot", () => presence(watch.events).length === 1);

  const bob = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws?user=bob`), "relay.v1.json");
  await waitFor("bob's join", () => presence(watch.events).includes("join:bob:1"));
  await bob.close();
  // The room gets a WebSocket client's close frame as it comes: well under a heartbeat.
  await waitFor("bob's leave", () => presence(watch.events).includes("leave:bob:0"), HEARTBEAT_MS);

  const chat = createClient(ChatService, connectTransports(baseUrl)["connect-proto"]);
  // An anonymous Connect subscriber names itself with SubscribeRequest.user.
  const cy = new StreamRecorder((signal) => chat.subscribe({ room, user: "cy" }, { signal }));
  await waitFor("the Connect user's join", () => presence(watch.events).includes("join:cy:1"));
  await cy.stop();
  await waitFor(
    "the Connect user's leave",
    () => presence(watch.events).includes("leave:cy:0"),
    2 * HEARTBEAT_MS + 1000,
  );
  // Events not in the log: no offset, so a resume never counts them.
  for (const e of watch.events.filter((x) => x.kind === "join" || x.kind === "leave")) expect(e.seq).toBeUndefined();
});
