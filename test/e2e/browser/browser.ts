/**
 * Headless Chromium (playwright-core, the Debian package's binary) driving the demo page. Every
 * page gets a browser context of its own (its own cookies, storage and network: setOffline cuts one
 * page off, not the others) and records what would show a broken page: console errors, uncaught
 * exceptions and Content-Security-Policy violations. Every wait is bounded.
 */
import { existsSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, expect } from "vitest";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
/** The client bundle the page imports; `npm test` and `npm start` build it (scripts/build-client.mjs). */
export const CLIENT_BUNDLE = fileURLToPath(new URL("../../../public/relay-client.js", import.meta.url));
/** Bound of every wait for the page. */
export const WAIT_MS = 10_000;

/**
 * The little of the DOM the in-page functions below use, typed here: the e2e project compiles for
 * Node (no "dom" lib, which would change fetch's types for every other test). page.evaluate sends
 * those functions' source to the page, so they name nothing from this module but types.
 */
export interface El {
  textContent: string | null;
  dataset: Record<string, string | undefined>;
  querySelector(selector: string): El | null;
  querySelectorAll(selector: string): ArrayLike<El>;
}
export interface Doc extends El {
  getElementById(id: string): El | null;
  addEventListener(type: string, listener: (e: Record<string, unknown>) => void): void;
}
export type PageGlobal = { document: Doc; __csp: string[] };

export type Transport = "websocket" | "sse" | "connect" | "auto";

export interface Problems {
  console: string[];
  csp: string[];
  errors: string[];
}

export interface DemoPage {
  page: Page;
  context: BrowserContext;
  problems: Problems;
}

