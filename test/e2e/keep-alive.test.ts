/**
 * Keep-alive connections: no request, refused or not, breaks the next one, on the same connection
 * or another client's. Under `wrangler dev` the client's connection goes to wrangler's proxy
 * Worker, which forwards over a pool of keep-alive connections to the relay; a refusal that leaves
 * its body unread breaks a pooled connection, and the NEXT request forwarded over it (any
 * client's) gets 503 "Your worker restarted mid-request" (see src/edge/body.ts for what was
 * measured). So every case sends the refused request, then a request from another client, then
 * the next request on the refused request's own connection, and repeats, since which request
 * picks a broken pooled connection is a matter of chance.
 */
import http from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { ChatService } from "../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../tools/dev-server";
import { sleep, uniqueRoom } from "./clients";

const baseUrl = inject("baseUrl");
const MB5 = 5 * 1024 * 1024;
/**
 * A body a route refuses by its content type. Large enough that the proxy has sent all of it
 * before the answer (so an unread one reliably breaks the pooled connection), small enough to be
 * drained at once.
 */
const KB256 = 256 * 1024;
/** Time for one request (a 5 MB upload on a busy 2-core box included). */
const REQUEST_MS = 15_000;
/**
 * How long a trickling body may hold its request: the relay's BODY_TIMEOUT_SECONDS (10, its
 * default, not overridden for this suite) plus slack for a busy box.
 */
const TRICKLE_CUTOFF_MS = 15_000;

/** A keep-alive agent with one connection per origin, which counts the connections it opens. */
class CountingAgent extends http.Agent {
  opened = 0;
  constructor() {
    super({ keepAlive: true, maxSockets: 1 });
  }
  override createConnection(
    options: http.ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    this.opened++;
    return super.createConnection(options, callback);
  }
}

const agents: http.Agent[] = [];
function agent(): CountingAgent {
  const a = new CountingAgent();
  agents.push(a);
  return a;
}
afterEach(() => {
  for (const a of agents.splice(0)) a.destroy();
});

/**
 * A request body: bytes with a Content-Length, `size` bytes sent chunked, or a byte every `everyMs`
 * (chunked, or under a Content-Length of `declared` bytes, which it never reaches).
 */
type Body =
  | { kind: "bytes"; data: string | Uint8Array }
  | { kind: "chunked"; size: number }
  | { kind: "content-length"; size: number }
  | { kind: "trickle"; everyMs: number; declared?: number };

interface Answer {
  /** 0 when no response came (the connection was closed or reset). */
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json?: unknown;
  error?: string;
  socket?: Socket;
  ms: number;
}

/**
 * POSTs `body` to `path` (on `o.base`, the suite's server by default) through `agent`; resolves with the answer (or the error) once both the
 * response and the upload are over, or after `o.timeoutMs` (then the request is destroyed). A
 * trickling body stops, and its request is destroyed, as soon as its answer has come: what a client
 * does with an answer to a request it has not finished sending.
 */
