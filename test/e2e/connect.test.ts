/**
 * Connect-RPC end to end against the suite's `wrangler dev`: connect-node (Connect JSON and binary,
 * gRPC-Web), `buf curl` (Connect, gRPC-Web), full-duplex Chat over HTTP/1.1 (enabled for this
 * suite's server with CHAT_HTTP1_FULL_DUPLEX=true), the WebSocket `relay.v1.proto` mode, one room
 * fed and read on every transport, and bad input in Connect's own terms.
 */
import { spawn } from "node:child_process";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import {
  type ChatEvent,
  type ChatMessageSchema,
  ChatService,
  ClientFrameSchema,
  ServerFrameSchema,
} from "../../src/gen/relay/v1/relay_pb";
import { publishJson, SseClient, sleep, uniqueRoom, WsClient, waitFor, wsUrl } from "./clients";

const baseUrl = inject("baseUrl");
const transports: Record<string, Transport> = {
  "connect+json": createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
  "connect+proto": createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  "grpc-web": createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
};

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A running Subscribe (or Chat) call that records its events until stopped. */
function record(open: (signal: AbortSignal) => AsyncIterable<ChatEvent>) {
  const ac = new AbortController();
  const events: ChatEvent[] = [];
  let error: unknown;
  const done = (async () => {
    try {
      for await (const e of open(ac.signal)) events.push(e);
    } catch (e) {
      if (!ac.signal.aborted) error = e;
    }
  })();
  const stop = async () => {
    ac.abort();
    await done;
  };
  cleanups.push(stop);
  return {
    events,
    messages: () => events.filter((e) => e.kind === "message"),
    error: () => error,
    stop,
    waitMessages: (n: number, ms = 5000) =>
      waitFor(
        `${n} messages`,
        () => events.filter((e) => e.kind === "message").length >= n,
        ms,
        () => events,
      ),
  };
}

