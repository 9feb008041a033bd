import { env, SELF } from "cloudflare:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { endStreamFlag } from "@connectrpc/connect/protocol-connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { describe, expect, it } from "vitest";
import { type ChatEvent, ChatService } from "../../src/gen/relay/v1/relay_pb";
import { ANON, connect } from "./helpers";

const baseUrl = "https://relay.test";
// connect-web asks fetch for `redirect: "error"`, which workerd does not implement.
const fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
  SELF.fetch(input as RequestInfo, { ...init, redirect: "manual" })) as typeof globalThis.fetch;
const transports = {
  "connect+json": createConnectTransport({ baseUrl, fetch }),
  "connect+proto": createConnectTransport({ baseUrl, fetch, useBinaryFormat: true }),
  "grpc-web": createGrpcWebTransport({ baseUrl, fetch }),
};

/** Collects a stream's events until `done` holds (bounded by `ms`), then cancels it. */
async function collect(
  stream: (signal: AbortSignal) => AsyncIterable<ChatEvent>,
  done: (events: ChatEvent[]) => boolean,
  onEvent: (e: ChatEvent, events: ChatEvent[]) => void = () => {},
  ms = 3000,
): Promise<ChatEvent[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  const events: ChatEvent[] = [];
  try {
    for await (const e of stream(ac.signal)) {
      events.push(e);
      onEvent(e, events);
      if (done(events)) break;
    }
  } catch (e) {
    if (!ac.signal.aborted) throw e;
    throw new Error(`stream timed out with ${events.map((x) => x.kind).join(",")}`);
  } finally {
    clearTimeout(timer);
  }
  return events;
}

describe.each(Object.entries(transports))("ChatService over %s", (name, transport) => {
  const client = createClient(ChatService, transport);
  const room = `connect-${name.replace("+", "-")}`;

  it("stores a text that starts with U+FEFF as sent (protobuf-es would drop it in binary)", async () => {
    const r = `${room}-bom`;
    await client.publish({ room: r, text: "\uFEFFkept" });
    const page = (await (await SELF.fetch(`https://relay.test/rooms/${r}/messages`)).json()) as {
      events: { text: string }[];
    };
    expect(page.events.map((e) => e.text)).toEqual(["\uFEFFkept"]);
  });

  it("publishes, idempotently, and returns the stored event", async () => {
    const first = await client.publish({ room, text: "hello", id: `${name}-1`, user: "ann" });
    expect(first.event).toMatchObject({ room, seq: 1n, text: "hello", user: "ann", kind: "message" });
    expect(first.duplicate).toBe(false);
    const retry = await client.publish({ room, text: "hello again", id: `${name}-1` });
    expect(retry.duplicate).toBe(true);
    expect(retry.event?.seq).toBe(1n);
  });

  it("streams Subscribe: subscribed at once, the replay after `since`, then live events", async () => {
    const r = `${room}-sub`;
    for (const text of ["a", "b", "c"]) await client.publish({ room: r, text });
    const events = await collect(
      (signal) => client.subscribe({ room: r, since: 1n }, { signal }),
      (es) => es.length === 4,
      (e) => {
        if (e.text === "c") env.ROOM.getByName(r).publish(r, { text: "live" }, ANON);
      },
    );
    expect(events.map((e) => e.kind)).toEqual(["subscribed", "message", "message", "message"]);
    expect(events.slice(1).map((e) => [e.seq, e.text])).toEqual([
      [2n, "b"],
      [3n, "c"],
      [4n, "live"],
    ]);
  });

  it("reads History and Presence", async () => {
    const r = `${room}-hist`;
    for (const text of ["x", "y", "z"]) await client.publish({ room: r, text });
    const page = await client.history({ room: r, since: 1n, limit: 1 });
    expect(page.events.map((e) => e.text)).toEqual(["y"]);
    expect(page).toMatchObject({ firstSeq: 1n, lastSeq: 3n, hasMore: true });
    const ws = await connect(r, undefined, "?user=zed");
    await ws.waitFor(1);
    const presence = await client.presence({ room: r });
    expect(presence.members.map((m) => [m.user, m.connections, m.transports])).toEqual([["zed", 1, ["websocket"]]]);
  });

  it("answers bad input with Connect codes", async () => {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => "ok",
        (e) => ConnectError.from(e).code,
      );
    expect(await code(client.publish({ room: "bad name", text: "x" }))).toBe(Code.InvalidArgument);
    // A leading U+FEFF is part of a string, in binary as in JSON: never dropped into another room.
    expect(await code(client.publish({ room: `\uFEFF${room}`, text: "x" }))).toBe(Code.InvalidArgument);
    expect(await code(client.publish({ room, text: "" }))).toBe(Code.InvalidArgument);
    expect(await code(client.publish({ room, text: "x".repeat(65537) }))).toBe(Code.ResourceExhausted);
    // Offsets past 2^53-1 are refused by the same rule on every transport.
    expect(await code(client.history({ room, since: 2n ** 60n }))).toBe(Code.InvalidArgument);
    const sub = client.subscribe({ room: "bad name" });
    expect(
      await code(
        (async () => {
          for await (const _ of sub) break;
        })(),
      ),
    ).toBe(Code.InvalidArgument);
  });
});