function send(
  agent: http.Agent,
  path: string,
  contentType: string,
  body: Body,
  o: { timeoutMs?: number; base?: string } = {},
): Promise<Answer> {
  const timeoutMs = o.timeoutMs ?? REQUEST_MS;
  const t0 = Date.now();
  const url = new URL(path, o.base ?? baseUrl);
  const headers: Record<string, string> = { "Content-Type": contentType };
  if (body.kind === "bytes") headers["Content-Length"] = String(Buffer.byteLength(body.data));
  if (body.kind === "content-length") headers["Content-Length"] = String(body.size);
  if (body.kind === "trickle" && body.declared) headers["Content-Length"] = String(body.declared);
  return new Promise((resolve) => {
    const req = http.request({
      agent,
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: "POST",
      headers,
    });
    let socket: Socket | undefined;
    let answer: Omit<Answer, "ms" | "socket"> | undefined;
    let settled = false;
    let interval: ReturnType<typeof setInterval> | undefined;
    const settle = (a: Omit<Answer, "ms" | "socket">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(interval);
      resolve({ ...a, socket, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => {
      req.destroy(new Error(`no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    req.on("socket", (s) => {
      socket = s as Socket;
    });
    req.on("error", (e) => settle(answer ?? { status: 0, headers: {}, text: "", error: (e as Error).message }));
    req.on("close", () => settle(answer ?? { status: 0, headers: {}, text: "", error: "closed without an answer" }));
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        text += d;
      });
      res.on("error", (e) => settle({ status: res.statusCode ?? 0, headers: res.headers, text, error: e.message }));
      res.on("end", () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          // Not JSON: the text is kept.
        }
        answer = { status: res.statusCode ?? 0, headers: res.headers, text, json };
        if (body.kind === "trickle") {
          req.destroy();
          settle(answer);
        } else if (req.writableFinished) settle(answer);
        else req.once("finish", () => settle(answer as Answer));
      });
    });
    switch (body.kind) {
      case "bytes":
        req.end(body.data);
        break;
      case "chunked":
      case "content-length": {
        const chunk = Buffer.alloc(64 * 1024, "x");
        let sent = 0;
        const pump = () => {
          while (sent < body.size && !req.destroyed) {
            const part = chunk.subarray(0, Math.min(chunk.length, body.size - sent));
            sent += part.length;
            if (!req.write(part)) return void req.once("drain", pump);
          }
          if (!req.destroyed) req.end();
        };
        pump();
        break;
      }
      case "trickle":
        req.flushHeaders();
        req.write("x");
        interval = setInterval(() => {
          if (!req.destroyed && !answer) req.write("x");
        }, body.everyMs);
        break;
    }
  });
}

/** What to show when an answer was not the one expected. */
const show = (a: Answer) => ({ status: a.status, error: a.error, text: a.text.slice(0, 300), ms: a.ms });

/** A good HTTP publish: 201. */
async function expectPublished(a: http.Agent, room: string, what: string): Promise<Answer> {
  const r = await send(a, `/rooms/${room}/messages`, "text/plain", { kind: "bytes", data: what });
  expect(r.status, `${what}: ${JSON.stringify(show(r))}`).toBe(201);
  return r;
}

/** A good Connect unary call (JSON): 200 with the stored event. */
async function expectConnectPublish(a: http.Agent, room: string, what: string, base = baseUrl): Promise<Answer> {
  const r = await send(
    a,
    "/relay.v1.ChatService/Publish",
    "application/json",
    { kind: "bytes", data: JSON.stringify({ room, text: what }) },
    { base },
  );
  expect(r.status, `${what}: ${JSON.stringify(show(r))}`).toBe(200);
  expect((r.json as { event?: { text?: string } }).event?.text).toBe(what);
  return r;
}

describe("HTTP publish refused as too large", () => {
  it.each(["chunked", "content-length"] as const)(
    "a 5 MB %s text/plain POST is answered 413; the next POST on its connection and another client's succeed",
    async (kind) => {
      const room = uniqueRoom("ka-413");
      const mine = agent();
      const other = agent();
      await expectPublished(other, room, "warm up the other connection");
      for (let i = 0; i < 3; i++) {
        const refused = await send(mine, `/rooms/${room}/messages`, "text/plain", { kind, size: MB5 });
        expect(refused.status, JSON.stringify(show(refused))).toBe(413);
        expect((refused.json as { error: { code: string } }).error.code).toBe("too_large");
        await expectPublished(other, room, `other client after 413 #${i}`);
        const next = await expectPublished(mine, room, `same connection after 413 #${i}`);
        expect(next.socket, "the next POST reused the refused request's connection").toBe(refused.socket);
      }
      expect(mine.opened).toBe(1);
    },
  );
});

describe("malformed Connect requests", () => {
  const junk = new Uint8Array(64).fill(0xff);
  // A gRPC-Web envelope with the compressed flag set (and no grpc-encoding): Connect must refuse it.
  const compressed = new Uint8Array([0x01, 0, 0, 0, 4, 0x0a, 0x02, 0x61, 0x62]);
  const cases: {
    name: string;
    path: string;
    contentType: string;
    body: Body;
    check: (a: Answer) => void;
  }[] = [
    {
      name: "Publish with a garbage application/proto body",
      path: "/relay.v1.ChatService/Publish",
      contentType: "application/proto",
      body: { kind: "bytes", data: junk },
      check: (a) => {
        expect(a.status).toBe(400);
        expect((a.json as { code: string }).code).toBe("invalid_argument");
      },
    },
    {
      name: "Publish with a wrong content type (256 KiB)",
      path: "/relay.v1.ChatService/Publish",
      contentType: "text/plain",
      body: { kind: "content-length", size: KB256 },
      check: (a) => expect(a.status).toBe(415),
    },
    {
      name: "Publish with a 5 MB chunked application/proto body",
      path: "/relay.v1.ChatService/Publish",
      contentType: "application/proto",
      body: { kind: "chunked", size: MB5 },
      check: (a) => expect((a.json as { code: string }).code).toBe("resource_exhausted"),
    },
    {
      name: "Publish as gRPC-Web with the compressed flag set",
      path: "/relay.v1.ChatService/Publish",
      contentType: "application/grpc-web+proto",
      body: { kind: "bytes", data: compressed },
      check: (a) => {
        expect(a.status).toBe(200);
        // The status comes in the headers (trailers-only) or in a trailer frame of the body.
        const status = a.headers["grpc-status"] ?? /grpc-status: ?(\d+)/.exec(a.text)?.[1];
        expect(status, JSON.stringify(show(a))).toBeDefined();
        expect(status).not.toBe("0");
      },
    },
    {
      name: "Subscribe with a wrong content type (256 KiB)",
      path: "/relay.v1.ChatService/Subscribe",
      contentType: "text/plain",
      body: { kind: "content-length", size: KB256 },
      check: (a) => expect(a.status).toBe(415),
    },
    {
      name: "Chat with a wrong content type (256 KiB)",
      path: "/relay.v1.ChatService/Chat",
      contentType: "text/plain",
      body: { kind: "content-length", size: KB256 },
      check: (a) => expect(a.status).toBe(415),
    },
    {
      name: "native gRPC with a body",
      path: "/relay.v1.ChatService/Publish",
      contentType: "application/grpc",
      body: { kind: "bytes", data: compressed },
      check: (a) => expect(a.headers["grpc-status"]).toBe("12"),
    },
  ];

  it.each(cases)("$name: the next call on the same connection and another client's succeed", async (c) => {
    const room = uniqueRoom("ka-connect");
    const mine = agent();
    const other = agent();
    await expectConnectPublish(other, room, "warm up the other connection");
    for (let i = 0; i < 3; i++) {
      const refused = await send(mine, c.path, c.contentType, c.body);
      expect(refused.status, `refused #${i}: ${JSON.stringify(show(refused))}`).not.toBe(0);
      c.check(refused);
      await expectConnectPublish(other, room, `other client after #${i}`);
      const next = await expectConnectPublish(mine, room, `same connection after #${i}`);
      expect(next.socket, "the next call reused the refused call's connection").toBe(refused.socket);
    }
    expect(mine.opened).toBe(1);
  });
});

// Chunked, and under a declared length (the relay reads such a body in one piece: src/edge/body.ts).
describe.each([
  { framing: "chunked", declared: undefined },
  { framing: "with a Content-Length", declared: 1000 },
])("a body that trickles in, $framing", ({ declared }) => {
  it(`is cut off within ${TRICKLE_CUTOFF_MS} ms while the relay serves others`, async () => {
    const room = uniqueRoom("ka-trickle");
    const slow = agent();
    const other = agent();
    const started = Date.now();
    const trickle = send(
      slow,
      `/rooms/${room}/messages`,
      "text/plain",
      { kind: "trickle", everyMs: 2000, declared },
      { timeoutMs: TRICKLE_CUTOFF_MS },
    );
    let cut: Answer | undefined;
    void trickle.then((a) => {
      cut = a;
    });
    // Others are served meanwhile, each promptly.
    let served = 0;
    while (!cut && Date.now() - started < TRICKLE_CUTOFF_MS + 1000) {
      const r = await expectPublished(other, room, `meanwhile #${served}`);
      expect(r.ms, "another client's POST waited behind the trickle").toBeLessThan(3000);
      served++;
      await sleep(250);
    }
    const a = await trickle;
    // Cut off: answered 408 deadline_exceeded, or the connection closed, within the bound.
    expect(a.error ?? "", JSON.stringify(show(a))).not.toMatch(/no answer in/);
    if (a.status !== 0) {
      expect(a.status, JSON.stringify(show(a))).toBe(408);
      expect((a.json as { error: { code: string } }).error.code).toBe("deadline_exceeded");
    }
    expect(a.ms).toBeLessThan(TRICKLE_CUTOFF_MS);
    expect(served).toBeGreaterThan(3);
    // The relay is still fine for everyone, the slow client included (on a new connection if need be).
    await expectPublished(other, room, "after the cut-off (other)");
    await expectPublished(slow, room, "after the cut-off (slow client)");
  }, 40_000);
});

describe("Connect Chat refused over HTTP/1.1 (CHAT_HTTP1_FULL_DUPLEX=false)", () => {
  let server: DevServer | undefined;

  beforeAll(async () => {
    server = await startDevServer({ vars: { CHAT_HTTP1_FULL_DUPLEX: "false" } });
  }, READY_TIMEOUT_MS + 15_000);

  afterAll(async () => {
    await server?.stop();
  }, 30_000);

  it("connect-node: Chat is refused with failed_precondition and the next Publish on the same transport works, 5 times", async () => {
    if (!server) throw new Error("no dev server");
    const room = uniqueRoom("ka-chat");
    const client = createClient(
      ChatService,
      createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1", nodeOptions: { agent: agent() } }),
    );
    const other = createClient(
      ChatService,
      createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1", nodeOptions: { agent: agent() } }),
    );
    await other.publish({ room, text: "warm up the other connection" });
    async function* messages() {
      yield { room, message: "" };
      yield { room, message: "hello over HTTP/1.1" };
    }
    for (let i = 0; i < 5; i++) {
      let refusal: unknown;
      try {
        for await (const _ of client.chat(messages(), { timeoutMs: REQUEST_MS })) {
          // A refused call yields nothing.
        }
      } catch (e) {
        refusal = e;
      }
      expect(refusal, `try #${i}`).toBeInstanceOf(ConnectError);
      expect((refusal as ConnectError).code, `try #${i}: ${(refusal as ConnectError).message}`).toBe(
        Code.FailedPrecondition,
      );
      const theirs = await other.publish({ room, text: `other client after #${i}` }, { timeoutMs: REQUEST_MS });
      expect(theirs.event?.text).toBe(`other client after #${i}`);
      const next = await client.publish({ room, text: `same transport after #${i}` }, { timeoutMs: REQUEST_MS });
      expect(next.event?.text).toBe(`same transport after #${i}`);
    }
    // No check of connection reuse here: connect-node itself destroys an HTTP/1.1 request whose
    // stream ended with an error (run-call.ts aborts the call's signal; the Node client destroys
    // the request on abort), so each refusal costs it its connection whatever the server does.
    // The next test checks the server's side of that with a plain keep-alive client.
  }, 60_000);

  it("the same refusal over a plain keep-alive connection: the next call reuses the connection, 5 times", async () => {
    if (!server) throw new Error("no dev server");
    const base = server.baseUrl;
    const room = uniqueRoom("ka-chat-raw");
    const mine = agent();
    const other = agent();
    await expectConnectPublish(other, room, "warm up the other connection", base);
    // Two enveloped Connect JSON messages, the whole request body sent at once.
    const envelope = (m: object) => {
      const json = Buffer.from(JSON.stringify(m));
      const head = Buffer.alloc(5);
      head.writeUInt32BE(json.length, 1);
      return Buffer.concat([head, json]);
    };
    const data = Buffer.concat([envelope({ room }), envelope({ room, message: "hello over HTTP/1.1" })]);
    for (let i = 0; i < 5; i++) {
      const refused = await send(
        mine,
        "/relay.v1.ChatService/Chat",
        "application/connect+json",
        { kind: "bytes", data },
        { base },
      );
      expect(refused.status, JSON.stringify(show(refused))).toBe(200);
      expect(refused.text).toContain('"failed_precondition"');
      await expectConnectPublish(other, room, `other client after #${i}`, base);
      const next = await expectConnectPublish(mine, room, `same connection after #${i}`, base);
      expect(next.socket, "the next call reused the refused call's connection").toBe(refused.socket);
    }
    expect(mine.opened).toBe(1);
  }, 60_000);
});