/**
 * Launches Chromium, or throws a message saying what is missing: a browser test never skips.
 * playwright's launch() gives it a fresh profile (--user-data-dir in a temp directory, removed on close).
 */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: the browser tests need it (Debian: apt-get install chromium; ` +
        "elsewhere set CHROMIUM_PATH to a Chromium or Chrome binary). They do not download a browser.",
    );
  }
  if (!existsSync(CLIENT_BUNDLE) || statSync(CLIENT_BUNDLE).size === 0) {
    throw new Error(
      `${CLIENT_BUNDLE} is missing: the demo page imports it. Build it with node scripts/build-client.mjs ` +
        "(npm test and npm start do) before the dev server starts.",
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    // Headless is playwright's default (--headless); the rest keep Chromium off the network and quiet.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 30_000,
  });
}

/**
 * The test file's browser: launched before its tests, closed after them (and with it every context).
 * A launch that fails (no Chromium, no client bundle) fails each test of the file with its message,
 * rather than leaving them skipped under a failed hook.
 */
export function useBrowser(): () => Browser {
  let browser: Browser | undefined;
  let failure: unknown;
  beforeAll(async () => {
    try {
      browser = await launchBrowser();
    } catch (e) {
      failure = e;
    }
  });
  afterAll(async () => {
    await browser?.close().catch(() => {});
  });
  return () => {
    if (browser) return browser;
    throw failure ?? new Error("the browser was not launched");
  };
}

/** Opens the demo page at `baseUrl` in a context of its own, with the given query (?room=&user=&transport=). */
export async function openDemo(
  browser: Browser,
  baseUrl: string,
  query: { room: string; user?: string; transport?: Transport },
  options: { viewport?: { width: number; height: number }; proxy?: string } = {},
): Promise<DemoPage> {
  const context = await browser.newContext({
    viewport: options.viewport ?? { width: 900, height: 640 },
    deviceScaleFactor: 1,
    locale: "en-GB",
    timezoneId: "UTC",
    // "<-loopback>": through the proxy even to 127.0.0.1, which Chromium otherwise always reaches directly.
    proxy: options.proxy ? { server: options.proxy, bypass: "<-loopback>" } : undefined,
  });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const problems: Problems = { console: [], csp: [], errors: [] };
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.errors.push(String(e)));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.console.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  // An init script runs before the page's own (and is not subject to its CSP): it records violations.
  await context.addInitScript(() => {
    const w = globalThis as unknown as PageGlobal;
    w.__csp = [];
    w.document.addEventListener("securitypolicyviolation", (e) => {
      w.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  const q = new URLSearchParams(Object.entries(query).filter((kv): kv is [string, string] => kv[1] !== undefined));
  await page.goto(`${baseUrl}/?${q}`, { waitUntil: "load" });
  return { page, context, problems };
}

/** CSP violations the page saw so far, plus console errors and uncaught exceptions, for one expect. */
export async function collectProblems(p: DemoPage): Promise<Problems> {
  const csp = await p.page.evaluate(() => (globalThis as unknown as PageGlobal).__csp ?? []).catch(() => []);
  return { console: [...p.problems.console], csp, errors: [...p.problems.errors] };
}

/** Console lines that are expected while a page's network is cut or the server is down. */
export const NETWORK_NOISE =
  /ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_NETWORK_CHANGED|ERR_EMPTY_RESPONSE|ERR_INCOMPLETE_CHUNKED_ENCODING|WebSocket connection to .* failed|Failed to load resource|net::ERR_/;

/** Asserts the page had no CSP violation and no uncaught exception, and no console error but `allowed`. */
export async function expectNoProblems(p: DemoPage, allowed?: RegExp): Promise<void> {
  const found = await collectProblems(p);
  expect(found.csp).toEqual([]);
  expect(found.errors).toEqual([]);
  expect(found.console.filter((line) => !allowed?.test(line))).toEqual([]);
}

/** What the page shows, read in one go. */
export interface PageView {
  state: string;
  stateText: string;
  transport: string;
  reconnects: number;
  lastSeq: number;
  /** data-seq of every stored message line, in page order. */
  seqs: number[];
  messages: { seq: number; id: string; user: string; own: boolean; text: string; latency: string }[];
  pending: { id: string; pending: string; text: string; status: string }[];
  members: { user: string; transports: string; connections: number; you: boolean }[];
}

export function view(page: Page): Promise<PageView> {
  return page.evaluate(() => {
    const doc = (globalThis as unknown as PageGlobal).document;
    const text = (el: El | null) => el?.textContent ?? "";
    const all = (sel: string) => Array.from(doc.querySelectorAll(sel));
    const state = doc.getElementById("state") as El;
    const messages = all("#messages > li[data-seq]").map((li) => ({
      seq: Number(li.dataset.seq),
      id: li.dataset.id ?? "",
      user: li.dataset.user ?? "",
      own: li.dataset.own === "true",
      text: text(li.querySelector(".text")),
      latency: text(li.querySelector(".latency")),
    }));
    return {
      state: state.dataset.state ?? "",
      stateText: text(state),
      transport: text(doc.getElementById("transport-used")),
      reconnects: Number(text(doc.getElementById("reconnects"))),
      lastSeq: Number(text(doc.getElementById("last-seq"))),
      seqs: messages.map((m) => m.seq),
      messages,
      pending: all("[data-pending]").map((li) => ({
        id: li.dataset.id ?? "",
        pending: li.dataset.pending ?? "",
        text: text(li.querySelector(".text")),
        status: text(li.querySelector(".delivery")),
      })),
      members: all("#members > li").map((li) => ({
        user: li.dataset.user ?? "",
        transports: li.dataset.transports ?? "",
        connections: Number(li.dataset.connections),
        you: li.dataset.you === "true",
      })),
    };
  });
}

/** Polls the page's view until `check` holds; fails naming `what` with the last view. */
export async function waitView(
  page: Page,
  what: string,
  check: (v: PageView) => boolean,
  timeoutMs = WAIT_MS,
): Promise<PageView> {
  const deadline = Date.now() + timeoutMs;
  let last: PageView | undefined;
  while (true) {
    last = await view(page);
    if (check(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; the page shows:\n${JSON.stringify(last)}`);
    }
    await page.waitForTimeout(50);
  }
}

/** Types a message into the page and sends it with the Enter key, as a person would. */
export async function say(page: Page, text: string): Promise<void> {
  await page.locator("#text").fill(text);
  await page.locator("#text").press("Enter");
}

export function waitConnected(page: Page, timeoutMs = WAIT_MS): Promise<PageView> {
  return waitView(page, "the page to be connected", (v) => v.state === "connected", timeoutMs);
}

/** 1, 2, ..., n. */
export const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Every message in the room's log, over HTTP (the truth the pages are compared with). */
export async function roomLog(baseUrl: string, room: string): Promise<{ seq: number; id: string; text: string }[]> {
  const res = await fetch(`${baseUrl}/rooms/${room}/messages?since=0`, { signal: AbortSignal.timeout(5000) });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { events?: { seq: string; id: string; text: string }[] };
  return (body.events ?? []).map((e) => ({ seq: Number(e.seq), id: e.id, text: e.text }));
}
