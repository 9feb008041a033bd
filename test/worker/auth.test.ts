/**
 * Tokens and rights inside workerd (src/auth/): what a token proves, which tokens are refused and
 * with which code, how rights match rooms, and the refresh frame on a real room socket. The
 * end-to-end matrix per transport is test/e2e/auth/.
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import { can, matches, principal } from "../../src/auth/rights";
import { verifyToken } from "../../src/auth/token";
import { RelayError } from "../../src/errors";
import { Room } from "../../src/index.ts";
import { readSettings } from "../../src/settings";
import { ANON, connect, sleep } from "./helpers";

const SECRET = "worker-test-secret";
const settings = readSettings(env);
const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => btoa(JSON.stringify(v)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

function token(claims: Record<string, unknown>, secret = SECRET): Promise<string> {
  return sign({ exp: now() + 60, ...claims }, secret, "HS256");
}

async function refusal(t: string): Promise<string> {
  try {
    await verifyToken(t, settings);
  } catch (e) {
    expect(e).toBeInstanceOf(RelayError);
    return (e as RelayError).code;
  }
  throw new Error("token was accepted");
}

describe("verifyToken", () => {
  it("reads sub, exp and rights from an HS256 token", async () => {
    const exp = now() + 120;
    const who = await verifyToken(
      await token({ sub: "alice", exp, relay: { subscribe: ["team-*"], publish: ["lobby"] } }),
      settings,
    );
    expect(who).toEqual({
      sub: "alice",
      key: "sub:alice",
      expMs: exp * 1000,
      rights: { subscribe: ["team-*"], publish: ["lobby"], presence: [], admin: false },
    });
  });

  it("refuses bad signatures, alg none, other algorithms, garbage and missing claims as unauthenticated", async () => {
    const good = await token({ sub: "alice" });
    const [h, p] = good.split(".");
    expect(await refusal(await token({ sub: "alice" }, "another-secret"))).toBe("unauthenticated");
    expect(await refusal(`${b64({ alg: "none", typ: "JWT" })}.${p}.`)).toBe("unauthenticated");
    expect(await refusal(await sign({ sub: "alice", exp: now() + 60 }, SECRET, "HS512"))).toBe("unauthenticated");
    // ES256 without a JWKS configured: never checked against the HMAC secret.
    expect(await refusal(`${b64({ alg: "ES256", typ: "JWT", kid: "k" })}.${p}.${good.split(".")[2]}`)).toBe(
      "unauthenticated",
    );
    expect(await refusal(`${h}.${p}`)).toBe("unauthenticated");
    expect(await refusal("not a token")).toBe("unauthenticated");
    expect(await refusal("x".repeat(9000))).toBe("unauthenticated");
    expect(await refusal(await token({ exp: now() + 60 }))).toBe("unauthenticated"); // no sub
    expect(await refusal(await sign({ sub: "alice" }, SECRET, "HS256"))).toBe("unauthenticated"); // no exp
    expect(await refusal(await token({ sub: "alice", nbf: now() + 60 }))).toBe("unauthenticated");
    expect(await refusal(await token({ sub: "alice", relay: { publish: "lobby" } }))).toBe("unauthenticated");
  });

  it("tells an expired token apart", async () => {
    expect(await refusal(await token({ sub: "alice", exp: now() - 1 }))).toBe("token_expired");
  });

  it("never puts the token in its message", async () => {
    const t = await token({ sub: "alice" }, "another-secret");
    await expect(verifyToken(t, settings)).rejects.not.toThrow(t.slice(0, 20));
  });
});

describe("rights", () => {
  it("match a room by name or by a prefix ending in *", () => {
    expect(matches(["lobby"], "lobby")).toBe(true);
    expect(matches(["lobby"], "lobby2")).toBe(false);
    expect(matches(["team-*"], "team-red")).toBe(true);
    expect(matches(["team-*"], "tea")).toBe(false);
    expect(matches(["*"], "anything")).toBe(true);
  });

  it("grant admins everything, and fix a token holder's name to its sub", () => {
    const rights = { subscribe: ["a"], publish: [], presence: [], admin: false };
    const alice = { sub: "alice", key: "sub:alice", expMs: 1, rights };
    expect(can(alice, "subscribe", "a")).toBe(true);
    expect(can(alice, "publish", "a")).toBe(false);
    expect(can(alice, "admin", "a")).toBe(false);
    expect(principal(alice, "a", "1.2.3.4", "mallory")).toMatchObject({
      user: "alice",
      userFixed: true,
      owner: "alice",
    });
    const admin = { ...alice, sub: "ops", rights: { ...rights, admin: true } };
    expect(can(admin, "publish", "zzz")).toBe(true);
    expect(principal(admin, "a", "1.2.3.4", "bot")).toMatchObject({ user: "bot", userFixed: false, owner: "ops" });
  });
});

describe("a room with tokens", () => {
  it("scopes idempotency ids by owner: mallory's k-1 is not alice's", async () => {
    const room = env.ROOM.getByName("auth-ids");
    const as = (sub: string) => ({ ...ANON, user: sub, userFixed: true, owner: sub, anonymous: false });
    const m = await room.publish("auth-ids", { text: "mallory's", id: "k-1" }, as("mallory"));
    const a = await room.publish("auth-ids", { text: "alice's", id: "k-1" }, as("alice"));
    const again = await room.publish("auth-ids", { text: "retry", id: "k-1" }, as("mallory"));
    expect(m.ok && a.ok && again.ok).toBe(true);
    if (!m.ok || !a.ok || !again.ok) return;
    expect(a.value).toMatchObject({ duplicate: false, event: { text: "alice's", user: "alice", seq: 2 } });
    expect(again.value).toMatchObject({ duplicate: true, event: { text: "mallory's", user: "mallory", seq: 1 } });
  });

  it("refreshes a WebSocket in place for the same sub, and refuses another sub's token", async () => {
    const t = await token({ sub: "alice", exp: now() + 2, relay: { subscribe: ["auth-refresh"] } });
    const s = await connect("auth-refresh", "relay.v1.json", `?token=${t}`);
    const exp = now() + 600;
    const fresh = await token({ sub: "alice", exp, relay: { subscribe: ["auth-refresh"] } });
    s.ws.send(JSON.stringify({ refresh: { token: await token({ sub: "bob", relay: { subscribe: ["*"] } }) } }));
    s.ws.send(JSON.stringify({ refresh: { token: fresh } }));
    const answers = () => s.json().filter((f) => f.refreshed || f.error);
    for (let i = 0; i < 50 && answers().length < 2; i++) await sleep(20);
    expect(answers()).toEqual(
      expect.arrayContaining([
        { error: expect.objectContaining({ code: "permission_denied" }) },
        { refreshed: { expiresAtMs: String(exp * 1000) } },
      ]),
    );
    // The first token's expiry passes: the connection stays, and still may not publish.
    await sleep(2500);
    s.ws.send(JSON.stringify({ publish: { text: "hi", id: "p-1" } }));
    const denied = () => s.json().some((f) => f.error?.code === "permission_denied" && f.error.id === "p-1");
    for (let i = 0; i < 50 && !denied(); i++) await sleep(20);
    expect(denied()).toBe(true);
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
    s.ws.close();
  });

  it("closes a WebSocket whose token expires with 4440, and refuses one without rights with 1008", async () => {
    const short = await token({ sub: "carol", exp: now() + 1, relay: { subscribe: ["auth-exp"] } });
    const s = await connect("auth-exp", "relay.v1.json", `?token=${short}`);
    const closed = await Promise.race([s.closed, sleep(5000).then(() => undefined)]);
    expect(closed?.code).toBe(4440);
    const other = await connect("auth-exp", "relay.v1.json", `?token=${await token({ sub: "carol" })}`);
    expect((await other.closed).code).toBe(1008);
    const res = await SELF.fetch("https://relay.test/rooms/auth-exp/messages?token=x");
    expect(res.status).toBe(400);
  });

  it("holds a socket accepted before tokens existed (no `who` in its attachment) to today's anonymous policy", async () => {
    const stub = env.ROOM.getByName("auth-legacy");
    await runInDurableObject(stub, async (_old, state) => {
      const { 0: client, 1: server } = new WebSocketPair();
      state.acceptWebSocket(server, ["json"]);
      client.accept();
      const frames: string[] = [];
      client.addEventListener("message", (m) => frames.push(m.data as string));
      // What version 2 of the attachment held.
      server.serializeAttachment({
        room: "auth-legacy",
        user: "old",
        via: "websocket",
        format: "json",
        connectedAtMs: 1,
      });
      const publish = JSON.stringify({ publish: { text: "from before", id: "l-1" } });
      new Room(state, { ...env, ANONYMOUS_ACCESS: "subscribe" }).webSocketMessage(server, publish);
      const open = new Room(state, { ...env, ANONYMOUS_ACCESS: "publish" });
      open.webSocketMessage(server, publish);
      await open.alarm();
      for (let i = 0; i < 50 && frames.length < 2; i++) await sleep(10);
      expect(frames.slice(0, 2).map((f) => Object.keys(JSON.parse(f))[0])).toEqual(["error", "ack"]);
      expect(JSON.parse(frames[0]).error.code).toBe("permission_denied");
      expect(JSON.parse(frames[1]).ack.event).toMatchObject({ user: "old", text: "from before" });
      expect(await open.presence()).toEqual([
        { user: "old", transports: ["websocket"], connections: 1, connectedAtMs: 1 },
      ]);
    });
  });
});
