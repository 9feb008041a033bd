/**
 * Lightweight load-generator clients. Every published text is `#<n>:` plus padding. In what the
 * relay sends, that `#` follows the `"` that opens the JSON string (room names and ids cannot hold
 * a `#`), and on a floor it starts the frame; so a client counts a delivery by finding such a `#`
 * and reading the number after it, without parsing JSON or protobuf: the bench measures the
 * server, not the client's decoder. (A bare `#` can also be a byte of a Connect envelope's length.)
 */
import WebSocket from "ws";

/** Called with the message number of each delivery. */
export type OnDelivery = (n: number) => void;

const HASH = 0x23;
const COLON = 0x3a;
const QUOTE = 0x22;

/**
 * Reads the number after each marker `#` in `buf` and reports it. A marker `#` follows a `"`, or
 * starts the buffer when `frameStart` (a WebSocket frame from a floor).
 */
export function scan(buf: Uint8Array, onDelivery: OnDelivery, frameStart = false): void {
  for (let i = buf.indexOf(HASH); i !== -1; i = buf.indexOf(HASH, i + 1)) {
    if (!(i === 0 ? frameStart : buf[i - 1] === QUOTE)) continue;
    let n = 0;
    for (let j = i + 1; j < buf.length && buf[j] !== COLON; j++) n = n * 10 + (buf[j] - 48);
    onDelivery(n);
  }
}

/** The text of message `n`, padded to `bytes`. */
export function messageText(n: number, bytes = 100): string {
  const head = `#${n}:`;
  return head + "x".repeat(Math.max(0, bytes - head.length));
}

/**
 * Opens `n` WebSockets to `url`, `concurrency` at a time. `onMessage` is attached before the socket
 * opens: frames the server sends at once (a replay) can arrive with the handshake.
 */
export async function openSockets(
  url: string,
  n: number,
  protocol?: string,
  onMessage?: (data: Buffer) => void,
  concurrency = 50,
): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < n; i += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, n - i) }, () => {
      const ws = new WebSocket(url, protocol ? [protocol] : [], { perMessageDeflate: false });
      if (onMessage) ws.on("message", onMessage);
      return new Promise<WebSocket>((resolve, reject) => {
        ws.once("open", () => resolve(ws));
        ws.once("error", reject);
      });
    });
    sockets.push(...(await Promise.all(batch)));
  }
  return sockets;
}

/**
 * A scanner for the chunks of one streamed body (SSE or Connect): a marker split across two chunks
 * is handled by carrying the tail of a chunk (from the byte before its last `#`, when that `#` has
 * no `:` after it yet, else its last byte) into the next.
 */
export function streamScanner(onDelivery: OnDelivery): (chunk: Uint8Array) => void {
  let carry = new Uint8Array(0);
  return (chunk) => {
    let buf = chunk;
    if (carry.length) {
      buf = new Uint8Array(carry.length + chunk.length);
      buf.set(carry);
      buf.set(chunk, carry.length);
    }
    const last = buf.lastIndexOf(HASH);
    const cut = last > 0 && buf.indexOf(COLON, last) === -1 ? last - 1 : buf.length - 1;
    scan(buf.subarray(0, cut + 1), onDelivery);
    carry = buf.slice(cut);
  };
}

const PING = Buffer.from('{"ping"');
const ACK = Buffer.from('{"ack"');
const ERROR = Buffer.from('{"error"');

