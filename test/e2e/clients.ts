/**
 * Small clients for the e2e tests: a `ws` WebSocket that records every frame, an EventSource that
 * records every event, HTTP helpers, and a bounded wait. Every wait has a timeout; every client
 * has a close() that the tests call in `finally`/`afterEach`.
 */
import { randomUUID } from "node:crypto";
import { EventSource, type EventSourceFetchInit } from "eventsource";
import WebSocket from "ws";

/** A ChatEvent in the protobuf JSON mapping (default values omitted, 64-bit integers as strings). */
export interface ChatEventJson {
  room: string;
  seq?: string;
  epoch: string;
  id?: string;
  user?: string;
  timeMs: string;
  kind: string;
  text?: string;
  firstSeq?: string;
  lastSeq?: string;
  reason?: string;
}

export interface ErrorJson {
  code: string;
  message: string;
  id?: string;
}

/** A server frame on `relay.v1.json`. */
export interface ServerFrameJson {
  event?: ChatEventJson;
  ack?: { event: ChatEventJson; duplicate?: boolean };
  error?: ErrorJson;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A room name no other test uses. */
export function uniqueRoom(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Polls `check` until it returns a value other than undefined/false; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false,
  timeoutMs = 5000,
  describe?: () => unknown,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      const state = describe
        ? `\nstate: ${JSON.stringify(describe(), (_k, v) => (typeof v === "bigint" ? String(v) : v), 1).slice(0, 4000)}`
        : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state}`);
    }
    await sleep(10);
  }
}

/** Like {@link waitFor} for an async check (polled every 50 ms). */
export async function waitForAsync<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined | false;
  while (true) {
    last = await check();
    if (last !== undefined && last !== false) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A WebSocket that records every frame it receives and how it was closed. */
export class WsClient {
  readonly ws: WebSocket;
  /**
   * Text frames, parsed as JSON, in order; a batch (`{"batch":{"events":[...]}}`, events published
   * together) is recorded as one `{"event":...}` frame per event.
   */
  readonly frames: unknown[] = [];
  /** How many batch frames arrived. */
  batches = 0;
  closed?: { code: number; reason: string };
  readonly #url: string;

  private constructor(ws: WebSocket, url: string) {
    this.ws = ws;
    this.#url = url;
    ws.on("message", (data, isBinary) => {
      if (isBinary) return void this.frames.push({ binary: true });
      const frame = JSON.parse(data.toString()) as { batch?: { events: unknown[] } };
      if (frame.batch) {
        this.batches++;
        for (const event of frame.batch.events) this.frames.push({ event });
      } else this.frames.push(frame);
    });
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
    });
    ws.on("error", () => {
      // Recorded by the close event that follows.
    });
  }

  /** Opens `url` (ws://...) with an optional subprotocol; resolves once open. */
  static async open(url: string, protocol?: string, timeoutMs = 10_000): Promise<WsClient> {
    const ws = protocol ? new WebSocket(url, protocol) : new WebSocket(url);
    const client = new WsClient(ws, url);
    await new Promise<void>((done, fail) => {
      const timer = setTimeout(() => {
        ws.terminate();
        fail(new Error(`WebSocket ${url} did not open in ${timeoutMs} ms`));
      }, timeoutMs);
      ws.once("open", () => {
        clearTimeout(timer);
        done();
      });
      ws.once("unexpected-response", (_req, res) => {
        clearTimeout(timer);
        fail(new Error(`WebSocket ${url} refused: HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.once("error", (e) => {
        clearTimeout(timer);
        fail(e);
      });
    });
    return client;
  }

  get protocol(): string {
    return this.ws.protocol;
  }

  send(data: string | Buffer): void {
    this.ws.send(data);
  }

  /** Sends a `relay.v1.json` publish frame. */
  publish(text: string, id?: string): void {
    this.send(JSON.stringify({ publish: id === undefined ? { text } : { text, id } }));
  }

  /** Waits until at least `n` frames have arrived; returns all frames. */
  async waitFrames(n: number, timeoutMs = 5000): Promise<unknown[]> {
    await waitFor(
      `${n} frames on ${this.#url}`,
      () => this.frames.length >= n,
      timeoutMs,
      () => this.frames,
    );
    return this.frames;
  }

  /** Waits for the first frame after index `from` that matches `pred`. */
  async waitFrame<T>(pred: (f: T) => boolean, from = 0, timeoutMs = 5000): Promise<T> {
    return waitFor(
      `a matching frame on ${this.#url}`,
      () => (this.frames.slice(from) as T[]).find(pred),
      timeoutMs,
      () => this.frames,
    );
  }

  /** Waits until the server closes the socket; returns the close code and reason. */
  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    return waitFor(`close of ${this.#url}`, () => this.closed, timeoutMs);
  }

  /** Closes the socket and waits (bounded) for the close handshake; terminates if it hangs. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000, "test done");
    try {
      await waitFor("close handshake", () => this.closed, 2000);
    } catch {
      this.ws.terminate();
    }
  }
}

/** One event an EventSource delivered. */
export interface SseEvent {
  type: string;
  lastEventId: string;
  data: ChatEventJson;
}

