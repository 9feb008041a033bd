/**
 * The e2e tests' one set of clients, each a real third-party client over a real socket: a `ws`
 * WebSocket in every mode (plain, relay.v1.json, relay.v1.proto) that records what it receives and
 * can answer the room's flow-control pings, an `eventsource` EventSource that also records what
 * EventSource itself hides (heartbeat comments, `retry:` lines, the `disconnect` event, the body of
 * a refusal), connect-node transports and a recorder for their streams, HTTP helpers over fetch,
 * and bounded waits. Every wait has a timeout; every client has a close() for `finally`/`afterEach`.
 */
import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { EventSource, type EventSourceFetchInit } from "eventsource";
import WebSocket from "ws";
import { type ChatEvent, ChatEventSchema, ClientFrameSchema, ServerFrameSchema } from "../../src/gen/relay/v1/relay_pb";

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
  resumeAfter?: string;
}

export interface ErrorJson {
  code: string;
  message: string;
  id?: string;
}

/** A server frame on `relay.v1.json` (and `relay.v1.proto`, decoded to the same JSON). */
export interface ServerFrameJson {
  event?: ChatEventJson;
  ack?: { event: ChatEventJson; duplicate?: boolean };
  error?: ErrorJson;
  ping?: { id: string };
}

/** relay.v1.Disconnect: the data of the SSE `disconnect` event. */
export interface DisconnectJson {
  code: string;
  message: string;
  reconnect: boolean;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A room name no other test uses. */
export function uniqueRoom(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

const jsonish = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? String(x) : x), 1);

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
      const state = describe ? `\nstate: ${jsonish(describe()).slice(0, 4000)}` : "";
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
  describe?: () => unknown,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      const state = describe ? `\nstate: ${jsonish(describe()).slice(0, 4000)}` : `\nlast: ${jsonish(v)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state}`);
    }
    await sleep(50);
  }
}

/** `p`, or a rejection naming `what` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A promise with its resolve function outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve: (v: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A ChatEvent message in the protobuf JSON mapping, as JSON clients see it. */
export function eventToJson(e: ChatEvent): ChatEventJson {
  return toJson(ChatEventSchema, e) as unknown as ChatEventJson;
}

// ---------------------------------------------------------------------------------------------
// WebSocket

/** The WebSocket formats: no subprotocol, `relay.v1.json`, `relay.v1.proto`. */
export type WsMode = "plain" | "json" | "proto";

export const WS_PROTOCOL: Record<WsMode, string | undefined> = {
  plain: undefined,
  json: "relay.v1.json",
  proto: "relay.v1.proto",
};

export interface WsOptions {
  timeoutMs?: number;
  /**
   * Behave like a well-written client: answer every ping with a pong (json, proto), and in plain
   * mode, which cannot answer pings, confirm what was read with an empty frame every
   * `confirmEveryBytes` received. Off by default: the frames are then recorded as they came.
   */
  flowControl?: boolean;
  confirmEveryBytes?: number;
}

/** A refused WebSocket upgrade: the HTTP status and JSON body. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`WebSocket upgrade refused: HTTP ${status} ${jsonish(body)}`);
  }
}

/**
 * A `ws` WebSocket that records every frame it receives and how it was closed, in any mode. Frames
 * are recorded as JSON: plain-mode frames as they came (a ChatEvent or `{"error":...}`), json and
 * proto frames as ServerFrame JSON (proto decoded with the generated schema); a batch is recorded as
 * one `{"event":...}` frame per event. With `flowControl` pings are answered and not recorded.
 */
export class WsClient {
  readonly ws: WebSocket;
  readonly mode: WsMode;
  readonly frames: unknown[] = [];
  /** Every ChatEvent received, in order (from event and batch frames; plain-mode events). */
  readonly events: ChatEventJson[] = [];
  readonly acks: { event: ChatEventJson; duplicate?: boolean }[] = [];
  readonly errors: ErrorJson[] = [];
  /** How many batch frames arrived. */
  batches = 0;
  pings = 0;
  pongs = 0;
  /** Bytes received in frames. */
  receivedBytes = 0;
  closed?: { code: number; reason: string };
  /** Called for every frame after it is recorded (acks, errors and events alike). */
  onFrame?: (frame: ServerFrameJson | ChatEventJson) => void;
  readonly #url: string;
  readonly #opts: WsOptions;
  #unconfirmed = 0;
  readonly #closedOnce = deferred<{ code: number; reason: string }>();

