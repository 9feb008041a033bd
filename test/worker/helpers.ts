/** Test helpers inside workerd: WebSocket clients of the relay and bounded waits. */

import { SELF } from "cloudflare:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anonymous, type Principal, principal } from "../../src/auth/rights";
import { ClientFrameSchema, ServerFrameSchema } from "../../src/gen/relay/v1/relay_pb";

/** An anonymous publisher, for calling a room's RPC methods directly. */
export const ANON: Principal = principal(anonymous("publish", "127.0.0.1"), "any", "127.0.0.1");

/** {@link ANON} as a room's internal subscribe URL carries it (`who=`). */
export const WHO = encodeURIComponent(JSON.stringify(ANON));

/** A client socket that records every frame it receives. */
export interface TestSocket {
  ws: WebSocket;
  /**
   * Frames in order, a batch (`ServerFrame.batch`, events published together) recorded as one
   * `event` frame per event, so tests read events alike however the room grouped them.
   */
  frames: (string | ArrayBuffer)[];
  /** Batch frames received, before they were split into `frames`. */
  batches: (string | ArrayBuffer)[];
  /** JSON-parsed text frames. */
  // biome-ignore lint/suspicious/noExplicitAny: test frames are checked by assertions
  json(): any[];
  /** Resolves when at least `n` frames have arrived (rejects after `ms`). */
  waitFor(n: number, ms?: number): Promise<void>;
  closed: Promise<CloseEvent>;
}

/**
 * Opens `/rooms/:room/ws` through the Worker, with an optional subprotocol and query. The client
 * answers the room's flow-control pings, as clients must, unless `answerPings` is false.
 */
export async function connect(room: string, protocol?: string, query = "", answerPings = true): Promise<TestSocket> {
  const headers: Record<string, string> = { Upgrade: "websocket" };
  if (protocol) headers["Sec-WebSocket-Protocol"] = protocol;
  const res = await SELF.fetch(`https://relay.test/rooms/${room}/ws${query}`, { headers });
  if (!res.webSocket) throw new Error(`no upgrade: ${res.status} ${await res.text()}`);
  return track(res.webSocket, answerPings);
}

/** One socket per WebSocket mode on `room`, each past its `subscribed` frame. */
export async function connectEveryMode(room: string): Promise<Record<"plain" | "json" | "proto", TestSocket>> {
  const [plain, json, proto] = await Promise.all([
    connect(room),
    connect(room, "relay.v1.json"),
    connect(room, "relay.v1.proto"),
  ]);
  await Promise.all([plain.waitFor(1), json.waitFor(1), proto.waitFor(1)]);
  return { plain, json, proto };
}

/** Accepts a client socket and records its frames (pings answered, not recorded, unless `answerPings` is false). */
export function track(ws: WebSocket, answerPings = true): TestSocket {
  const frames: (string | ArrayBuffer)[] = [];
  const batches: (string | ArrayBuffer)[] = [];
  const waiters: (() => void)[] = [];
  // Binary frames as ArrayBuffer, not Blob, so they can be decoded synchronously in order.
  (ws as WebSocket & { binaryType: string }).binaryType = "arraybuffer";
  ws.accept();
  ws.addEventListener("message", (m) => {
    const data = m.data as string | ArrayBuffer;
    if (answerPings && answerPing(ws, data)) return;
    const events = batchEvents(data);
    if (events) {
      batches.push(data);
      frames.push(...events);
    } else frames.push(data);
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  return {
    ws,
    frames,
    batches,
    closed,
    json: () => frames.filter((f): f is string => typeof f === "string").map((f) => JSON.parse(f)),
    waitFor: (n, ms = 2000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`waited for ${n} frames, got ${frames.length}`)), ms);
        const check = () => {
          if (frames.length >= n) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      }),
  };
}

/** Answers a ping frame with its pong; true when `data` was one. */
function answerPing(ws: WebSocket, data: string | ArrayBuffer): boolean {
  if (typeof data === "string") {
    if (!data.startsWith('{"ping":')) return false;
    ws.send(JSON.stringify({ pong: JSON.parse(data).ping }));
    return true;
  }
  const frame = fromBinary(ServerFrameSchema, new Uint8Array(data));
  if (frame.frame.case !== "ping") return false;
  const pong = create(ClientFrameSchema, { frame: { case: "pong", value: { id: frame.frame.value.id } } });
  ws.send(toBinary(ClientFrameSchema, pong));
  return true;
}

/** The events of a batch frame, each as its own `event` frame in the same mode; undefined for other frames. */
function batchEvents(data: string | ArrayBuffer): (string | ArrayBuffer)[] | undefined {
  if (typeof data === "string") {
    if (!data.startsWith('{"batch":')) return undefined;
    return (JSON.parse(data).batch.events as unknown[]).map((event) => JSON.stringify({ event }));
  }
  const frame = fromBinary(ServerFrameSchema, new Uint8Array(data));
  if (frame.frame.case !== "batch") return undefined;
  return frame.frame.value.events.map((value) => {
    const bytes = toBinary(ServerFrameSchema, create(ServerFrameSchema, { frame: { case: "event", value } }));
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  });
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
