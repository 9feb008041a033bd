/**
 * docs/auth.md, "Abuse limits", with small limits: 5 publishes a second per user in a room (across
 * connections, transports and reconnects), 3 connections per user in a room, 50 publishes a second
 * per WebSocket, and the NEW_ROOMS limit on anonymous clients (20 new rooms a minute per address).
 * Anonymous clients may publish here, and there is a secret for tokens. Also: idempotency ids are
 * scoped by `sub`, and a broken token is refused even where anonymous access would do.
 *
 * Only the new-rooms test publishes anonymously into rooms that have no events yet, so the
 * others do not use up its units.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService } from "../../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
import {
  connectTransports,
  fullHistory,
  history,
  publishJson,
  SseClient,
  StreamRecorder,
  sleep,
  uniqueRoom,
  WS_PROTOCOL,
  WsClient,
  waitFor,
  wsUrl,
} from "../clients";
import { bearer, CLOSE_CODE, closeAnswer, httpAnswer, publishWith } from "./answers";
import { allRights, claims, expiredClaims, hs256, SECRET, wrongSecret } from "./tokens";

const USER_RATE = 5;
const MAX_CONNECTIONS = 3;
const NEW_ROOMS_PER_MINUTE = 20;

let server: DevServer;
let base: string;
const rpc = () => createClient(ChatService, connectTransports(base)["connect-json"]);

beforeAll(async () => {
  server = await startDevServer({
    vars: {
      ANONYMOUS_ACCESS: "publish",
      RELAY_JWT_SECRET: SECRET,
      USER_PUBLISH_RATE_PER_SECOND: String(USER_RATE),
      MAX_CONNECTIONS_PER_USER: String(MAX_CONNECTIONS),
      PUBLISH_RATE_PER_SECOND: "50",
      LIMIT_ANONYMOUS_NEW_ROOMS: "true",
    },
  });
  base = server.baseUrl;
}, READY_TIMEOUT_MS + 10_000);

afterAll(async () => {
  await server?.stop();
});

/** A token for `sub` with every right in `room`. */
const tokenFor = (sub: string, room: string) => hs256(claims(sub, allRights(room)));

/** A relay.v1.json WebSocket of `token`'s holder that has been told it subscribed (or was closed). */
async function openWs(room: string, token: string | undefined): Promise<WsClient> {
  const ws = await WsClient.open(wsUrl(base, `/rooms/${room}/ws`), WS_PROTOCOL.json, {
    headers: bearer(token),
    flowControl: true,
  });
  await waitFor(
    "subscribed or closed",
    () => ws.closed || ws.events[0]?.kind === "subscribed",
    3000,
    () => ws.frames,
  );
  return ws;
}

/** What an SSE request is answered with: "200" once it streams, or the refusal. */
async function sseAnswer(room: string, token: string): Promise<{ answer: string; sse: SseClient }> {
  const sse = new SseClient(`${base}/rooms/${room}/sse?token=${token}`);
  await waitFor("an answer", () => sse.refusals.length > 0 || sse.events.length > 0, 3000);
  const answer = sse.refusals[0] ? httpAnswer(sse.refusals[0].status, sse.refusals[0].body) : "200";
  return { answer, sse };
}