/** An EventSource that records `subscribed`, `gap` and `message` events, opens and errors. */
export class SseClient {
  readonly es: EventSource;
  readonly events: SseEvent[] = [];
  opens = 0;
  readonly errors: string[] = [];
  /** With `lastEventId`: the `Last-Event-ID` header of each request made (null: none sent). */
  readonly requests: (string | null)[] = [];

  /**
   * Connects to `url`. `lastEventId`, when given, is sent as the `Last-Event-ID` header on the first
   * connect (what a browser sends when it reconnects) through the library's `fetch` option; later
   * reconnects send the library's own. Without it the EventSource uses the global fetch untouched.
   */
  constructor(url: string, opts: { lastEventId?: string } = {}) {
    const { lastEventId } = opts;
    if (lastEventId === undefined) {
      this.es = new EventSource(url);
    } else {
      let first = true;
      const fetchWithHeader = (input: string | URL, init: EventSourceFetchInit) => {
        const headers: Record<string, string> = { ...init.headers };
        if (first) headers["Last-Event-ID"] = lastEventId;
        first = false;
        this.requests.push(headers["Last-Event-ID"] ?? null);
        return fetch(input, { ...init, headers });
      };
      this.es = new EventSource(url, { fetch: fetchWithHeader });
    }
    for (const type of ["subscribed", "gap", "message"]) {
      this.es.addEventListener(type, (e) => {
        const m = e as MessageEvent;
        this.events.push({ type: m.type, lastEventId: m.lastEventId, data: JSON.parse(m.data) });
      });
    }
    this.es.addEventListener("open", () => {
      this.opens++;
    });
    this.es.addEventListener("error", (e) => {
      this.errors.push(String((e as Event & { message?: string }).message ?? "error"));
    });
  }

  /** The `message` events received so far. */
  messages(): SseEvent[] {
    return this.events.filter((e) => e.type === "message");
  }

  async waitEvents(n: number, timeoutMs = 5000): Promise<SseEvent[]> {
    await waitFor(
      `${n} SSE events from ${this.es.url}`,
      () => this.events.length >= n,
      timeoutMs,
      () => ({ events: this.events, errors: this.errors }),
    );
    return this.events;
  }

  async waitMessages(n: number, timeoutMs = 5000): Promise<SseEvent[]> {
    await waitFor(
      `${n} SSE messages from ${this.es.url}`,
      () => this.messages().length >= n,
      timeoutMs,
      () => ({ events: this.events, errors: this.errors }),
    );
    return this.messages();
  }

  close(): void {
    this.es.close();
  }
}

/** The ws:// URL of `path` on the server at `baseUrl`. */
export function wsUrl(baseUrl: string, path: string): string {
  return baseUrl.replace(/^http/, "ws") + path;
}

export interface HttpResult<T = unknown> {
  status: number;
  contentType: string;
  body: T;
}

async function asResult<T>(res: Response): Promise<HttpResult<T>> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", body: body as T };
}

/** GET `path`, body parsed as JSON when it is JSON. */
export async function getJson<T = unknown>(
  baseUrl: string,
  path: string,
  headers?: Record<string, string>,
): Promise<HttpResult<T>> {
  return asResult<T>(await fetch(baseUrl + path, { headers, signal: AbortSignal.timeout(5000) }));
}

/** POST a raw body to `path` (bytes: no Content-Type is added unless given). */
export async function post<T = unknown>(
  baseUrl: string,
  path: string,
  body: string | Uint8Array,
  headers: Record<string, string>,
): Promise<HttpResult<T>> {
  return asResult<T>(await fetch(baseUrl + path, { method: "POST", body, headers, signal: AbortSignal.timeout(5000) }));
}

/** POST a JSON publish to a room. */
export function publishJson(
  baseUrl: string,
  room: string,
  msg: { text?: unknown; id?: unknown; user?: unknown },
): Promise<HttpResult<ChatEventJson>> {
  return post<ChatEventJson>(baseUrl, `/rooms/${room}/messages`, JSON.stringify(msg), {
    "Content-Type": "application/json",
  });
}

/** POST a text/plain publish to a room, with an optional Idempotency-Key. */
export function publishText(
  baseUrl: string,
  room: string,
  text: string,
  idempotencyKey?: string,
): Promise<HttpResult<ChatEventJson>> {
  const headers: Record<string, string> = { "Content-Type": "text/plain; charset=utf-8" };
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  return post<ChatEventJson>(baseUrl, `/rooms/${room}/messages`, text, headers);
}

/** The `message` events among `frames` (plain mode: bare ChatEvents; json mode: `{event}` frames). */
export function messagesOf(frames: unknown[]): ChatEventJson[] {
  return frames
    .map((f) => ((f as ServerFrameJson).event ?? f) as ChatEventJson)
    .filter((e) => (e as ChatEventJson).kind === "message");
}
