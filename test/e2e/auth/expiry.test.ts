/**
 * docs/auth.md, "Expiry and refresh": a connection ends when its token's `exp` passes (within about
 * a second), unless a relay.v1.json / relay.v1.proto WebSocket refreshed it in place; an SSE or
 * Connect stream that ended at expiry resumes from its last offset with a new token and loses
 * nothing. Tokens here live 2-3 s (JWT times are whole seconds), so the tests run side by side.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService, ClientFrameSchema } from "../../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
import {
  connectTransports,
  type ServerFrameJson,
  SseClient,
  StreamRecorder,
  sleep,
  uniqueRoom,
  WS_PROTOCOL,
  WsClient,
  type WsMode,
  waitFor,
  wsUrl,
} from "../clients";
import {
  bearer,
  CLOSE_CODE,
  closeAnswer,
  connectAnswer,
  historyWith,
  httpAnswer,
  mustPublish,
  publishWith,
} from "./answers";
import { allRights, type Claims, claims, generateSigningKey, hs256, SECRET, signWith } from "./tokens";

let server: DevServer;
let base: string;
let admin: string;
let rpc: Client<typeof ChatService>;

beforeAll(async () => {
  server = await startDevServer({
    vars: { RELAY_JWT_SECRET: SECRET, ANONYMOUS_ACCESS: "none", HEARTBEAT_SECONDS: "1" },
  });
  base = server.baseUrl;
  admin = await hs256(claims("root", { admin: true }, 3600));
  rpc = createClient(ChatService, connectTransports(base)["connect-json"]);
}, READY_TIMEOUT_MS + 10_000);

afterAll(async () => {
  await server?.stop();
});

/** Claims for alice in `room` that expire in 2-3 s. */
function shortLived(room: string, relay = allRights(room)): Claims & { exp: number } {
  return claims("alice", relay, 3) as Claims & { exp: number };
}

/** Waits until `ms` past the expiry `exp` (seconds). */
const pastExpiry = (exp: number, ms: number) => sleep(Math.max(0, exp * 1000 + ms - Date.now()));

interface TimedWs {
  ws: WsClient;
  /** When the server's close frame arrived. */
  closeFrameAt: () => number;
}

/** A WebSocket client that notes when the server's close frame came and when the connection closed. */
async function openWs(room: string, mode: WsMode, token: string): Promise<TimedWs> {
  const ws = await WsClient.open(wsUrl(base, `/rooms/${room}/ws`), WS_PROTOCOL[mode], {
    headers: bearer(token),
    flowControl: true,
  });
  let closeFrameAt = 0;
  const poll = setInterval(() => {
    if (ws.closeFrame && closeFrameAt === 0) closeFrameAt = Date.now();
  }, 10);
  ws.ws.once("close", () => clearInterval(poll));
  return { ws, closeFrameAt: () => closeFrameAt };
}

