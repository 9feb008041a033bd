/**
 * "Nothing lost": the server is stopped mid-conversation and started again on the same port with
 * the same storage. An EventSource left to itself reconnects (retry: 1000) with its Last-Event-ID
 * and ends up with every event exactly once; offsets and the epoch continue.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../tools/dev-server";
import {
  type ChatEventJson,
  getJson,
  publishJson,
  publishText,
  type ServerFrameJson,
  SseClient,
  uniqueRoom,
  WsClient,
  waitFor,
  wsUrl,
} from "./clients";

const persistTo = mkdtempSync(join(tmpdir(), "relay-restart-"));
const servers: DevServer[] = [];
const clients: { close(): unknown }[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(persistTo, { recursive: true, force: true });
});

// Two starts and a stop in one test: its timeout leaves room for both starts' own bound.
it("loses nothing across a server restart", { timeout: 2 * READY_TIMEOUT_MS + 30_000 }, async () => {
  const first = await startDevServer({ persistTo });
  servers.push(first);
  const { baseUrl, port } = first;
  const room = uniqueRoom("restart");

  const before: ChatEventJson[] = [];
  for (let i = 1; i <= 3; i++) {
    const r = await publishJson(baseUrl, room, { text: `before ${i}`, id: `b${i}` });
    expect(r.status).toBe(201);
    before.push(r.body);
  }
  const epoch = before[0].epoch;

  // A plain EventSource (the library's own fetch and reconnect logic).
  const sse = new SseClient(`${baseUrl}/rooms/${room}/sse?since=0`);
  clients.push(sse);
  const messages = () => sse.messages().map((m) => m.data);
  await sse.waitMessages(3);
  expect(messages()).toEqual(before);
  expect(sse.opens).toBe(1);

  // Stop mid-conversation: the stream breaks and the EventSource starts retrying on its own.
  await first.stop();
  await waitFor("the EventSource to notice", () => sse.es.readyState === sse.es.CONNECTING, 5000);
  await expect(fetch(`${baseUrl}/healthz`)).rejects.toThrow();

  const second = await startDevServer({ persistTo, port });
  servers.push(second);
  expect(second.baseUrl).toBe(baseUrl);

  const after: ChatEventJson[] = [];
  for (const [i, text] of ["after 1", "after 2"].entries()) {
    const r = await publishText(baseUrl, room, text, `a${i + 1}`);
    expect(r.status).toBe(201);
    after.push(r.body);
  }
  // Offsets continue (4, 5, not 1, 2) in the same epoch.
  expect(after.map((e) => e.seq)).toEqual(["4", "5"]);
  expect(after.map((e) => e.epoch)).toEqual([epoch, epoch]);

  // The EventSource reconnected by itself and resumed after 3 (its Last-Event-ID): had it sent no
  // Last-Event-ID, its URL's ?since=0 would have replayed 1-3 a second time.
  await sse.waitMessages(5, 15_000);
  expect(sse.opens).toBe(2);
  expect(messages()).toEqual([...before, ...after]);
  expect(sse.messages().map((m) => m.lastEventId)).toEqual(["1", "2", "3", "4", "5"]);
  const subscribed = sse.events.filter((e) => e.type === "subscribed").map((e) => e.data);
  expect(subscribed).toHaveLength(2);
  expect(subscribed.map((e) => e.epoch)).toEqual([epoch, epoch]);
  // The second connection resumed after 3, its Last-Event-ID, which `subscribed` says as resumeAfter (and its id).
  expect(subscribed[1]).toMatchObject({ firstSeq: "1", lastSeq: expect.stringMatching(/^[3-5]$/), resumeAfter: "3" });
  expect(sse.events.filter((e) => e.type === "subscribed").map((e) => e.lastEventId)).toEqual(["0", "3"]);
  expect(sse.events.filter((e) => e.type === "gap")).toEqual([]);

  // The history has all five, in the same epoch.
  const history = await getJson<{ events: ChatEventJson[]; epoch: string; lastSeq: string }>(
    baseUrl,
    `/rooms/${room}/messages?since=0`,
  );
  expect(history.body.epoch).toBe(epoch);
  expect(history.body.events).toEqual([...before, ...after]);

  // A WebSocket resuming after 3 gets 4 and 5 once, then live events like everyone else.
  const ws = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws?since=3&epoch=${epoch}`), "relay.v1.json");
  clients.push(ws);
  await ws.waitFrames(3);
  const wsEvents = () => ws.frames.map((f) => (f as ServerFrameJson).event as ChatEventJson);
  expect(wsEvents().map((e) => e.kind)).toEqual(["subscribed", "message", "message"]);
  expect(wsEvents().slice(1)).toEqual(after);

  // A sixth, live, on both.
  const sixth = await publishJson(baseUrl, room, { text: "live 6", id: "l6" });
  expect(sixth.status).toBe(201);
  expect(sixth.body).toMatchObject({ seq: "6", epoch });
  await sse.waitMessages(6);
  await ws.waitFrames(4);
  expect(messages().map((e) => e.seq)).toEqual(["1", "2", "3", "4", "5", "6"]);
  expect(messages()[5]).toEqual(sixth.body);
  expect(wsEvents().map((e) => e.seq)).toEqual([undefined, "4", "5", "6"]);
  expect(sse.opens).toBe(2);
});
