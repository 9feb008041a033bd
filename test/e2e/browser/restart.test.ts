/**
 * The relay restarts under the pages (stopped, started again on the same port with the same
 * storage): every page notices, says so, reconnects by itself and resumes; a message typed while
 * the relay was down is stored once when it is back; nothing is lost or shown twice.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
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
  useBrowser,
  view,
  waitConnected,
  waitView,
} from "./browser";

const persistTo = mkdtempSync(join(tmpdir(), "relay-browser-restart-"));
const servers: DevServer[] = [];
const pages: DemoPage[] = [];
const browser = useBrowser();
afterAll(async () => {
  await Promise.all(pages.map((p) => p.context.close().catch(() => {})));
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(persistTo, { recursive: true, force: true });
});

const complete = (n: number) => (v: PageView) => v.seqs.length === n && v.pending.length === 0;

// Two starts in one test: its timeout leaves room for both starts' own bound.
it("recovers every page by itself when the relay restarts", { timeout: 2 * READY_TIMEOUT_MS + 30_000 }, async () => {
  // A 1 s heartbeat, as in the suite's server: SSE and Connect subscribers that went are noticed soon.
  const vars = { HEARTBEAT_SECONDS: "1" };
  const first = await startDevServer({ persistTo, vars });
  servers.push(first);
  const { baseUrl, port } = first;
  const room = uniqueRoom("restart");
  const open = async (user: string, transport: "websocket" | "sse" | "connect") => {
    const p = await openDemo(browser(), baseUrl, { room, user, transport });
    pages.push(p);
    await waitConnected(p.page);
    return p;
  };
  const ann = await open("ann", "websocket");
  const bob = await open("bob", "sse");
  const cy = await open("cy", "connect");
  const everyone = [ann, bob, cy];
  await say(ann.page, "before the restart");
  await say(bob.page, "me too");
  for (const p of everyone) await waitView(p.page, "two messages", complete(2));
  expect((await roomLog(baseUrl, room)).map((e) => e.seq)).toEqual([1, 2]);

  await first.stop();
  for (const p of everyone) {
    const v = await waitView(p.page, "the page to notice", (x) => x.state === "disconnected");
    expect(v.stateText).toMatch(/^Offline, reconnecting/);
  }
  await say(bob.page, "typed while the relay was down");
  const down = await waitView(bob.page, "the pending line", (v) => v.pending.length === 1);
  expect(down.pending[0]).toMatchObject({ pending: "true", status: "pending: sends when reconnected" });

  const second = await startDevServer({ persistTo, port, vars });
  servers.push(second);
  expect(second.baseUrl).toBe(baseUrl);
  // Backoff with full jitter, capped at 10 s: each page is back within one cap of the relay.
  for (const p of everyone) {
    const v = await waitConnected(p.page, 20_000);
    expect(v.reconnects).toBeGreaterThanOrEqual(1);
  }
  for (const p of everyone) await waitView(p.page, "the message typed while down, stored", complete(3));
  await say(cy.page, "after the restart");
  for (const p of everyone) {
    const v = await waitView(p.page, "the message after the restart", complete(4));
    expect(v.seqs).toEqual(oneTo(4));
    expect(v.messages.map((m) => m.text)).toEqual([
      "before the restart",
      "me too",
      "typed while the relay was down",
      "after the restart",
    ]);
  }
  const log = await roomLog(baseUrl, room);
  expect(log.map((e) => e.seq)).toEqual(oneTo(4));
  expect(log.filter((e) => e.text === "typed while the relay was down")).toHaveLength(1);
  expect((await view(ann.page)).lastSeq).toBe(4);
  for (const p of everyone) await expectNoProblems(p, NETWORK_NOISE);
});
