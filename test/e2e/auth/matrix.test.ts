/**
 * docs/auth.md, "Answers, per transport": every transport × every kind of token → the documented
 * answer. One dev server with an HS256 secret, a JWKS (ES256 and RS256 keys served from 127.0.0.1)
 * and no anonymous access. A valid token must also work: its publish is stored under its `sub`, its
 * subscription gets the next event. Then what the table does not show: `sub` wins over a client's
 * `user`, an admin publishes under any name, where `?token=` is read and where it is refused.
 */
import { randomUUID } from "node:crypto";
import { type Client, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService } from "../../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
import {
  type ChatEventJson,
  type ConnectProtocol,
  connectTransports,
  eventToJson,
  getJson,
  post,
  SseClient,
  StreamRecorder,
  UpgradeRefused,
  uniqueRoom,
  WS_PROTOCOL,
  WsClient,
  type WsMode,
  waitFor,
  wsUrl,
} from "../clients";
import { jsonish } from "../clients/jsonish";
import {
  ANSWER_MS,
  bearer,
  closeAnswer,
  connectAnswer,
  historyWith,
  httpAnswer,
  mustPublish,
  publishWith,
} from "./answers";
import {
  algConfusion,
  algNone,
  allRights,
  type Claims,
  claims,
  expiredClaims,
  GARBAGE_TOKENS,
  generateSigningKey,
  hmacWith,
  hs256,
  type JwksServer,
  notYetValidClaims,
  nowSeconds,
  type Rights,
  SECRET,
  type SigningKey,
  signWith,
  signWithoutKid,
  startJwksServer,
  tampered,
  wrongSecret,
} from "./tokens";

/** The user every matrix token names. */
const SUB = "alice";
/** Every room of this file starts with this, so a prefix pattern can cover them all. */
const PREFIX = "am-";

let server: DevServer;
let base: string;
let jwks: JwksServer;
let es: SigningKey;
let rs: SigningKey;
/** A key the JWKS does not hold. */
let stranger: SigningKey;
/** An admin token, to seed rooms and read them back. */
let admin: string;
let rpc: Record<ConnectProtocol, Client<typeof ChatService>>;

beforeAll(async () => {
  [es, rs, stranger] = await Promise.all([
    generateSigningKey("ES256", "es-1"),
    generateSigningKey("RS256", "rs-1"),
    generateSigningKey("ES256", "not-in-the-jwks"),
  ]);
  jwks = await startJwksServer([es.publicJwk, rs.publicJwk]);
  server = await startDevServer({
    vars: { RELAY_JWT_SECRET: SECRET, RELAY_JWKS_URL: jwks.url, ANONYMOUS_ACCESS: "none", HEARTBEAT_SECONDS: "1" },
  });
  base = server.baseUrl;
  admin = await hs256(claims("root", { admin: true }, 3600));
  const transports = connectTransports(base);
  rpc = {
    "connect-json": createClient(ChatService, transports["connect-json"]),
    "connect-proto": createClient(ChatService, transports["connect-proto"]),
    "grpc-web": createClient(ChatService, transports["grpc-web"]),
  };
}, READY_TIMEOUT_MS + 20_000);

afterAll(async () => {
  await server?.stop();
  await jwks?.stop();
});

// ---------------------------------------------------------------------------------------------
// Transports: each tries its action with a token and says what the relay answered

type Right = "subscribe" | "publish" | "presence";

interface Transport {
  name: string;
  /** The right the action needs in the room. */
  needs: Right;
  /**
   * Tries the action in `room` with `token` (undefined: none). "ok" when it worked in full (a
   * publish stored under SUB, a subscription that got the next event); otherwise the answer in the
   * contract's words (answers.ts), or a description of whatever else happened.
   */
  attempt(room: string, token: string | undefined): Promise<string>;
}

/** The event with `id` in the room's log, read with the admin token. */
async function stored(room: string, id: string): Promise<ChatEventJson | undefined> {
  return (await historyWith(base, room, admin)).find((e) => e.id === id);
}

