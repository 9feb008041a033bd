/**
 * The relay's promises as one list of scenarios, each run against every driver (drivers.ts) that
 * has what it needs: order, resume (by offset, by Last-Event-ID), each gap, idempotent retries, the
 * replay pause and its continuation, oversize and malformed input, heartbeats, a full room, a slow
 * consumer, and a client that goes away. A scenario speaks the driver interface, with plain HTTP
 * (and, to flood a room, one WebSocket) as the other end; what is transport-specific lives in the
 * drivers.
 */
import { expect } from "vitest";
import { CODES, type ErrorCode } from "../../../src/errors";
import {
  type ChatEventJson,
  history,
  publishJson,
  type StatsJson,
  stats,
  uniqueRoom,
  WsClient,
  waitFor,
  waitForAsync,
  within,
  wsUrl,
} from "../clients";
import {
  type Driver,
  describeEnd,
  type End,
  type PublishResult,
  Refused,
  type Subscription,
  type Target,
} from "./drivers";

/** The settings the suite's server runs with (wrangler.toml [vars], small so that every case is cheap). */
export interface Limits {
  heartbeatSeconds: number;
  replayMaxBytes: number;
  subscriberMaxBehindBytes: number;
  historyMaxCount: number;
  maxConnectionsPerRoom: number;
  maxMessageBytes: number;
}

export interface Suite extends Target {
  drivers: Driver[];
  limits: Limits;
}

