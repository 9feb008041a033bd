/**
 * docs/auth.md, "Anonymous access": a deployment is never open by accident. This server has
 * wrangler.toml's vars and nothing else (`open: false`, no vars): exactly what `npm run deploy`
 * ships. Every anonymous request is refused `unauthenticated`, with a message that says how to set
 * the relay up; nothing is stored. With no secret and no JWKS, no token can help either.
 * Whether anything was stored is read afterwards by an open server on the same storage.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService } from "../../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
import {
  connectTransports,
  type ErrorJson,
  getJson,
  history,
  post,
  publishJson,
  SseClient,
  uniqueRoom,
  WS_PROTOCOL,
  WsClient,
  waitFor,
  wsUrl,
} from "../clients";
import { closeAnswer, connectAnswer, httpAnswer } from "./answers";
import { allRights, claims, hs256 } from "./tokens";

const persistTo = mkdtempSync(join(tmpdir(), "relay-safe-default-"));
let server: DevServer | undefined;
let base: string;
const room = uniqueRoom("safe");

beforeAll(async () => {
  server = await startDevServer({ open: false, persistTo });
  base = server.baseUrl;
}, READY_TIMEOUT_MS + 10_000);

afterAll(async () => {
  await server?.stop();
  rmSync(persistTo, { recursive: true, force: true });
});

/** A message that tells an operator what to set. */
const SAYS_HOW = /ANONYMOUS_ACCESS|RELAY_JWT_SECRET|RELAY_JWKS_URL/;

describe("as deployed (wrangler.toml's vars only)", () => {
  it("refuses an anonymous publish with 401 unauthenticated, saying how to set the relay up", async () => {
    const json = await publishJson(base, room, { text: "hello", id: "a-1" });
    const text = await post(base, `/rooms/${room}/messages?user=ann`, "hi", { "Content-Type": "text/plain" });
    expect(httpAnswer(json.status, json.body)).toBe("unauthenticated");
    expect(httpAnswer(text.status, text.body)).toBe("unauthenticated");
    expect((json.body as unknown as { error: ErrorJson }).error.message).toMatch(SAYS_HOW);
  });

  it("refuses an anonymous SSE stream with 401 before it starts", async () => {
    const sse = new SseClient(`${base}/rooms/${room}/sse?since=0`);
    try {
      await waitFor("an answer", () => sse.refusals.length > 0 || sse.events.length > 0, 3000);
      expect(sse.events).toEqual([]);
      expect(httpAnswer(sse.refusals[0].status, sse.refusals[0].body)).toBe("unauthenticated");
      expect((sse.refusals[0].body as { error: ErrorJson }).error.message).toMatch(SAYS_HOW);
    } finally {
      sse.close();
    }
  });

  it("refuses everything else anonymous too: history, presence, stats, WebSocket (4540), Connect", async () => {
    const answers: Record<string, string> = {};
    for (const path of ["/messages?since=0", "/presence", "/stats"]) {
      const r = await getJson(base, `/rooms/${room}${path}`);
      answers[path.split("?")[0]] = httpAnswer(r.status, r.body);
    }
    const ws = await WsClient.open(wsUrl(base, `/rooms/${room}/ws`), WS_PROTOCOL.json);
    try {
      ws.publish("over ws", randomUUID());
      answers.ws = closeAnswer(await ws.waitClosed(3000));
      expect(ws.events).toEqual([]);
    } finally {
      await ws.close();
    }
    const rpc = createClient(ChatService, connectTransports(base)["connect-json"]);
    answers.connect = await rpc.publish({ room, text: "over connect" }).then(
      () => "ok",
      (e: unknown) => connectAnswer(e),
    );
    expect(answers).toEqual({
      "/messages": "unauthenticated",
      "/presence": "unauthenticated",
      "/stats": "unauthenticated",
      ws: "unauthenticated",
      connect: "unauthenticated",
    });
  });

  it("refuses any token: with no secret and no JWKS configured, none can be verified", async () => {
    const r = await post(base, `/rooms/${room}/messages`, JSON.stringify({ text: "with a token" }), {
      "Content-Type": "application/json",
      Authorization: `Bearer ${await hs256(claims("alice", allRights("*")), "any-secret")}`,
    });
    expect(httpAnswer(r.status, r.body)).toBe("unauthenticated");
  });

  it("stored nothing (read by an open server on the same storage)", {
    timeout: READY_TIMEOUT_MS + 20_000,
  }, async () => {
    await server?.stop();
    server = await startDevServer({ persistTo });
    const h = await history(server.baseUrl, room);
    expect([h.events, h.lastSeq]).toEqual([[], "0"]);
  });
});