/** "ok" if `event` is the stored event `id` published by SUB, else what is wrong with it. */
async function storedAsSub(room: string, id: string, event: ChatEventJson | undefined): Promise<string> {
  if (event?.user !== SUB || event.id !== id) return `answered with ${jsonish(event)}`;
  const s = await stored(room, id);
  return s?.user === SUB ? "ok" : `not stored as ${SUB}: ${jsonish(s)}`;
}

function wsTransport(mode: WsMode): Transport {
  return {
    name: `WebSocket ${WS_PROTOCOL[mode] ?? "plain"}`,
    needs: "subscribe",
    async attempt(room, token) {
      let ws: WsClient;
      try {
        ws = await WsClient.open(wsUrl(base, `/rooms/${room}/ws`), WS_PROTOCOL[mode], {
          headers: bearer(token),
          timeoutMs: ANSWER_MS,
        });
      } catch (e) {
        if (e instanceof UpgradeRefused) return `upgrade refused (HTTP ${e.status} ${jsonish(e.body)})`;
        throw e;
      }
      try {
        // Publish on the socket itself: the event coming back shows both rights at work.
        const text = `hello ${randomUUID()}`;
        const id = mode === "plain" ? undefined : randomUUID();
        ws.publish(text, id);
        const got = await waitFor(
          "the event back, or a close",
          () =>
            ws.closed ??
            (ws.events.find((e) => e.kind === "message" && e.text === text) &&
              (mode === "plain" || ws.acks.some((a) => a.event.id === id)) &&
              ws.events.find((e) => e.text === text)),
          ANSWER_MS,
        ).catch(() => undefined);
        if (!got) return `no answer in ${ANSWER_MS} ms: ${jsonish(ws.frames).slice(0, 300)}`;
        if ("code" in got) return closeAnswer(got);
        if (got.user !== SUB) return `published as ${got.user}`;
        return "ok";
      } finally {
        await ws.close();
      }
    },
  };
}

const sseTransport: Transport = {
  name: "SSE",
  needs: "subscribe",
  async attempt(room, token) {
    const sse = new SseClient(`${base}/rooms/${room}/sse`, { headers: bearer(token) });
    try {
      const first = await waitFor(
        "a refusal or the first event",
        () => sse.refusals.length > 0 || sse.events.length > 0 || sse.disconnects.length > 0,
        ANSWER_MS,
      ).catch(() => false);
      if (!first) return `no answer in ${ANSWER_MS} ms`;
      if (sse.refusals.length > 0) return httpAnswer(sse.refusals[0].status, sse.refusals[0].body);
      if (sse.events[0]?.type !== "subscribed") return `stream began with ${jsonish(sse.events[0] ?? sse.disconnects)}`;
      const seed = await mustPublish(base, room, admin);
      const got = await waitFor(
        "the event",
        () => sse.messages().some((m) => m.data.id === seed.id) || sse.disconnects.length > 0,
        ANSWER_MS,
      ).catch(() => false);
      if (!got || sse.disconnects.length > 0) return `no event: ${jsonish(sse.disconnects)}`;
      return "ok";
    } finally {
      sse.close();
    }
  },
};

const httpPublish: Transport = {
  name: "HTTP POST /messages",
  needs: "publish",
  async attempt(room, token) {
    const id = randomUUID();
    const r = await publishWith(base, room, token, { text: "over HTTP", id });
    if (r.status !== 201) return httpAnswer(r.status, r.body);
    return storedAsSub(room, id, r.body);
  },
};

const httpHistory: Transport = {
  name: "HTTP GET /messages",
  needs: "subscribe",
  async attempt(room, token) {
    const read = () => getJson<{ events?: ChatEventJson[] }>(base, `/rooms/${room}/messages?since=0`, bearer(token));
    const r = await read();
    if (r.status !== 200) return httpAnswer(r.status, r.body);
    // Accepted: it must also read what is there.
    const seed = await mustPublish(base, room, admin);
    const again = await read();
    return again.body.events?.some((e) => e.id === seed.id)
      ? "ok"
      : `history without the event: ${jsonish(again.body)}`;
  },
};

