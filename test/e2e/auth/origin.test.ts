/**
 * docs/auth.md, "Origins": a request that carries `Origin` is checked first, whatever its route,
 * method or content type: the relay's own origin (compared after normalising, and only under a
 * host the relay is really served under) or one in ALLOWED_ORIGINS; anything else is 403
 * permission_denied and never reaches a room. No `Origin`: not affected. The server lets
 * anonymous clients publish, so only the origin can be what refuses a request.
 */
import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService } from "../../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
import {
  getJson,
  history,
  post,
  SseClient,
  UpgradeRefused,
  uniqueRoom,
  WS_PROTOCOL,
  WsClient,
  waitFor,
  wsUrl,
} from "../clients";
import { httpAnswer } from "./answers";

const APP = "https://app.example";

let server: DevServer;
let base: string;

beforeAll(async () => {
  server = await startDevServer({ vars: { ANONYMOUS_ACCESS: "publish", ALLOWED_ORIGINS: APP } });
  base = server.baseUrl;
}, READY_TIMEOUT_MS + 10_000);

afterAll(async () => {
  await server?.stop();
});

/** Origins that are neither the relay's own nor listed. */
const foreignOrigins = () => [
  "https://evil.example",
  "null",
  `http://127.0.0.1:${server.port + 1}`,
  `https://127.0.0.1:${server.port}`,
  "https://app.example.evil.example",
];

/** A text/plain publish (a "simple" cross-origin request: no preflight) with `headers`. */
const publishPlain = (room: string, headers: Record<string, string>) =>
  post(base, `/rooms/${room}/messages`, `hello ${randomUUID()}`, { "Content-Type": "text/plain", ...headers });

/** What an SSE request is answered with: "200" once it streams, or the refusal. */
async function sseAnswer(room: string, headers: Record<string, string>): Promise<string> {
  const sse = new SseClient(`${base}/rooms/${room}/sse?since=0`, { headers });
  try {
    await waitFor("a refusal or the first event", () => sse.refusals.length > 0 || sse.events.length > 0, 3000);
    return sse.refusals[0] ? httpAnswer(sse.refusals[0].status, sse.refusals[0].body) : "200";
  } finally {
    sse.close();
  }
}

/** What a WebSocket upgrade is answered with: "open" once it works (its echo came back), or the refusal. */
async function wsAnswer(room: string, headers: Record<string, string>): Promise<string> {
  let ws: WsClient;
  try {
    ws = await WsClient.open(wsUrl(base, `/rooms/${room}/ws`), WS_PROTOCOL.json, { headers, timeoutMs: 3000 });
  } catch (e) {
    if (e instanceof UpgradeRefused) return `refused ${httpAnswer(e.status, e.body)}`;
    throw e;
  }
  try {
    ws.publish("over ws", randomUUID());
    const got = await waitFor("the ack or a close", () => ws.closed ?? ws.acks[0], 3000).catch(() => undefined);
    return got && "event" in got ? "open" : `accepted, then ${JSON.stringify(got ?? "nothing")}`;
  } finally {
    await ws.close();
  }
}

/** What a Connect Publish is answered with: "ok", or its Connect code. */
async function connectAnswer(room: string, origin?: string): Promise<string> {
  const client = createClient(
    ChatService,
    createConnectTransport({
      baseUrl: base,
      httpVersion: "1.1",
      interceptors: [
        (next) => async (req) => {
          if (origin !== undefined) req.header.set("Origin", origin);
          return next(req);
        },
      ],
    }),
  );
  try {
    await client.publish({ room, text: "over connect", id: randomUUID() }, { signal: AbortSignal.timeout(5000) });
    return "ok";
  } catch (e) {
    return Code[ConnectError.from(e).code];
  }
}

/** A raw HTTP/1.1 request with exactly these headers (Host included), as a browser on a rebinding domain sends it. */
function rawRequest(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port: server.port, method, path, headers, timeout: 5000, agent: false },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString();
          // An SSE stream that was let through: enough to say so.
          if (res.statusCode === 200 && path.includes("/sse")) res.destroy();
        });
        const done = () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // Not JSON: keep the text.
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        };
        res.on("end", done);
        res.on("close", done);
      },
    );
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 101, body: "upgraded" });
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end(body);
  });
}

