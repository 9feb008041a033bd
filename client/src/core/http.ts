/**
 * The relay's plain HTTP routes, over fetch: publish (`POST /rooms/:room/messages`), history
 * (`GET /rooms/:room/messages`) and presence (`GET /rooms/:room/presence`). A token goes in
 * `Authorization: Bearer` (these routes refuse `?token=`). Failures reject with a RelayError
 * carrying the relay's code (its JSON `{"error":{"code","message"}}`), or "network".
 */
import type { ChatEventJson, PresenceResponseJson } from "../gen/relay/v1/relay_pb.js";
import type { OpenParams, PublishInput, TransportConfig, Wire } from "../transports/transport.js";
import type { HistoryPage, Member } from "../types.js";
import { retryable } from "./codes.js";
import { RelayError } from "./errors.js";
import { memberFromJson, relayEvent, wireFromJson } from "./events.js";

/** `rooms/<room>/<path>` under the base URL, with the query's defined values. */
export function roomUrl(
  c: TransportConfig,
  path: string,
  query: Record<string, string | number | undefined> = {},
): URL {
  const url = new URL(`rooms/${encodeURIComponent(c.room)}/${path}`, c.base);
  for (const k in query) if (query[k] !== undefined) url.searchParams.set(k, String(query[k]));
  return url;
}

/** The URL of a room's stream (`ws` or `sse`) for a subscription: where to resume, who, what to get. */
export function streamUrl(c: TransportConfig, path: "ws" | "sse", p: OpenParams): URL {
  const { since, epoch, user, token } = p;
  return roomUrl(c, path, { since, epoch, user, token, presence: p.presence ? 1 : undefined });
}

/** Reads a failed answer's error as a RelayError: the relay's code, or (a proxy's page) one from the status. */
export async function httpError(res: Response): Promise<RelayError> {
  try {
    const { error } = (await res.json()) as { error?: { code?: string; message?: string } };
    if (error?.code) return new RelayError(error.code, error.message ?? "", retryable(error.code));
  } catch {
    // Not the relay's JSON.
  }
  const s = res.status;
  return new RelayError(s >= 500 ? "internal" : "unknown", `HTTP ${s}`, s >= 500 || s === 408 || s === 429);
}

async function call(c: TransportConfig, url: URL, token: string | undefined, init: RequestInit = {}) {
  const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await c.fetch(url.href, { ...init, headers });
  } catch (e) {
    throw new RelayError("network", `could not reach the relay: ${(e as Error).message}`, true);
  }
  if (!res.ok) throw await httpError(res);
  return res;
}

export async function httpPublish(
  c: TransportConfig,
  p: PublishInput,
  token?: string,
): Promise<{ event: Wire; duplicate: boolean }> {
  const res = await call(c, roomUrl(c, "messages"), token, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(p),
  });
  // 201: stored now; 200: the id was stored before and this is the original event.
  return { event: wireFromJson((await res.json()) as ChatEventJson), duplicate: res.status === 200 };
}

export async function httpHistory(
  c: TransportConfig,
  since: number,
  limit: number,
  token?: string,
): Promise<HistoryPage> {
  const res = await call(c, roomUrl(c, "messages", { since, limit: limit || undefined }), token);
  const body = (await res.json()) as {
    events: ChatEventJson[];
    epoch: string;
    firstSeq: string;
    lastSeq: string;
    hasMore: boolean;
  };
  const page: HistoryPage = {
    events: body.events.map((e) => relayEvent(wireFromJson(e))),
    epoch: body.epoch,
    firstSeq: Number(body.firstSeq),
    lastSeq: Number(body.lastSeq),
    hasMore: body.hasMore,
  };
  return page;
}

export async function httpPresence(c: TransportConfig, token?: string): Promise<Member[]> {
  const res = await call(c, roomUrl(c, "presence"), token);
  return (((await res.json()) as PresenceResponseJson).members ?? []).map(memberFromJson);
}
