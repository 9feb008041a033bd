/**
 * Broken tokens (docs/auth.md), one slice per transport: garbage, bad base64, `alg: none`, huge,
 * a wrong or damaged signature, expired, not yet valid, HS384/HS512, an RS256 header on an HMAC
 * signature, missing or malformed claims, and valid tokens that grant nothing in the room. Sent as
 * `Authorization: Bearer` (and look-alike schemes) and as `?token=`. When the server checks
 * tokens, every one must be refused, and publishes carry a valid message so that a token let
 * through would show as a stored message; when it does not (auth not built yet), publishes carry a
 * message the rules refuse, and the slice only checks for 5xx and hangs.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  HistoryRequestSchema,
  PresenceRequestSchema,
  PublishRequestSchema,
  SubscribeRequestSchema,
} from "../../../src/gen/relay/v1/relay_pb";
import { wellFormedCall } from "../connect-wire";
import { b64url, nowSeconds, signJwt } from "../jwt";
import { ALNUM, type Rng } from "../prng";
import {
  type Attempt,
  connectAttempt,
  type FuzzContext,
  httpAttempt,
  type Slice,
  show,
  sseAttempt,
  upgradeAttempt,
} from "../slice";

const KIDS = ["../../etc/passwd", "", "x".repeat(500), null, "http://127.0.0.1:1/jwks"];

/** A broken token, and what is wrong with it. */
function badToken(rng: Rng, ctx: FuzzContext, room: string): { kind: string; token: string } {
  const now = nowSeconds();
  const good = {
    sub: `fuzz-${rng.int(0, 99)}`,
    exp: now + 600,
    relay: { subscribe: [room], publish: [room], presence: [room] },
  };
  const hs = (claims: unknown, secret = ctx.secret, alg = "HS256", extra: Record<string, unknown> = {}) =>
    signJwt({ alg, typ: "JWT", ...extra }, claims, secret);
  const kinds: [number, () => { kind: string; token: string }][] = [
    [3, () => ({ kind: "garbage", token: rng.chars(rng.size(1, 300), `${ALNUM}-_.~+/=!$%`) })],
    [
      2,
      () => {
        const seg = () => rng.chars(rng.int(0, 40), `${ALNUM}!*()$ +/=`);
        return { kind: "bad base64", token: Array.from({ length: rng.int(1, 5) }, seg).join(".") };
      },
    ],
    [
      3,
      () => {
        const alg = rng.pick(["none", "None", "NONE", "nOnE", ""]);
        const sig = rng.pick(["", "x", hs(good).split(".")[2]]);
        return {
          kind: "alg none",
          token: `${b64url(JSON.stringify({ alg, typ: "JWT" }))}.${b64url(JSON.stringify(good))}.${sig}`,
        };
      },
    ],
    [3, () => ({ kind: "wrong secret", token: hs(good, `not-${ctx.secret}`) })],
    [
      2,
      () => {
        const t = hs(good);
        // Not the last character: its low bits are padding, which decoders may ignore.
        const at = t.length - rng.int(2, 10);
        const c = t[at] === "A" ? "B" : "A";
        return { kind: "damaged signature", token: t.slice(0, at) + c + t.slice(at + 1) };
      },
    ],
    [3, () => ({ kind: "expired", token: hs({ ...good, exp: rng.pick([0, 1, now - 1, now - rng.int(2, 1e8)]) }) })],
    [2, () => ({ kind: "not yet valid", token: hs({ ...good, nbf: now + rng.int(60, 1e6) }) })],
    [2, () => ({ kind: "HS384/HS512", token: hs(good, ctx.secret, rng.pick(["HS384", "HS512"])) })],
    [
      2,
      () => ({
        kind: "RS256/ES256 header, HMAC signature",
        token: hs(good, ctx.secret, rng.pick(["RS256", "ES256"]), { kid: "k1" }),
      }),
    ],
    [
      1,
      () => ({
        // (An HS256 token with the right secret is valid whatever its kid: these are not.)
        kind: "kid tricks",
        token: rng.chance(0.5)
          ? hs(good, ctx.secret, rng.pick(["RS256", "ES256"]), { kid: rng.pick(KIDS) })
          : hs(good, `kid-${ctx.secret}`, "HS256", { kid: rng.pick(KIDS) }),
      }),
    ],
    [
      3,
      () => {
        const claims = rng.pick<unknown>([
          { exp: now + 600 },
          { sub: "ann" },
          { sub: "", exp: now + 600 },
          { sub: "s".repeat(65), exp: now + 600 },
          { sub: "a\u0001b", exp: now + 600 },
          { sub: 42, exp: now + 600 },
          { sub: "ann", exp: `${now + 600}` },
          { sub: "ann", exp: now + 600, relay: "admin" },
          { sub: "ann", exp: now + 600, relay: { admin: "yes" } },
          { sub: "ann", exp: now + 600, relay: { publish: "*" } },
          [],
          "not json",
          null,
        ]);
        return { kind: "bad claims", token: hs(claims) };
      },
    ],
    [
      2,
      () => {
        const claims = rng.chance(0.5)
          ? { sub: "ann", exp: now + 600 }
          : {
              sub: "ann",
              exp: now + 600,
              relay: { subscribe: ["other-*"], publish: ["other-*"], presence: ["other"] },
            };
        return { kind: "valid, no rights here", token: hs(claims) };
      },
    ],
    [
      2,
      () => {
        const big = rng.size(8193, 200_000);
        return { kind: "huge", token: rng.chance(0.5) ? rng.chars(big, ALNUM) : hs({ ...good, pad: "p".repeat(big) }) };
      },
    ],
  ];
  return rng.weighted(kinds)();
}

