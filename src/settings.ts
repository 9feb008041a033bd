/**
 * The relay's settings: the raw `[vars]` of wrangler.toml ({@link Vars}) and their parsed, checked
 * form ({@link Settings}). The Worker parses them once per request (a middleware), the room once
 * per object; both read the result, never the strings. Bindings (the Room namespace) are not
 * settings: they live in edge/env.ts.
 */

/** wrangler.toml `[vars]`, as the runtime hands them over. Every one is optional. */
export interface Vars {
  MAX_MESSAGE_BYTES?: string;
  MAX_CONNECTIONS_PER_ROOM?: string;
  PUBLISH_RATE_PER_SECOND?: string;
  HISTORY_MAX_COUNT?: string;
  HISTORY_MAX_AGE_SECONDS?: string;
  HISTORY_PAGE_LIMIT?: string;
  REPLAY_MAX_BYTES?: string;
  SUBSCRIBER_MAX_BEHIND_BYTES?: string;
  HEARTBEAT_SECONDS?: string;
  BODY_TIMEOUT_SECONDS?: string;
  ALLOWED_ORIGINS?: string;
  CHAT_HTTP1_FULL_DUPLEX?: string;
  /** A secret (`wrangler secret put`), never in wrangler.toml. */
  RELAY_JWT_SECRET?: string;
  RELAY_JWKS_URL?: string;
  JWKS_CACHE_SECONDS?: string;
  ANONYMOUS_ACCESS?: string;
  USER_PUBLISH_RATE_PER_SECOND?: string;
  MAX_CONNECTIONS_PER_USER?: string;
  LIMIT_ANONYMOUS_NEW_ROOMS?: string;
  ROOM_SHARD_SUBSCRIBERS?: string;
  /** Set by `npm start` only (scripts/start.mjs). */
  LOCAL_MAX_CONNECTIONS?: string;
  /** Test hooks (the client's region from a header): "true" only in the test suite's servers. */
  RELAY_TEST_HOOKS?: string;
}

/** What a request without a token may do (docs/auth.md). */
export type AnonymousAccess = "none" | "subscribe" | "publish";

/** The settings, parsed once from {@link Vars}. Defaults match wrangler.toml. */
export interface Settings {
  /** Largest message text in UTF-8 bytes. */
  maxMessageBytes: number;
  /** Largest WebSocket frame or HTTP body: the text plus room for the envelope. */
  maxFrameBytes: number;
  maxConnectionsPerRoom: number;
  /** Publishes per second per connection; 0 disables the limit. */
  publishRatePerSecond: number;
  historyMaxCount: number;
  /** 0 = no age limit. */
  historyMaxAgeMs: number;
  historyPageLimit: number;
  /**
   * Bytes the room sends in one answer: a resume's replay (then close 4002 and the client resumes
   * from where it got to) and a page of history (then `hasMore`).
   */
  replayMaxBytes: number;
  /** Bytes a subscriber may leave unread (unconfirmed) before it is closed as too slow (4003). */
  subscriberMaxBehindBytes: number;
  heartbeatMs: number;
  /** How long a request body may take to arrive before the request is refused. */
  bodyTimeoutMs: number;
  /** Exact origins allowed besides the relay's own; ["*"] only when configured so. */
  allowedOrigins: string[];
  chatHttp1FullDuplex: boolean;
  /** HS256 key; empty: HS256 tokens are refused. */
  jwtSecret: string;
  /** JWKS for ES256/RS256; empty: such tokens are refused. */
  jwksUrl: string;
  jwksCacheMs: number;
  /** Unset: "none", so a deployment is never open by accident. */
  anonymousAccess: AnonymousAccess;
  /** Publishes per second per user per room, across connections and transports; 0 disables it. */
  userPublishRatePerSecond: number;
  /** Open connections per user per room, all transports together. */
  maxConnectionsPerUser: number;
  /** Whether anonymous clients' new rooms go through the NEW_ROOMS rate limit. */
  limitAnonymousNewRooms: boolean;
  /**
   * Subscribers a room's own object holds before new ones go to fan-out shards, and each shard
   * holds at most (room/shards.ts); 0: no shards.
   */
  roomShardSubscribers: number;
  /** Test hooks on: tests may choose a client's region (edge/region.ts). Never on in a deployment. */
  testHooks: boolean;
  /** Open connections the local server takes (worker/local-limit.ts); 0: no bound, as on Cloudflare. */
  localMaxConnections: number;
}

/** ROOM_SHARD_SUBSCRIBERS' default (README, "Capacity"): well under the 32,768 sockets an object may hold. */
const DEFAULT_SHARD_SUBSCRIBERS = 2000;

/** Bytes a frame or body may add around the text (JSON keys, id, user). */
const ENVELOPE_BYTES = 1024;

function int(name: keyof Vars, value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new Error(`setting ${name}=${JSON.stringify(value)}: want an integer of at least ${min}`);
  }
  return n;
}

function bool(name: keyof Vars, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value.trim() === "") return fallback;
  if (value === "true" || value === "false") return value === "true";
  throw new Error(`setting ${name}=${JSON.stringify(value)}: want true or false`);
}

