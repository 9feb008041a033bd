/**
 * Resuming across what the relay no longer has, and tokens that expire, against a relay of its
 * own: HISTORY_MAX_COUNT=5 (a client offline for more than that gets a `gap`) and a JWT secret.
 * - gap: the client is told (reason, resumeAfter), jumps its resume point and goes on, never
 *   delivering anything twice; an epoch gap resets lastSeq to the gap's resumeAfter;
 * - tokens from an async function, 4 s long: a WebSocket refreshes in place (one socket, no
 *   reconnect); SSE and Connect reconnect with the new token before expiry and lose nothing; a
 *   WebSocket whose refresh never happened is closed with token_expired (4440) and reconnects with
 *   a new token; a fixed token that expires ends the client.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
import { allRights, claims, hs256, SECRET } from "../auth/tokens";
import { publishJson, uniqueRoom, waitFor } from "../clients";
import {
  assertOnceInOrder,
  closeClients,
  connected,
  portOf,
  received,
  record,
  TRANSPORTS,
  tcpProxy,
  WebSocket,
} from "./helpers";

let server: DevServer;
beforeAll(async () => {
  server = await startDevServer({ vars: { HISTORY_MAX_COUNT: "5", RELAY_JWT_SECRET: SECRET } });
}, READY_TIMEOUT_MS + 5_000);
afterAll(async () => {
  closeClients();
  await server?.stop();
});

describe.each(TRANSPORTS)("%s", (transport) => {
  it("a resume across a retention gap: told, then continues with the retained events", async () => {
    const proxy = await tcpProxy(portOf(server.baseUrl));
    try {
      const room = uniqueRoom(`cl-gap-${transport}`);
      const a = record(proxy.url, room, { transport, since: 0 });
      await connected(a);
      for (const text of ["m1", "m2"]) await publishJson(server.baseUrl, room, { text });
      await received(a, 2);

      proxy.down(); // offline while 10 more are published: the room keeps only the newest 5
      await waitFor("the client to notice", () => a.client.getSnapshot().state !== "connected", 10_000);
      for (let i = 3; i <= 12; i++) await publishJson(server.baseUrl, room, { text: `m${i}` });
      proxy.up();

      await received(a, 7);
      expect(a.gaps).toEqual([
        { reason: "retention", text: expect.stringContaining("3-7"), resumeAfter: 7, firstSeq: 8, lastSeq: 12 },
      ]);
      expect(a.texts()).toEqual(["m1", "m2", "m8", "m9", "m10", "m11", "m12"]);
      const live = await a.client.publish("m13");
      expect(live.seq).toBe(13);
      await received(a, 8);
      assertOnceInOrder(a.messages);
      expect(a.client.getSnapshot()).toMatchObject({ lastSeq: 13, reconnects: 1 });
    } finally {
      await proxy.close();
    }
  });

  it("an epoch gap resets lastSeq to its resumeAfter", async () => {
    const room = uniqueRoom(`cl-epoch-${transport}`);
    for (const text of ["e1", "e2"]) await publishJson(server.baseUrl, room, { text });
    const a = record(server.baseUrl, room, { transport, since: 40, epoch: "not-this-rooms-epoch" });
    await received(a, 2);
    expect(a.gaps).toMatchObject([{ reason: "epoch", resumeAfter: 0, firstSeq: 1, lastSeq: 2 }]);
    expect(a.texts()).toEqual(["e1", "e2"]);
    expect(a.client.getSnapshot().lastSeq).toBe(2);
    expect(a.client.getSnapshot().epoch).not.toBe("not-this-rooms-epoch");
  });
});

/** A `ws` WebSocket that counts how many were opened and can swallow refresh frames. */
function countingWebSocket(opts: { dropRefresh?: boolean } = {}) {
  const made: WebSocket[] = [];
  class Counting extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      made.push(this);
    }
    override send(data: string): void {
      if (opts.dropRefresh && data.startsWith('{"refresh"')) return;
      super.send(data);
    }
  }
  return { WebSocket: Counting, made };
}

