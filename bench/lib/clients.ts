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

/** A streamed HTTP response (SSE or Connect) read by chunks; `close()` aborts it. */
export interface StreamClient {
  opened: Promise<void>;
  close(): void;
}

/**
 * Opens a streaming request and scans its body. A marker split across two chunks is handled by
 * carrying the tail of a chunk (from the byte before its last `#`, when that `#` has no `:` after
 * it yet, else its last byte) into the next.
 */
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
    let carry = new Uint8Array(0);
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
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
    }
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