describe("idempotency ids", () => {
  it("are scoped by sub: another user's id does not hide a message, and each retry gets its own event", async () => {
    const room = uniqueRoom("ab-ids");
    const mallory = await tokenFor("mallory", room);
    const alice = await tokenFor("alice", room);

    const m1 = await publishWith(base, room, mallory, { text: "mallory was here first", id: "k-1" });
    const a1 = await publishWith(base, room, alice, { text: "alice's own message", id: "k-1" });
    expect([m1.status, a1.status]).toEqual([201, 201]);
    expect(a1.body).toMatchObject({ user: "alice", text: "alice's own message", id: "k-1" });
    expect(a1.body.seq).not.toBe(m1.body.seq);

    const m2 = await publishWith(base, room, mallory, { text: "retry", id: "k-1" });
    const a2 = await publishWith(base, room, alice, { text: "retry", id: "k-1" });
    expect([m2.status, m2.body]).toEqual([200, m1.body]);
    expect([a2.status, a2.body]).toEqual([200, a1.body]);

    // The same on a WebSocket: alice's retry is her own event, marked duplicate.
    const ws = await openWs(room, alice);
    try {
      ws.publish("retry over ws", "k-1");
      const ack = await waitFor(
        "the ack",
        () => ws.acks[0] ?? ws.errors[0],
        3000,
        () => ws.frames,
      );
      expect(ack).toEqual({ event: a1.body, duplicate: true });
    } finally {
      await ws.close();
    }

    // Anonymous publishers share one scope of their own.
    const anon1 = await publishJson(base, room, { text: "anonymous", id: "k-1" });
    const anon2 = await publishJson(base, room, { text: "anonymous retry", id: "k-1", user: "someone-else" });
    expect(anon1.status).toBe(201);
    expect(anon1.body).toMatchObject({ user: "anonymous", text: "anonymous" });
    expect([anon2.status, anon2.body]).toEqual([200, anon1.body]);

    expect((await history(base, room)).events.map((e) => [e.user, e.text])).toEqual([
      ["mallory", "mallory was here first"],
      ["alice", "alice's own message"],
      ["anonymous", "anonymous"],
    ]);
  });
});

describe("per-user publish rate", () => {
  it("holds across the user's WebSockets, HTTP and Connect together, and a reconnect does not refill it", async () => {
    const room = uniqueRoom("ab-rate");
    const token = await tokenFor("spammer", room);
    const sockets: WsClient[] = [];
    try {
      for (let i = 0; i < MAX_CONNECTIONS; i++) sockets.push(await openWs(room, token));
      expect(sockets.map((s) => s.closed)).toEqual(sockets.map(() => undefined));
      const client = rpc();
      const http: string[] = [];
      const connect: string[] = [];
      let wsSent = 0;
      const start = Date.now();
      const until = start + 2000;
      // Every WebSocket sends 40 a second (under the per-connection 50), HTTP and Connect as fast as they can.
      const loops = [
        ...sockets.map(async (ws, n) => {
          for (let i = 0; Date.now() < until; i++) {
            ws.publish(`ws ${n}-${i}`, `ws-${n}-${i}`);
            wsSent++;
            await sleep(25);
          }
        }),
        (async () => {
          for (let i = 0; Date.now() < until; i++) {
            const r = await publishWith(base, room, token, { text: `http ${i}`, id: `http-${i}` });
            http.push(r.status === 201 ? "201" : httpAnswer(r.status, r.body));
          }
        })(),
        (async () => {
          for (let i = 0; Date.now() < until; i++) {
            await client.publish({ room, text: `connect ${i}`, id: `connect-${i}` }, { headers: bearer(token) }).then(
              () => connect.push("ok"),
              (e: unknown) => connect.push(Code[ConnectError.from(e).code]),
            );
          }
        })(),
      ];
      await Promise.all(loops);
      const end = Date.now();
      const answered = () => sockets.reduce((n, s) => n + s.acks.length + s.errors.length, 0);
      await waitFor(
        "every WebSocket publish answered",
        () => answered() >= wsSent,
        5000,
        () => ({
          wsSent,
          answered: answered(),
        }),
      );

      const wsAcks = sockets.reduce((n, s) => n + s.acks.length, 0);
      const wsErrors = sockets.flatMap((s) => s.errors.map((e) => e.code));
      const stored = (await fullHistory(base, room)).filter((e) => e.user === "spammer");
      const accepted = wsAcks + http.filter((a) => a === "201").length + connect.filter((a) => a === "ok").length;
      // What was accepted is what is stored, and no more than the rate (plus a burst of the same size) allows.
      expect(stored.length).toBe(accepted);
      const allowed = Math.floor((USER_RATE * (end - start)) / 1000) + USER_RATE + 1;
      expect(accepted).toBeGreaterThanOrEqual(USER_RATE);
      expect(accepted).toBeLessThanOrEqual(allowed);
      // Everything else was refused as rate_limited, in each transport's terms.
      expect(new Set(wsErrors)).toEqual(new Set(["rate_limited"]));
      expect(new Set(http.filter((a) => a !== "201"))).toEqual(new Set(["rate_limited"]));
      expect(new Set(connect.filter((a) => a !== "ok"))).toEqual(new Set([Code[Code.ResourceExhausted]]));
      expect(sockets.map((s) => s.closed)).toEqual(sockets.map(() => undefined));

      // Reconnect: a new connection gets no new allowance.
      for (const s of sockets.splice(0)) await s.close();
      const again = await openWs(room, token);
      sockets.push(again);
      for (let i = 0; i < 10; i++) again.publish(`again ${i}`, `again-${i}`);
      await waitFor(
        "ten answers",
        () => again.acks.length + again.errors.length >= 10,
        5000,
        () => again.frames,
      );
      const refill = Math.floor((USER_RATE * (Date.now() - end)) / 1000) + 1;
      expect(again.acks.length).toBeLessThanOrEqual(Math.min(refill, USER_RATE - 1));
      expect(new Set(again.errors.map((e) => e.code))).toEqual(new Set(["rate_limited"]));
    } finally {
      for (const s of sockets) await s.close();
    }
  });

  it("limits HTTP (429 rate_limited) and Connect (resource_exhausted) publishes, and stores none of the refused", async () => {
    const room = uniqueRoom("ab-rate2");
    const httpUser = await tokenFor("hasty-http", room);
    const connectUser = await tokenFor("hasty-connect", room);
    const http: string[] = [];
    for (let i = 0; i < 15; i++) {
      const r = await publishWith(base, room, httpUser, { text: `http ${i}`, id: `h-${i}` });
      http.push(r.status === 201 ? "201" : httpAnswer(r.status, r.body));
    }
    const client = rpc();
    const connect: string[] = [];
    for (let i = 0; i < 15; i++) {
      await client.publish({ room, text: `connect ${i}`, id: `c-${i}` }, { headers: bearer(connectUser) }).then(
        () => connect.push("ok"),
        (e: unknown) => connect.push(Code[ConnectError.from(e).code]),
      );
    }
    expect(http).toContain("rate_limited");
    expect(new Set(http)).toEqual(new Set(["201", "rate_limited"]));
    expect(connect).toContain("ResourceExhausted");
    expect(new Set(connect)).toEqual(new Set(["ok", "ResourceExhausted"]));
    const users = (await history(base, room)).events.map((e) => e.user);
    expect(users.filter((u) => u === "hasty-http")).toHaveLength(http.filter((a) => a === "201").length);
    expect(users.filter((u) => u === "hasty-connect")).toHaveLength(connect.filter((a) => a === "ok").length);
  });
});