it("short-lived tokens from an async function: WebSocket refreshes in place, SSE and Connect reconnect, nothing lost", {
  timeout: 40_000,
}, async () => {
  const room = uniqueRoom("cl-refresh");
  const calls: Record<string, number> = { websocket: 0, sse: 0, connect: 0 };
  const counting = countingWebSocket();
  const clients = TRANSPORTS.map((transport) =>
    record(server.baseUrl, room, {
      transport,
      since: 0,
      WebSocket: counting.WebSocket,
      // 5-6 s tokens (exp is in whole seconds): refreshed at 3/4 of their life, ~1.4 s before expiry.
      token: async () => {
        calls[transport]++;
        return hs256(claims(`user-${transport}`, allRights(room), 6));
      },
    }),
  );
  await Promise.all(clients.map((c) => connected(c)));
  // Publish from every client in turn until each has had two new tokens: two refreshes in place
  // (WebSocket), two renewals by a new stream (SSE, Connect).
  const [ws, sse, connect] = clients;
  const renewed = () =>
    calls.websocket >= 3 && sse.client.getSnapshot().reconnects >= 2 && connect.client.getSnapshot().reconnects >= 2;
  const sent: string[] = [];
  const deadline = Date.now() + 25_000;
  for (let i = 0; !renewed() && Date.now() < deadline; i++) {
    sent.push(`t${i}`);
    await clients[i % 3].client.publish(`t${i}`);
    await new Promise((r) => setTimeout(r, 400));
  }
  expect(calls).toEqual({ websocket: expect.any(Number), sse: expect.any(Number), connect: expect.any(Number) });
  for (const n of Object.values(calls)) expect(n).toBeGreaterThanOrEqual(3);
  await Promise.all(clients.map((c) => received(c, sent.length)));
  for (const c of clients) {
    expect(c.texts()).toEqual(sent);
    assertOnceInOrder(c.messages);
    // Never seen as disconnected: the refresh (or the new stream) came before the expiry.
    const downs = c.states.filter((s) => s.state !== "connected" && s.state !== "connecting");
    expect(downs.map((s) => [s.transport, s.state, s.reason])).toEqual([]);
    expect(c.client.getSnapshot().state).toBe("connected");
  }
  expect(counting.made).toHaveLength(1); // the same socket all along
  expect(ws.client.getSnapshot().reconnects).toBe(0);
  expect(sse.client.getSnapshot().reconnects).toBeGreaterThanOrEqual(2);
  expect(connect.client.getSnapshot().reconnects).toBeGreaterThanOrEqual(2);
  expect(new Set(ws.messages.map((m) => m.user))).toEqual(new Set(["user-websocket", "user-sse", "user-connect"]));
});

it("a WebSocket closed with token_expired (4440) reconnects with a new token", { timeout: 20_000 }, async () => {
  const room = uniqueRoom("cl-expired");
  const counting = countingWebSocket({ dropRefresh: true });
  let calls = 0;
  const a = record(server.baseUrl, room, {
    since: 0,
    WebSocket: counting.WebSocket,
    token: async () => {
      calls++;
      return hs256(claims("ann", allRights(room), 2));
    },
  });
  await connected(a);
  await a.client.publish("before expiry");
  await waitFor(
    "the expiry close",
    () => a.states.find((s) => s.state === "disconnected" && s.reason?.code === "token_expired"),
    8_000,
    () => a.states,
  );
  await waitFor("the reconnect", () => a.client.getSnapshot().state === "connected" && counting.made.length >= 2);
  await a.client.publish("after expiry");
  await received(a, 2);
  expect(a.texts()).toEqual(["before expiry", "after expiry"]);
  expect(calls).toBeGreaterThanOrEqual(2);
});

it("a fixed token that expires ends the client (it cannot get another)", { timeout: 15_000 }, async () => {
  const room = uniqueRoom("cl-fixed-token");
  const a = record(server.baseUrl, room, { token: await hs256(claims("ann", allRights(room), 2)) });
  await connected(a);
  const pending = a.client.publish("x").then(() => "stored");
  expect(await pending).toBe("stored");
  await waitFor("closed", () => a.client.getSnapshot().state === "closed", 8_000);
  expect(a.client.getSnapshot().reason?.code).toBe("token_expired");
});

it("a refused token ends the client with the relay's reason", async () => {
  const room = uniqueRoom("cl-bad-token");
  for (const transport of TRANSPORTS) {
    const a = record(server.baseUrl, room, { transport, token: await hs256(claims("ann", allRights(room)), "wrong") });
    await waitFor(
      "closed",
      () => a.client.getSnapshot().state === "closed",
      8_000,
      () => a.client.getSnapshot(),
    );
    expect(a.client.getSnapshot().reason?.code).toBe("unauthenticated");
  }
});