describe("Connect routing and protocol errors", () => {
  it("refuses Chat over HTTP/1.1 (the default) with a clear error naming Subscribe and Publish", async () => {
    // connect-web cannot stream requests, so this is the Connect streaming protocol by hand.
    const json = new TextEncoder().encode(JSON.stringify({ room: "chat-refused", message: "hi" }));
    const res = await SELF.fetch(`${baseUrl}/relay.v1.ChatService/Chat`, {
      method: "POST",
      headers: { "Content-Type": "application/connect+json" },
      body: encodeEnvelope(0, json),
    });
    const body = new Uint8Array(await res.arrayBuffer());
    expect(body[0]).toBe(endStreamFlag);
    const end = JSON.parse(new TextDecoder().decode(body.subarray(5)));
    expect(end.error.code).toBe("failed_precondition");
    expect(end.error.message).toMatch(/HTTP\/2.*Subscribe.*Publish/);
  });

  const post = (path: string, contentType: string, body: BodyInit) =>
    SELF.fetch(`${baseUrl}/relay.v1.ChatService/${path}`, {
      method: "POST",
      headers: { "Content-Type": contentType },
      body,
    });

  it("answers an unknown method with unimplemented, in Connect and gRPC-Web terms", async () => {
    const res = await post("Nope", "application/json", "{}");
    expect(res.status).toBe(501);
    expect(await res.json()).toMatchObject({ code: "unimplemented" });
    const web = await post("Nope", "application/grpc-web+proto", new Uint8Array(5));
    expect(web.headers.get("grpc-status")).toBe("12");
  });

  it("answers native gRPC with grpc-status 12 and the reason (no trailers on Workers)", async () => {
    const res = await post("Publish", "application/grpc", new Uint8Array(5));
    expect(res.status).toBe(200);
    expect(res.headers.get("grpc-status")).toBe("12");
    expect(decodeURIComponent(res.headers.get("grpc-message") ?? "")).toMatch(/trailers.*gRPC-Web or Connect/);
  });

  it("answers malformed protobuf and JSON with invalid_argument, and a wrong content type with 415", async () => {
    const badProto = await post("Publish", "application/proto", new Uint8Array([0x0a, 0xff, 0xff, 0xff]));
    expect(badProto.status).toBe(400);
    expect(await badProto.json()).toMatchObject({ code: "invalid_argument" });
    const badWeb = await post("History", "application/grpc-web+proto", new Uint8Array([0, 0, 0, 0, 2, 0x0a, 0xff]));
    expect(badWeb.headers.get("grpc-status")).toBe("3");
    const badStream = await post("Subscribe", "application/connect+proto", new Uint8Array([0, 0, 0, 0, 2, 0x0a, 0xff]));
    const end = new Uint8Array(await badStream.arrayBuffer());
    expect(JSON.parse(new TextDecoder().decode(end.subarray(5))).error.code).toBe("invalid_argument");
    const badJson = await post("Publish", "application/json", "{nope");
    expect(await badJson.json()).toMatchObject({ code: "invalid_argument" });
    const unknownField = await post("Publish", "application/json", '{"room":"r","txt":"typo"}');
    expect(await unknownField.json()).toMatchObject({ code: "invalid_argument" });
    const wrongType = await post("Publish", "text/plain", "hi");
    expect(wrongType.status).toBe(415);
    // The room keeps serving.
    const ok = await post("Publish", "application/json", '{"room":"after-bad","text":"fine"}');
    expect(ok.status).toBe(200);
  });

  it("answers CORS for a listed origin with what connect-web needs", async () => {
    const preflight = await SELF.fetch(`${baseUrl}/relay.v1.ChatService/Subscribe`, {
      method: "OPTIONS",
      headers: {
        Origin: "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,connect-protocol-version,x-grpc-web",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Origin")).toBe("https://app.example");
    const allowed = (preflight.headers.get("Access-Control-Allow-Headers") ?? "").toLowerCase();
    for (const h of ["content-type", "connect-protocol-version", "x-grpc-web"]) expect(allowed).toContain(h);
    const res = await SELF.fetch(`${baseUrl}/relay.v1.ChatService/Presence`, {
      method: "POST",
      headers: { Origin: "https://app.example", "Content-Type": "application/json" },
      body: '{"room":"cors"}',
    });
    expect(res.headers.get("Access-Control-Allow-Origin")).toBe("https://app.example");
    expect(res.headers.get("Access-Control-Expose-Headers")).toMatch(/Grpc-Status/i);
  });

  it("allows CORS only for listed origins", async () => {
    const preflight = await SELF.fetch(`${baseUrl}/relay.v1.ChatService/Publish`, {
      method: "OPTIONS",
      headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" },
    });
    expect(preflight.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });
});
