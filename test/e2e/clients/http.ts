/** HTTP helpers over fetch: GET and POST, publish, history and stats. */
import type { ChatEventJson } from "./json";
import { jsonish } from "./jsonish";

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
