/**
 * A page that goes offline while the others keep talking comes back with every message exactly
 * once, in order, and what was typed meanwhile is shown as pending at once and stored once.
 *
 * Two ways of going offline, because Chromium's offline emulation (context.setOffline) is not a
 * network loss for connections that are already open: it fails new requests, but an open WebSocket
 * stays open with its frames held (both ways) until the network is back, and an open SSE response or
 * fetch stream keeps flowing. So with setOffline alone a WebSocket page sees silence, not a
 * disconnect: for a short outage (this test's, under the client's liveness bound: a heartbeat after
 * 5 s of silence, 5 s for its answer) it stays "connected", its message waits as "sending…", and
 * everything arrives when the frames are let through. The second test also resets every connection
 * (a proxy between the page and the relay, cut), which is what a page sees when its network really
 * goes: there the client must notice, reconnect and resume from its last offset, on every
 * transport. test/e2e/client/retry.test.ts has a connection that goes silent for good, found dead
 * by its heartbeat.
 */
import { afterAll, describe, expect, inject, it } from "vitest";
import { uniqueRoom } from "../clients";
import {
  type DemoPage,
  expectNoProblems,
  NETWORK_NOISE,
  oneTo,
  openDemo,
  type PageView,
  roomLog,
  say,
  type Transport,
  useBrowser,
  view,
  waitConnected,
  waitView,
} from "./browser";
import { type CutProxy, startCutProxy } from "./cut-proxy";

const browser = useBrowser();
const pages: DemoPage[] = [];
const proxies: CutProxy[] = [];
afterAll(async () => {
  await Promise.all(pages.map((p) => p.context.close().catch(() => {})));
  await Promise.all(proxies.map((p) => p.close()));
});

async function open(room: string, user: string, transport: Transport, proxy?: CutProxy): Promise<DemoPage> {
  const p = await openDemo(browser(), inject("baseUrl"), { room, user, transport }, { proxy: proxy?.url });
  pages.push(p);
  await waitConnected(p.page);
  return p;
}

/** Every stored message exactly once and in order: data-seq is 1..n. */
const complete = (n: number) => (v: PageView) => v.seqs.length === n && v.pending.length === 0;

describe("a page that goes offline", () => {
  it("with Chromium's offline mode: its message waits as pending, nothing is lost or doubled when it is back", async () => {
    const baseUrl = inject("baseUrl");
    const room = uniqueRoom("offline");
    const ann = await open(room, "ann", "websocket");
    const bob = await open(room, "bob", "websocket");
    await say(ann.page, "before");
    await waitView(bob.page, "the first message", complete(1));

    await bob.context.setOffline(true);
    for (const text of ["while bob is away 1", "while bob is away 2"]) {
      await say(ann.page, text);
    }
    await say(bob.page, "typed offline");
    // Shown at once, as pending, and not stored: the frame is held in the browser.
    const offline = await waitView(bob.page, "the pending line", (v) => v.pending.length === 1);
    expect(offline.pending[0]).toMatchObject({ pending: "true", text: "typed offline" });
    const pendingId = offline.pending[0].id;
    await waitView(ann.page, "ann's messages stored", complete(3));
    await bob.page.waitForTimeout(500);
    expect((await roomLog(baseUrl, room)).map((e) => e.text)).toEqual([
      "before",
      "while bob is away 1",
      "while bob is away 2",
    ]);
    expect((await view(ann.page)).messages.map((m) => m.text)).not.toContain("typed offline");

    await bob.context.setOffline(false);
    for (const p of [ann, bob]) {
      const v = await waitView(p.page, "all four messages, none pending", complete(4));
      expect(v.seqs).toEqual(oneTo(4));
      expect(v.messages[3]).toMatchObject({ id: pendingId, user: "bob", text: "typed offline", own: p === bob });
    }
    const log = await roomLog(baseUrl, room);
    expect(log.map((e) => e.seq)).toEqual(oneTo(4));
    expect(log.filter((e) => e.id === pendingId)).toHaveLength(1);
    await expectNoProblems(ann);
    await expectNoProblems(bob, NETWORK_NOISE);
  });

  it("when its network really goes (offline and every connection reset): reconnects and resumes on each transport", async () => {
    const baseUrl = inject("baseUrl");
    const room = uniqueRoom("cut");
    const proxy = await startCutProxy();
    proxies.push(proxy);
    const ann = await open(room, "ann", "websocket");
    const away = {
      websocket: await open(room, "wes", "websocket", proxy),
      sse: await open(room, "sam", "sse", proxy),
      connect: await open(room, "cory", "connect", proxy),
    };
    const everyone = [ann, ...Object.values(away)];
    await say(ann.page, "before");
    for (const p of everyone) await waitView(p.page, "the first message", complete(1));
    expect(proxy.connections()).toBeGreaterThan(0);

    for (const p of Object.values(away)) await p.context.setOffline(true);
    proxy.cut();
    const typed = new Map<DemoPage, string>();
    for (const [transport, p] of Object.entries(away)) {
      await waitView(p.page, `${transport}: disconnected`, (v) => v.state === "disconnected");
      typed.set(p, `typed offline on ${transport}`);
      await say(p.page, `typed offline on ${transport}`);
      const v = await waitView(p.page, "the pending line", (x) => x.pending.length === 1);
      expect(v.pending[0]).toMatchObject({ pending: "true", status: "pending: sends when reconnected" });
    }
    const said = ["while they are away 1", "while they are away 2", "while they are away 3"];
    for (const text of said) await say(ann.page, text);
    await waitView(ann.page, "ann's messages stored", complete(4));
    for (const p of Object.values(away)) expect((await view(p.page)).seqs).toEqual([1]);
    const pendingIds = await Promise.all(Object.values(away).map(async (p) => (await view(p.page)).pending[0].id));

    proxy.restore();
    for (const p of Object.values(away)) await p.context.setOffline(false);
    for (const p of everyone) {
      const v = await waitView(p.page, "every message, none pending", complete(7), 15_000);
      expect(v.seqs).toEqual(oneTo(7));
      expect(v.messages.slice(0, 4).map((m) => m.text)).toEqual(["before", ...said]);
      expect(
        v.messages
          .slice(4)
          .map((m) => m.text)
          .sort(),
      ).toEqual([...typed.values()].sort());
      if (p !== ann) {
        expect(v.state).toBe("connected");
        expect(v.reconnects).toBeGreaterThanOrEqual(1);
        const own = v.messages.filter((m) => m.own);
        expect(own.map((m) => m.text)).toEqual([typed.get(p)]);
      }
    }
    const log = await roomLog(baseUrl, room);
    expect(log.map((e) => e.seq)).toEqual(oneTo(7));
    for (const id of pendingIds) expect(log.filter((e) => e.id === id)).toHaveLength(1);
    // Presence caught up too: one connection each, on the right transport (no ghost of the cut one).
    await waitView(ann.page, "the member list after the reconnects", (v) =>
      ["ann:websocket", "wes:websocket", "sam:sse", "cory:connect"].every((want) =>
        v.members.some((m) => `${m.user}:${m.transports}` === want && m.connections === 1),
      ),
    );
    await expectNoProblems(ann);
    for (const p of Object.values(away)) await expectNoProblems(p, NETWORK_NOISE);
  });
});