describe("connections per user per room", () => {
  it("closes the user's 4th WebSocket with 4004, refuses a 4th SSE (429) and Connect stream; others still connect", async () => {
    const room = uniqueRoom("ab-conn");
    const crowd = await hs256(claims("crowd", allRights(room, "ab-conn2-*")));
    const other = await tokenFor("other", room);
    const open: { close(): unknown }[] = [];
    let fourthStream: StreamRecorder | undefined;
    try {
      const three: WsClient[] = [];
      for (let i = 0; i < MAX_CONNECTIONS; i++) three.push(await openWs(room, crowd));
      open.push(...three);
      expect(three.map((s) => s.closed)).toEqual([undefined, undefined, undefined]);

      const fourth = await openWs(room, crowd);
      open.push(fourth);
      await fourth.waitClosed(3000);
      expect(closeAnswer(fourth.closed as { code: number; reason: string })).toBe("too_many_connections");
      expect(fourth.closed?.code).toBe(CLOSE_CODE.too_many_connections);

      const fourthSse = await sseAnswer(room, crowd);
      open.push(fourthSse.sse);
      expect(fourthSse.answer).toBe("too_many_connections");

      fourthStream = new StreamRecorder((signal) => rpc().subscribe({ room }, { headers: bearer(crowd), signal }));
      const stream = fourthStream;
      await waitFor("the end or an event", () => stream.ended || stream.events.length > 0, 3000);
      expect(stream.error?.code).toBe(Code.ResourceExhausted);

      // Another user, and the same user in another room, still connect.
      const otherWs = await openWs(room, other);
      open.push(otherWs);
      expect(otherWs.closed).toBeUndefined();
      const otherSse = await sseAnswer(room, other);
      open.push(otherSse.sse);
      expect(otherSse.answer).toBe("200");
      const elsewhere = await openWs(uniqueRoom("ab-conn2"), crowd);
      open.push(elsewhere);
      expect(elsewhere.closed).toBeUndefined();
      expect(three.map((s) => s.closed)).toEqual([undefined, undefined, undefined]);

      // One of the three leaves: the user may connect again.
      await three[0].close();
      let answer = "";
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline) {
        const again = await sseAnswer(room, crowd);
        open.push(again.sse);
        answer = again.answer;
        if (answer === "200") break;
        again.sse.close();
        await sleep(100);
      }
      expect(answer).toBe("200");
    } finally {
      for (const c of open) await c.close();
      await fourthStream?.stop();
    }
  });
});

