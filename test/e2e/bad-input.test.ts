/**
 * Bad input on every transport: clear errors with stable codes, and a bad frame never takes down
 * the connection (except an oversized one: 1009 on that connection only) or the room.
 */

import { afterEach, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import {
  type ErrorJson,
  getJson,
  messagesOf,
  post,
  publishJson,
  publishText,
  type ServerFrameJson,
  uniqueRoom,
  WsClient,
  waitFor,
  wsUrl,
} from "./clients";

const baseUrl = inject("baseUrl");
const MAX_MESSAGE_BYTES = 65536;

let cleanup: (() => unknown)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.map((f) => f()));
  cleanup = [];
});

async function openWs(room: string, protocol?: string): Promise<WsClient> {
  const c = await WsClient.open(wsUrl(baseUrl, `/rooms/${room}/ws`), protocol);
  cleanup.push(() => c.close());
  await c.waitFrames(1); // subscribed
  return c;
}

/** Tries a WebSocket upgrade that the server refuses; returns the HTTP status and JSON body. */
function refusedUpgrade(url: string): Promise<{ status: number; body: unknown }> {
  return new Promise((done, fail) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => {
      ws.terminate();
      fail(new Error(`no answer to upgrade ${url}`));
    }, 5000);
    ws.on("open", () => {
      clearTimeout(timer);
      ws.terminate();
      fail(new Error(`upgrade to ${url} was accepted`));
    });
    ws.on("error", () => {
      // Reported through unexpected-response or the timeout.
    });
    ws.on("unexpected-response", (_req, res) => {
      let text = "";
      res.on("data", (c: Buffer) => {
        text += c.toString();
      });
      res.on("end", () => {
        clearTimeout(timer);
        ws.terminate();
        done({ status: res.statusCode ?? 0, body: JSON.parse(text) });
      });
    });
  });
}

function expectError(r: { status: number; body: unknown }, status: number, code: string): void {
  expect(r.status).toBe(status);
  const body = r.body as { error: ErrorJson };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  expect(body.error.message.length).toBeGreaterThan(0);
}

describe("invalid room names", () => {
  const names = ["bad%20name", "a".repeat(65), "bad*name", "caf%C3%A9"];

  it.each(names)("%s → 400 invalid_argument on every route", async (name) => {
    const path = `/rooms/${name}`;
    expectError(await refusedUpgrade(wsUrl(baseUrl, `${path}/ws`)), 400, "invalid_argument");
    expectError(await getJson(baseUrl, `${path}/ws`), 400, "invalid_argument");
    expectError(await getJson(baseUrl, `${path}/sse`), 400, "invalid_argument");
    expectError(await getJson(baseUrl, `${path}/messages`), 400, "invalid_argument");
    expectError(await publishJson(baseUrl, name, { text: "hi" }), 400, "invalid_argument");
    expectError(await getJson(baseUrl, `${path}/presence`), 400, "invalid_argument");
  });

  it("accepts a 64-character name of every allowed character class", async () => {
    const name = `Az09._~-${"x".repeat(56)}`;
    expect(name).toHaveLength(64);
    const r = await publishJson(baseUrl, name, { text: "edge" });
    expect(r.status).toBe(201);
    expect(r.body.room).toBe(name);
  });
});

describe("bad requests over HTTP", () => {
  it("answers a non-upgrade GET on /ws with 426", async () => {
    expectError(await getJson(baseUrl, `/rooms/${uniqueRoom("u")}/ws`), 426, "upgrade_required");
  });

  it("answers unknown routes with 404 not_found", async () => {
    expectError(await getJson(baseUrl, "/nope"), 404, "not_found");
  });

  it("rejects malformed publish bodies with 400 and stores nothing", async () => {
    const room = uniqueRoom("body");
    const path = `/rooms/${room}/messages`;
    const json = { "Content-Type": "application/json" };
    const bad: [string | Uint8Array, Record<string, string>][] = [
      ["{not json", json],
      ["", json],
      ["[1,2]", json],
      ['"just a string"', json],
      ["{}", json],
      ['{"text":""}', json],
      ['{"text":42}', json],
      ['{"text":"hi","id":7}', json],
      ['{"text":"hi","id":"has space"}', json],
      ['{"text":"hi","user":"\\u0007bell"}', json],
      ["text=hi", { "Content-Type": "application/x-www-form-urlencoded" }],
      [new TextEncoder().encode('{"text":"hi"}'), {}],
      ["", { "Content-Type": "text/plain" }],
    ];
    for (const [body, headers] of bad) {
      const r = await post(baseUrl, path, body, headers);
      expect({ body, headers, status: r.status }).toEqual({ body, headers, status: 400 });
      expectError(r, 400, "invalid_argument");
    }
    const history = await getJson<{ events: unknown[]; lastSeq: string }>(baseUrl, path);
    expect(history.body).toMatchObject({ events: [], lastSeq: "0" });
  });

  it("rejects offsets that are not non-negative integers", async () => {
    const room = uniqueRoom("since");
    for (const q of ["since=abc", "since=-1", "since=1.5", "limit=abc", "limit=-3"]) {
      expectError(await getJson(baseUrl, `/rooms/${room}/messages?${q}`), 400, "invalid_argument");
    }
    expectError(await getJson(baseUrl, `/rooms/${room}/sse?since=abc`), 400, "invalid_argument");
    expectError(await getJson(baseUrl, `/rooms/${room}/sse`, { "Last-Event-ID": "abc" }), 400, "invalid_argument");
    expectError(await refusedUpgrade(wsUrl(baseUrl, `/rooms/${room}/ws?since=abc`)), 400, "invalid_argument");
    expectError(
      await refusedUpgrade(wsUrl(baseUrl, `/rooms/${room}/ws?since=0&epoch=bad%20epoch`)),
      400,
      "invalid_argument",
    );
  });

  it("limits messages to MAX_MESSAGE_BYTES UTF-8 bytes: 413 too_large above it", async () => {
    const room = uniqueRoom("big");
    const exact = await publishText(baseUrl, room, "x".repeat(MAX_MESSAGE_BYTES));
    expect(exact.status).toBe(201);
    expect(exact.body.text).toHaveLength(MAX_MESSAGE_BYTES);
    expectError(await publishText(baseUrl, room, "x".repeat(MAX_MESSAGE_BYTES + 1)), 413, "too_large");
    expectError(await publishJson(baseUrl, room, { text: "x".repeat(MAX_MESSAGE_BYTES + 1) }), 413, "too_large");
    // Counted in UTF-8 bytes, not characters: 32769 × "é" is 65538 bytes.
    expectError(await publishText(baseUrl, room, "é".repeat(32769)), 413, "too_large");
    // A body far over the limit is refused without being read.
    expectError(await publishText(baseUrl, room, "x".repeat(1 << 20)), 413, "too_large");
    const history = await getJson<{ events: { seq: string }[]; lastSeq: string }>(baseUrl, `/rooms/${room}/messages`);
    expect(history.body.lastSeq).toBe("1");
  });
});