/** Runs `buf curl` in its own process group; stops it (the whole group) once `until(stdout)` or at `ms`. */
function bufCurl(
  args: string[],
  until?: (out: string) => boolean,
  ms = 15000,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn("node_modules/.bin/buf", ["curl", "--schema", "proto", ...args], { detached: true });
    let out = "";
    let err = "";
    const kill = () => {
      try {
        process.kill(-(child.pid as number), "SIGKILL");
      } catch {
        // Already gone.
      }
    };
    const timer = setTimeout(kill, ms);
    child.stdout.on("data", (d) => {
      out += d;
      if (until?.(out)) kill();
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe.each(Object.keys(transports))("connect-node over %s", (name) => {
  const client: Client<typeof ChatService> = createClient(ChatService, transports[name]);

  it("publishes, subscribes from an offset, reads history and presence", async () => {
    const room = uniqueRoom("cn");
    const first = await client.publish({ room, text: "one", id: `${room}-1`, user: "ann" });
    expect(first.event).toMatchObject({ seq: 1n, text: "one", user: "ann", kind: "message", room });
    expect((await client.publish({ room, text: "one", id: `${room}-1` })).duplicate).toBe(true);
    await client.publish({ room, text: "two" });

    const sub = record((signal) => client.subscribe({ room, since: 1n }, { signal }));
    await waitFor("subscribed", () => sub.events[0]?.kind === "subscribed");
    await client.publish({ room, text: "three" });
    await sub.waitMessages(2);
    expect(sub.messages().map((e) => [e.seq, e.text])).toEqual([
      [2n, "two"],
      [3n, "three"],
    ]);
    expect(sub.events[0]).toMatchObject({ kind: "subscribed", firstSeq: 1n, lastSeq: 2n, epoch: first.event?.epoch });

    const page = await client.history({ room, since: 0n, limit: 2 });
    expect(page.events.map((e) => e.text)).toEqual(["one", "two"]);
    expect(page.hasMore).toBe(true);
    const presence = await client.presence({ room });
    expect(presence.members.map((m) => m.transport)).toEqual(["connect"]);
  });
});

describe("buf curl", () => {
  for (const protocol of ["connect", "grpcweb"]) {
    it(`calls Publish, History and Subscribe with --protocol ${protocol}`, async () => {
      const room = uniqueRoom(`buf-${protocol}`);
      const pub = await bufCurl([
        "--protocol",
        protocol,
        "-d",
        JSON.stringify({ room, text: "via buf", id: "b-1" }),
        `${baseUrl}/relay.v1.ChatService/Publish`,
      ]);
      expect(pub.err).toBe("");
      expect(JSON.parse(pub.out).event).toMatchObject({ room, seq: "1", text: "via buf", id: "b-1" });
      const hist = await bufCurl([
        "--protocol",
        protocol,
        "-d",
        JSON.stringify({ room, since: "0" }),
        `${baseUrl}/relay.v1.ChatService/History`,
      ]);
      expect(JSON.parse(hist.out).events.map((e: { text: string }) => e.text)).toEqual(["via buf"]);
      // A stream: buf prints each event as it arrives; stop once the live one is there.
      const sub = bufCurl(
        [
          "--protocol",
          protocol,
          "-d",
          JSON.stringify({ room, since: "0" }),
          `${baseUrl}/relay.v1.ChatService/Subscribe`,
        ],
        (out) => out.includes("live via http"),
      );
      await sleep(1000);
      await publishJson(baseUrl, room, { text: "live via http" });
      const { out } = await sub;
      expect(out).toContain('"kind": "subscribed"');
      expect(out.indexOf('"text": "via buf"')).toBeLessThan(out.indexOf('"text": "live via http"'));
    });
  }
});

describe("Chat, full duplex over HTTP/1.1", () => {
  const client = createClient(ChatService, transports["connect+json"]);

  it("streams events back while the client is still sending; a refused message is an error event", async () => {
    const room = uniqueRoom("chat");
    let joined = () => {};
    const subscribed = new Promise<void>((r) => {
      joined = r;
    });
    let finish = () => {};
    const finished = new Promise<void>((r) => {
      finish = r;
    });
    async function* messages(): AsyncGenerator<MessageInitShape<typeof ChatMessageSchema>> {
      yield { room, user: "ann", message: "" };
      // Full duplex: the server's first event arrives before the client sends anything else.
      await subscribed;
      yield { message: "hello", id: "c-1" };
      yield { message: "bad id", id: "has spaces" };
      yield { message: "still here" };
      await finished;
    }
    const chat = record((signal) => client.chat(messages(), { signal }));
    await waitFor("subscribed", () => chat.events[0]?.kind === "subscribed");
    joined();
    await chat.waitMessages(2);
    expect(chat.messages().map((e) => [e.seq, e.user, e.text])).toEqual([
      [1n, "ann", "hello"],
      [2n, "ann", "still here"],
    ]);
    expect(chat.events.find((e) => e.kind === "error")).toMatchObject({ reason: "invalid_argument" });
    finish();
    await chat.stop();
    expect(chat.error()).toBeUndefined();
  });

  it("ends the call with resource_exhausted for an oversized message, as a WebSocket closes with 1009", async () => {
    const room = uniqueRoom("chat-big");
    async function* messages(): AsyncGenerator<MessageInitShape<typeof ChatMessageSchema>> {
      yield { room, message: "before" };
      await waitFor("echo", () => chat.messages().length >= 1);
      yield { message: "x".repeat(65_537) };
      await sleep(3000);
    }
    const chat = record((signal) => client.chat(messages(), { signal }));
    await waitFor(
      "the call to end",
      () => chat.error(),
      5000,
      () => chat.events,
    );
    expect(ConnectError.from(chat.error()).code).toBe(Code.ResourceExhausted);
    expect(chat.messages().map((e) => e.text)).toEqual(["before"]);
  });
});

describe("one room, every transport", () => {
  it("delivers what is sent on WebSocket, HTTP and Connect to WebSocket, SSE and Connect subscribers in one order", async () => {
    const room = uniqueRoom("all");
    const connectClient = createClient(ChatService, transports["connect+proto"]);
    const webClient = createClient(ChatService, transports["grpc-web"]);
    const plain = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws`));
    const json = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws`), "relay.v1.json");
    const protoFrames: ChatEvent[] = [];
    let protoAcks = 0;
    const proto = new WebSocket(wsUrl(baseUrl, `/rooms/${room}/ws`), "relay.v1.proto");
    proto.on("message", (d) => {
      const f = fromBinary(ServerFrameSchema, new Uint8Array(d as Buffer)).frame;
      if (f.case === "event" && f.value.kind === "message") protoFrames.push(f.value);
      if (f.case === "batch") protoFrames.push(...f.value.events.filter((e) => e.kind === "message"));
      if (f.case === "ack") protoAcks++;
    });
    await new Promise((r) => proto.once("open", r));
    const sse = new SseClient(`${baseUrl}/rooms/${room}/sse`);
    const viaConnect = record((signal) => connectClient.subscribe({ room }, { signal }));
    const viaWeb = record((signal) => webClient.subscribe({ room }, { signal }));
    cleanups.push(
      () => plain.close(),
      () => json.close(),
      () => proto.close(),
      () => sse.close(),
    );
    await sse.waitEvents(1);
    await waitFor("streams open", () => viaConnect.events.length > 0 && viaWeb.events.length > 0);

    // Publishers take turns, each waiting for its ack, so the expected order is known.
    json.publish("ws json", "p-1");
    await json.waitFrame((f: { ack?: unknown }) => !!f.ack);
    await publishJson(baseUrl, room, { text: "http", id: "p-2" });
    await connectClient.publish({ room, text: "connect", id: "p-3" });
    proto.send(
      toBinary(
        ClientFrameSchema,
        create(ClientFrameSchema, { frame: { case: "publish", value: { text: "ws proto", id: "p-4" } } }),
      ),
    );
    await waitFor("proto ack", () => protoAcks === 1);
    await webClient.publish({ room, text: "grpc-web", id: "p-5" });
    plain.send("ws plain");

    const expected = ["ws json", "http", "connect", "ws proto", "grpc-web", "ws plain"];
    await sse.waitMessages(6);
    await Promise.all([viaConnect.waitMessages(6), viaWeb.waitMessages(6)]);
    await waitFor("ws subscribers", () => protoFrames.length >= 6 && plain.frames.length >= 7);
    const views = {
      plain: plain.frames
        .slice(1)
        .map((e) => e as { seq: string; text: string })
        .map((e) => [e.seq, e.text]),
      json: json.frames
        .flatMap((f) =>
          (f as { event?: { kind: string; seq: string; text: string } }).event?.kind === "message"
            ? [(f as { event: { seq: string; text: string } }).event]
            : [],
        )
        .map((e) => [e.seq, e.text]),
      proto: protoFrames.map((e) => [String(e.seq), e.text]),
      sse: sse.messages().map((e) => [e.lastEventId, e.data.text]),
      connect: viaConnect.messages().map((e) => [String(e.seq), e.text]),
      grpcWeb: viaWeb.messages().map((e) => [String(e.seq), e.text]),
    };
    const want = expected.map((text, i) => [String(i + 1), text]);
    for (const [view, got] of Object.entries(views)) expect(got, view).toEqual(want);
  });
});

describe("bad input in Connect terms, and the room keeps serving", () => {
  const client = createClient(ChatService, transports["connect+json"]);
  const code = (p: Promise<unknown>) =>
    p.then(
      () => "ok",
      (e) => Code[ConnectError.from(e).code],
    );
  const raw = (method: string, contentType: string, body: string | Uint8Array) =>
    fetch(`${baseUrl}/relay.v1.ChatService/${method}`, {
      method: "POST",
      headers: { "Content-Type": contentType },
      body,
    });

  it("answers each bad request with the right code while a subscriber keeps receiving", async () => {
    const room = uniqueRoom("bad-connect");
    const sub = record((signal) => client.subscribe({ room }, { signal }));
    await waitFor("subscribed", () => sub.events.length > 0);

    expect(await code(client.publish({ room: "no spaces allowed", text: "x" }))).toBe("InvalidArgument");
    expect(await code(client.publish({ room, text: "x".repeat(70_000) }))).toBe("ResourceExhausted");
    expect(await code(client.history({ room, since: 2n ** 62n }))).toBe("OutOfRange");
    const malformed = await raw("Publish", "application/proto", new Uint8Array([0x12, 0x80]));
    expect([malformed.status, ((await malformed.json()) as { code: string }).code]).toEqual([400, "invalid_argument"]);
    const wrongType = await raw("Publish", "text/html", "<p>hi</p>");
    expect(wrongType.status).toBe(415);
    const unknown = await raw("Shout", "application/json", "{}");
    expect([unknown.status, ((await unknown.json()) as { code: string }).code]).toEqual([501, "unimplemented"]);
    const grpc = await raw("Publish", "application/grpc", new Uint8Array(5));
    expect(grpc.headers.get("grpc-status")).toBe("12");

    await client.publish({ room, text: "after all that" });
    await sub.waitMessages(1);
    expect(sub.messages()[0].text).toBe("after all that");
  });

  it("answers a malformed binary frame on relay.v1.proto with an error frame and keeps the socket", async () => {
    const room = uniqueRoom("bad-proto-ws");
    const frames: ReturnType<typeof fromBinary<typeof ServerFrameSchema>>[] = [];
    const ws = new WebSocket(wsUrl(baseUrl, `/rooms/${room}/ws`), "relay.v1.proto");
    cleanups.push(() => ws.close());
    ws.on("message", (d) => frames.push(fromBinary(ServerFrameSchema, new Uint8Array(d as Buffer))));
    await new Promise((r) => ws.once("open", r));
    expect(ws.protocol).toBe("relay.v1.proto");
    ws.send(new Uint8Array([0x0a, 0xff]));
    ws.send("text is not for this mode");
    ws.send(
      toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "publish", value: { text: "ok" } } })),
    );
    await waitFor(
      "ack",
      () => frames.some((f) => f.frame.case === "ack"),
      5000,
      () => frames,
    );
    expect(
      frames.filter((f) => f.frame.case === "error").map((f) => f.frame.case === "error" && f.frame.value.code),
    ).toEqual(["invalid_argument", "invalid_argument"]);
    expect(ws.readyState).toBe(WebSocket.OPEN);
  });
});