function httpRoomRead(what: "presence" | "stats"): Transport {
  return {
    name: `HTTP GET /${what}`,
    needs: "presence",
    async attempt(room, token) {
      const r = await getJson<{ room?: string }>(base, `/rooms/${room}/${what}`, bearer(token));
      if (r.status !== 200) return httpAnswer(r.status, r.body);
      return r.body.room === room ? "ok" : `answered ${jsonish(r.body)}`;
    },
  };
}

function connectPublish(p: ConnectProtocol): Transport {
  return {
    name: `${p} Publish`,
    needs: "publish",
    async attempt(room, token) {
      const id = randomUUID();
      try {
        const r = await rpc[p].publish(
          { room, text: `over ${p}`, id },
          { headers: bearer(token), signal: AbortSignal.timeout(ANSWER_MS) },
        );
        return storedAsSub(room, id, r.event && eventToJson(r.event));
      } catch (e) {
        return connectAnswer(e);
      }
    },
  };
}

function connectSubscribe(p: ConnectProtocol): Transport {
  return {
    name: `${p} Subscribe`,
    needs: "subscribe",
    async attempt(room, token) {
      const sub = new StreamRecorder((signal) => rpc[p].subscribe({ room }, { headers: bearer(token), signal }));
      try {
        const first = await waitFor(
          "the first event or the end",
          () => sub.ended || sub.events.length > 0,
          ANSWER_MS,
        ).catch(() => false);
        if (!first) return `no answer in ${ANSWER_MS} ms`;
        if (sub.error) return connectAnswer(sub.error);
        if (sub.events[0]?.kind !== "subscribed") return `stream began with ${jsonish(sub.events[0] ?? "its end")}`;
        const seed = await mustPublish(base, room, admin);
        const got = await waitFor(
          "the event",
          () => sub.ended || sub.messages().some((m) => m.id === seed.id),
          ANSWER_MS,
        ).catch(() => false);
        if (!got || sub.ended) return `no event (${sub.error ? connectAnswer(sub.error) : "ended"})`;
        return "ok";
      } finally {
        await sub.stop();
      }
    },
  };
}

function connectHistory(p: ConnectProtocol): Transport {
  return {
    name: `${p} History`,
    needs: "subscribe",
    async attempt(room, token) {
      const read = () =>
        rpc[p].history({ room, since: 0n }, { headers: bearer(token), signal: AbortSignal.timeout(ANSWER_MS) });
      try {
        await read();
      } catch (e) {
        return connectAnswer(e);
      }
      // Accepted: it must also read what is there.
      const seed = await mustPublish(base, room, admin);
      const r = await read();
      return r.events.some((e) => e.id === seed.id) ? "ok" : `history without the event (${r.events.length} events)`;
    },
  };
}

function connectPresence(p: ConnectProtocol): Transport {
  return {
    name: `${p} Presence`,
    needs: "presence",
    async attempt(room, token) {
      try {
        const r = await rpc[p].presence({ room }, { headers: bearer(token), signal: AbortSignal.timeout(ANSWER_MS) });
        return r.room === room ? "ok" : `answered room ${r.room}`;
      } catch (e) {
        return connectAnswer(e);
      }
    },
  };
}

const PROTOCOLS: ConnectProtocol[] = ["connect-json", "connect-proto", "grpc-web"];

const TRANSPORTS: Transport[] = [
  wsTransport("json"),
  wsTransport("proto"),
  wsTransport("plain"),
  sseTransport,
  httpPublish,
  httpHistory,
  httpRoomRead("presence"),
  httpRoomRead("stats"),
  ...PROTOCOLS.flatMap((p) => [connectPublish(p), connectSubscribe(p)]),
  // The unary reads check the token as Publish does: JSON and gRPC-Web are enough.
  ...(["connect-json", "grpc-web"] as const).flatMap((p) => [connectHistory(p), connectPresence(p)]),
];

// ---------------------------------------------------------------------------------------------
// Cases: the tokens, and the answer docs/auth.md gives for each

