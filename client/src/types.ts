/**
 * The client's public types: plain data with numbers (the relay's JSON carries 64-bit integers as
 * strings; the client converts them), and nothing from Node, Workers or the protobuf runtime, so
 * that the same declarations serve browsers, Node and bundlers.
 */

/** How the client reaches the relay. "auto": WebSocket, falling back to SSE when upgrades are refused. */
export type TransportOption = "websocket" | "sse" | "connect" | "auto";

/** The transport a client is using now. */
export type TransportName = "websocket" | "sse" | "connect";

/** One stored chat message of a room, as every subscriber sees it. */
export interface RelayEvent {
  room: string;
  /** The log offset: 1, 2, 3, ... per room and epoch. */
  seq: number;
  /** The life of the room's log that `seq` belongs to. */
  epoch: string;
  /** The publisher's idempotency key. */
  id: string;
  user: string;
  /** When the relay stored it (ms since the Unix epoch). */
  timeMs: number;
  text: string;
}

/** Events the client asked for that the relay no longer has (or that belong to another epoch). */
export interface RelayGap {
  reason: "retention" | "epoch" | "ahead";
  /** Which events are gone, in words. */
  text: string;
  /** The client continues after this offset. */
  resumeAfter: number;
  /** The oldest retained offset (0 when the log is empty). */
  firstSeq: number;
  /** The newest offset in the log when the gap was told. */
  lastSeq: number;
}

/** One user connected to the room, with all their connections. */
export interface Member {
  user: string;
  connections: number;
  /** "connect", "sse", "websocket": each once, sorted. */
  transports: string[];
  connectedAtMs: number;
}

export type ConnectionState = "connecting" | "connected" | "disconnected" | "closed";

/** Why the client is disconnected or closed: a code of the relay's error table, or "network", "closed", "timeout". */
export interface DisconnectReason {
  code: string;
  message: string;
}

/**
 * Everything a UI shows about a client. The same object is returned until something in it changes,
 * so it can be used as is with React's useSyncExternalStore, Svelte stores and Vue refs.
 */
export interface ClientSnapshot {
  readonly state: ConnectionState;
  /** Set while "disconnected", and on "closed" when the relay ended the client for good. */
  readonly reason?: DisconnectReason;
  /** The transport in use (the fallback's, once "auto" fell back). */
  readonly transport: TransportName;
  /** How many times the client connected again after its first connection. */
  readonly reconnects: number;
  /** The offset of the last message delivered (the resume point). */
  readonly lastSeq: number;
  /** The epoch `lastSeq` belongs to ("" before the first connection). */
  readonly epoch: string;
  /** Publishes not acknowledged yet (queued or in flight). */
  readonly pending: number;
  /** Who is connected (with `presence: true`; otherwise always empty). */
  readonly members: readonly Member[];
}

/** A token, or a function that gets a fresh one (called again before the current one expires). */
export type TokenOption = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** The relay's base URL (http or https; the WebSocket URL is derived from it). */
  url: string;
  room: string;
  /** Default "websocket". */
  transport?: TransportOption;
  /** An anonymous client's display name (a token's `sub` wins over it). */
  user?: string;
  token?: TokenOption;
  /** The first subscription's offset: 0 replays everything retained; omitted: live events only. */
  since?: number;
  /** The epoch `since` belongs to. */
  epoch?: string;
  /** Ask for join/leave events and keep `members` in the snapshot. */
  presence?: boolean;
  /** A WebSocket constructor (Node 20: the `ws` package's); default globalThis.WebSocket. */
  WebSocket?: unknown;
  /** Default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Reconnect delays: random(0, min(maxMs, initialMs * 2^attempt)). Defaults 500 / 10_000. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Publishes that may wait for their acknowledgement at once; past it publish rejects. Default 100. */
  maxQueued?: number;
  /** Refresh a token this long before it expires (or at 3/4 of its lifetime, if sooner). Default 30_000. */
  refreshBeforeMs?: number;
}

export interface PublishOptions {
  /** The idempotency key; default crypto.randomUUID(). A retry with the same id is stored once. */
  id?: string;
}

/** The stored event of a publish; `duplicate` when the id had been stored before. */
export type PublishResult = RelayEvent & { duplicate: boolean };

export interface HistoryOptions {
  /** Events after this offset (default 0). */
  since?: number;
  /** At most this many (default and maximum: the relay's HISTORY_PAGE_LIMIT). */
  limit?: number;
}

export interface HistoryPage {
  events: RelayEvent[];
  epoch: string;
  firstSeq: number;
  lastSeq: number;
  hasMore: boolean;
}

/** What each event name carries. */
export interface ClientEvents {
  message: RelayEvent;
  gap: RelayGap;
  join: Member;
  leave: Member;
  state: ClientSnapshot;
}

export interface RelayClient {
  /** Listens to an event; returns the function that stops listening. */
  on<K extends keyof ClientEvents>(type: K, listener: (value: ClientEvents[K]) => void): () => void;
  /** Calls `listener` whenever the snapshot changes; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  getSnapshot(): ClientSnapshot;
  publish(text: string, options?: PublishOptions): Promise<PublishResult>;
  history(options?: HistoryOptions): Promise<HistoryPage>;
  presence(): Promise<Member[]>;
  /** Renames an anonymous client: reconnects with the new name and resumes from `lastSeq`. */
  setUser(name: string): void;
  /** Ends everything: state "closed", pending publishes reject. */
  close(): void;
}