/**
 * An origin in its serialised form (`HTTPS://App.Example:443` is `https://app.example`), as
 * browsers send it; undefined when `value` is not one (`null` included).
 */
export function normaliseOrigin(value: string): string | undefined {
  try {
    const o = new URL(value).origin;
    return o === "null" ? undefined : o;
  } catch {
    return undefined;
  }
}

/** An origin of ALLOWED_ORIGINS, normalised; a malformed one is an error. */
function origin(value: string): string {
  const o = normaliseOrigin(value);
  if (o === undefined) {
    throw new Error(`setting ALLOWED_ORIGINS: ${JSON.stringify(value)} is not an origin like https://app.example`);
  }
  return o;
}

function oneOf<T extends string>(name: keyof Vars, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined || value.trim() === "") return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new Error(`setting ${name}=${JSON.stringify(value)}: want one of ${allowed.join(", ")}`);
}

function parse(v: Vars): Settings {
  const maxMessageBytes = int("MAX_MESSAGE_BYTES", v.MAX_MESSAGE_BYTES, 65536, 1);
  const replayMaxBytes = int("REPLAY_MAX_BYTES", v.REPLAY_MAX_BYTES, 4 * 1024 * 1024, 1);
  const subscriberMaxBehindBytes = int("SUBSCRIBER_MAX_BEHIND_BYTES", v.SUBSCRIBER_MAX_BEHIND_BYTES, 8 << 20, 1);
  // A replay goes out at once and counts as unread until confirmed: half the bound leaves room
  // for what is published meanwhile, so a client resuming at full speed is never cut off.
  if (replayMaxBytes * 2 > subscriberMaxBehindBytes) {
    throw new Error("setting REPLAY_MAX_BYTES must be at most half of SUBSCRIBER_MAX_BEHIND_BYTES");
  }
  return {
    maxMessageBytes,
    maxFrameBytes: maxMessageBytes + ENVELOPE_BYTES,
    maxConnectionsPerRoom: int("MAX_CONNECTIONS_PER_ROOM", v.MAX_CONNECTIONS_PER_ROOM, 10000, 1),
    publishRatePerSecond: int("PUBLISH_RATE_PER_SECOND", v.PUBLISH_RATE_PER_SECOND, 50),
    historyMaxCount: int("HISTORY_MAX_COUNT", v.HISTORY_MAX_COUNT, 10000, 1),
    historyMaxAgeMs: int("HISTORY_MAX_AGE_SECONDS", v.HISTORY_MAX_AGE_SECONDS, 604800) * 1000,
    historyPageLimit: int("HISTORY_PAGE_LIMIT", v.HISTORY_PAGE_LIMIT, 1000, 1),
    replayMaxBytes,
    subscriberMaxBehindBytes,
    heartbeatMs: int("HEARTBEAT_SECONDS", v.HEARTBEAT_SECONDS, 15, 1) * 1000,
    bodyTimeoutMs: int("BODY_TIMEOUT_SECONDS", v.BODY_TIMEOUT_SECONDS, 10, 1) * 1000,
    allowedOrigins: (v.ALLOWED_ORIGINS ?? "")
      .split(",")
      .map((o) => o.trim())
      .filter(Boolean)
      .map((o) => (o === "*" ? o : origin(o))),
    chatHttp1FullDuplex: bool("CHAT_HTTP1_FULL_DUPLEX", v.CHAT_HTTP1_FULL_DUPLEX, false),
    jwtSecret: v.RELAY_JWT_SECRET ?? "",
    jwksUrl: (v.RELAY_JWKS_URL ?? "").trim(),
    jwksCacheMs: int("JWKS_CACHE_SECONDS", v.JWKS_CACHE_SECONDS, 300, 1) * 1000,
    anonymousAccess: oneOf("ANONYMOUS_ACCESS", v.ANONYMOUS_ACCESS, ["none", "subscribe", "publish"], "none"),
    userPublishRatePerSecond: int("USER_PUBLISH_RATE_PER_SECOND", v.USER_PUBLISH_RATE_PER_SECOND, 20),
    maxConnectionsPerUser: int("MAX_CONNECTIONS_PER_USER", v.MAX_CONNECTIONS_PER_USER, 20, 1),
    limitAnonymousNewRooms: bool("LIMIT_ANONYMOUS_NEW_ROOMS", v.LIMIT_ANONYMOUS_NEW_ROOMS, true),
    roomShardSubscribers: int("ROOM_SHARD_SUBSCRIBERS", v.ROOM_SHARD_SUBSCRIBERS, DEFAULT_SHARD_SUBSCRIBERS),
    testHooks: bool("RELAY_TEST_HOOKS", v.RELAY_TEST_HOOKS, false),
    localMaxConnections: int("LOCAL_MAX_CONNECTIONS", v.LOCAL_MAX_CONNECTIONS, 0),
  };
}

/** Parsed settings by the vars object they came from: the runtime hands the same object to every request of an isolate. */
const parsed = new WeakMap<Vars, Settings>();

/** The settings of `vars`; a malformed value is an error, not a silent default. */
export function readSettings(vars: Vars): Settings {
  let s = parsed.get(vars);
  if (!s) {
    s = parse(vars);
    parsed.set(vars, s);
  }
  return s;
}
