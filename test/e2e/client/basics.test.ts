/**
 * The client against the suite's relay, on every transport: it connects, delivers each stored
 * event once and in order (its own publishes too, whose acks may come before their events), reads
 * history and presence, keeps members from join/leave, renames, keeps the useSyncExternalStore
 * contract, and close() ends everything.
 */
import { type ClientSnapshot, RelayError } from "@edge-relay/client";
import { afterEach, describe, expect, inject, it } from "vitest";
import { getJson, publishJson, uniqueRoom, waitFor } from "../clients";
import { assertOnceInOrder, closeClients, connected, received, record, TRANSPORTS } from "./helpers";

const baseUrl = inject("baseUrl");
afterEach(closeClients);

describe.each(TRANSPORTS)("%s", (transport) => {
  it("replays, goes live, publishes: every message once, in order", async () => {
    const room = uniqueRoom(`cl-basic-${transport}`);
    for (const text of ["one", "two"]) expect((await publishJson(baseUrl, room, { text })).status).toBe(201);
    const a = record(baseUrl, room, { transport, since: 0, user: "ann" });
    const live = record(baseUrl, room, { transport, user: "bob" }); // live only: no replay
    await connected(a);
    await connected(live);
    await received(a, 2);
    expect(a.client.getSnapshot()).toMatchObject({ transport, lastSeq: 2, reconnects: 0, pending: 0 });

    const published = await Promise.all(["three", "four", "five"].map((t) => a.client.publish(t)));
    expect(published.map((p) => [p.seq, p.user, p.duplicate])).toEqual([
      [3, "ann", false],
      [4, "ann", false],
      [5, "ann", false],
    ]);
    await received(a, 5);
    await received(live, 3);
    expect(a.texts()).toEqual(["one", "two", "three", "four", "five"]);
    expect(live.texts()).toEqual(["three", "four", "five"]);
    assertOnceInOrder(a.messages);
    expect(a.messages.slice(2)).toEqual(published.map(({ duplicate, ...e }) => e));
    expect(a.messages[0]).toMatchObject({ room, seq: 1, user: "anonymous", text: "one" });
    expect(typeof a.messages[0].timeMs).toBe("number");

    // The same id again: the original event, not a second one.
    const again = await a.client.publish("three (retry)", { id: published[0].id });
    expect(again).toMatchObject({ seq: 3, text: "three", duplicate: true });

    const page = await a.client.history({ since: 1, limit: 2 });
    expect(page).toMatchObject({ firstSeq: 1, lastSeq: 5, hasMore: true });
    expect(page.events.map((e) => e.text)).toEqual(["two", "three"]);
    expect(page.epoch).toBe(a.client.getSnapshot().epoch);
    const history = await getJson<{ events: unknown[] }>(baseUrl, `/rooms/${room}/messages?since=0`);
    expect(history.body.events).toHaveLength(5);
    expect(a.client.getSnapshot().pending).toBe(0);
  });

  it("refuses what no retry can fix, at once", async () => {
    const room = uniqueRoom(`cl-refuse-${transport}`);
    const a = record(baseUrl, room, { transport });
    await connected(a);
    await expect(a.client.publish("")).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(a.client.publish("x\ud800")).rejects.toMatchObject({ code: "invalid_encoding" });
    // Larger than MAX_MESSAGE_BYTES (64 KiB): the relay refuses it; the client stays connected.
    const err = await a.client.publish("x".repeat(70_000)).catch((e) => e);
    expect(err).toBeInstanceOf(RelayError);
    expect(err.code).toBe("too_large");
    const ok = await a.client.publish("small");
    expect(ok.text).toBe("small");
    await connected(a);
    expect(a.client.getSnapshot().pending).toBe(0);
    // One byte over the text limit, well within the frame limit: refused by id, the connection goes on.
    const before = a.client.getSnapshot().reconnects;
    const over = await a.client.publish("x".repeat(65_537)).catch((e) => e);
    expect(over).toMatchObject({ code: "too_large" });
    expect((await a.client.publish("still here")).text).toBe("still here");
    expect(a.client.getSnapshot()).toMatchObject({ state: "connected", reconnects: before, pending: 0 });
  });

  it("presence: members from join and leave, and presence()", async () => {
    const room = uniqueRoom(`cl-presence-${transport}`);
    const watcher = record(baseUrl, room, { transport, user: "watcher", presence: true });
    const self = "watcher"; // on Connect too: SubscribeRequest.user names an anonymous subscriber
    await connected(watcher);
    await waitFor("the watcher itself", () => watcher.client.getSnapshot().members.some((m) => m.user === self));
    const other = record(baseUrl, room, { transport: "websocket", user: "zoe" });
    await connected(other);
    await waitFor("zoe's join", () => watcher.joins.some((m) => m.user === "zoe"));
    const zoe = watcher.client.getSnapshot().members.find((m) => m.user === "zoe");
    expect(zoe).toMatchObject({ user: "zoe", connections: 1, transports: ["websocket"] });
    expect(typeof zoe?.connectedAtMs).toBe("number");
    const members = await watcher.client.presence();
    expect(members.map((m) => m.user).sort()).toEqual([self, "zoe"].sort());
    // Presence events are not log events: the resume point does not move.
    expect(watcher.client.getSnapshot().lastSeq).toBe(0);
    other.client.close();
    await waitFor("zoe's leave", () => watcher.leaves.some((m) => m.user === "zoe"), 10_000);
    expect(watcher.client.getSnapshot().members.map((m) => m.user)).toEqual([self]);
    // Without presence: no members, no events.
    const plain = record(baseUrl, room, { transport });
    await connected(plain);
    expect(plain.client.getSnapshot().members).toEqual([]);
  });

  it("setUser reconnects under the new name and keeps the conversation", async () => {
    const room = uniqueRoom(`cl-rename-${transport}`);
    const a = record(baseUrl, room, { transport, user: "old", since: 0 });
    await connected(a);
    expect((await a.client.publish("as old")).user).toBe("old");
    await received(a, 1);
    a.client.setUser("new");
    await publishJson(baseUrl, room, { text: "while renaming" });
    await waitFor(
      "the reconnect",
      () => a.client.getSnapshot().reconnects === 1 && a.client.getSnapshot().state === "connected",
    );
    expect((await a.client.publish("as new")).user).toBe("new");
    await received(a, 3);
    expect(a.texts()).toEqual(["as old", "while renaming", "as new"]);
    assertOnceInOrder(a.messages);
  });
});

