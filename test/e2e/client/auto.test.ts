/**
 * transport: "auto" behind a proxy that refuses WebSocket upgrades (and forwards everything
 * else, streaming): the client falls back to SSE, works (publish, receive), and stays on SSE for
 * its next connections. Without such a proxy it uses WebSocket.
 */
import { afterEach, expect, inject, it } from "vitest";
import { uniqueRoom, waitFor } from "../clients";
import { closeClients, connected, noUpgradeProxy, portOf, received, record } from "./helpers";

const baseUrl = inject("baseUrl");
afterEach(closeClients);

it("falls back to SSE when upgrades are refused, and sticks to it", async () => {
  const proxy = await noUpgradeProxy(portOf(baseUrl));
  try {
    const room = uniqueRoom("cl-auto");
    const a = record(proxy.url, room, { transport: "auto", since: 0, user: "ann" });
    await connected(a);
    expect(a.client.getSnapshot().transport).toBe("sse");
    expect(proxy.upgradesRefused()).toBe(1);
    const stored = await a.client.publish("through the proxy");
    expect(stored).toMatchObject({ seq: 1, user: "ann" });
    await received(a, 1);
    // A new connection (a rename reconnects) goes straight to SSE: no second upgrade.
    a.client.setUser("bob");
    await waitFor(
      "the reconnect",
      () => a.client.getSnapshot().reconnects === 1 && a.client.getSnapshot().state === "connected",
    );
    expect(await a.client.publish("again")).toMatchObject({ seq: 2, user: "bob" });
    await received(a, 2);
    expect(a.texts()).toEqual(["through the proxy", "again"]);
    expect(proxy.upgradesRefused()).toBe(1);
    expect(a.client.getSnapshot().transport).toBe("sse");
  } finally {
    await proxy.close();
  }
});

it("uses WebSocket where upgrades work", async () => {
  const a = record(baseUrl, uniqueRoom("cl-auto-ws"), { transport: "auto" });
  await connected(a);
  expect(a.client.getSnapshot().transport).toBe("websocket");
});