describe("a foreign Origin", () => {
  it("is refused 403 on a cross-origin text/plain publish, and nothing is stored", async () => {
    const room = uniqueRoom("or-post");
    const answers: Record<string, string> = {};
    for (const origin of foreignOrigins()) {
      const r = await publishPlain(room, { Origin: origin });
      answers[origin] = httpAnswer(r.status, r.body);
      const json = await post(base, `/rooms/${room}/messages`, JSON.stringify({ text: "json" }), {
        "Content-Type": "application/json",
        Origin: origin,
      });
      answers[`${origin} (json)`] = httpAnswer(json.status, json.body);
    }
    expect(Object.values(answers)).toEqual(Object.keys(answers).map(() => "permission_denied"));
    // Read without Origin, as a server would.
    expect((await history(base, room)).events).toEqual([]);
  });

  it("is refused 403 on every route and method: reads, SSE, Connect, preflight, health", async () => {
    const room = uniqueRoom("or-routes");
    const evil = { Origin: "https://evil.example" };
    const answers: Record<string, string> = {};
    for (const path of ["/messages?since=0", "/presence", "/stats"]) {
      const r = await getJson(base, `/rooms/${room}${path}`, evil);
      answers[`GET ${path.split("?")[0]}`] = httpAnswer(r.status, r.body);
    }
    // Not a room's route, but docs/auth.md says "whatever its route".
    const health = await getJson(base, "/healthz", evil);
    answers["GET /healthz"] = httpAnswer(health.status, health.body);
    answers.SSE = await sseAnswer(room, evil);
    const preflight = await fetch(`${base}/rooms/${room}/messages`, {
      method: "OPTIONS",
      headers: { ...evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" },
      signal: AbortSignal.timeout(5000),
    });
    answers.preflight = `HTTP ${preflight.status}`;
    await preflight.body?.cancel();
    const rpc = await fetch(`${base}/relay.v1.ChatService/Publish`, {
      method: "POST",
      headers: { ...evil, "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
      body: JSON.stringify({ room, text: "over connect" }),
      signal: AbortSignal.timeout(5000),
    });
    answers["Connect (HTTP status)"] = `HTTP ${rpc.status}`;
    await rpc.body?.cancel();
    answers["Connect (connect-node)"] = await connectAnswer(room, "https://evil.example");
    expect(answers).toEqual({
      "GET /messages": "permission_denied",
      "GET /presence": "permission_denied",
      "GET /stats": "permission_denied",
      "GET /healthz": "permission_denied",
      SSE: "permission_denied",
      preflight: "HTTP 403",
      "Connect (HTTP status)": "HTTP 403",
      "Connect (connect-node)": "PermissionDenied",
    });
    expect((await history(base, room)).events).toEqual([]);
  });

  it("cannot open a WebSocket (the upgrade is refused 403)", async () => {
    const room = uniqueRoom("or-ws");
    const answers: Record<string, string> = {};
    for (const origin of foreignOrigins()) answers[origin] = await wsAnswer(room, { Origin: origin });
    expect(Object.values(answers)).toEqual(Object.keys(answers).map(() => "refused permission_denied"));
  });

  it("is refused on a DNS-rebinding request (Host and Origin both evil.example), on every route", async () => {
    const room = uniqueRoom("or-rebind");
    const host = `evil.example:${server.port}`;
    const rebound = { Host: host, Origin: `http://${host}` };
    const answers: Record<string, string> = {};
    const publish = await rawRequest(
      "POST",
      `/rooms/${room}/messages`,
      { ...rebound, "Content-Type": "text/plain" },
      "rebound",
    );
    answers.publish = httpAnswer(publish.status, publish.body);
    const read = await rawRequest("GET", `/rooms/${room}/messages?since=0`, rebound);
    answers.history = httpAnswer(read.status, read.body);
    const sse = await rawRequest("GET", `/rooms/${room}/sse?since=0`, rebound);
    answers.sse = httpAnswer(sse.status, sse.body);
    const ws = await rawRequest("GET", `/rooms/${room}/ws`, {
      ...rebound,
      Connection: "Upgrade",
      Upgrade: "websocket",
      "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": Buffer.from(randomUUID().slice(0, 16)).toString("base64"),
    });
    answers.ws = httpAnswer(ws.status, ws.body);
    expect(answers).toEqual({
      publish: "permission_denied",
      history: "permission_denied",
      sse: "permission_denied",
      ws: "permission_denied",
    });
    expect((await history(base, room)).events).toEqual([]);
  });
});

describe("an allowed Origin, or none", () => {
  it("lets through a listed origin, the relay's own (in any case), and requests without Origin, on every transport", async () => {
    const room = uniqueRoom("or-ok");
    const origins: Record<string, Record<string, string>> = {
      listed: { Origin: APP },
      own: { Origin: base },
      "own, upper case": { Origin: `HTTP://127.0.0.1:${server.port}` },
      none: {},
    };
    const answers: Record<string, string[]> = {};
    for (const [name, headers] of Object.entries(origins)) {
      const r = await publishPlain(room, headers);
      answers[name] = [
        `publish ${r.status}`,
        `sse ${await sseAnswer(room, headers)}`,
        `ws ${await wsAnswer(room, headers)}`,
        `connect ${await connectAnswer(room, headers.Origin)}`,
      ];
    }
    const ok = ["publish 201", "sse 200", "ws open", "connect ok"];
    expect(answers).toEqual({ listed: ok, own: ok, "own, upper case": ok, none: ok });
    // Four publishes of each kind (HTTP, WebSocket, Connect) were stored.
    expect((await history(base, room)).events).toHaveLength(12);
  });

  it("a listed origin gets CORS headers on a cross-origin publish", async () => {
    const room = uniqueRoom("or-cors");
    const r = await fetch(`${base}/rooms/${room}/messages`, {
      method: "POST",
      headers: { Origin: APP, "Content-Type": "text/plain" },
      body: "from the app",
      signal: AbortSignal.timeout(5000),
    });
    expect(r.status).toBe(201);
    expect(r.headers.get("Access-Control-Allow-Origin")).toBe(APP);
    await r.body?.cancel();
  });
});