/** The longest token sent in a URL (see carry). */
const URL_TOKEN_MAX = 12_000;

/** How the token travels: an Authorization header (maybe a look-alike scheme) or `?token=`. */
function carry(
  rng: Rng,
  token: string,
  queryAllowed: boolean,
): { how: string; headers: Record<string, string>; query: string } {
  if (rng.chance(queryAllowed ? 0.4 : 0.15)) {
    // Cloudflare refuses URLs over 16 KiB before any Worker runs; locally wrangler dev's proxy
    // answers such a request line 431, or under load a bare 503 of its own. Past the relay's own
    // bound (8 KiB) a longer token in a URL tests nothing more.
    const t = token.length > URL_TOKEN_MAX ? token.slice(0, URL_TOKEN_MAX) : token;
    return { how: "?token=", headers: {}, query: `token=${encodeURIComponent(t)}` };
  }
  const scheme = rng.weighted([
    [8, "Bearer "],
    [1, "bearer "],
    [1, "Bearer  "],
    [1, "Basic "],
    [1, "Token "],
    [1, ""],
  ]);
  const tail = rng.chance(0.05) ? " extra" : "";
  return {
    how: `Authorization: ${scheme.trim() || "(no scheme)"}`,
    headers: { Authorization: `${scheme}${token}${tail}` },
    query: "",
  };
}

const join = (path: string, query: string) => (query ? `${path}?${query}` : path);

export function tokenSlices(ctx: FuzzContext): Slice[] {
  const room = `${ctx.prefix}-tokens`;
  const publishText = (rng: Rng) => (ctx.authEnforced ? `token probe ${rng.int(0, 1e9)}` : "");
  const make = (transport: string, build: (rng: Rng, token: string, kind: string) => Attempt): Slice => ({
    name: `tokens ${transport}`,
    room,
    mustRefuse: ctx.authEnforced,
    make(rng) {
      const t = badToken(rng, ctx, room);
      return build(rng, t.token, `${t.kind} ${show(t.token, 40)}`);
    },
  });
  return [
    make("http", (rng, token, what) => {
      const c = carry(rng, token, false);
      const route = rng.pick(["messages", "presence", "stats", "publish", "disconnect"]);
      const input = `${what} via ${c.how} on ${route}`;
      if (route === "publish" || route === "disconnect") {
        const body = route === "publish" ? JSON.stringify({ text: publishText(rng) }) : JSON.stringify({ user: "ann" });
        const path = join(`/rooms/${room}/${route === "publish" ? "messages" : "disconnect"}`, c.query);
        return httpAttempt(
          input,
          { method: "POST", path, headers: { ...c.headers, "Content-Type": "application/json" }, body },
          route === "publish",
        );
      }
      return httpAttempt(input, { method: "GET", path: join(`/rooms/${room}/${route}`, c.query), headers: c.headers });
    }),
    make("sse", (rng, token, what) => {
      const c = carry(rng, token, true);
      return sseAttempt(`${what} via ${c.how}`, join(`/rooms/${room}/sse`, c.query), c.headers);
    }),
    make("ws", (rng, token, what) => {
      const c = carry(rng, token, true);
      const protocol = rng.pick([undefined, "relay.v1.json", "relay.v1.proto"]);
      const headers = protocol ? { ...c.headers, "Sec-WebSocket-Protocol": protocol } : c.headers;
      return upgradeAttempt(
        `${what} via ${c.how} (${protocol ?? "plain"})`,
        join(`/rooms/${room}/ws`, c.query),
        headers,
      );
    }),
    make("connect", (rng, token, what) => {
      const c = carry(rng, token, false);
      const method = rng.pick(["Publish", "History", "Presence", "Subscribe"] as const);
      const grpcWeb = rng.chance(0.4);
      const binary = grpcWeb || rng.chance(0.5);
      const text = publishText(rng);
      const msg = {
        Publish: () => toBinary(PublishRequestSchema, create(PublishRequestSchema, { room, text })),
        History: () => toBinary(HistoryRequestSchema, create(HistoryRequestSchema, { room })),
        Presence: () => toBinary(PresenceRequestSchema, create(PresenceRequestSchema, { room })),
        Subscribe: () => toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, { room, since: 0n })),
      }[method]();
      const json = {
        Publish: { room, text },
        History: { room },
        Presence: { room },
        Subscribe: { room, since: "0" },
      }[method];
      const payload = binary ? msg : Buffer.from(JSON.stringify(json));
      const { kind, contentType, body } = wellFormedCall(method, payload, { binary, grpcWeb });
      const input = `${what} via ${c.how} on ${method} (${contentType})`;
      return connectAttempt(
        input,
        { kind, method: join(method, c.query), contentType, body, headers: c.headers, binary },
        method === "Publish",
      );
    }),
  ];
}