interface Case {
  name: string;
  expect: "ok" | "unauthenticated" | "token_expired" | "permission_denied";
  /** The tokens to try, one after another (undefined: no token). */
  tokens(room: string, needs: Right): Promise<(string | undefined)[]>;
}

/** Every right in `room` but `needs`. */
function rightsWithout(needs: Right, room: string): Rights {
  const rights = allRights(room);
  delete rights[needs];
  return rights;
}

const mine = (room: string): Claims => claims(SUB, allRights(room));

const CASES: Case[] = [
  { name: "no token", expect: "unauthenticated", tokens: async () => [undefined] },
  {
    name: "bad signature (HS256 signed with another secret)",
    expect: "unauthenticated",
    tokens: async (room) => [await wrongSecret(mine(room))],
  },
  {
    name: "bad signature (ES256 payload changed after signing)",
    expect: "unauthenticated",
    tokens: async (room) => [
      tampered(await signWith(es, claims(SUB, allRights("elsewhere"))), { relay: allRights(room) }),
    ],
  },
  { name: "alg none", expect: "unauthenticated", tokens: async (room) => [algNone(mine(room))] },
  {
    name: "algorithm confusion (HS256 keyed with the public JWK, naming its kid)",
    expect: "unauthenticated",
    tokens: async (room) => [algConfusion(es, mine(room), "jwk"), algConfusion(rs, mine(room), "jwk")],
  },
  {
    name: "algorithm confusion (HS256 keyed with the public key's PEM)",
    expect: "unauthenticated",
    tokens: async (room) => [algConfusion(rs, mine(room), "pem"), algConfusion(es, mine(room), "pem")],
  },
  {
    name: "HS384 with the right secret",
    expect: "unauthenticated",
    tokens: async (room) => [await hmacWith("HS384", mine(room))],
  },
  {
    name: "ES256 signed with a key the JWKS does not hold",
    expect: "unauthenticated",
    tokens: async (room) => [await signWith(stranger, mine(room))],
  },
  {
    name: "ES256 without a kid",
    expect: "unauthenticated",
    tokens: async (room) => [await signWithoutKid(es, mine(room))],
  },
  { name: "garbage", expect: "unauthenticated", tokens: async () => [...GARBAGE_TOKENS] },
  {
    name: "no exp",
    expect: "unauthenticated",
    tokens: async (room) => [await hs256({ sub: SUB, relay: allRights(room) })],
  },
  {
    name: "no sub, or a sub longer than 64 characters",
    expect: "unauthenticated",
    tokens: async (room) => [
      await hs256({ relay: allRights(room), exp: nowSeconds() + 600 }),
      await hs256(claims("a".repeat(65), allRights(room))),
    ],
  },
  {
    name: "expired",
    expect: "token_expired",
    tokens: async (room) => [
      await hs256(expiredClaims(SUB, allRights(room))),
      await signWith(es, expiredClaims(SUB, allRights(room))),
    ],
  },
  {
    name: "not yet valid (nbf)",
    expect: "unauthenticated",
    tokens: async (room) => [
      await hs256(notYetValidClaims(SUB, allRights(room))),
      await signWith(rs, notYetValidClaims(SUB, allRights(room))),
    ],
  },
  {
    name: "valid, for other rooms only",
    expect: "permission_denied",
    // An exact name is not a prefix, and a prefix only covers what starts with it.
    tokens: async (room) => [
      await hs256(claims(SUB, allRights(`${room}-other`, `${room}-*`, room.slice(0, -1), "zz-*"))),
    ],
  },
  {
    name: "valid, without the right this needs",
    expect: "permission_denied",
    tokens: async (room, needs) => [
      await hs256(claims(SUB, rightsWithout(needs, room))),
      await signWith(es, claims(SUB, { ...rightsWithout(needs, room), admin: false })),
    ],
  },
  { name: "valid HS256 (the room by name)", expect: "ok", tokens: async (room) => [await hs256(mine(room))] },
  {
    name: "valid ES256 (a prefix pattern)",
    expect: "ok",
    tokens: async () => [await signWith(es, claims(SUB, allRights(`${PREFIX}*`)))],
  },
  { name: 'valid RS256 ("*")', expect: "ok", tokens: async () => [await signWith(rs, claims(SUB, allRights("*")))] },
  {
    name: "valid admin token (no lists)",
    expect: "ok",
    tokens: async () => [await signWith(es, claims(SUB, { admin: true }))],
  },
];