export interface Scenario {
  name: string;
  /** Whether the driver can run it; scenarios that do not apply are not generated (never skipped). */
  applies?: (d: Driver) => boolean;
  timeout?: number;
  run(d: Driver, s: Suite): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Helpers

const DIGITS = /^\d+$/;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const kinds = (events: ChatEventJson[]) => events.map((e) => e.kind);
const messageKinds = (n: number) => Array.from({ length: n }, () => "message");

/**
 * Publishes `n` messages over HTTP (a few at a time) into a fresh room; returns the stored events
 * in log order.
 */
async function fill(
  s: Suite,
  room: string,
  n: number,
  text: (i: number) => string = (i) => `m${i}`,
  id?: (i: number) => string,
): Promise<ChatEventJson[]> {
  const out: ChatEventJson[] = [];
  for (let i = 1; i <= n; i += 4) {
    const batch = range(i, Math.min(n, i + 3)).map((j) => publishJson(s.baseUrl, room, { text: text(j), id: id?.(j) }));
    for (const r of await Promise.all(batch)) {
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      out.push(r.body);
    }
  }
  out.sort((a, b) => Number(a.seq) - Number(b.seq));
  expect(out.map((e) => Number(e.seq))).toEqual(range(1, n));
  return out;
}

/** Publishes over HTTP, as the other end of a scenario (never through the driver under test). */
async function httpPublish(s: Suite, room: string, msg: { text: string; id?: string }): Promise<PublishResult> {
  const r = await publishJson(s.baseUrl, room, msg);
  expect([200, 201], JSON.stringify(r.body)).toContain(r.status);
  return { event: r.body, duplicate: r.status === 200 };
}

/**
 * Publishes a marker over HTTP and waits until every subscription has it: whatever was fanned out
 * before it has arrived by then, so each subscription's messages are complete and can be compared
 * whole (nothing missing, nothing repeated).
 */
async function marker(s: Suite, room: string, subs: Subscription[]): Promise<ChatEventJson> {
  const { event } = await httpPublish(s, room, { text: `marker ${Date.now()}` });
  for (const sub of subs) {
    await waitFor(
      `marker ${event.seq}`,
      () => sub.messages().some((e) => e.seq === event.seq),
      10_000,
      () => ({ events: kinds(sub.events), end: describeEnd(sub.end) }),
    );
  }
  return event;
}

/**
 * Resumes from `since` as a client does until it has reached offset `last`: each part that the
 * room ends with replay_paused is followed by a new subscription after its last message. Returns
 * the parts; the last one is still open (live).
 */
async function catchUp(d: Driver, room: string, since: number, last: number): Promise<Subscription[]> {
  const parts: Subscription[] = [];
  for (let from = since; ; ) {
    expect(parts.length, "parts").toBeLessThan(12);
    const part = await d.subscribe(room, { since: from });
    parts.push(part);
    expect(part.events[0]).toMatchObject({ kind: "subscribed" });
    expect(part.events[0].resumeAfter ?? "0").toBe(String(from));
    await waitFor(
      `offset ${last}, or the end of the part`,
      () => part.end !== undefined || part.messages().at(-1)?.seq === String(last),
      10_000,
      () => ({ events: kinds(part.events), end: describeEnd(part.end) }),
    );
    if (part.end === undefined) return parts;
    expectEnd(part.end, "replay_paused");
    expect(part.messages().length, "a part moves on by one event at least").toBeGreaterThan(0);
    from = Number(part.messages().at(-1)?.seq);
  }
}

/** Checks an end against the table in src/errors.ts: every wire rendering is the one the table gives `code`. */
export function expectEnd(end: End | undefined, code: ErrorCode | "normal"): void {
  expect(end, `an end with ${code}`).toBeDefined();
  const e = end as End;
  expect(e.codes, describeEnd(e)).toContain(code);
  if (code === "normal") return;
  const r = CODES[code];
  if (e.wire.close) expect(e.wire.close.code).toBe(r.close);
  if (e.wire.http) expect(e.wire.http).toEqual({ status: r.http, code });
  if (e.wire.connect) expect(e.wire.connect).toBe(r.connect);
  if (e.wire.disconnect) expect(e.wire.disconnect).toMatchObject({ code, reconnect: r.reconnect });
  if (e.wire.errorFrame) expect(e.wire.errorFrame.code).toBe(code);
}

/** Expects `p` to be refused with `code`. */
async function expectRefused(p: Promise<unknown>, code: ErrorCode, what: string): Promise<End> {
  const outcome = await p.then(
    (v) => new Error(`${what}: accepted ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );
  if (!(outcome instanceof Refused)) throw outcome;
  expectEnd(outcome.end, code);
  return outcome.end;
}

/** SSE: each event's `id:` is its resume offset (the seq of a message; resumeAfter, 0 when omitted, on subscribed and gap). */
function expectIds(sub: Subscription): void {
  if (!sub.ids) return;
  expect(sub.ids).toEqual(sub.events.map((e) => (e.kind === "message" ? e.seq : (e.resumeAfter ?? "0"))));
}

/** Every message carries exactly the fields of a message (JSON mapping, default values omitted). */
function expectMessageShape(e: ChatEventJson, room: string, epoch: string): void {
  expect(Object.keys(e).sort()).toEqual(["epoch", "id", "kind", "room", "seq", "text", "timeMs", "user"]);
  expect(e).toMatchObject({ room, epoch, kind: "message" });
  expect(e.seq).toMatch(DIGITS);
  expect(e.timeMs).toMatch(DIGITS);
}

function total(st: StatsJson): number {
  return Object.values(st.connections).reduce((a, b) => a + b, 0);
}

// ---------------------------------------------------------------------------------------------
// The scenarios

export const scenarios: Scenario[] = [
  {
    name: "a burst published on every transport reaches the subscriber in the log's one order, live and replayed",
    async run(d, s) {
      const room = uniqueRoom("order");
      const live = await d.subscribe(room);
      const subscribed = live.events[0];
      expect(subscribed).toMatchObject({ kind: "subscribed", room });
      // An empty room: the subscription resumes after 0 (omitted in JSON), and is not in the log.
      expect(subscribed.seq).toBeUndefined();
      expect(subscribed.resumeAfter).toBeUndefined();

      // Every driver publishes at once, each a few messages back to back.
      const per = 4;
      const sent = await Promise.all(
        s.drivers.map((p) => Promise.all(range(1, per).map((i) => p.publish(room, { text: `${p.name} ${i}` })))),
      );
      const n = s.drivers.length * per;
      const log = (await history(s.baseUrl, room)).events;
      expect(log.map((e) => Number(e.seq))).toEqual(range(1, n));
      for (const [i, p] of s.drivers.entries()) {
        for (const r of sent[i]) {
          expect(r.duplicate).toBe(false);
          expect(r.event).toEqual(log[Number(r.event.seq) - 1]);
        }
        // One connection's publishes keep their order.
        const seqs = sent[i].map((r) => Number(r.event.seq));
        if (p.capabilities.orderedPublish) expect(seqs, p.name).toEqual([...seqs].sort((a, b) => a - b));
      }
      const replay = await d.subscribe(room, { since: 0 });
      const end = await marker(s, room, [live, replay]);
      expect(live.messages()).toEqual([...log, end]);
      expect(replay.messages()).toEqual([...log, end]);
      for (const e of live.messages()) expectMessageShape(e, room, subscribed.epoch);
      const times = live.messages().map((e) => Number(e.timeMs));
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(kinds(replay.events)).toEqual(["subscribed", ...messageKinds(n + 1)]);
      expectIds(live);
      expectIds(replay);
      expect(live.end).toBeUndefined();
    },
  },

  {
    name: "resumes from an offset: exactly the retained events after it, then live",
    async run(d, s) {
      const room = uniqueRoom("since");
      const published = await fill(s, room, 5);
      const epoch = published[0].epoch;
      const from2 = await d.subscribe(room, { since: 2 });
      const from0 = await d.subscribe(room, { since: 0 });
      const from4 = await d.subscribe(room, { since: 4, epoch });
      const live = await d.subscribe(room);
      expect(from2.events[0]).toMatchObject({
        kind: "subscribed",
        room,
        epoch,
        resumeAfter: "2",
        firstSeq: "1",
        lastSeq: "5",
      });
      expect(from0.events[0].resumeAfter).toBeUndefined();
      expect(from4.events[0]).toMatchObject({ kind: "subscribed", resumeAfter: "4" });
      // Live only: resumes after the head of the log.
      expect(live.events[0]).toMatchObject({ kind: "subscribed", resumeAfter: "5", lastSeq: "5" });

      const next = await d.publish(room, { text: "live" });
      expect(next.event.seq).toBe("6");
      const end = await marker(s, room, [from2, from0, from4, live]);
      const log = [...published, next.event, end];
      for (const [sub, since] of [
        [from2, 2],
        [from0, 0],
        [from4, 4],
        [live, 5],
      ] as const) {
        expect(sub.messages(), `since ${since}`).toEqual(log.slice(since));
        expect(kinds(sub.events)).toEqual(["subscribed", ...messageKinds(log.length - since)]);
        expectIds(sub);
      }
    },
  },

  {
    name: "resumes from Last-Event-ID, and an EventSource resumes by itself after each pause",
    applies: (d) => d.capabilities.lastEventId,
    async run(d, s) {
      const room = uniqueRoom("lei");
      const published = await fill(s, room, 5);
      // Last-Event-ID wins over ?since= (what a reconnecting EventSource sends along its URL).
      const sub = await d.subscribe(room, { lastEventId: "2", since: 0 });
      expect(sub.events[0]).toMatchObject({ kind: "subscribed", resumeAfter: "2" });
      const end = await marker(s, room, [sub]);
      expect(sub.messages()).toEqual([...published.slice(2), end]);
      expect(sub.requests).toEqual(["2"]);
      expectIds(sub);

      // A log longer than REPLAY_MAX_BYTES: the EventSource is told to come back at once, and does,
      // each time with the id of the last event it got.
      const long = uniqueRoom("lei-parts");
      const n = 24;
      const parts = await fill(s, long, n, (i) => `${i} ${"y".repeat(1200)}`);
      const auto = await d.subscribe(long, { lastEventId: "3", since: 0 });
      await auto.waitMessages(n - 3, 15_000);
      const last = await marker(s, long, [auto]);
      expect(auto.messages()).toEqual([...parts.slice(3), last]);
      expect(auto.opens).toBeGreaterThan(1);
      expect(auto.ends).toHaveLength(auto.opens - 1);
      for (const e of auto.ends) expectEnd(e, "replay_paused");
      expect(auto.retries).toContain("0");
      // Each connection starts with `subscribed` after the Last-Event-ID it sent, which is the
      // last message the one before it delivered.
      const starts = auto.events.filter((e) => e.kind === "subscribed").map((e) => e.resumeAfter ?? "0");
      expect(starts).toHaveLength(auto.opens);
      expect(auto.requests).toEqual(starts);
      let lastSeq = "3";
      for (const e of auto.events) {
        if (e.kind === "subscribed") expect(e.resumeAfter).toBe(lastSeq);
        if (e.kind === "message") lastSeq = e.seq as string;
      }
      expectIds(auto);
    },
  },

  {
    name: "a resume point older than retention gets a gap (retention) and resumes after it, then the retained events",
    async run(d, s) {
      const room = uniqueRoom("rt");
      const max = s.limits.historyMaxCount;
      const n = max + 5;
      const published = await fill(
        s,
        room,
        n,
        (i) => `m${i}`,
        (i) => `r${i}`,
      );
      const first = n - max + 1;
      const retained = published.slice(first - 1);
      const sub = await d.subscribe(room, { since: 2 });
      await sub.waitMessages(max);
      expect(kinds(sub.events)).toEqual(["subscribed", "gap", ...messageKinds(max)]);
      const bounds = { firstSeq: String(first), lastSeq: String(n) };
      expect(sub.events[0]).toMatchObject({ kind: "subscribed", resumeAfter: "2", ...bounds });
      expect(sub.events[1]).toMatchObject({
        kind: "gap",
        reason: "retention",
        resumeAfter: String(first - 1),
        room,
        epoch: published[0].epoch,
        ...bounds,
      });
      expect(sub.events[1].seq).toBeUndefined();
      expect(sub.messages()).toEqual(retained);
      expectIds(sub);

      // Resuming exactly at the retained edge is no gap.
      const edge = await d.subscribe(room, { since: first - 1 });
      await edge.waitMessages(max);
      expect(kinds(edge.events)).toEqual(["subscribed", ...messageKinds(max)]);
      expect(edge.messages()).toEqual(retained);

      // The id of an event no longer retained is free again: a new publish, not a duplicate.
      const again = await (d.capabilities.publishIds ? d : null)?.publish(room, { text: "again", id: published[0].id });
      if (again) expect(again).toMatchObject({ duplicate: false, event: { seq: String(n + 1), text: "again" } });
      expect(sub.end).toBeUndefined();
    },
  },

  {
    name: "a resume point from another epoch gets a gap (epoch), then everything retained",
    async run(d, s) {
      const room = uniqueRoom("ep");
      const published = await fill(s, room, 3);
      const epoch = published[0].epoch;
      const wrong = await d.subscribe(room, { since: 2, epoch: "notTheEpoch" });
      const right = await d.subscribe(room, { since: 2, epoch });
      await wrong.waitMessages(3);
      expect(kinds(wrong.events)).toEqual(["subscribed", "gap", "message", "message", "message"]);
      expect(wrong.events[0]).toMatchObject({ kind: "subscribed", epoch, resumeAfter: "2" });
      expect(wrong.events[1]).toMatchObject({ kind: "gap", reason: "epoch", epoch, room, firstSeq: "1", lastSeq: "3" });
      // Everything retained follows: the gap resumes after 0 (omitted).
      expect(wrong.events[1].resumeAfter).toBeUndefined();
      expect(wrong.events[1].text).toContain("notTheEpoch");
      expect(wrong.messages()).toEqual(published);
      expectIds(wrong);
      // The matching epoch resumes normally.
      await right.waitMessages(1);
      expect(kinds(right.events)).toEqual(["subscribed", "message"]);
      expect(right.messages()).toEqual([published[2]]);
    },
  },

  {
    name: "a resume point past the end of the log gets a gap (ahead), then everything retained and live",
    async run(d, s) {
      const room = uniqueRoom("ah");
      const published = await fill(s, room, 3);
      const sub = await d.subscribe(room, { since: 99 });
      const next = await marker(s, room, [sub]);
      expect(kinds(sub.events)).toEqual(["subscribed", "gap", ...messageKinds(4)]);
      expect(sub.events[0]).toMatchObject({ kind: "subscribed", resumeAfter: "99", firstSeq: "1", lastSeq: "3" });
      expect(sub.events[1]).toMatchObject({ kind: "gap", reason: "ahead", firstSeq: "1", lastSeq: "3" });
      expect(sub.events[1].resumeAfter).toBeUndefined();
      expect(sub.messages()).toEqual([...published, next]);
      expectIds(sub);
    },
  },

  {
    name: "a retried id returns the original event, stores one, and fans out once",
    async run(d, s) {
      const room = uniqueRoom("dup");
      const sub = await d.subscribe(room);
      const id = `id-${room}`;
      // Plain WebSocket frames carry no id: its subscriber still sees an HTTP retry fanned out once.
      const publish = (msg: { text: string; id: string }) =>
        d.capabilities.publishIds ? d.publish(room, msg) : httpPublish(s, room, msg);
      const first = await publish({ text: "first", id });
      expect(first.duplicate).toBe(false);
      expect(first.event).toMatchObject({ seq: "1", id, text: "first" });
      const retry = await publish({ text: "first, retried", id });
      expect(retry).toEqual({ event: first.event, duplicate: true });
      // On any transport.
      expect(await httpPublish(s, room, { text: "again over HTTP", id })).toEqual({
        event: first.event,
        duplicate: true,
      });
      const end = await marker(s, room, [sub]);
      expect(sub.messages()).toEqual([first.event, end]);
      expect((await history(s.baseUrl, room)).events).toEqual([first.event, end]);
    },
  },

  {
    name: "a replay longer than REPLAY_MAX_BYTES pauses (replay_paused) and continues from the last offset: nothing lost or repeated",
    async run(d, s) {
      const room = uniqueRoom("pause");
      const n = 24;
      const published = await fill(s, room, n, (i) => `${i} ${"p".repeat(1200)}`);
      /** Each part is bounded: REPLAY_MAX_BYTES, and at least one event. */
      const expectBounded = (part: ChatEventJson[]) => {
        const bytes = part.reduce((a, e) => a + (e.text?.length ?? 0), 0);
        expect(part.length).toBeGreaterThan(0);
        expect(bytes).toBeLessThanOrEqual(s.limits.replayMaxBytes + s.limits.maxMessageBytes);
      };
      if (d.capabilities.lastEventId) {
        // EventSource goes on by itself: one subscription, several connections.
        const sub = await d.subscribe(room, { since: 0 });
        await sub.waitMessages(n, 15_000);
        const end = await marker(s, room, [sub]);
        expect(sub.messages()).toEqual([...published, end]);
        expect(sub.ends.length).toBeGreaterThan(0);
        for (const e of sub.ends) expectEnd(e, "replay_paused");
        expect(sub.opens).toBe(sub.ends.length + 1);
        expect(sub.retries).toContain("0");
        expectIds(sub);
        return;
      }
      // The client resumes itself, from the last offset it got, until it has caught up.
      const parts = await catchUp(d, room, 0, n);
      expect(parts.length).toBeGreaterThan(1);
      for (const part of parts.slice(0, -1)) expectBounded(part.messages());
      expect(parts.flatMap((p) => p.messages())).toEqual(published);
      // The last part goes on live.
      const live = parts[parts.length - 1];
      const end = await marker(s, room, [live]);
      expect(live.messages().at(-1)).toEqual(end);
      expect(live.end).toBeUndefined();
    },
  },

  {
    name: "oversize input is refused (too_large) in the transport's terms; the room keeps serving",
    async run(d, s) {
      const room = uniqueRoom("big");
      const max = s.limits.maxMessageBytes;
      const sub = await d.subscribe(room);
      await expectRefused(d.publish(room, { text: "x".repeat(max + 1) }), "too_large", "one byte over");
      // Counted in UTF-8 bytes, not characters.
      await expectRefused(d.publish(room, { text: "é".repeat(max / 2 + 1) }), "too_large", "over in UTF-8");
      await expectRefused(d.publish(room, { text: "x".repeat(max * 4) }), "too_large", "over the frame limit");
      const exact = await d.publish(room, { text: "x".repeat(max) });
      const exactUtf8 = await d.publish(room, { text: "é".repeat(max / 2) });
      expect(exact.event).toMatchObject({ seq: "1", text: "x".repeat(max) });
      expect(exactUtf8.event).toMatchObject({ seq: "2", text: "é".repeat(max / 2) });
      const end = await marker(s, room, [sub]);
      expect(sub.messages()).toEqual([exact.event, exactUtf8.event, end]);
      expect(sub.end).toBeUndefined();
      expect((await history(s.baseUrl, room)).lastSeq).toBe("3");
    },
  },

  {
    name: "malformed input is refused (invalid_argument); a WebSocket stays open, the room keeps serving",
    async run(d, s) {
      const room = uniqueRoom("bad");
      const sub = await d.subscribe(room);
      const { refusals, after, keptOpen } = await d.malformed(room);
      expect(refusals.length).toBeGreaterThan(0);
      for (const r of refusals) {
        expect(r.end.codes, `${r.input}: ${describeEnd(r.end)}`).toContain(r.expect);
        expectEnd(r.end, r.expect);
        if (r.id !== undefined) expect(r.end.wire.errorFrame?.id, r.input).toBe(r.id);
      }
      expect(keptOpen).not.toBe(false);
      expect(after.event).toMatchObject({ seq: "1" });
      // A resume point that is not one is refused before the subscription starts.
      const bad = await d.subscribe(room, { since: 1, epoch: "not an epoch!" });
      expectEnd(await within(bad.ended, 5000, "the refusal"), "invalid_argument");
      expect(bad.events).toEqual([]);
      const end = await marker(s, room, [sub]);
      expect(sub.messages()).toEqual([after.event, end]);
      expect(sub.end).toBeUndefined();
      expect((await history(s.baseUrl, room)).lastSeq).toBe("2");
    },
  },

  {
    name: "an idle subscription gets heartbeats and stays open",
    applies: (d) => d.capabilities.heartbeats,
    async run(d, s) {
      const room = uniqueRoom("hb");
      const sub = await d.subscribe(room);
      await waitFor("two heartbeats", () => sub.heartbeats >= 2, (2 * s.limits.heartbeatSeconds + 5) * 1000);
      expect(kinds(sub.events)).toEqual(["subscribed"]);
      expect(sub.end).toBeUndefined();
      const end = await marker(s, room, [sub]);
      expect(sub.messages()).toEqual([end]);
    },
  },

  {
    name: "a full room refuses one more subscriber (room_full) while the others keep receiving",
    async run(d, s) {
      const room = uniqueRoom("full");
      const max = s.limits.maxConnectionsPerRoom;
      const subs: Subscription[] = [];
      for (let i = 0; i < max; i++) subs.push(await d.subscribe(room));
      for (const sub of subs) expect(kinds(sub.events)).toEqual(["subscribed"]);
      const extra = await d.subscribe(room);
      expectEnd(await within(extra.ended, 5000, "the refusal"), "room_full");
      expect(extra.events).toEqual([]);
      const end = await marker(s, room, subs);
      for (const sub of subs) {
        expect(sub.messages()).toEqual([end]);
        expect(sub.end).toBeUndefined();
      }
      expect(total(await stats(s.baseUrl, room))).toBe(max);
    },
  },

  {
    name: "a subscriber that stops reading is disconnected (too_slow), counted, and can resume from its offset",
    async run(d, s) {
      const room = uniqueRoom("slow");
      const sub = await d.subscribe(room);
      expect((await stats(s.baseUrl, room)).slowDisconnects).toBe("0");
      sub.pause();
      const counted = async () => {
        const st = await stats(s.baseUrl, room);
        return st.slowDisconnects !== "0" && st;
      };
      let published: ChatEventJson[] = [];
      let after: StatsJson;
      if (d.capabilities.direct) {
        // The room sees what a socket left unconfirmed (pings unanswered, no frame sent): the whole
        // retained log, about twice SUBSCRIBER_MAX_BEHIND_BYTES. The socket is closed past the
        // bound once a ping has waited its grace (2 s), or at once at twice the bound.
        const n = s.limits.historyMaxCount;
        expect(n * s.limits.maxMessageBytes).toBeGreaterThan(1.5 * s.limits.subscriberMaxBehindBytes);
        published = await fill(s, room, n, (i) => `${i} ${"s".repeat(s.limits.maxMessageBytes - 10)}`);
        after = await waitForAsync("the room to close the stalled socket", counted, 8000);
      } else {
        // A stream's bytes first fill the buffers between the Worker and the client (the kernel's,
        // wrangler dev's proxy); only then does the bridge stop confirming. A burst at a pace the
        // stalled stream cannot drain gets there; it stops as soon as the room has closed it.
        const pub = await WsClient.open(wsUrl(s.baseUrl, `/rooms/${room}/ws`), undefined, { flowControl: true });
        try {
          const text = "f".repeat(s.limits.maxMessageBytes - 10);
          let found: StatsJson | false = false;
          for (let i = 0; i < 200 && !found && pub.closed === undefined; i++) {
            for (let j = 0; j < 20; j++) pub.publish(text);
            await new Promise((r) => setTimeout(r, 20));
            if (i % 5 === 4) found = await counted();
          }
          after = found || (await waitForAsync("the stream to be closed as too slow", counted, 5000));
          expect(pub.closed, "the publisher kept up").toBeUndefined();
        } finally {
          await pub.close();
        }
        // Its bridge to the room is gone at once.
        expect(after.connections[d.transport]).toBeUndefined();
      }
      expect(after.slowDisconnects).toBe("1");
      // Reading again, the client finds the end the table gives a slow subscriber.
      sub.resume();
      expectEnd(await within(sub.ended, 5000, "the end of the subscription"), "too_slow");
      await waitForAsync("the connection to leave stats", async () => total(await stats(s.baseUrl, room)) === 0, 5000);
      if (!d.capabilities.direct) return;
      // What it got is a prefix of the log (all of it, when the room had sent it before the grace
      // was over); it resumes from its last offset and misses nothing.
      const got = sub.messages();
      expect(got).toEqual(published.slice(0, got.length));
      if (got.length === published.length) return; // sent it all before the grace was over
      const again = await catchUp(d, room, got.length, published.length);
      expect([...got, ...again.flatMap((p) => p.messages())]).toEqual(published);
    },
  },

  {
    name: "a publisher that stops reading is disconnected (too_slow) and counted once",
    applies: (d) => d.capabilities.acks,
    async run(d, s) {
      const room = uniqueRoom("slowpub");
      const sub = await d.subscribe(room);
      if (!sub.publishOwn) throw new Error(`${d.name} cannot publish on its subscription`);
      sub.pause();
      // Its acks and the events it published come back to it: unread, they add up past the bound.
      const n = Math.ceil((1.25 * s.limits.subscriberMaxBehindBytes) / s.limits.maxMessageBytes);
      for (let i = 1; i <= n; i++)
        sub.publishOwn({ text: `${i} ${"q".repeat(s.limits.maxMessageBytes - 10)}`, id: `q${i}` });
      const after = await waitForAsync(
        "the room to read every publish and close the stalled publisher",
        async () => {
          const st = await stats(s.baseUrl, room);
          return st.lastSeq === String(n) && st.slowDisconnects !== "0" && st;
        },
        5000,
      );
      expect(after.slowDisconnects, "one slow subscriber is one slow disconnect").toBe("1");
      sub.resume();
      expectEnd(await within(sub.ended, 5000, "the close"), "too_slow");
    },
  },

  {
    name: "a client that goes away leaves the room's connections",
    async run(d, s) {
      const room = uniqueRoom("gone");
      const sub = await d.subscribe(room);
      const st = await waitForAsync("the subscriber in stats", async () => {
        const x = await stats(s.baseUrl, room);
        return x.connections[d.transport] === 1 && x;
      });
      expect(st.connections).toEqual({ [d.transport]: 1 });
      await sub.close();
      // A stream's client that went away is noticed at the next write: a heartbeat at the latest.
      const left = await waitForAsync(
        "the subscriber to leave stats",
        async () => {
          const x = await stats(s.baseUrl, room);
          return total(x) === 0 && x;
        },
        (3 * s.limits.heartbeatSeconds + 5) * 1000,
      );
      expect(left.connections).toEqual({});
    },
  },

  {
    name: "HEAD on the subscribe route answers headers only and never subscribes",
    applies: (d) => d.capabilities.head,
    async run(d, s) {
      const room = uniqueRoom("head");
      const url = `${s.baseUrl}/rooms/${room}/sse`;
      for (let i = 0; i < 30; i++) {
        const answers = await Promise.all(
          range(1, 10).map(() => fetch(url, { method: "HEAD", signal: AbortSignal.timeout(5000) })),
        );
        for (const res of answers) {
          expect(res.status).toBe(200);
          expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
          expect(await res.text()).toBe("");
        }
      }
      expect((await stats(s.baseUrl, room)).connections).toEqual({});
      // 300 subscribers would have filled the room many times over.
      const sub = await d.subscribe(room);
      expect(kinds(sub.events)).toEqual(["subscribed"]);
      expect((await stats(s.baseUrl, room)).connections).toEqual({ sse: 1 });
    },
  },
];
