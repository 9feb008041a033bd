/** The Worker's environment: the Room namespace and the settings of wrangler.toml `[vars]`. */
export interface Env {
  ROOM: DurableObjectNamespace<import("./room/room").Room>;
  MAX_MESSAGE_BYTES?: string;
  MAX_CONNECTIONS_PER_ROOM?: string;
  PUBLISH_RATE_PER_SECOND?: string;
  HISTORY_MAX_COUNT?: string;
  HISTORY_MAX_AGE_SECONDS?: string;
  HISTORY_PAGE_LIMIT?: string;
  REPLAY_MAX_BYTES?: string;
  HEARTBEAT_SECONDS?: string;
  STREAM_MAX_QUEUED_EVENTS?: string;
  ALLOWED_ORIGINS?: string;
  CHAT_HTTP1_FULL_DUPLEX?: string;
}

/** The relay's limits, parsed once from {@link Env}. Defaults match wrangler.toml. */
export interface Limits {
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
  /** Bytes a resume replays at once before asking the client to resume from where it got to. */
  replayMaxBytes: number;
  heartbeatMs: number;
  streamMaxQueuedEvents: number;
  /** Exact origins allowed by CORS; ["*"] only when configured so. */
  allowedOrigins: string[];
  chatHttp1FullDuplex: boolean;
}

/** Bytes a frame or body may add around the text (JSON keys, id, user). */
const ENVELOPE_BYTES = 1024;

function int(value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`invalid setting value ${JSON.stringify(value)}`);
  return Math.floor(n);
}

function bool(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value.trim() === "") return fallback;
  if (value === "true" || value === "false") return value === "true";
  throw new Error(`invalid setting value ${JSON.stringify(value)} (want true or false)`);
}

/** Reads the limits from the environment; a malformed value is an error, not a silent default. */
export function readLimits(env: Env): Limits {
  const maxMessageBytes = int(env.MAX_MESSAGE_BYTES, 65536, 1);
  return {
    maxMessageBytes,
    maxFrameBytes: maxMessageBytes + ENVELOPE_BYTES,
    maxConnectionsPerRoom: int(env.MAX_CONNECTIONS_PER_ROOM, 10000, 1),
    publishRatePerSecond: int(env.PUBLISH_RATE_PER_SECOND, 50),
    historyMaxCount: int(env.HISTORY_MAX_COUNT, 10000, 1),
    historyMaxAgeMs: int(env.HISTORY_MAX_AGE_SECONDS, 604800) * 1000,
    historyPageLimit: int(env.HISTORY_PAGE_LIMIT, 1000, 1),
    replayMaxBytes: int(env.REPLAY_MAX_BYTES, 8 * 1024 * 1024, 1),
    heartbeatMs: int(env.HEARTBEAT_SECONDS, 15, 1) * 1000,
    streamMaxQueuedEvents: int(env.STREAM_MAX_QUEUED_EVENTS, 4096, 1),
    allowedOrigins: (env.ALLOWED_ORIGINS ?? "")
      .split(",")
      .map((o) => o.trim())
      .filter(Boolean),
    chatHttp1FullDuplex: bool(env.CHAT_HTTP1_FULL_DUPLEX, false),
  };
}