/** Whether `frame` starts with `prefix` (without searching the rest of a large frame). */
export function startsWith(frame: Buffer, prefix: Buffer): boolean {
  return frame.length >= prefix.length && frame.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/**
 * The answer to a flow-control ping (`relay.v1.json`): `{"ping":{"id":"N"}}` is answered with
 * `{"pong":{"id":"N"}}` as soon as it is read. Undefined for any other frame.
 */
export function pongFor(frame: Buffer): string | undefined {
  if (!startsWith(frame, PING)) return undefined;
  const { ping } = JSON.parse(frame.toString()) as { ping: { id?: string | number } };
  // A uint64 in the protobuf JSON mapping: a string, left out when 0; echoed as it came.
  return JSON.stringify({ pong: ping.id === undefined ? {} : { id: ping.id } });
}

/** A streamed HTTP response (SSE or Connect) read by chunks; `close()` aborts it. */
export interface StreamClient {
  opened: Promise<void>;
  close(): void;
}

/** Opens a streaming request and scans its body (see {@link streamScanner}). */
export function openStream(url: string, init: RequestInit, onDelivery: OnDelivery): StreamClient {
  const ac = new AbortController();
  let resolveOpen = () => {};
  let rejectOpen = (_: unknown) => {};
  const opened = new Promise<void>((res, rej) => {
    resolveOpen = res;
    rejectOpen = rej;
  });
  (async () => {
    const res = await fetch(url, { ...init, signal: ac.signal });
    if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status}`);
    resolveOpen();
    const onChunk = streamScanner(onDelivery);
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) onChunk(chunk);
  })().catch((e) => {
    if (!ac.signal.aborted) rejectOpen(e);
  });
  return { opened, close: () => ac.abort() };
}

/** The Connect streaming request body for Subscribe (JSON codec, one envelope). */
export function connectSubscribeBody(room: string, since?: number): Uint8Array {
  const json = new TextEncoder().encode(
    JSON.stringify(since === undefined ? { room } : { room, since: String(since) }),
  );
  const out = new Uint8Array(5 + json.length);
  new DataView(out.buffer).setUint32(1, json.length);
  out.set(json, 5);
  return out;
}

/**
 * Opens one WebSocket on `relay.v1.json` that answers every flow-control ping at once and hands
 * every other frame to `onFrame`.
 */
export function openJsonSocket(url: string, onFrame: (frame: Buffer) => void): Promise<WebSocket> {
  const ws = new WebSocket(url, ["relay.v1.json"], { perMessageDeflate: false, handshakeTimeout: 10_000 });
  ws.on("message", (d: Buffer) => {
    const pong = pongFor(d);
    if (pong) ws.send(pong);
    else onFrame(d);
  });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** How a bench socket closed before the bench closed it. */
export interface Closed {
  /** E.g. "subscriber socket closed (4003)". */
  what: string;
  code: number;
  /**
   * The relay's own decision (a 4000-4999 code, such as 4003 too slow): a result. Otherwise (1006,
   * 1001, 1012) the local runtime went away or reloaded: the run was interrupted, not measured.
   */
  byRelay: boolean;
}

export function closedBy(socket: string, code: number): Closed {
  return { what: `${socket} socket closed (${code})`, code, byRelay: code >= 4000 && code <= 4999 };
}

/**
 * A WebSocket publisher on `relay.v1.json` with at most `window` publishes in flight: not yet
 * acknowledged, or (with `delivered`) not yet delivered to the subscriber it counts. The relay acks
 * a publish before it fans the event out, so a publisher paced by acks alone can run ahead of every
 * subscriber without bound.
 */
export interface Publisher {
  /** Publishes messages up to number `n - 1` (texts `messageText(i, bytes)`), keeping the window. */
  publishUpTo(n: number): void;
  /** Sends what the window allows now: call it when `delivered()` has grown. */
  pump(): void;
  /** Publishes sent, acknowledged, and answered with an error frame. */
  counts(): { sent: number; acked: number; errors: number };
  /** How its socket closed, once it has (by the relay, or a reload of the local runtime). */
  closed(): Closed | undefined;
  close(): void;
}

export async function openPublisher(
  url: string,
  window: number,
  bytes: number,
  delivered: () => number = () => Number.POSITIVE_INFINITY,
): Promise<Publisher> {
  let target = 0;
  let sent = 0;
  let acked = 0;
  let errors = 0;
  let ws: WebSocket | undefined;
  let closed: Closed | undefined;
  // A publish answered with an error has no event to deliver.
  const done = () => errors + Math.min(acked, delivered());
  const send = () => {
    while (ws && !closed && sent < target && sent - done() < window) {
      ws.send(JSON.stringify({ publish: { text: messageText(sent, bytes) } }));
      sent++;
    }
  };
  // The publisher is in the room too, so it also gets every event: only acks and errors matter.
  ws = await openJsonSocket(url, (d) => {
    if (startsWith(d, ACK)) acked++;
    else if (startsWith(d, ERROR)) errors++;
    else return;
    send();
  });
  ws.once("close", (code: number) => {
    closed ??= closedBy("publisher", code);
  });
  return {
    publishUpTo(n) {
      target = n;
      send();
    },
    pump: send,
    counts: () => ({ sent, acked, errors }),
    closed: () => closed,
    close: () => {
      closed ??= { what: "publisher closed by the bench", code: 1000, byRelay: false };
      ws?.terminate();
    },
  };
}
