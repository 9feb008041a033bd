/**
 * The demo page in headless Chromium against the suite's `wrangler dev`: three people on the three
 * transports chat and see each other in the member list; a rename keeps the conversation; the page
 * is accessible in the ways a test can see; user text with HTML in it stays text under a strict CSP.
 * Saves a screenshot of the chat to test-results/demo.png; with UPDATE_SCREENSHOT=1, to
 * docs/demo.png (the README's) instead, so an ordinary run leaves the checkout as it was.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, inject, it } from "vitest";
import { uniqueRoom } from "../clients";
import {
  collectProblems,
  type DemoPage,
  type El,
  expectNoProblems,
  oneTo,
  openDemo,
  type PageGlobal,
  roomLog,
  say,
  useBrowser,
  view,
  waitConnected,
  waitView,
} from "./browser";

const SCREENSHOT = fileURLToPath(
  new URL(
    process.env.UPDATE_SCREENSHOT === "1" ? "../../../docs/demo.png" : "../../../test-results/demo.png",
    import.meta.url,
  ),
);

const browser = useBrowser();
const pages: DemoPage[] = [];
afterAll(async () => {
  await Promise.all(pages.map((p) => p.context.close().catch(() => {})));
});

async function open(query: Parameters<typeof openDemo>[2]): Promise<DemoPage> {
  const p = await openDemo(browser(), inject("baseUrl"), query);
  pages.push(p);
  return p;
}

describe("the demo page", () => {
  it("lets people on WebSocket, SSE and Connect chat, shows who is online on which transport, and keeps the conversation through a rename", async () => {
    const baseUrl = inject("baseUrl");
    const room = uniqueRoom("demo");
    const ann = await open({ room, user: "ann", transport: "websocket" });
    const bob = await open({ room, user: "bob", transport: "sse" });
    const cat = await open({ room, user: "cat", transport: "connect" });
    const everyone = [ann, bob, cat];
    for (const p of everyone) await waitConnected(p.page);
    expect((await view(ann.page)).transport).toBe("websocket");
    expect((await view(bob.page)).transport).toBe("sse");
    expect((await view(cat.page)).transport).toBe("connect");

    // Everyone sees everyone, each on the transport they picked, one connection each.
    const roster = [
      { user: "ann", transports: "websocket", connections: 1 },
      { user: "bob", transports: "sse", connections: 1 },
      { user: "cat", transports: "connect", connections: 1 },
    ];
    for (const p of everyone) {
      await waitView(p.page, "all three members", (v) => v.members.length === 3);
      const v = await view(p.page);
      expect(v.members.map(({ you, ...m }) => m).sort((a, b) => a.user.localeCompare(b.user))).toEqual(roster);
      expect(v.members.filter((m) => m.you).map((m) => m.user)).toEqual([
        p === ann ? "ann" : p === bob ? "bob" : "cat",
      ]);
    }

    const script: [DemoPage, string][] = [
      [ann, "Hi both! I'm on a WebSocket."],
      [bob, "Hello from Server-Sent Events."],
      [cat, "And I'm streaming over Connect."],
      [ann, "Every message gets an offset, in one order for all of us."],
    ];
    for (const [i, [p, text]] of script.entries()) {
      await say(p.page, text);
      // One after another, so the order in the log is the order of the script.
      await waitView(p.page, `message ${i + 1} stored`, (v) => v.seqs.length === i + 1);
    }
    const who = (p: DemoPage) => (p === ann ? "ann" : p === bob ? "bob" : "cat");
    for (const p of everyone) {
      const v = await waitView(p.page, "all four messages", (x) => x.seqs.length === 4);
      expect(v.seqs).toEqual(oneTo(4));
      expect(v.messages.map((m) => [m.user, m.text])).toEqual(script.map(([q, text]) => [who(q), text]));
      // One's own messages are set apart; every line shows its delivery latency.
      expect(v.messages.map((m) => m.own)).toEqual(script.map(([q]) => q === p));
      for (const m of v.messages) expect(m.latency).toMatch(/^delivery \d+(\.\d)? (ms|s)$/);
      expect(v.pending).toEqual([]);
    }
    // Own lines say so in words too (for screen readers), not only by colour and place.
    expect(await ann.page.locator("#messages > li[data-own=true] .author").first().textContent()).toBe("ann (you)");
    expect((await roomLog(baseUrl, room)).map((e) => e.text)).toEqual(script.map(([, text]) => text));

    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await ann.page.locator("#text").fill("Sure, and look who's online →");
    await ann.page.screenshot({ path: SCREENSHOT, animations: "disabled", caret: "hide" });
    await ann.page.locator("#text").fill("");

    // Bob renames himself: the page reconnects under the new name and the conversation stays.
    await bob.page.locator("#user").fill("robert");
    await bob.page.locator("#user").press("Enter");
    await waitView(bob.page, "the rename", (v) => v.members.some((m) => m.user === "robert" && m.you));
    await waitConnected(bob.page);
    await say(bob.page, "bob is robert now");
    for (const p of everyone) {
      const v = await waitView(p.page, "message 5", (x) => x.seqs.length === 5);
      expect(v.seqs).toEqual(oneTo(5));
      expect(v.messages[4]).toMatchObject({ user: "robert", text: "bob is robert now", own: p === bob });
      await waitView(
        p.page,
        "robert in the member list, bob gone",
        (x) => x.members.some((m) => m.user === "robert") && !x.members.some((m) => m.user === "bob"),
      );
    }
    // Bob's earlier messages are still his.
    expect((await view(bob.page)).messages.filter((m) => m.own).map((m) => m.seq)).toEqual([2, 5]);

    for (const p of everyone) await expectNoProblems(p);
  });

  it("is usable from the keyboard, labels every control and keeps text at WCAG AA contrast", async () => {
    const room = uniqueRoom("a11y");
    const p = await open({ room, user: "kim", transport: "auto" });
    await waitConnected(p.page);
    await say(p.page, "contrast check");
    await waitView(p.page, "the message", (v) => v.seqs.length === 1);

    // Tab order reaches every control, and the focused one has a visible outline.
    await p.page.locator("body").click({ position: { x: 1, y: 1 } });
    const focused: string[] = [];
    for (let i = 0; i < 8; i++) {
      await p.page.keyboard.press("Tab");
      focused.push(
        await p.page.evaluate(() => {
          const d = (globalThis as unknown as PageGlobal).document as unknown as {
            activeElement: El & { id: string; tagName: string };
          };
          const el = d.activeElement;
          const style = (
            globalThis as unknown as { getComputedStyle(e: unknown): { outlineStyle: string; outlineWidth: string } }
          ).getComputedStyle(el);
          const outline = style.outlineStyle !== "none" && Number.parseFloat(style.outlineWidth) >= 2;
          return `${el.id || el.tagName.toLowerCase()}${outline ? "" : " (no outline)"}`;
        }),
      );
    }
    expect(focused).toEqual(["room", "user", "transport", "join", "room-link", "log", "text", "send"]);

    // Sending with the keyboard alone: type, Enter.
    await p.page.locator("#text").focus();
    await p.page.keyboard.type("typed, not clicked");
    await p.page.keyboard.press("Enter");
    await waitView(p.page, "the typed message", (v) => v.seqs.length === 2);

    // Labels and live region.
    for (const id of ["room", "user", "transport", "text"]) {
      expect(await p.page.locator(`label[for="${id}"]`).count(), `label for #${id}`).toBe(1);
    }
    expect(await p.page.locator("#messages").getAttribute("aria-live")).toBe("polite");
    expect(await p.page.locator("#state").getAttribute("role")).toBe("status");

    // Contrast of every piece of visible text against its background (WCAG AA: 4.5:1, 3:1 for large text).
    const low = await p.page.evaluate(() => {
      type Rgba = [number, number, number, number];
      type Node = {
        nodeType: number;
        parentElement: Node | null;
        textContent: string | null;
        childNodes: ArrayLike<Node>;
        tagName: string;
        id: string;
        className: string;
        getClientRects(): ArrayLike<unknown>;
      };
      const g = globalThis as unknown as {
        document: { body: Node };
        getComputedStyle(e: Node): { color: string; backgroundColor: string; fontSize: string; fontWeight: string };
      };
      const parse = (c: string): Rgba => {
        const n = (c.match(/[\d.]+/g) ?? []).map(Number);
        return [n[0] ?? 0, n[1] ?? 0, n[2] ?? 0, n[3] ?? 1];
      };
      const lum = ([r, gr, b]: Rgba) => {
        const f = (v: number) => {
          const s = v / 255;
          return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
        };
        return 0.2126 * f(r) + 0.7152 * f(gr) + 0.0722 * f(b);
      };
      const background = (el: Node | null): Rgba => {
        for (let e = el; e; e = e.parentElement) {
          const bg = parse(g.getComputedStyle(e).backgroundColor);
          if (bg[3] > 0) return bg;
        }
        return [255, 255, 255, 1];
      };
      const problems: string[] = [];
      const walk = (node: Node) => {
        for (const child of Array.from(node.childNodes)) {
          if (child.nodeType === 1) walk(child);
          else if (child.nodeType === 3 && child.textContent?.trim() && node.getClientRects().length) {
            const cls = String(node.className);
            if (cls.includes("vh")) continue;
            const s = g.getComputedStyle(node);
            const ratio = (() => {
              const a = lum(parse(s.color));
              const b = lum(background(node));
              return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            })();
            const size = Number.parseFloat(s.fontSize);
            const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
            if (ratio < (large ? 3 : 4.5)) {
              problems.push(`${node.tagName}#${node.id}.${cls} "${child.textContent.trim()}": ${ratio.toFixed(2)}`);
            }
          }
        }
      };
      walk(g.document.body);
      return problems;
    });
    expect(low).toEqual([]);
    await expectNoProblems(p);
  });

  it("shows user text with HTML in it as text, under a CSP that the page itself never trips", async () => {
    const baseUrl = inject("baseUrl");
    const room = uniqueRoom("xss");
    const evilName = `<img src=x onerror="globalThis.__pwned='name'">`;
    const ann = await open({ room, user: "ann", transport: "websocket" });
    const eve = await open({ room, user: evilName, transport: "sse" });
    await waitConnected(ann.page);
    await waitConnected(eve.page);
    const texts = [
      `<img src=x onerror="globalThis.__pwned='text'">`,
      "<script>globalThis.__pwned='script'</script><b>bold?</b>",
      `<a href="javascript:globalThis.__pwned='link'">click</a> & &amp; &lt;`,
    ];
    for (const [i, text] of texts.entries()) {
      await say(eve.page, text);
      await waitView(eve.page, `message ${i + 1}`, (v) => v.seqs.length === i + 1);
    }
    for (const p of [ann, eve]) {
      const v = await waitView(p.page, "the three messages", (x) => x.seqs.length === 3);
      expect(v.messages.map((m) => m.text)).toEqual(texts);
      expect(v.messages.map((m) => m.user)).toEqual([evilName, evilName, evilName]);
      await waitView(p.page, "eve in the member list", (x) => x.members.some((m) => m.user === evilName));
      // Nothing the users typed became an element, ran, or was even tried (no CSP violation either).
      expect(
        await p.page.locator("#messages img, #messages script, #messages b, #messages a, #members img").count(),
      ).toBe(0);
      expect(await p.page.evaluate(() => (globalThis as unknown as { __pwned?: string }).__pwned)).toBeUndefined();
      await expectNoProblems(p);
    }
    expect((await roomLog(baseUrl, room)).map((e) => e.text)).toEqual(texts);

    // The policy is enforced (and the violation record above works): with Trusted Types, HTML from a
    // string cannot get into the page at all, and nothing reaches another origin.
    const attempts = await ann.page.evaluate(async () => {
      const g = globalThis as unknown as {
        document: { body: { insertAdjacentHTML(where: string, html: string): void } };
        fetch(url: string): Promise<unknown>;
      };
      const out: string[] = [];
      try {
        g.document.body.insertAdjacentHTML("beforeend", `<img src="/x" onerror="globalThis.__pwned='injected'">`);
        out.push("insertAdjacentHTML worked");
      } catch (e) {
        out.push(String(e).includes("TrustedHTML") ? "insertAdjacentHTML refused" : String(e));
      }
      try {
        await g.fetch("http://127.0.0.2:9/");
        out.push("fetch worked");
      } catch {
        out.push("fetch refused");
      }
      return out;
    });
    expect(attempts).toEqual(["insertAdjacentHTML refused", "fetch refused"]);
    await expect
      .poll(async () => [...new Set((await collectProblems(ann)).csp.map((line) => line.split(" ")[0]))].sort(), {
        timeout: 5000,
      })
      .toEqual(["connect-src", "require-trusted-types-for"]);
    expect(await ann.page.evaluate(() => (globalThis as unknown as { __pwned?: string }).__pwned)).toBeUndefined();

    // The policy is the header's, not a <meta> (a meta cannot set frame-ancestors).
    const res = await ann.page.request.get(`${baseUrl}/`);
    expect(res.headers()["content-security-policy"]).toMatch(/default-src 'none'.*frame-ancestors 'none'/);
    expect(await res.text()).not.toMatch(/http-equiv/i);
  });
});