/** Publishes into `room` every `everyMs` until stopped; resolves with the offsets stored, in order. */
function publishLoop(room: string, everyMs: number): { stop(): Promise<string[]> } {
  let running = true;
  const seqs: string[] = [];
  const done = (async () => {
    for (let i = 0; running; i++) {
      const r = await publishWith(base, room, admin, { text: `m-${i}`, id: `m-${i}` });
      if (r.status !== 201) throw new Error(`publish m-${i}: HTTP ${r.status}`);
      seqs.push(r.body.seq as string);
      await sleep(everyMs);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return seqs;
    },
  };
}

describe.concurrent("expiry", () => {
  it("a relay.v1.json WebSocket refreshes in place, refuses a bad refresh without change, and outlives its first token", async ({
    expect,
  }) => {
    const room = uniqueRoom("ex-ref");
    const first = shortLived(room);
    const { ws } = await openWs(room, "json", await hs256(first));
    try {
      const refresh = (token: string) => ws.send(JSON.stringify({ refresh: { token } }));
      const refreshedFrames = () =>
        (ws.frames as (ServerFrameJson & { refreshed?: unknown })[]).filter((f) => f.refreshed);

      // Refused: another sub, garbage, the same sub without `subscribe` here. Each gets an error frame.
      refresh(await hs256(claims("mallory", allRights(room))));
      refresh("garbage");
      refresh(await hs256(claims("alice", { publish: [room] })));
      await waitFor(
        "three error frames",
        () => ws.errors.length >= 3,
        3000,
        () => ws.frames,
      );
      expect(ws.errors.map((e) => typeof e.code)).toEqual(["string", "string", "string"]);
      expect(refreshedFrames()).toEqual([]);

      // Accepted: a new token for the same sub.
      const next = claims("alice", allRights(room), 600) as Claims & { exp: number };
      refresh(await hs256(next));
      const answer = await waitFor(
        "the refreshed frame",
        () => refreshedFrames()[0],
        3000,
        () => ws.frames,
      );
      expect(answer).toEqual({ refreshed: { expiresAtMs: String(next.exp * 1000) } });

      // Refused after it, with tokens that would end the connection sooner: nothing changes.
      refresh(await hs256(claims("mallory", allRights(room), 1)));
      refresh(await hs256(claims("alice", { publish: [room] }, 1)));
      await waitFor(
        "two more error frames",
        () => ws.errors.length >= 5,
        3000,
        () => ws.frames,
      );
      expect(refreshedFrames()).toHaveLength(1);

      // Past the first token's expiry (and the refused ones'), the socket is open and works both ways.
      await pastExpiry(first.exp, 2000);
      expect(ws.closed).toBeUndefined();
      ws.publish("after the first expiry", "after-1");
      await waitFor(
        "the ack",
        () => ws.acks.find((a) => a.event.id === "after-1"),
        3000,
        () => ws.frames,
      );
      const seed = await mustPublish(base, room, admin, "from elsewhere");
      await waitFor(
        "the event",
        () => ws.events.find((e) => e.id === seed.id),
        3000,
        () => ws.frames,
      );
      expect(ws.closed).toBeUndefined();
    } finally {
      await ws.close();
    }
  });

  it("a relay.v1.proto WebSocket refreshes in place with a binary ClientFrame", async ({ expect }) => {
    const room = uniqueRoom("ex-refp");
    const first = shortLived(room);
    const { ws } = await openWs(room, "proto", await hs256(first));
    try {
      const next = claims("alice", allRights(room), 600) as Claims & { exp: number };
      const frame = create(ClientFrameSchema, { frame: { case: "refresh", value: { token: await hs256(next) } } });
      ws.send(toBinary(ClientFrameSchema, frame));
      const answer = await waitFor(
        "the refreshed frame",
        () => (ws.frames as { refreshed?: unknown }[]).find((f) => f.refreshed),
        3000,
        () => ws.frames,
      );
      expect(answer).toEqual({ refreshed: { expiresAtMs: String(next.exp * 1000) } });
      await pastExpiry(first.exp, 2000);
      expect(ws.closed).toBeUndefined();
      ws.publish("still here", "p-1");
      await waitFor(
        "the ack",
        () => ws.acks.find((a) => a.event.id === "p-1"),
        3000,
        () => ws.frames,
      );
    } finally {
      await ws.close();
    }
  });

  it("a WebSocket that does not refresh is closed with 4440 token_expired at its token's expiry, in every mode", async ({
    expect,
  }) => {
    const room = uniqueRoom("ex-ws");
    const c = shortLived(room);
    const token = await hs256(c);
    const sockets = await Promise.all(
      (["json", "proto", "plain"] as WsMode[]).map((mode) => openWs(room, mode, token)),
    );
    try {
      const expiresAt = c.exp * 1000;
      // The server's close frame: the room ends the connection at expiry. (The `close` event, the
      // end of the TCP connection, follows ~10 s later under wrangler dev: docs/runtime-notes.md.)
      await waitFor(
        "every socket's close frame",
        () => sockets.every(({ closeFrameAt }) => closeFrameAt() > 0),
        expiresAt - Date.now() + 4000,
        () =>
          sockets.map(({ ws, closeFrameAt }) => ({
            mode: ws.mode,
            readyState: ["CONNECTING", "OPEN", "CLOSING (close frame received)", "CLOSED"][ws.ws.readyState],
            closeFrameMsAfterExp: closeFrameAt() ? closeFrameAt() - expiresAt : undefined,
            frames: ws.frames.slice(-2),
          })),
      );
      const frames = sockets.map(({ ws }) => ws.closeFrame as { code: number; reason: string });
      expect(frames.map(closeAnswer)).toEqual(["token_expired", "token_expired", "token_expired"]);
      expect(frames.map((f) => f.code)).toEqual([CLOSE_CODE.token_expired, 4440, 4440]);
      // Not before the expiry, and within about a second of it (2 s allowed on a busy machine).
      for (const { closeFrameAt } of sockets) {
        expect(closeFrameAt()).toBeGreaterThanOrEqual(expiresAt - 50);
        expect(closeFrameAt()).toBeLessThanOrEqual(expiresAt + 2000);
      }
    } finally {
      for (const { ws } of sockets) await ws.close();
    }
  });

  it("an SSE stream ends with a `disconnect` token_expired; resumed with ?since= and a new ?token=, nothing is lost or repeated", async ({
    expect,
  }) => {
    const room = uniqueRoom("ex-sse");
    const c = shortLived(room, { subscribe: [room] });
    const publisher = publishLoop(room, 150);
    const first = new SseClient(`${base}/rooms/${room}/sse?since=0&token=${await hs256(c)}`);
    let endedAt = 0;
    // EventSource would reconnect with the old token by itself: this client resumes on its own terms.
    first.onDisconnect = () => {
      endedAt = Date.now();
      first.close();
    };
    let second: SseClient | undefined;
    try {
      await waitFor(
        "the disconnect",
        () => first.disconnects[0],
        c.exp * 1000 - Date.now() + 4000,
        () => first.events,
      );
      expect(first.disconnects).toHaveLength(1);
      expect(first.disconnects[0].code).toBe("token_expired");
      expect(endedAt).toBeGreaterThanOrEqual(c.exp * 1000 - 50);
      expect(endedAt).toBeLessThanOrEqual(c.exp * 1000 + 2000);
      const before = first.messages().map((m) => m.data.seq);
      expect(before.length).toBeGreaterThan(0);

      // Messages go on while it is away; it resumes after the last id it got, with a fresh token.
      await sleep(400);
      const lastId = first.events.at(-1)?.lastEventId;
      const fresh = await hs256(claims("alice", { subscribe: [room] }, 600));
      second = new SseClient(`${base}/rooms/${room}/sse?since=${lastId}&token=${fresh}`);
      await second.waitEvents(1);
      await sleep(400);
      const published = await publisher.stop();
      const resumed = second;
      await waitFor(
        "every message",
        () => resumed.messages().at(-1)?.data.seq === published.at(-1),
        5000,
        () => ({ before, after: resumed.messages().map((m) => m.data.seq), published }),
      );
      const after = resumed.messages().map((m) => m.data.seq);
      expect(after.length).toBeGreaterThan(0);
      expect([...before, ...after]).toEqual(published);
      expect((await historyWith(base, room, admin)).map((e) => e.seq)).toEqual(published);
    } finally {
      await publisher.stop();
      first.close();
      second?.close();
    }
  });

  it("a Connect Subscribe ends with unauthenticated (token expired); resumed with `since` and a new token, nothing is lost or repeated", async ({
    expect,
  }) => {
    const room = uniqueRoom("ex-cn");
    const c = shortLived(room, { subscribe: [room] });
    const publisher = publishLoop(room, 150);
    const token = await hs256(c);
    const first = new StreamRecorder((signal) =>
      rpc.subscribe({ room, since: 0n }, { headers: bearer(token), signal }),
    );
    let second: StreamRecorder | undefined;
    try {
      await waitFor(
        "the end",
        () => first.ended,
        c.exp * 1000 - Date.now() + 4000,
        () => first.events,
      );
      const endedAt = Date.now();
      expect(first.error?.code).toBe(Code.Unauthenticated);
      expect.soft(connectAnswer(first.error)).toBe("token_expired");
      expect(endedAt).toBeGreaterThanOrEqual(c.exp * 1000 - 50);
      expect(endedAt).toBeLessThanOrEqual(c.exp * 1000 + 2000);
      const before = first.messages().map((e) => e.seq as string);
      expect(before.length).toBeGreaterThan(0);

      await sleep(400);
      const last = first.events.at(-1);
      const since = BigInt(last?.kind === "message" ? (last.seq as string) : (last?.resumeAfter ?? "0"));
      const fresh = await hs256(claims("alice", { subscribe: [room] }, 600));
      second = new StreamRecorder((signal) => rpc.subscribe({ room, since }, { headers: bearer(fresh), signal }));
      const resumed = second;
      await waitFor("subscribed", () => resumed.events.length > 0 || resumed.ended, 3000);
      expect(resumed.error).toBeUndefined();
      await sleep(400);
      const published = await publisher.stop();
      await waitFor(
        "every message",
        () => resumed.messages().at(-1)?.seq === published.at(-1),
        5000,
        () => ({ before, after: resumed.messages().map((e) => e.seq), published }),
      );
      const after = resumed.messages().map((e) => e.seq as string);
      expect(after.length).toBeGreaterThan(0);
      expect([...before, ...after]).toEqual(published);
    } finally {
      await publisher.stop();
      await first.stop();
      await second?.stop();
    }
  });
});

describe("a server with a secret and no JWKS", () => {
  it("refuses ES256 and RS256 tokens (no key to check them with)", async () => {
    const room = uniqueRoom("ex-nojwks");
    const answers: string[] = [];
    for (const alg of ["ES256", "RS256"] as const) {
      const key = await generateSigningKey(alg, `${alg}-1`);
      const r = await publishWith(base, room, await signWith(key, claims("alice", allRights(room))), { text: alg });
      answers.push(httpAnswer(r.status, r.body));
    }
    expect(answers).toEqual(["unauthenticated", "unauthenticated"]);
  });
});
