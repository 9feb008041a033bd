/**
 * What the client core asks of a transport. A transport opens sessions (one connection each: a
 * WebSocket, an SSE response, a Connect Subscribe call) that report what arrives to a sink, and
 * answers the request/response calls (history, presence and, except on WebSocket, publish).
 * Every transport hands the core the same normalized events, so resume, deduplication and
 * presence live in one place (core/client.ts).
 */
import type { HistoryPage, Member, RelayEvent, TransportName } from "../types.js";

/** An event of any kind as it arrives, with numbers for offsets: a message's fields and the rest. */
export interface Wire extends RelayEvent {
  kind: string;
  firstSeq: number;
  lastSeq: number;
  reason: string;
  resumeAfter: number;
  member?: Member;
}

/** How a session ended. */
export interface End {
  code: string;
  message: string;
  /** Whether reconnecting (resuming) may work. */
  reconnect: boolean;
  /** The connection never opened (no upgrade, no response): what "auto" falls back on. */
  beforeOpen?: boolean;
  /** A WebSocket closed for the publish frame it was sent (too large, bad encoding): that publish fails, the client reconnects. */
  publishFault?: boolean;
}

export interface OpenParams {
  since?: number;
  epoch?: string;
  user?: string;
  token?: string;
  presence: boolean;
}

export interface SessionSink {
  /** Events in the order they arrived. */
  events(events: Wire[]): void;
  /** WebSocket: a publish was stored. */
  ack(event: Wire, duplicate: boolean): void;
  /** WebSocket: an error frame (`id` names the publish it answers, "" for a refresh). */
  refused(id: string, code: string, message: string): void;
  /** WebSocket: the refresh was accepted. */
  refreshed(expiresAtMs: number): void;
  /** Called once, unless the core closed the session itself. */
  ended(end: End): void;
}

export interface PublishInput {
  text: string;
  id: string;
  user?: string;
}

export interface Session {
  /** WebSocket only: sends a publish frame (answered by ack() or refused()). */
  publish?(p: PublishInput): void;
  /** WebSocket only: a new token for this connection (answered by refreshed() or refused("")). */
  refresh?(token: string): void;
  /** Ends the session; ended() is not called. */
  close(): void;
}

export interface Transport {
  name: TransportName;
  open(p: OpenParams, sink: SessionSink): Session;
  /** A publish as one request (SSE over HTTP, Connect); absent: publish over the session (WebSocket). */
  publish?(p: PublishInput, token?: string): Promise<{ event: Wire; duplicate: boolean }>;
  history(since: number, limit: number, token?: string): Promise<HistoryPage>;
  presence(token?: string): Promise<Member[]>;
}

/** What every transport is made from. */
export interface TransportConfig {
  /** The relay's base URL, ending in "/". */
  base: string;
  room: string;
  fetch: typeof fetch;
  WebSocket?: unknown;
}

export type TransportFactory = (config: TransportConfig) => Transport;

/**
 * SSE and Connect streams carry a heartbeat every HEARTBEAT_SECONDS (15 by default) while idle:
 * a stream silent for more than twice that is dead (a laptop that slept, a NAT that forgot it)
 * and is replaced. WebSocket asks instead (transports/websocket.ts).
 */
export const STREAM_IDLE_MS = 35_000;

/**
 * The life of one SSE or Connect stream: its request's abort signal, a watchdog that ends it when
 * it goes silent, and one ending. `finish` tells the sink, once; `close` (the client's own) tells
 * nobody; `done` says whether either happened.
 */
export function streamLife(sink: SessionSink): {
  signal: AbortSignal;
  poke(): void;
  finish(end: End): void;
  close(): void;
  done(): boolean;
} {
  const abort = new AbortController();
  let done = false;
  const close = () => {
    done = true;
    idle.stop();
    abort.abort();
  };
  const finish = (end: End) => {
    if (done) return;
    close();
    sink.ended(end);
  };
  const idle = watchdog(STREAM_IDLE_MS, () =>
    finish({ code: "timeout", message: "the stream went silent", reconnect: true }),
  );
  return { signal: abort.signal, poke: idle.poke, finish, close, done: () => done };
}

/** A timer that calls `fire` unless poked within `ms`; stop() ends it. */
export function watchdog(ms: number, fire: () => void): { poke(): void; stop(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const poke = () => {
    clearTimeout(timer);
    timer = setTimeout(fire, ms);
  };
  poke();
  return { poke, stop: () => clearTimeout(timer) };
}
