/**
 * README, "Local scale": with LOCAL_MAX_CONNECTIONS (what `npm start` sets from the open-file limit)
 * the server refuses a connection past it as `room_full` (HTTP 503 for a WebSocket upgrade and SSE,
 * Connect resource_exhausted), the open ones go on getting messages, and a place that frees up is
 * taken again. All transports count together.
 */
import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ChatService } from "../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../tools/dev-server";
import {
  connectTransports,
  publishJson,
  SseClient,
  StreamRecorder,
  sleep,
  uniqueRoom,
  WS_PROTOCOL,
  WsClient,
  waitFor,
  wsUrl,
} from "./clients";

const LIMIT = 3;
let server: DevServer;
let base: string;

beforeAll(async () => {
  server = await startDevServer({ vars: { LOCAL_MAX_CONNECTIONS: String(LIMIT), HEARTBEAT_SECONDS: "1" } });
  base = server.baseUrl;
}, READY_TIMEOUT_MS + 10_000);

afterAll(async () => {
  await server?.stop();
});

/** A relay.v1.json WebSocket that has been told it subscribed, or was closed. */
async function openWs(room: string): Promise<WsClient> {
  const ws = await WsClient.open(wsUrl(base, `/rooms/${room}/ws`), WS_PROTOCOL.json, { flowControl: true });
  await waitFor(
    "subscribed or closed",
    () => ws.closed || ws.events[0]?.kind === "subscribed",
    3000,
    () => ws.frames,
  );
  return ws;
}

/** An SSE stream once it streams or was refused. */
async function openSse(room: string): Promise<SseClient> {
  const sse = new SseClient(`${base}/rooms/${room}/sse`);
  await waitFor("an answer", () => sse.refusals.length > 0 || sse.events.length > 0, 3000);
  return sse;
}

it("refuses connections past LOCAL_MAX_CONNECTIONS on every transport; the open ones keep working", async () => {
  const rooms = [uniqueRoom("local-limit"), uniqueRoom("local-limit")];
  const rpc = createClient(ChatService, connectTransports(base)["connect-json"]);
  const open: { close(): unknown }[] = [];
  const streams: StreamRecorder[] = [];
  try {
    // Three connections over two rooms and three transports: the limit.
    const ws = await openWs(rooms[0]);
    open.push(ws);
    const sse = await openSse(rooms[1]);
    open.push(sse);
    const stream = new StreamRecorder((signal) => rpc.subscribe({ room: rooms[1] }, { signal }));
    streams.push(stream);
    await waitFor("subscribed", () => stream.events.some((e) => e.kind === "subscribed"), 3000);
    expect([ws.closed, sse.refusals, stream.ended]).toEqual([undefined, [], false]);

    // Past it, each transport is refused: a WebSocket upgrade and SSE with 503 room_full, Connect
    // with resource_exhausted.
    const full = {
      error: { code: "room_full", message: expect.stringMatching(/^local server full: LOCAL_MAX_CONNECTIONS=3 /) },
    };
    await expect(openWs(rooms[0])).rejects.toMatchObject({ status: 503, body: full });
    const fourthSse = await openSse(rooms[1]);
    open.push(fourthSse);
    expect(fourthSse.refusals[0]).toEqual({ status: 503, body: full });
    const fourthStream = new StreamRecorder((signal) => rpc.subscribe({ room: rooms[0] }, { signal }));
    streams.push(fourthStream);
    await waitFor("refused", () => fourthStream.ended, 3000);
    expect(fourthStream.error?.code).toBe(Code.ResourceExhausted);
    expect(fourthStream.error?.metadata.get("Relay-Error-Code")).toBe("room_full");

    // The open ones still get what is published, and the server answers other requests.
    for (const room of rooms) expect((await publishJson(base, room, { text: `still here ${room}` })).status).toBe(201);
    await waitFor("the WebSocket's message", () => ws.events.some((e) => e.text === `still here ${rooms[0]}`), 3000);
    await waitFor("the SSE message", () => sse.events.some((e) => e.data.text === `still here ${rooms[1]}`), 3000);
    await waitFor(
      "the stream's message",
      () => stream.messages().some((e) => e.text === `still here ${rooms[1]}`),
      3000,
    );
    expect((await fetch(`${base}/healthz`)).status).toBe(200);

    // A WebSocket that leaves frees its place (the rooms are recounted at most once a second)...
    await ws.close();
    let again: WsClient | undefined;
    for (const deadline = Date.now() + 5000; !again && Date.now() < deadline; await sleep(200)) {
      again = await openWs(rooms[0]).catch(() => undefined);
    }
    expect(again?.closed).toBeUndefined();
    if (again) open.push(again);
    // ...and so does a stream, once the server sees its client has gone (at the next heartbeat).
    await stream.stop();
    let sseAgain: SseClient | undefined;
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(200)) {
      sseAgain = await openSse(rooms[1]);
      open.push(sseAgain);
      if (sseAgain.refusals.length === 0) break;
      sseAgain.close();
    }
    expect(sseAgain?.refusals).toEqual([]);
  } finally {
    for (const c of open) await c.close();
    for (const s of streams) await s.stop();
  }
});