it("useSyncExternalStore: the same snapshot until something changes; unsubscribe stops the calls", async () => {
  const room = uniqueRoom("cl-store");
  const a = record(baseUrl, room);
  const first = a.client.getSnapshot();
  expect(a.client.getSnapshot()).toBe(first);
  expect(first.state).toBe("connecting");
  let calls = 0;
  const seen: ClientSnapshot[] = [];
  const unsubscribe = a.client.subscribe(() => {
    calls++;
    seen.push(a.client.getSnapshot());
  });
  await connected(a);
  const up = a.client.getSnapshot();
  expect(up).not.toBe(first);
  expect(up.state).toBe("connected");
  // Nothing changes: the same object, however often it is read, and no calls.
  const before = calls;
  await new Promise((r) => setTimeout(r, 300));
  expect(a.client.getSnapshot()).toBe(up);
  expect(a.client.getSnapshot()).toBe(a.client.getSnapshot());
  expect(calls).toBe(before);
  // Every call saw a different object than the one before (nothing notified for nothing).
  for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toBe(seen[i - 1]);
  expect(Object.isFrozen(up)).toBe(true);

  await a.client.publish("hi");
  await received(a, 1);
  const after = a.client.getSnapshot();
  expect(after).not.toBe(up);
  expect(after.lastSeq).toBe(1);
  unsubscribe();
  const n = calls;
  a.client.close();
  expect(a.client.getSnapshot().state).toBe("closed");
  expect(calls).toBe(n);
});

it("close(): state closed, pending publishes reject, later calls reject", async () => {
  const room = uniqueRoom("cl-close");
  const a = record(baseUrl, "cl-close-never-connects", { url: "http://127.0.0.1:9" } as never);
  const p = a.client.publish("never sent");
  expect(a.client.getSnapshot().pending).toBe(1);
  a.client.close();
  await expect(p).rejects.toMatchObject({ code: "closed" });
  expect(a.client.getSnapshot()).toMatchObject({ state: "closed", pending: 0 });
  await expect(a.client.publish("after")).rejects.toMatchObject({ code: "closed" });
  await expect(a.client.history()).rejects.toMatchObject({ code: "closed" });
  expect(a.states.at(-1)?.state).toBe("closed");
  void room;
});
