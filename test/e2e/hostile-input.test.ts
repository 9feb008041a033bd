/**
 * Hostile input, against the shared dev server (default limits: MAX_MESSAGE_BYTES 65536): each
 * case is answered in its transport's terms without a 5xx, nothing the rules refuse is stored,
 * and a subscriber in the same room keeps receiving meanwhile.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, expect, inject, it } from "vitest";
import { CODES } from "../../src/errors";
import { ChatService, PublishRequestSchema, SubscribeRequestSchema } from "../../src/gen/relay/v1/relay_pb";
import {
  type ChatEventJson,
  connectTransports,
  type ErrorJson,
  fullHistory,
  getJson,
  type HistoryJson,
  history,
  post,
  publishJson,
  refusedUpgrade,
  StreamRecorder,
  uniqueRoom,
  WsClient,
  waitFor,
  within,
  wsUrl,
} from "./clients";

const baseUrl = inject("baseUrl");
const MAX_MESSAGE_BYTES = 65536;
/** The shared server's REPLAY_MAX_BYTES (test/e2e/global-setup.ts). */
const REPLAY_MAX_BYTES = 16384;
const connectJson = createClient(ChatService, connectTransports(baseUrl)["connect-json"]);

let cleanup: (() => unknown)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.map((f) => f()));
  cleanup = [];
});

