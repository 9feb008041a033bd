/**
 * The checks around the fuzz slices. The health probe, run before, between and after the slices:
 * a well-behaved relay.v1.json WebSocket subscriber in a fresh room and an HTTP publisher of N
 * numbered messages; every message must reach the subscriber in order and once, and the room's
 * history must hold exactly them. And the storage check after the run: what a room holds.
 */
import WebSocket from "ws";
import { httpRequest, laneAgent } from "./http-client";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface EventJson {
  kind?: string;
  seq?: string;
  text?: string;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

/** Every event a room retains, page by page (at most `maxPages`); a string says why it could not be read. */
export async function storedEvents(
  base: URL,
  room: string,
  timeoutMs: number,
  maxPages = 50,
): Promise<EventJson[] | string> {
  const agent = laneAgent();
  try {
    const events: EventJson[] = [];
    for (let page = 0, since = "0"; page < maxPages; page++) {
      const o = await httpRequest(base, agent, {
        method: "GET",
        path: `/rooms/${room}/messages?since=${since}`,
        timeoutMs,
      });
      if ("error" in o) return `history of ${room}: ${o.error}`;
      if (o.answer.status !== 200)
        return `history of ${room}: HTTP ${o.answer.status} ${o.answer.body.toString().slice(0, 200)}`;
      const h = JSON.parse(o.answer.body.toString()) as { events: EventJson[]; hasMore: boolean };
      events.push(...h.events);
      if (!h.hasMore) return events;
      since = h.events.at(-1)?.seq ?? since;
    }
    return `history of ${room}: more than ${maxPages} pages`;
  } finally {
    agent.destroy();
  }
}

/** One health probe; undefined when healthy, else what went wrong. */
export async function healthProbe(base: URL, room: string, n: number, timeoutMs: number): Promise<string | undefined> {
  const url = `${base.origin.replace(/^http/, "ws")}/rooms/${room}/ws`;
  const ws = new WebSocket(url, ["relay.v1.json"], { handshakeTimeout: timeoutMs });
  const got: EventJson[] = [];
  let subscribed = false;
  let closed: string | undefined;
  ws.on("message", (data: Buffer) => {
    const f = JSON.parse(data.toString()) as {
      event?: EventJson;
      batch?: { events: EventJson[] };
      ping?: { id: string };
    };
    if (f.ping) ws.send(JSON.stringify({ pong: f.ping }));
    for (const e of f.batch?.events ?? (f.event ? [f.event] : [])) {
      if (e.kind === "subscribed") subscribed = true;
      else if (e.kind === "message") got.push(e);
    }
  });
  ws.on("close", (code, reason) => {
    closed = `${code} ${reason}`;
  });
  ws.on("error", () => {});
  const agent = laneAgent();
  try {
    if (!(await until(() => subscribed || closed !== undefined, timeoutMs)))
      return "the subscriber got no subscribed event";
    if (closed) return `the subscriber was closed: ${closed}`;
    const texts: string[] = [];
    for (let i = 1; i <= n; i++) {
      const text = `probe ${room} #${i}`;
      texts.push(text);
      const o = await httpRequest(base, agent, {
        method: "POST",
        path: `/rooms/${room}/messages`,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text, id: `${room}-${i}` }),
        timeoutMs,
      });
      if ("error" in o) return `publish #${i}: ${o.error}`;
      if (o.answer.status !== 201)
        return `publish #${i}: HTTP ${o.answer.status} ${o.answer.body.toString().slice(0, 200)}`;
    }
    if (!(await until(() => got.length >= n || closed !== undefined, timeoutMs))) {
      return `the subscriber got ${got.length} of ${n} messages`;
    }
    await sleep(50); // anything extra (a duplicate) arrives now
    const received = got.map((e) => e.text);
    if (JSON.stringify(received) !== JSON.stringify(texts)) {
      return `the subscriber got ${JSON.stringify(received).slice(0, 300)}, not the ${n} messages in order once each`;
    }
    const seqs = got.map((e) => Number(e.seq));
    if (seqs.some((s, i) => i > 0 && s !== seqs[i - 1] + 1)) return `offsets not consecutive: ${seqs.join(",")}`;
    const stored = await storedEvents(base, room, timeoutMs);
    if (typeof stored === "string") return stored;
    const history = stored.map((e) => e.text);
    if (JSON.stringify(history) !== JSON.stringify(texts))
      return `history holds ${JSON.stringify(history).slice(0, 300)}`;
    if (closed) return `the subscriber was closed: ${closed}`;
    return undefined;
  } finally {
    agent.destroy();
    ws.close();
  }
}
