/**
 * A server restart mid-conversation: clients on every transport keep going by themselves
 * (reconnect with backoff, resume from their last offset), publishes made while the relay is down
 * wait in their queues and are stored once when it is back, and every client ends up with every
 * message exactly once, in order, the same as the room's history.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
import { getJson, uniqueRoom, waitFor } from "../clients";
import { assertOnceInOrder, closeClients, connected, received, record, TRANSPORTS } from "./helpers";

const persistTo = mkdtempSync(join(tmpdir(), "relay-client-restart-"));
const servers: DevServer[] = [];
afterAll(async () => {
  closeClients();
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(persistTo, { recursive: true, force: true });
});

it("every transport's client survives a restart with every message once, in order", {
  timeout: 2 * READY_TIMEOUT_MS + 30_000,
}, async () => {
  const first = await startDevServer({ persistTo });
  servers.push(first);
  const { baseUrl, port } = first;
  const room = uniqueRoom("cl-restart");
  const clients = TRANSPORTS.map((transport) => record(baseUrl, room, { transport, since: 0, user: transport }));
  await Promise.all(clients.map((c) => connected(c)));

  const say = (stage: string) => Promise.all(clients.map((c, i) => c.client.publish(`${stage} from ${TRANSPORTS[i]}`)));
  await say("before 1");
  await say("before 2");
  await Promise.all(clients.map((c) => received(c, 6)));

  await first.stop();
  await Promise.all(
    clients.map((c) => waitFor("the client to notice", () => c.client.getSnapshot().state !== "connected", 10_000)),
  );
  // Published while the relay is down: queued, not lost, not failed.
  const whileDown = say("while down");
  await new Promise((r) => setTimeout(r, 300));
  for (const c of clients) expect(c.client.getSnapshot().pending).toBe(1);

  const second = await startDevServer({ persistTo, port });
  servers.push(second);
  const stored = await whileDown;
  expect(stored.every((e) => !e.duplicate)).toBe(true);
  await say("after");
  await Promise.all(clients.map((c) => received(c, 12, 20_000)));

  const history = await getJson<{ events: { text: string; seq: string }[] }>(
    baseUrl,
    `/rooms/${room}/messages?since=0`,
  );
  expect(history.body.events.map((e) => e.seq)).toEqual(Array.from({ length: 12 }, (_, i) => String(i + 1)));
  for (const c of clients) {
    assertOnceInOrder(c.messages);
    expect(c.texts()).toEqual(history.body.events.map((e) => e.text));
    expect(c.client.getSnapshot()).toMatchObject({ state: "connected", lastSeq: 12, pending: 0 });
    expect(c.client.getSnapshot().reconnects).toBeGreaterThanOrEqual(1);
    expect(c.states.some((s) => s.state === "disconnected")).toBe(true);
  }
});
