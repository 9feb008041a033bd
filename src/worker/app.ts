/**
 * The Worker's router, the top layer: settings parsed once per request, the origin check, CORS,
 * the room-name check (an invalid name never creates a Durable Object), each transport's routes
 * (each admits its caller, edge/caller.ts, before it touches a room), and errors rendered from the
 * one table in errors.ts. The app is `hono/tiny` (the PatternRouter): plenty for a dozen routes,
 * and 6 KiB less to deploy.
 */
import { cors as connectCors } from "@connectrpc/connect";
import { cors } from "hono/cors";
import { Hono } from "hono/tiny";
import { discardBody } from "../edge/body";
import type { RelayContext, RelayEnv } from "../edge/context";
import { RelayError } from "../errors";
import { parseRoomName } from "../protocol/rules";
import { normaliseOrigin, readSettings } from "../settings";
import { connectRoute } from "../transports/connect/connect-route";
import { ERROR_CODE_KEY } from "../transports/connect/errors";
import { disconnectRoute } from "../transports/http/disconnect";
import { historyRoute, presenceRoute, publishRoute, statsRoute } from "../transports/http/messages";
import { sseRoute } from "../transports/sse/sse-route";
import { wsRoute } from "../transports/websocket/ws-route";
import { localLimit } from "./local-limit";
import { listed, originAllowed } from "./origin";

/** The relay's Hono app; `fetch` is the Worker's entry point. */
export const app = new Hono<RelayEnv>();

app.use("*", async (c, next) => {
  c.set("settings", readSettings(c.env));
  try {
    await next();
  } finally {
    // A request refused before its body was read still has it on the connection: left there, it
    // breaks the next request on the same keep-alive connection (docs/runtime-notes.md).
    const body = c.req.raw.body;
    if (body && !body.locked && !c.req.raw.bodyUsed) await discardBody(c.req.raw);
  }
});

// A page on a foreign origin is refused before anything else, whatever the route or content type:
// CORS alone would still let its `text/plain` POST, EventSource and WebSocket through.
app.use("*", async (c, next) => {
  const { allowedOrigins } = c.var.settings;
  if (!originAllowed(c.req.header("Origin"), c.req.header("Sec-Fetch-Site"), c.req.url, allowedOrigins)) {
    throw new RelayError("permission_denied", "requests from this origin are not allowed (see ALLOWED_ORIGINS)");
  }
  await next();
});

app.get("/healthz", (c) => c.json({ ok: true }));

// Browsers on other origins (connect-web, EventSource, fetch) need CORS. Only listed origins get
// it; "*" only when ALLOWED_ORIGINS says so.
const corsMiddleware = cors({
  origin: (origin, c: RelayContext) => {
    const o = normaliseOrigin(origin);
    return o !== undefined && listed(o, c.var.settings.allowedOrigins) ? origin : null;
  },
  allowMethods: [...connectCors.allowedMethods],
  allowHeaders: [...connectCors.allowedHeaders, "Last-Event-ID", "Idempotency-Key"],
  exposeHeaders: [...connectCors.exposedHeaders, ERROR_CODE_KEY],
  maxAge: 7200,
});
app.use("*", async (c, next) => {
  if (c.req.header("Origin") !== undefined || c.req.method === "OPTIONS") return corsMiddleware(c, next);
  // Not a CORS request (no Origin): no CORS headers, only `Vary: Origin`, so that a cache never
  // hands this answer to a browser's request. Added in place: Hono's cors would make the response
  // twice more (a Response costs the runtime as much as the rest of a publish's Worker side).
  await next();
  try {
    c.res.headers.append("Vary", "Origin");
  } catch {
    // Immutable headers (a response from a Durable Object): a copy that can take it.
    c.header("Vary", "Origin", { append: true });
  }
});

app.use("/rooms/:room/*", async (c, next) => {
  c.set("room", parseRoomName(c.req.param("room")));
  await next();
});
app.use("*", localLimit);

app.get("/rooms/:room/ws", wsRoute);
app.get("/rooms/:room/sse", sseRoute);
app.post("/rooms/:room/messages", publishRoute);
app.get("/rooms/:room/messages", historyRoute);
app.get("/rooms/:room/presence", presenceRoute);
app.get("/rooms/:room/stats", statsRoute);
app.post("/rooms/:room/disconnect", disconnectRoute);
app.on(["GET", "POST"], "/relay.v1.ChatService/*", connectRoute);

app.notFound((c) => c.json(new RelayError("not_found", `no route for ${c.req.method} ${c.req.path}`).toJSON(), 404));

app.onError((e, c) => {
  const err = RelayError.from(e);
  if (err.code === "internal") console.error("unhandled error", e);
  return c.json(err.toJSON(), err.http as 400);
});