describe("new rooms by anonymous clients", () => {
  it("at most 20 a minute (then rate_limited, nothing stored, on every transport); a token holder is not limited", async () => {
    // wrangler dev's rate limit counts in fixed windows of the period (here whole minutes of the
    // clock): start early in one, so that this test's publishes all fall in the same window.
    if (Date.now() % 60_000 > 45_000) await sleep(60_000 - (Date.now() % 60_000) + 200);
    const rooms = Array.from({ length: 25 }, () => uniqueRoom("ab-new"));
    const answers: string[] = [];
    for (const room of rooms) {
      const r = await publishJson(base, room, { text: "first!" });
      answers.push(r.status === 201 ? "201" : httpAnswer(r.status, r.body));
    }
    const created = answers.filter((a) => a === "201").length;
    expect(created).toBeGreaterThan(0);
    expect(created).toBeLessThanOrEqual(NEW_ROOMS_PER_MINUTE);
    expect(new Set(answers.filter((a) => a !== "201"))).toEqual(new Set(["rate_limited"]));
    for (const [i, room] of rooms.entries()) {
      const events = (await history(base, room)).events;
      expect([room, events.length]).toEqual([room, answers[i] === "201" ? 1 : 0]);
    }

    // Over the limit on the other publish paths too.
    const fresh = uniqueRoom("ab-new");
    const viaConnect = await rpc()
      .publish({ room: fresh, text: "first!" })
      .then(
        () => "ok",
        (e: unknown) => Code[ConnectError.from(e).code],
      );
    expect(viaConnect).toBe("ResourceExhausted");
    const ws = await openWs(fresh, undefined);
    try {
      ws.publish("first!", "ws-first");
      const error = await waitFor(
        "an answer",
        () => ws.errors[0] ?? ws.acks[0],
        3000,
        () => ws.frames,
      );
      expect(error).toMatchObject({ code: "rate_limited" });
    } finally {
      await ws.close();
    }
    expect((await history(base, fresh)).events).toEqual([]);

    // A token holder creates rooms freely.
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) {
      const room = uniqueRoom("ab-new");
      const r = await publishWith(base, room, await tokenFor("alice", room), { text: "first!" });
      mine.push(String(r.status));
    }
    expect(mine).toEqual(["201", "201", "201", "201", "201"]);
  }, 60_000);
});

describe("a broken token where anonymous access would do", () => {
  it("is refused, not treated as anonymous, and stores nothing", async () => {
    const room = uniqueRoom("ab-broken");
    const bad = await wrongSecret(claims("alice", allRights(room)));
    const expired = await hs256(expiredClaims("alice", allRights(room)));
    const answers: Record<string, string> = {};
    const r1 = await publishWith(base, room, bad, { text: "bad signature" });
    answers["publish, bad signature"] = httpAnswer(r1.status, r1.body);
    const r2 = await publishWith(base, room, expired, { text: "expired" });
    answers["publish, expired"] = httpAnswer(r2.status, r2.body);
    const ws = await openWs(room, bad);
    answers["WebSocket, bad signature"] = ws.closed ? closeAnswer(ws.closed) : "open";
    await ws.close();
    const { answer, sse } = await sseAnswer(room, expired);
    sse.close();
    answers["SSE, expired"] = answer;
    expect(answers).toEqual({
      "publish, bad signature": "unauthenticated",
      "publish, expired": "token_expired",
      "WebSocket, bad signature": "unauthenticated",
      "SSE, expired": "token_expired",
    });
    expect((await history(base, room)).events).toEqual([]);
  });
});