describe("bad frames over WebSocket", () => {
  it("answers malformed relay.v1.json frames with an error frame and keeps the connection", async () => {
    const room = uniqueRoom("badjson");
    const json = await openWs(room, "relay.v1.json");
    const other = await openWs(room);
    const bad = ["{not json", '{"nope":{}}', '{"publish":{"text":""}}', "[]", '{"publish":{"text":"x","id":"a b"}}'];
    for (const [i, frame] of bad.entries()) {
      json.send(frame);
      const err = await json.waitFrame<ServerFrameJson>((f) => f.error !== undefined, 1 + i);
      expect(err.error?.code).toBe("invalid_argument");
      expect(err.error?.message.length).toBeGreaterThan(0);
    }
    expect(json.frames).toHaveLength(1 + bad.length);
    // An error answering a publish with an id names that id.
    json.send('{"publish":{"text":"","id":"named-1"}}');
    const named = await json.waitFrame<ServerFrameJson>((f) => f.error?.id === "named-1", 1 + bad.length);
    expect(named.error?.code).toBe("invalid_argument");

    // Same connection, now a good publish: acked and fanned out.
    json.publish("after the errors", "ok-1");
    const ack = await json.waitFrame<ServerFrameJson>((f) => f.ack !== undefined);
    expect(ack.ack?.event).toMatchObject({ seq: "1", id: "ok-1", text: "after the errors" });
    await waitFor("event on the other subscriber", () => messagesOf(other.frames).length >= 1);
    expect(messagesOf(other.frames)).toEqual([ack.ack?.event]);
    expect(other.frames).toHaveLength(2); // subscribed + the one good message, no errors leaked
    expect(json.closed).toBeUndefined();
  });

  it("answers a binary frame in plain mode with an error frame and keeps the connection", async () => {
    const room = uniqueRoom("binary");
    const plain = await openWs(room);
    const other = await openWs(room, "relay.v1.json");
    plain.send(Buffer.from([1, 2, 3]));
    const err = await plain.waitFrame<ServerFrameJson>((f) => f.error !== undefined, 1);
    expect(err).toEqual({ error: { code: "invalid_argument", message: expect.any(String) } });
    plain.send("text still works");
    await waitFor(
      "message on both",
      () => messagesOf(plain.frames).length >= 1 && messagesOf(other.frames).length >= 1,
    );
    expect(messagesOf(plain.frames)[0]).toMatchObject({ seq: "1", text: "text still works" });
    expect(messagesOf(other.frames)).toEqual(messagesOf(plain.frames));
    expect(plain.closed).toBeUndefined();
  });

  it("closes only the offending connection with 1009 on an oversized message", async () => {
    const room = uniqueRoom("toobig");
    const plain = await openWs(room);
    const json = await openWs(room, "relay.v1.json");
    const watcher = await openWs(room);

    // Text just over the limit (the frame itself fits the envelope allowance).
    plain.send("x".repeat(MAX_MESSAGE_BYTES + 1));
    expect((await plain.waitClosed()).code).toBe(1009);
    // A relay.v1.json frame far over the frame limit.
    json.publish("y".repeat(MAX_MESSAGE_BYTES + 4096), "big-1");
    expect((await json.waitClosed()).code).toBe(1009);

    // The room and its other connections carry on.
    const survivor = await openWs(room, "relay.v1.json");
    survivor.publish("still here", "s-1");
    const ack = await survivor.waitFrame<ServerFrameJson>((f) => f.ack !== undefined);
    expect(ack.ack?.event).toMatchObject({ seq: "1", text: "still here" });
    await waitFor("watcher receives", () => messagesOf(watcher.frames).length >= 1);
    expect(messagesOf(watcher.frames)).toEqual([ack.ack?.event]);
    expect(watcher.closed).toBeUndefined();
    const history = await getJson<{ events: unknown[] }>(baseUrl, `/rooms/${room}/messages`);
    expect(history.body.events).toHaveLength(1);
  });
});
