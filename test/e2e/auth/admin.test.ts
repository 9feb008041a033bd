/**
 * docs/auth.md, "Admin disconnect": `POST /rooms/:room/disconnect` with an admin token and
 * {"user": ...} closes every connection of that user in that room, on every transport, as `removed`
 * (WebSocket 4509, SSE `disconnect` event, Connect permission_denied "removed by an admin"), and
 * answers {"disconnected": n}. Others stay. Anyone but an admin is refused. Anonymous clients may
 * subscribe on this server, so a name an anonymous connection gave can be removed too.
 *
 * The server has a JWKS and no HS256 secret, which also shows two lines of "Tokens": an HMAC token
 * is refused when only a JWKS is configured (even one keyed with the public key), and what
 * ANONYMOUS_ACCESS=subscribe allows.
 */
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService } from "../../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
import {
  connectTransports,
  getJson,
  type HttpResult,
  post,
  SseClient,
  StreamRecorder,
  uniqueRoom,
  WS_PROTOCOL,
  WsClient,
  type WsMode,
  waitFor,
  wsUrl,
} from "../clients";
import { bearer, CLOSE_CODE, closeAnswer, httpAnswer, mustPublish } from "./answers";
import {
  algConfusion,
  allRights,
  type Claims,
  claims,
  generateSigningKey,
  hs256,
  type JwksServer,
  type SigningKey,
  signWith,
  startJwksServer,
} from "./tokens";

let server: DevServer;
let base: string;
let jwks: JwksServer;
let key: SigningKey;
/** A key the JWKS does not hold. */
let stranger: SigningKey;
let admin: string;
let rpc: Client<typeof ChatService>;

/** A token signed with the JWKS's key (this server has no HS256 secret). */
const token = (c: Claims) => signWith(key, c);

beforeAll(async () => {
  [key, stranger] = await Promise.all([generateSigningKey("ES256", "admin-es"), generateSigningKey("ES256", "other")]);
  jwks = await startJwksServer([key.publicJwk]);
  server = await startDevServer({
    vars: { RELAY_JWKS_URL: jwks.url, ANONYMOUS_ACCESS: "subscribe", HEARTBEAT_SECONDS: "1" },
  });
  base = server.baseUrl;
  admin = await token(claims("root", { admin: true }, 3600));
  rpc = createClient(ChatService, connectTransports(base)["connect-json"]);
}, READY_TIMEOUT_MS + 10_000);

afterAll(async () => {
  await server?.stop();
  await jwks?.stop();
});

/** How long a removal may take to reach a client. */
const REMOVAL_MS = 4000;

function disconnectUser(room: string, token: string | undefined, user: string): Promise<HttpResult> {
  return post(base, `/rooms/${room}/disconnect`, JSON.stringify({ user }), {
    "Content-Type": "application/json",
    ...bearer(token),
  });
}

/** A WebSocket that has been told it subscribed. */
async function ws(room: string, mode: WsMode, token?: string, query = ""): Promise<WsClient> {
  const c = await WsClient.open(wsUrl(base, `/rooms/${room}/ws${query}`), WS_PROTOCOL[mode], {
    headers: bearer(token),
    flowControl: true,
  });
  await waitFor(
    "subscribed",
    () => c.events[0]?.kind === "subscribed" || c.closed,
    3000,
    () => c.frames,
  );
  if (c.closed) throw new Error(`WebSocket closed at once: ${closeAnswer(c.closed)}`);
  return c;
}

/** An SSE stream that has been told it subscribed, closed by the test at its first `disconnect`. */
async function sse(room: string, query: string): Promise<SseClient> {
  const c = new SseClient(`${base}/rooms/${room}/sse?${query}`);
  // EventSource would reconnect by itself; this test wants the one stream.
  c.onDisconnect = () => c.close();
  await waitFor("subscribed", () => c.events.length > 0 || c.refusals.length > 0, 3000);
  if (c.refusals.length > 0) throw new Error(`SSE refused: ${httpAnswer(c.refusals[0].status, c.refusals[0].body)}`);
  return c;
}

