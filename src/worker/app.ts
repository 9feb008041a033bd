/**
 * The Worker's router: room routes per transport, health and errors. Room names are checked here,
 * so an invalid name never creates a Durable Object.
 */
import { cors as connectCors } from "@connectrpc/connect";
import { Hono } from "hono";
import { cors } from "hono/cors";
import { type Env, readLimits } from "../config";
import { HTTP_STATUS, RelayError } from "../errors";
import { isRoomName } from "../room-name";
import { connectRoute } from "../transports/connect/connect-route";
import { historyRoute, presenceRoute, publishRoute, statsRoute } from "../transports/http/messages";
import { sseRoute } from "../transports/sse/sse-adapter";
import { wsRoute } from "../transports/websocket/ws-route";

/** The relay's Hono app; `fetch` is the Worker's entry point. */
export const app = new Hono<{ Bindings: Env }>();

app.get("/healthz", (c) => c.json({ ok: true }));

// Browsers on other origins (connect-web, EventSource, fetch) need CORS. Only listed origins get
// it; "*" only when ALLOWED_ORIGINS says so (../shared/DESIGN.md, Security).
app.use("*", async (c, next) => {
  const allowed = readLimits(c.env).allowedOrigins;
  return cors({
    origin: (origin) => (allowed.includes("*") || allowed.includes(origin) ? origin : null),
    allowMethods: [...connectCors.allowedMethods],
    allowHeaders: [...connectCors.allowedHeaders, "Last-Event-ID", "Idempotency-Key"],
    exposeHeaders: [...connectCors.exposedHeaders],
    maxAge: 7200,
  })(c, next);
});

app.use("/rooms/:room/*", async (c, next) => {
  if (!isRoomName(c.req.param("room") ?? "")) {
    throw new RelayError("invalid_argument", "room names are 1-64 characters of A-Z a-z 0-9 . _ ~ -");
  }
  await next();
});

app.get("/rooms/:room/ws", wsRoute);
app.get("/rooms/:room/sse", sseRoute);
app.post("/rooms/:room/messages", publishRoute);
app.get("/rooms/:room/messages", historyRoute);
app.get("/rooms/:room/presence", presenceRoute);
app.get("/rooms/:room/stats", statsRoute);
app.on(["GET", "POST"], "/relay.v1.ChatService/*", connectRoute);

app.notFound((c) => c.json(new RelayError("not_found", `no route for ${c.req.method} ${c.req.path}`).toJSON(), 404));

app.onError((e, c) => {
  const err = RelayError.from(e);
  if (err.code === "internal") console.error("unhandled error", e);
  return c.json(err.toJSON(), HTTP_STATUS[err.code] as 400);
});