// Before the matrix: it counts the JWKS fetches from the start.
describe("the JWKS", () => {
  it("is fetched when first needed, then cached: tokens of known keys cost no fetch", async () => {
    const room = uniqueRoom("am-jwks");
    const publishAs = async (token: string) => {
      const r = await publishWith(base, room, token, { text: "signed", id: randomUUID() });
      return r.status === 201 ? "201" : httpAnswer(r.status, r.body);
    };
    expect(jwks.fetches).toBe(0);
    const answers: string[] = [];
    for (const key of [es, rs, es, rs]) answers.push(await publishAs(await signWith(key, mine(room))));
    expect(answers).toEqual(["201", "201", "201", "201"]);
    expect(jwks.fetches).toBe(1);
  });
});

/** When the matrix started: unknown kids may make one fetch per REFETCH_MS (10 s) window of it. */
let matrixStartedAt = 0;
describe.concurrent("every transport × every token", () => {
  beforeAll(() => {
    matrixStartedAt = Date.now();
  });
  for (const t of TRANSPORTS) {
    for (const c of CASES) {
      it(`${t.name}, ${c.name} → ${c.expect}`, async ({ expect }) => {
        const room = uniqueRoom(PREFIX.slice(0, -1));
        const tokens = await c.tokens(room, t.needs);
        const answers: string[] = [];
        for (const token of tokens) answers.push(await t.attempt(room, token));
        expect(answers).toEqual(tokens.map(() => c.expect));
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Beyond the table

describe("who a token holder is", () => {
  it("`sub` wins over a `user` the client sends, on every publish path and in presence", async () => {
    const room = uniqueRoom("am-sub");
    const alice = await hs256(mine(room));
    const results: Record<string, string | undefined> = {};

    const json = await publishWith(base, room, alice, { text: "json", user: "mallory", id: randomUUID() });
    expect(json.status).toBe(201);
    results.json = json.body.user;

    const text = await post<ChatEventJson>(base, `/rooms/${room}/messages?user=mallory`, "plain text", {
      "Content-Type": "text/plain",
      ...bearer(alice),
    });
    expect(text.status).toBe(201);
    results.text = text.body.user;

    for (const p of PROTOCOLS) {
      const r = await rpc[p].publish({ room, text: p, user: "mallory", id: randomUUID() }, { headers: bearer(alice) });
      results[p] = r.event?.user;
    }

    // Authorization: Bearer on the upgrade, and a `user` in the URL and in the frame.
    const ws = await WsClient.open(wsUrl(base, `/rooms/${room}/ws?user=mallory`), WS_PROTOCOL.json, {
      headers: bearer(alice),
    });
    const sse = new SseClient(`${base}/rooms/${room}/sse?user=mallory`, { headers: bearer(alice) });
    try {
      const id = randomUUID();
      ws.send(JSON.stringify({ publish: { text: "ws", id, user: "mallory" } }));
      const ack = await waitFor("the ack", () => ws.acks.find((a) => a.event.id === id) ?? ws.errors[0]);
      results.ws = "event" in ack ? ack.event.user : jsonish(ack);
      await sse.waitEvents(1);
      const presence = await getJson<{ members: { user: string; connections: number; transports: string[] }[] }>(
        base,
        `/rooms/${room}/presence`,
        bearer(admin),
      );
      expect(presence.status).toBe(200);
      // One member: the token's sub, on both of its connections.
      expect(presence.body.members.map((m) => [m.user, m.connections, m.transports])).toEqual([
        [SUB, 2, ["sse", "websocket"]],
      ]);
    } finally {
      await ws.close();
      sse.close();
    }
    expect(results).toEqual({
      json: SUB,
      text: SUB,
      "connect-json": SUB,
      "connect-proto": SUB,
      "grpc-web": SUB,
      ws: SUB,
    });
    const users = new Set((await historyWith(base, room, admin)).map((e) => e.user));
    expect([...users]).toEqual([SUB]);
  });

  it("an admin token may publish under any user (and under its own sub when it names none)", async () => {
    const room = uniqueRoom("am-admin");
    const root = await signWith(rs, claims("root", { admin: true }));
    const named = await publishWith(base, room, root, { text: "as bob", user: "bob", id: randomUUID() });
    expect([named.status, named.body.user]).toEqual([201, "bob"]);
    const own = await publishWith(base, room, root, { text: "as myself", id: randomUUID() });
    expect([own.status, own.body.user]).toEqual([201, "root"]);
    const viaConnect = await rpc["connect-json"].publish(
      { room, text: "as carol", user: "carol", id: randomUUID() },
      { headers: bearer(root) },
    );
    expect(viaConnect.event?.user).toBe("carol");
    const ws = await WsClient.open(wsUrl(base, `/rooms/${room}/ws`), WS_PROTOCOL.json, { headers: bearer(root) });
    try {
      const id = randomUUID();
      ws.send(JSON.stringify({ publish: { text: "as dave", id, user: "dave" } }));
      const ack = await waitFor("the ack", () => ws.acks.find((a) => a.event.id === id) ?? ws.errors[0]);
      expect(ack).toMatchObject({ event: { user: "dave" } });
    } finally {
      await ws.close();
    }
    expect((await historyWith(base, room, admin)).map((e) => e.user)).toEqual(["bob", "root", "carol", "dave"]);
  });

  it("a WebSocket that may subscribe but not publish gets an error frame per publish and stays open", async () => {
    const room = uniqueRoom("am-ro");
    const reader = await hs256(claims(SUB, { subscribe: [room] }));
    const ws = await WsClient.open(wsUrl(base, `/rooms/${room}/ws`), WS_PROTOCOL.json, { headers: bearer(reader) });
    try {
      ws.publish("not allowed", "ro-1");
      const error = await waitFor(
        "the error frame",
        () => ws.errors[0],
        ANSWER_MS,
        () => ws.frames,
      );
      expect(error.code).toBe("permission_denied");
      const seed = await mustPublish(base, room, admin);
      await waitFor(
        "the next event",
        () => ws.events.find((e) => e.id === seed.id),
        ANSWER_MS,
        () => ws.frames,
      );
      expect(ws.closed).toBeUndefined();
      expect((await historyWith(base, room, admin)).map((e) => e.id)).toEqual([seed.id]);
    } finally {
      await ws.close();
    }
  });
});

describe("?token=", () => {
  it("is read on /ws, in every mode, and checked like the header", async () => {
    const room = uniqueRoom("am-qws");
    const good = await hs256(mine(room));
    const answers: Record<string, string> = {};
    const cases: [string, string][] = [
      ["valid", good],
      ["expired", await hs256(expiredClaims(SUB, allRights(room)))],
      ["bad signature", await wrongSecret(mine(room))],
      ["another room", await hs256(claims(SUB, allRights("zz-elsewhere")))],
    ];
    for (const mode of ["json", "proto", "plain"] as WsMode[]) {
      for (const [name, token] of cases) {
        const ws = await WsClient.open(
          wsUrl(base, `/rooms/${room}/ws?token=${encodeURIComponent(token)}`),
          WS_PROTOCOL[mode],
          ANSWER_MS,
        ).catch((e: Error) => e);
        if (ws instanceof Error) {
          answers[`${mode} ${name}`] = ws.message;
          continue;
        }
        try {
          const text = `q ${randomUUID()}`;
          ws.publish(text, mode === "plain" ? undefined : randomUUID());
          const got = await waitFor(
            "the event or a close",
            () => ws.closed ?? ws.events.find((e) => e.text === text),
            ANSWER_MS,
          ).catch(() => undefined);
          answers[`${mode} ${name}`] = !got ? "no answer" : "code" in got ? closeAnswer(got) : `ok as ${got.user}`;
        } finally {
          await ws.close();
        }
      }
    }
    const expected: Record<string, string> = {};
    for (const mode of ["json", "proto", "plain"]) {
      expected[`${mode} valid`] = `ok as ${SUB}`;
      expected[`${mode} expired`] = "token_expired";
      expected[`${mode} bad signature`] = "unauthenticated";
      expected[`${mode} another room`] = "permission_denied";
    }
    expect(answers).toEqual(expected);
  });

  it("is read on /sse, and checked like the header", async () => {
    const room = uniqueRoom("am-qsse");
    const seed = await mustPublish(base, room, admin);
    const tryWith = async (token: string) => {
      const sse = new SseClient(`${base}/rooms/${room}/sse?since=0&token=${encodeURIComponent(token)}`);
      try {
        await waitFor(
          "the event or a refusal",
          () => sse.refusals.length > 0 || sse.messages().length > 0,
          ANSWER_MS,
          () => sse.events,
        );
        return sse.refusals[0]
          ? httpAnswer(sse.refusals[0].status, sse.refusals[0].body)
          : `ok: ${sse.messages()[0].data.id}`;
      } finally {
        sse.close();
      }
    };
    expect({
      valid: await tryWith(await signWith(es, mine(room))),
      expired: await tryWith(await hs256(expiredClaims(SUB, allRights(room)))),
      "alg none": await tryWith(algNone(mine(room))),
      "no subscribe right": await tryWith(await hs256(claims(SUB, { publish: [room], presence: [room] }))),
    }).toEqual({
      valid: `ok: ${seed.id}`,
      expired: "token_expired",
      "alg none": "unauthenticated",
      "no subscribe right": "permission_denied",
    });
  });

  it("is refused with 400 everywhere else (HTTP routes and Connect), even a valid one, and nothing is stored", async () => {
    const room = uniqueRoom("am-qhttp");
    const good = await hs256(mine(room));
    const q = `token=${encodeURIComponent(good)}`;
    const answers: Record<string, string> = {};
    const publish = await post(base, `/rooms/${room}/messages?${q}`, JSON.stringify({ text: "leak", id: "q-1" }), {
      "Content-Type": "application/json",
    });
    answers["POST /messages"] = httpAnswer(publish.status, publish.body);
    const text = await post(base, `/rooms/${room}/messages?${q}`, "leak", { "Content-Type": "text/plain" });
    answers["POST /messages text/plain"] = httpAnswer(text.status, text.body);
    for (const path of [`/messages?since=0&${q}`, `/presence?${q}`, `/stats?${q}`]) {
      const r = await getJson(base, `/rooms/${room}${path}`);
      answers[`GET ${path.split("?")[0]}`] = httpAnswer(r.status, r.body);
    }
    const rpcCall = await fetch(`${base}/relay.v1.ChatService/Publish?${q}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
      body: JSON.stringify({ room, text: "leak", id: "q-2" }),
      signal: AbortSignal.timeout(10_000),
    });
    answers["Connect Publish"] = `HTTP ${rpcCall.status}`;
    await rpcCall.body?.cancel();
    expect(answers).toEqual({
      "POST /messages": "invalid_argument",
      "POST /messages text/plain": "invalid_argument",
      "GET /messages": "invalid_argument",
      "GET /presence": "invalid_argument",
      "GET /stats": "invalid_argument",
      "Connect Publish": "HTTP 400",
    });
    expect(await historyWith(base, room, admin)).toEqual([]);
  });
});

// After the matrix: its unknown kids (several per transport) may make at most one fetch per 10 s
// window (REFETCH_MS), so a matrix slowed down by a busy machine still may not fetch per token.
describe("the JWKS, after the matrix", () => {
  it("was fetched again at most once per 10 s for all of the matrix's unknown kids", () => {
    const windows = Math.floor((Date.now() - matrixStartedAt) / 10_000) + 1;
    expect(jwks.fetches).toBeGreaterThanOrEqual(2); // an unknown kid did make it look again
    expect(jwks.fetches).toBeLessThanOrEqual(1 + windows);
  });
});