/** A WebSocket's close, described for failure messages while it is not there. */
function closeOf(c: WsClient): string {
  if (c.closed) return closeAnswer(c.closed);
  return ["connecting", "open", "closing: close frame received, connection not closed", "closed"][c.ws.readyState];
}

async function presentUsers(room: string): Promise<string[]> {
  const r = await getJson<{ members: { user: string; connections: number }[] }>(
    base,
    `/rooms/${room}/presence`,
    bearer(admin),
  );
  if (r.status !== 200) throw new Error(`presence: ${httpAnswer(r.status, r.body)}`);
  // One member per user; a user's connections counted: "alice" three times for her three.
  return r.body.members.flatMap((m) => Array<string>(m.connections).fill(m.user)).sort();
}

describe("admin disconnect", () => {
  it("closes every connection of the user in the room, on every transport, and no one else's", async () => {
    const room = uniqueRoom("adm");
    const elsewhere = uniqueRoom("adm-else");
    const alice = await token(claims("alice", allRights(room, elsewhere)));
    const bob = await token(claims("bob", allRights(room)));
    const closers: { close(): unknown }[] = [];
    let aliceStream: StreamRecorder | undefined;
    try {
      const aliceWs = await ws(room, "json", alice);
      const aliceSse = await sse(room, `token=${alice}`);
      aliceStream = new StreamRecorder((signal) => rpc.subscribe({ room }, { headers: bearer(alice), signal }));
      const aliceConnect = aliceStream;
      const aliceElsewhere = await ws(elsewhere, "json", alice);
      const bobWs = await ws(room, "json", bob);
      closers.push(aliceWs, aliceSse, aliceElsewhere, bobWs);
      await waitFor("Connect subscribed", () => aliceConnect.events.length > 0 || aliceConnect.ended, 3000);
      expect(await presentUsers(room)).toEqual(["alice", "alice", "alice", "bob"]);

      const r = await disconnectUser(room, admin, "alice");
      expect([r.status, r.body]).toEqual([200, { disconnected: 3 }]);

      await waitFor(
        "alice's three connections to end",
        () => aliceWs.closeFrame && aliceSse.disconnects.length > 0 && aliceConnect.ended,
        REMOVAL_MS,
        () => ({ ws: closeOf(aliceWs), sse: aliceSse.disconnects, connect: aliceConnect.ended }),
      );
      expect(aliceWs.closeFrame?.code).toBe(CLOSE_CODE.removed);
      expect(aliceSse.disconnects.map((d) => d.code)).toEqual(["removed"]);
      expect(aliceConnect.error?.code).toBe(Code.PermissionDenied);
      expect(aliceConnect.error?.rawMessage).toMatch(/removed by an admin/i);

      // Bob, and alice in another room, are still there and still receive.
      const seed = await mustPublish(base, room, admin, "after the removal");
      await waitFor(
        "bob to get it",
        () => bobWs.events.find((e) => e.id === seed.id),
        3000,
        () => bobWs.frames,
      );
      const other = await mustPublish(base, elsewhere, admin, "elsewhere");
      await waitFor("alice elsewhere to get it", () => aliceElsewhere.events.find((e) => e.id === other.id), 3000);
      expect(bobWs.closed).toBeUndefined();
      expect(aliceElsewhere.closed).toBeUndefined();
      expect(await presentUsers(room)).toEqual(["bob"]);
    } finally {
      for (const c of closers) await c.close();
      await aliceStream?.stop();
    }
  });

  it("removes an anonymous connection by the name it gave", async () => {
    const room = uniqueRoom("adm-anon");
    const eveWs = await ws(room, "plain", undefined, "?user=eve");
    const eveSse = await sse(room, "user=eve");
    const zoe = await ws(room, "plain", undefined, "?user=zoe");
    try {
      const r = await disconnectUser(room, admin, "eve");
      expect([r.status, r.body]).toEqual([200, { disconnected: 2 }]);
      await waitFor(
        "eve's connections to end",
        () => eveWs.closeFrame && eveSse.disconnects.length > 0,
        REMOVAL_MS,
        () => ({ ws: closeOf(eveWs), sse: eveSse.disconnects }),
      );
      expect(eveWs.closeFrame?.code).toBe(CLOSE_CODE.removed);
      expect(eveSse.disconnects.map((d) => d.code)).toEqual(["removed"]);
      expect(zoe.closed).toBeUndefined();
      expect(await presentUsers(room)).toEqual(["zoe"]);
    } finally {
      await eveWs.close();
      eveSse.close();
      await zoe.close();
    }
  });

  it("is refused to anyone but an admin (403 with a token, 401 without or with a broken one) and changes nothing", async () => {
    const room = uniqueRoom("adm-no");
    const alice = await token(claims("alice", allRights("*")));
    const aliceWs = await ws(room, "json", alice);
    try {
      const answers: Record<string, string> = {};
      const tryWith = async (name: string, t: string | undefined) => {
        const r = await disconnectUser(room, t, "alice");
        answers[name] = httpAnswer(r.status, r.body);
      };
      await tryWith("every right but admin", alice);
      await tryWith("admin: false", await token(claims("mallory", { ...allRights("*"), admin: false })));
      await tryWith("no token", undefined);
      await tryWith("unknown key", await signWith(stranger, claims("root", { admin: true })));
      expect(answers).toEqual({
        "every right but admin": "permission_denied",
        "admin: false": "permission_denied",
        "no token": "unauthenticated",
        "unknown key": "unauthenticated",
      });
      expect(aliceWs.closed).toBeUndefined();
      expect(await presentUsers(room)).toEqual(["alice"]);
    } finally {
      await aliceWs.close();
    }
  });
});