  private constructor(ws: WebSocket, url: string, mode: WsMode, opts: WsOptions) {
    this.ws = ws;
    this.#url = url;
    this.mode = mode;
    this.#opts = opts;
    ws.binaryType = "nodebuffer";
    ws.on("message", (data: Buffer, isBinary) => this.#receive(data, isBinary));
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.#closedOnce.resolve(this.closed);
    });
    ws.on("error", () => {
      // Recorded by the close event that follows.
    });
  }

  /**
   * Opens `url` (ws://...) with an optional subprotocol; resolves once open, rejects with an
   * {@link UpgradeRefused} when the server answers the upgrade with an HTTP error.
   */
  static async open(url: string, protocol?: string, opts: number | WsOptions = {}): Promise<WsClient> {
    const o = typeof opts === "number" ? { timeoutMs: opts } : opts;
    const timeoutMs = o.timeoutMs ?? 10_000;
    const mode: WsMode = protocol === WS_PROTOCOL.json ? "json" : protocol === WS_PROTOCOL.proto ? "proto" : "plain";
    const ws = protocol ? new WebSocket(url, protocol) : new WebSocket(url);
    const client = new WsClient(ws, url, mode, o);
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
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString();
        });
        res.on("end", () => {
          clearTimeout(timer);
          ws.terminate();
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // Not JSON: keep the text.
          }
          fail(new UpgradeRefused(res.statusCode ?? 0, body));
        });
      });
      ws.once("error", (e) => {
        clearTimeout(timer);
        fail(e);
      });
    });
    return client;
  }

  #receive(data: Buffer, isBinary: boolean): void {
    this.receivedBytes += data.byteLength;
    let frame: ServerFrameJson | ChatEventJson;
    if (isBinary !== (this.mode === "proto")) {
      // Not what this mode's server sends: recorded for the test to see, never parsed.
      this.frames.push({ unexpected: `${isBinary ? "binary" : "text"} frame in ${this.mode} mode` });
      return;
    }
    if (this.mode === "proto") {
      frame = toJson(ServerFrameSchema, fromBinary(ServerFrameSchema, new Uint8Array(data))) as ServerFrameJson;
    } else frame = JSON.parse(data.toString());
    const f = frame as ServerFrameJson & { batch?: { events?: ChatEventJson[] } };
    if (f.ping && this.#opts.flowControl) {
      this.pings++;
      this.pong(f.ping.id);
      return;
    }
    if (f.batch) {
      this.batches++;
      for (const event of f.batch.events ?? []) {
        this.frames.push({ event });
        this.events.push(event);
      }
    } else {
      this.frames.push(frame);
      if (f.ping) this.pings++;
      else if (f.ack) this.acks.push(f.ack);
      else if (f.error) this.errors.push(f.error);
      else if (f.event) this.events.push(f.event);
      else if (this.mode === "plain") this.events.push(frame as ChatEventJson);
    }
    if (this.mode === "plain" && this.#opts.flowControl) {
      this.#unconfirmed += data.byteLength;
      if (this.#unconfirmed >= (this.#opts.confirmEveryBytes ?? 8192)) {
        this.#unconfirmed = 0;
        this.send("");
      }
    }
    this.onFrame?.(frame);
  }

  get protocol(): string {
    return this.ws.protocol;
  }

  /** Resolves with the close code and reason once the socket has closed. */
  get whenClosed(): Promise<{ code: number; reason: string }> {
    return this.#closedOnce.promise;
  }

  send(data: string | Buffer | Uint8Array): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  /** Answers a ping (json and proto). */
  pong(id: string): void {
    this.pongs++;
    if (this.mode === "proto") {
      this.send(
        toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "pong", value: { id: BigInt(id) } } })),
      );
    } else this.send(JSON.stringify({ pong: { id } }));
  }

  /** Publishes in the socket's format: a `publish` ClientFrame (json, proto), or the text itself (plain, no id). */
  publish(text: string, id?: string): void {
    if (this.mode === "plain") {
      if (id !== undefined) throw new Error("plain mode has no way to send an id");
      this.send(text);
    } else if (this.mode === "json") {
      this.send(JSON.stringify({ publish: id === undefined ? { text } : { text, id } }));
    } else {
      const value = { text, id: id ?? "" };
      this.send(toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "publish", value } })));
    }
  }

  /** Stops reading the socket (the bytes stay in the kernel's buffers), as a stalled client would. */
  pause(): void {
    (this.ws as unknown as { _socket: import("node:net").Socket })._socket.pause();
  }

  resume(): void {
    (this.ws as unknown as { _socket: import("node:net").Socket })._socket.resume();
  }

  /** The TCP socket under the WebSocket, for writing raw frames. */
  get socket(): import("node:net").Socket {
    return (this.ws as unknown as { _socket: import("node:net").Socket })._socket;
  }

  /** The `message` events received so far. */
  messages(): ChatEventJson[] {
    return this.events.filter((e) => e.kind === "message");
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
    return waitFor(
      `close of ${this.#url}`,
      () => this.closed,
      timeoutMs,
      () => this.frames.slice(-5),
    );
  }

  /** Closes the socket and waits (bounded) for the close handshake; terminates if it hangs. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      this.resume();
    } catch {
      // No socket yet.
    }
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000, "test done");
    try {
      await waitFor("close handshake", () => this.closed, 2000);
    } catch {
      this.ws.terminate();
    }
  }
}

/** The ws:// URL of `path` on the server at `baseUrl`. */
export function wsUrl(baseUrl: string, path: string): string {
  return baseUrl.replace(/^http/, "ws") + path;
}