async function openWs(room: string, protocol?: string): Promise<WsClient> {
  const c = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws`), protocol, { flowControl: true });
  cleanup.push(() => c.close());
  await c.waitFrames(1); // subscribed
  return c;
}

/**
 * A room with a subscriber in it. `done()` checks what the room stored is exactly `stored` (in
 * order), then publishes one more message and checks that the subscriber received exactly those,
 * that one, and nothing else.
 */
async function watchedRoom(prefix: string): Promise<{ room: string; done(stored?: ChatEventJson[]): Promise<void> }> {
  const room = uniqueRoom(prefix);
  const watcher = await openWs(room, "relay.v1.json");
  return {
    room,
    async done(stored = []) {
      expect(await fullHistory(baseUrl, room)).toEqual(stored);
      const last = await publishJson(baseUrl, room, { text: "still serving" });
      expect(last.status).toBe(201);
      await waitFor("the watcher to receive", () => watcher.messages().some((e) => e.seq === last.body.seq));
      expect(watcher.messages()).toEqual([...stored, last.body]);
      expect(watcher.closed).toBeUndefined();
    },
  };
}

/** An HTTP error answer: the status and code of the table, and a JSON body `{"error":{"code","message"}}`. */
function expectHttpError(r: { status: number; body: unknown }, code: keyof typeof CODES): void {
  expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(CODES[code].http);
  const body = r.body as { error: ErrorJson };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
}

/** The code of a Connect unary JSON error answer (HTTP status as Connect maps it). */
async function connectUnaryError(res: Response): Promise<{ status: number; code: string }> {
  const body = (await res.json()) as { code: string };
  return { status: res.status, code: body.code };
}

/**
 * The end of a streamed Connect or gRPC-Web response: the error code of Connect's end-of-stream
 * message, or gRPC-Web's status (in the headers when trailers-only, else in the trailer frame).
 */
async function streamEnd(res: Response): Promise<{ status: number; end: string }> {
  const headerStatus = res.headers.get("grpc-status");
  const body = new Uint8Array(await res.arrayBuffer());
  if (headerStatus !== null) return { status: res.status, end: `grpc-status ${headerStatus}` };
  for (let at = 0; at + 5 <= body.length; ) {
    const flags = body[at];
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    const payload = new TextDecoder().decode(body.subarray(at + 5, at + 5 + length));
    if (flags & 0x80) return { status: res.status, end: `grpc-status ${/grpc-status:\s*(\d+)/.exec(payload)?.[1]}` };
    if (flags & 0x02)
      return { status: res.status, end: (JSON.parse(payload) as { error?: { code: string } }).error?.code ?? "ok" };
    at += 5 + length;
  }
  return { status: res.status, end: "no end of stream" };
}

function rpc(method: string, contentType: string, body: Uint8Array | string): Promise<Response> {
  return fetch(`${baseUrl}/${ChatService.typeName}/${method}`, {
    method: "POST",
    headers: { "Content-Type": contentType },
    body,
    signal: AbortSignal.timeout(10_000),
  });
}

/** One length-prefixed message with the given flags byte. */
function envelope(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;

it.each([3000, 2000])("refuses a text nested %i objects deep on HTTP, Connect and WebSocket", async (depth) => {
  const w = await watchedRoom("deep");
  const json = `{"text":${nested(depth)}}`;
  expectHttpError(
    await post(baseUrl, `/rooms/${w.room}/messages`, json, { "Content-Type": "application/json" }),
    "invalid_argument",
  );
  const viaConnect = await rpc("Publish", "application/json", `{"room":"${w.room}","text":${nested(depth)}}`);
  expect(await connectUnaryError(viaConnect)).toEqual({ status: 400, code: "invalid_argument" });
  // On relay.v1.json: an error frame, and the connection stays open.
  const ws = await openWs(w.room, "relay.v1.json");
  ws.send(`{"publish":${json}}`);
  await waitFor("the error frame", () => ws.errors.length > 0);
  expect(ws.errors.map((e) => e.code)).toEqual(["invalid_argument"]);
  ws.publish("after the deep one", "deep-ok");
  await waitFor("the ack", () => ws.acks.length > 0);
  expect(ws.acks[0].event).toMatchObject({ seq: "1", text: "after the deep one" });
  expect(ws.closed).toBeUndefined();
  await w.done([ws.acks[0].event]);
});

it("refuses lone surrogates (invalid_encoding) and stores nothing", async () => {
  const w = await watchedRoom("surrogate");
  const path = `/rooms/${w.room}/messages`;
  const json = { "Content-Type": "application/json" };
  for (const body of [
    '{"text":"a\\udc00b"}',
    '{"text":"a\\ud800"}',
    // 11,000 of them: 66,011 bytes, within the body limit, so the encoding is what is refused.
    `{"text":"${"\\udc00".repeat(11_000)}"}`,
    '{"text":"fine","user":"x\\udc00"}',
  ]) {
    // Each within the body limit (the text plus 1 KiB), so the encoding is what is refused.
    expect(body.length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES + 1024);
    expectHttpError(await post(baseUrl, path, body, json), "invalid_encoding");
  }
  // Raw bytes that are not UTF-8 (the encoded surrogate ED B0 80) in a text/plain body.
  expectHttpError(
    await post(baseUrl, path, new Uint8Array([0x61, 0xed, 0xb0, 0x80, 0x62]), { "Content-Type": "text/plain" }),
    "invalid_encoding",
  );
  // Connect renders invalid_encoding as invalid_argument.
  const viaConnect = await rpc("Publish", "application/json", `{"room":"${w.room}","text":"a\\udc00b"}`);
  expect(await connectUnaryError(viaConnect)).toEqual({ status: 400, code: CODES.invalid_encoding.connect });
  await w.done();
});

it("answers a lone surrogate on relay.v1.json with an invalid_encoding error frame and keeps the connection", async () => {
  const w = await watchedRoom("surrogate-ws");
  const ws = await openWs(w.room, "relay.v1.json");
  ws.send('{"publish":{"text":"a\\udc00b","id":"lone-1"}}');
  await waitFor("the error frame", () => ws.errors.length > 0);
  // The rule (rules.ts) and the table (errors.ts) say invalid_encoding, as HTTP answers.
  expect(ws.errors.map((e) => e.code)).toEqual(["invalid_encoding"]);
  expect(ws.closed).toBeUndefined();
  await w.done();
});

it.each([
  ["plain", undefined],
  ["relay.v1.json", "relay.v1.json"],
])(
  "closes a %s WebSocket with 1007 on a text frame that is not UTF-8, and publishes nothing",
  async (_mode, protocol) => {
    const w = await watchedRoom("utf8");
    const ws = await openWs(w.room, protocol);
    const text = protocol ? Buffer.from('{"publish":{"text":"a\xffb"}}', "latin1") : Buffer.from([0x61, 0xff, 0x62]);
    ws.ws.send(text, { binary: false });
    expect((await ws.waitClosed()).code).toBe(CODES.invalid_encoding.close);
    await w.done();
  },
);

// 1005 is left out: the runtime reports a close frame without a code as 1005 too, so a room cannot
// tell the two apart. An explicit 1006 can only come in a frame (the runtime's own 1006 means none came).
it.each([1004, 1006, 1015, 999, 2999, 5000])(
  "answers a client close frame with the invalid code %i with a 1002 close",
  async (code) => {
    const w = await watchedRoom("closecode");
    const ws = await openWs(w.room);
    // `ws` refuses to send these codes, so the close frame is written by hand: FIN + close opcode,
    // masked, a 2-byte payload.
    const mask = Buffer.from([0x11, 0x22, 0x33, 0x44]);
    const payload = Buffer.from([(code >> 8) & 0xff, code & 0xff]);
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
    ws.socket.write(Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload]));
    expect((await ws.waitClosed()).code).toBe(1002);
    await w.done();
  },
);

it("answers a client close frame with a valid code with the same code", async () => {
  const w = await watchedRoom("closecode-ok");
  const ws = await openWs(w.room);
  ws.ws.close(4321, "bye");
  expect((await ws.waitClosed()).code).toBe(4321);
  await w.done();
});

it("refuses a message envelope with the compressed flag (no compression negotiated) or a reserved one: invalid_argument", async () => {
  const w = await watchedRoom("compressed");
  const publish = toBinary(PublishRequestSchema, create(PublishRequestSchema, { room: w.room, text: "zipped?" }));
  const subscribe = toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, { room: w.room, since: 0n }));
  const grpcStatus = `grpc-status ${Code.InvalidArgument}`;
  // Unary over gRPC-Web (Connect's own unary protocol has no envelope).
  expect(await streamEnd(await rpc("Publish", "application/grpc-web+proto", envelope(1, publish)))).toEqual({
    status: 200,
    end: grpcStatus,
  });
  // Streaming over Connect (binary and JSON) and gRPC-Web.
  expect(await streamEnd(await rpc("Subscribe", "application/connect+proto", envelope(1, subscribe)))).toEqual({
    status: 200,
    end: "invalid_argument",
  });
  const subscribeJson = new TextEncoder().encode(JSON.stringify({ room: w.room, since: "0" }));
  expect(await streamEnd(await rpc("Subscribe", "application/connect+json", envelope(1, subscribeJson)))).toEqual({
    status: 200,
    end: "invalid_argument",
  });
  expect(await streamEnd(await rpc("Subscribe", "application/grpc-web+proto", envelope(1, subscribe)))).toEqual({
    status: 200,
    end: grpcStatus,
  });
  // Reserved flag bits are refused too (a client may set only the compressed bit).
  for (const flags of [0x02, 0x04, 0x40, 0x7e, 0x80]) {
    const end = await streamEnd(await rpc("Publish", "application/grpc-web+proto", envelope(flags, publish)));
    expect([flags, end]).toEqual([flags, { status: 200, end: grpcStatus }]);
    const sub = await streamEnd(await rpc("Subscribe", "application/connect+proto", envelope(flags, subscribe)));
    expect([flags, sub]).toEqual([flags, { status: 200, end: "invalid_argument" }]);
  }
  // The same requests without the flag work.
  const ok = await rpc("Publish", "application/grpc-web+proto", envelope(0, publish));
  expect(await streamEnd(ok)).toEqual({ status: 200, end: "grpc-status 0" });
  const stored = (await history(baseUrl, w.room)).events;
  expect(stored.map((e) => e.text)).toEqual(["zipped?"]);
  await w.done(stored);
});

it("refuses a 60,000-character epoch: invalid_argument on Connect Subscribe, 400 on SSE and WebSocket", async () => {
  const w = await watchedRoom("longepoch");
  const epoch = "e".repeat(60_000);
  const sub = new StreamRecorder((signal) => connectJson.subscribe({ room: w.room, since: 1n, epoch }, { signal }));
  cleanup.push(() => sub.stop());
  await within(sub.done, 10_000, "the Subscribe call to end");
  expect(sub.events).toEqual([]);
  expect(sub.error?.code).toBe(Code.InvalidArgument);
  expectHttpError(await getJson(baseUrl, `/rooms/${w.room}/sse?since=1&epoch=${epoch}`), "invalid_argument");
  expectHttpError(
    await refusedUpgrade(wsUrl(baseUrl, `/rooms/${w.room}/ws?since=1&epoch=${epoch}`)),
    "invalid_argument",
  );
  await w.done();
});

it("refuses a Content-Type that only starts like an accepted one", async () => {
  const w = await watchedRoom("ctype");
  const path = `/rooms/${w.room}/messages`;
  for (const contentType of ["text/plainjunk", "application/jsonx", "text/plain-utf8", "application/json+junk"]) {
    const body = contentType.startsWith("application") ? '{"text":"hi"}' : "hi";
    expectHttpError(await post(baseUrl, path, body, { "Content-Type": contentType }), "invalid_argument");
  }
  // Parameters and case are fine.
  const ok = await post<ChatEventJson>(baseUrl, path, "hi", { "Content-Type": "TEXT/Plain; charset=utf-8" });
  expect(ok.status).toBe(201);
  await w.done([ok.body]);
});

it("pages a history of many large messages: 200 with hasMore, each page bounded in bytes, never a 5xx", async () => {
  const w = await watchedRoom("bighist");
  const n = 12;
  const stored: ChatEventJson[] = [];
  for (let i = 1; i <= n; i++) {
    // Three per page by count of bytes would be ~45 KB; the page stops near REPLAY_MAX_BYTES.
    const r = await publishJson(baseUrl, w.room, { text: `${i} ${"h".repeat(i % 2 ? 60_000 : 6_000)}` });
    expect(r.status).toBe(201);
    stored.push(r.body);
  }
  const pages: HistoryJson[] = [];
  for (let since = 0; pages.length <= n; ) {
    const r = await getJson<HistoryJson>(baseUrl, `/rooms/${w.room}/messages?since=${since}&limit=1000`);
    expect(r.status).toBe(200);
    pages.push(r.body);
    const bytes = r.body.events.reduce((a, e) => a + Buffer.byteLength(e.text ?? ""), 0);
    expect(r.body.events.length).toBeGreaterThan(0);
    // At least one event, however large; more only while they fit.
    if (r.body.events.length > 1) expect(bytes).toBeLessThanOrEqual(REPLAY_MAX_BYTES);
    if (!r.body.hasMore) break;
    since = Number(r.body.events.at(-1)?.seq);
  }
  expect(pages.length).toBeGreaterThan(1);
  expect(pages[0].hasMore).toBe(true);
  expect(pages.flatMap((p) => p.events)).toEqual(stored);
  // Connect's History pages alike.
  const first = await connectJson.history({ room: w.room, since: 0n });
  expect(first.hasMore).toBe(true);
  expect(first.events.length).toBe(pages[0].events.length);
  await w.done(stored);
});

it("answers malformed Connect requests in Connect's terms without a 5xx", async () => {
  const room = uniqueRoom("bad-connect");
  const code = (p: Promise<unknown>) =>
    p.then(
      () => "ok",
      (e) => Code[ConnectError.from(e).code],
    );
  expect(await code(connectJson.publish({ room: "no spaces allowed", text: "x" }))).toBe("InvalidArgument");
  expect(await code(connectJson.history({ room, since: 2n ** 62n }))).toBe("InvalidArgument");
  const wrongType = await rpc("Publish", "text/html", "<p>hi</p>");
  expect(wrongType.status).toBe(415);
  await wrongType.body?.cancel();
  const unknown = await rpc("Shout", "application/json", "{}");
  expect(await connectUnaryError(unknown)).toEqual({ status: 501, code: "unimplemented" });
  const grpc = await rpc("Publish", "application/grpc", new Uint8Array(5));
  expect(grpc.headers.get("grpc-status")).toBe(String(Code.Unimplemented));
  await grpc.body?.cancel();
  expect((await history(baseUrl, room)).lastSeq).toBe("0");
});