describe("this server's other settings", () => {
  it("refuses HS256 tokens when only a JWKS is configured, whatever they are keyed with", async () => {
    const room = uniqueRoom("adm-hs");
    const c = claims("root", { admin: true });
    const answers: string[] = [];
    for (const t of [
      await hs256(c),
      await hs256(c, JSON.stringify(key.publicJwk)),
      algConfusion(key, c, "jwk"),
      algConfusion(key, c, "pem"),
    ]) {
      const r = await post(base, `/rooms/${room}/messages`, JSON.stringify({ text: "hmac" }), {
        "Content-Type": "application/json",
        ...bearer(t),
      });
      answers.push(httpAnswer(r.status, r.body));
    }
    expect(answers).toEqual(["unauthenticated", "unauthenticated", "unauthenticated", "unauthenticated"]);
  });

  it("ANONYMOUS_ACCESS=subscribe: anonymous clients read, subscribe and see presence, but may not publish", async () => {
    const room = uniqueRoom("adm-sub");
    await mustPublish(base, room, admin, "seed");
    const answers: Record<string, string> = {};
    for (const path of ["/messages?since=0", "/presence", "/stats"]) {
      const r = await getJson(base, `/rooms/${room}${path}`);
      answers[`GET ${path.split("?")[0]}`] = r.status === 200 ? "200" : httpAnswer(r.status, r.body);
    }
    const publish = await post(base, `/rooms/${room}/messages`, JSON.stringify({ text: "anonymous" }), {
      "Content-Type": "application/json",
    });
    answers["POST /messages"] = httpAnswer(publish.status, publish.body);
    answers["Connect Publish"] = await rpc.publish({ room, text: "anonymous" }).then(
      () => "ok",
      (e: unknown) => Code[ConnectError.from(e).code],
    );
    const reader = await sse(room, "since=0");
    try {
      await reader.waitMessages(1);
      answers.SSE = "streams";
    } finally {
      reader.close();
    }
    expect(answers).toEqual({
      "GET /messages": "200",
      "GET /presence": "200",
      "GET /stats": "200",
      "POST /messages": "unauthenticated",
      "Connect Publish": "Unauthenticated",
      SSE: "streams",
    });
  });
});
