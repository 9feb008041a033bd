/** A recording `eventsource` EventSource that also sees what EventSource hides. */
import { EventSource, type EventSourceFetchInit } from "eventsource";
import type { ChatEventJson, DisconnectJson } from "./json";
import { deferred, waitFor } from "./wait";

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
   * `headers` go on every request (Authorization, Origin).
   */
  constructor(url: string, opts: { lastEventId?: string; headers?: Record<string, string> } = {}) {
    let first = true;
    const tapFetch = async (input: string | URL, init: EventSourceFetchInit) => {
      const headers: Record<string, string> = { ...init.headers, ...opts.headers };
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
    for (const type of ["subscribed", "gap", "message", "join", "leave"]) {
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