/** Tries a WebSocket upgrade that the server should refuse; returns its HTTP status and JSON body. */
export async function refusedUpgrade(url: string, protocol?: string): Promise<{ status: number; body: unknown }> {
  try {
    const c = await WsClient.open(url, protocol);
    await c.close();
  } catch (e) {
    if (e instanceof UpgradeRefused) return { status: e.status, body: e.body };
    throw e;
  }
  throw new Error(`upgrade to ${url} was accepted`);
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events

/** One event an EventSource delivered. */
export interface SseEvent {
  type: string;
  lastEventId: string;
  data: ChatEventJson;
}

/**
 * An EventSource (the `eventsource` package, with its own reconnect logic) that records the
 * `subscribed`, `gap` and `message` events, the `disconnect` events, opens and errors. Its fetch is
 * wrapped to see what EventSource hides: the `Last-Event-ID` of each request, the body of a refused
 * one, heartbeat comments and `retry:` lines; and to stop reading the body on demand (pause()).
 */
export class SseClient {
  readonly es: EventSource;
  readonly events: SseEvent[] = [];
  readonly disconnects: DisconnectJson[] = [];
  opens = 0;
  readonly errors: { message: string; code?: number }[] = [];
  /** The `Last-Event-ID` header of each request made (null: none sent). */
  readonly requests: (string | null)[] = [];
  /** Requests answered with something else than 200: status and body (JSON when it is JSON). */
  readonly refusals: { status: number; body: unknown }[] = [];
  /** `: heartbeat` comment lines read. */
  heartbeats = 0;
  /** The values of `retry:` lines read. */
  readonly retries: string[] = [];
  /** Called for each recorded event, each `disconnect` event, each refused request. */
  onEvent?: (e: SseEvent) => void;
  onDisconnect?: (d: DisconnectJson) => void;
  onRefusal?: (r: { status: number; body: unknown }) => void;
  #paused?: { promise: Promise<void>; resolve: () => void };

  /**
   * Connects to `url`. `lastEventId`, when given, is sent as the `Last-Event-ID` header on the first
   * connect (what a browser sends when it reconnects); later reconnects send the library's own.
   */
  constructor(url: string, opts: { lastEventId?: string } = {}) {
    let first = true;
    const tapFetch = async (input: string | URL, init: EventSourceFetchInit) => {
      const headers: Record<string, string> = { ...init.headers };
      if (first && opts.lastEventId !== undefined) headers["Last-Event-ID"] = opts.lastEventId;
      first = false;
      this.requests.push(headers["Last-Event-ID"] ?? null);
      const res = await fetch(input, { ...init, headers });
      if (res.status !== 200 || !res.body) {
        const text = await res.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON: keep the text.
        }
        this.refusals.push({ status: res.status, body });
        this.onRefusal?.({ status: res.status, body });
        return new Response(text, { status: res.status, headers: res.headers });
      }
      return new Response(res.body.pipeThrough(this.#tap()), { status: res.status, headers: res.headers });
    };
    this.es = new EventSource(url, { fetch: tapFetch });
    for (const type of ["subscribed", "gap", "message"]) {
      this.es.addEventListener(type, (e) => {
        const m = e as MessageEvent;
        const event = { type: m.type, lastEventId: m.lastEventId, data: JSON.parse(m.data) };
        this.events.push(event);
        this.onEvent?.(event);
      });
    }
    this.es.addEventListener("disconnect", (e) => {
      const d = JSON.parse((e as MessageEvent).data) as DisconnectJson;
      this.disconnects.push(d);
      this.onDisconnect?.(d);
    });
    this.es.addEventListener("open", () => {
      this.opens++;
    });
    this.es.addEventListener("error", (e) => {
      const err = e as Event & { message?: string; code?: number };
      this.errors.push({ message: String(err.message ?? "error"), code: err.code });
    });
  }

  /** Passes the body through as it is, counting heartbeat comments and `retry:` lines, and holding it while paused. */
  #tap(): TransformStream<Uint8Array, Uint8Array> {
    const decoder = new TextDecoder();
    let carry = "";
    return new TransformStream({
      transform: async (chunk, controller) => {
        if (this.#paused) await this.#paused.promise;
        const lines = (carry + decoder.decode(chunk, { stream: true })).split("\n");
        carry = lines.pop() ?? "";
        for (const line of lines) {
          if (line === ": heartbeat") this.heartbeats++;
          else if (line.startsWith("retry:")) this.retries.push(line.slice(6).trim());
        }
        controller.enqueue(chunk);
      },
    });
  }

  /** Stops reading the response body (from the next chunk on): the stream backs up to the server. */
  pause(): void {
    this.#paused ??= deferred();
  }

  resume(): void {
    this.#paused?.resolve();
    this.#paused = undefined;
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
    this.resume();
    this.es.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Connect

export type ConnectProtocol = "connect-json" | "connect-proto" | "grpc-web";

/** connect-node transports over HTTP/1.1: Connect JSON, Connect binary, gRPC-Web (binary). */
export function connectTransports(baseUrl: string): Record<ConnectProtocol, Transport> {
  return {
    "connect-json": createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
    "connect-proto": createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
    "grpc-web": createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  };
}

/**
 * A running server stream (Subscribe or Chat) that records its events until it ends or is stopped:
 * events in the JSON mapping, heartbeat events counted apart. pause() stops pulling from the
 * stream, so the response body is no longer read.
 */
export class StreamRecorder {
  /** Every event but heartbeats, in order. */
  readonly events: ChatEventJson[] = [];
  heartbeats = 0;
  /** The error the call ended with (not set when the client stopped it). */
  error?: ConnectError;
  /** True once the server ended the call (normally or with an error). */
  ended = false;
  /** Resolves when the call is over, however it ended. */
  readonly done: Promise<void>;
  onEvent?: (e: ChatEventJson) => void;
  readonly #ac = new AbortController();
  #paused?: { promise: Promise<void>; resolve: () => void };

  constructor(open: (signal: AbortSignal) => AsyncIterable<ChatEvent>) {
    this.done = (async () => {
      try {
        for await (const e of open(this.#ac.signal)) {
          if (e.kind === "heartbeat") this.heartbeats++;
          else {
            const json = eventToJson(e);
            this.events.push(json);
            this.onEvent?.(json);
          }
          if (this.#paused) await this.#paused.promise;
        }
        if (!this.#ac.signal.aborted) this.ended = true;
      } catch (e) {
        if (!this.#ac.signal.aborted) {
          this.error = ConnectError.from(e);
          this.ended = true;
        }
      }
    })();
  }

  messages(): ChatEventJson[] {
    return this.events.filter((e) => e.kind === "message");
  }

  waitMessages(n: number, ms = 5000): Promise<unknown> {
    return waitFor(
      `${n} messages`,
      () => this.messages().length >= n,
      ms,
      () => this.events,
    );
  }

  pause(): void {
    this.#paused ??= deferred();
  }

  resume(): void {
    this.#paused?.resolve();
    this.#paused = undefined;
  }

  /** Cancels the call (the client goes away) and waits for it to wind down. */
  async stop(): Promise<void> {
    this.resume();
    this.#ac.abort();
    await within(this.done, 5000, "the stream to stop");
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

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
  return asResult<T>(await fetch(baseUrl + path, { headers, signal: AbortSignal.timeout(10_000) }));
}

/** POST a raw body to `path` (bytes: no Content-Type is added unless given). */
export async function post<T = unknown>(
  baseUrl: string,
  path: string,
  body: string | Uint8Array,
  headers: Record<string, string>,
): Promise<HttpResult<T>> {
  return asResult<T>(
    await fetch(baseUrl + path, { method: "POST", body, headers, signal: AbortSignal.timeout(10_000) }),
  );
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

/** GET /rooms/:room/messages: a page of history. */
export interface HistoryJson {
  events: ChatEventJson[];
  epoch: string;
  firstSeq: string;
  lastSeq: string;
  hasMore: boolean;
}

export async function history(baseUrl: string, room: string, query = ""): Promise<HistoryJson> {
  const r = await getJson<HistoryJson>(baseUrl, `/rooms/${room}/messages${query}`);
  if (r.status !== 200) throw new Error(`history of ${room}: HTTP ${r.status} ${jsonish(r.body)}`);
  return r.body;
}

/** Every retained event of a room, page after page (at most `maxPages`). */
export async function fullHistory(baseUrl: string, room: string, maxPages = 100): Promise<ChatEventJson[]> {
  const events: ChatEventJson[] = [];
  for (let page = 0, since = "0"; page < maxPages; page++) {
    const h = await history(baseUrl, room, `?since=${since}`);
    events.push(...h.events);
    if (!h.hasMore) return events;
    since = h.events.at(-1)?.seq ?? since;
  }
  throw new Error(`history of ${room}: more than ${maxPages} pages`);
}

/** GET /rooms/:room/stats: relay.v1.RoomStats JSON. */
export interface StatsJson {
  room: string;
  epoch: string;
  firstSeq: string;
  lastSeq: string;
  connections: Record<string, number>;
  objectStartedAtMs: string;
  flushes: string;
  flushedEvents: string;
  slowDisconnects: string;
}

export async function stats(baseUrl: string, room: string): Promise<StatsJson> {
  const r = await getJson<StatsJson>(baseUrl, `/rooms/${room}/stats`);
  if (r.status !== 200) throw new Error(`stats of ${room}: HTTP ${r.status} ${jsonish(r.body)}`);
  return r.body;
}

/** The `message` events among `frames` (plain mode: bare ChatEvents; json mode: `{event}` frames). */
export function messagesOf(frames: unknown[]): ChatEventJson[] {
  return frames
    .map((f) => ((f as ServerFrameJson).event ?? f) as ChatEventJson)
    .filter((e) => (e as ChatEventJson).kind === "message");
}
