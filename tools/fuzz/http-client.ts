/**
 * The fuzzer's HTTP client, on node:http: paths go out byte for byte (no URL normalisation, so
 * `..`, `%2e%2e` and raw UTF-8 bytes reach the server as written), header values may hold any
 * Latin-1 byte, every request is bounded by a timeout, and a streamed answer (SSE, Connect
 * streams) is read only until a caller's condition holds. Each fuzz lane has its own keep-alive
 * agent with one socket, so a request that leaves a connection broken shows up on the next
 * request of the same lane. Also a raw WebSocket upgrade that reads the server's first frame.
 */
import { randomBytes } from "node:crypto";
import { Agent, type IncomingHttpHeaders, request } from "node:http";
import type { Socket } from "node:net";

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** True when the body was cut short by `until` (a stream left open). */
  cut: boolean;
}

/** An answer, or why there is none: `timeout` (no answer in time), `reset`, or a client error. */
export type HttpOutcome = { answer: HttpAnswer } | { error: string; status?: number };

export interface HttpRequest {
  method: string;
  /** Sent as it is (Latin-1: one character per byte). */
  path: string;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  timeoutMs: number;
  /** For streams: stop reading (and drop the connection) once this holds for the body so far. */
  until?: (body: Buffer) => boolean;
  /** Bytes of the body kept at most (the rest is read and dropped). */
  maxBody?: number;
}

export function laneAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1 });
}

function errorName(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ECONNRESET" || code === "EPIPE") return "reset";
  return code ?? String(e);
}

export function httpRequest(base: URL, agent: Agent | false, r: HttpRequest): Promise<HttpOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    let status: number | undefined;
    const done = (o: HttpOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    const timer = setTimeout(() => {
      done({ error: "timeout", status });
      req.destroy();
    }, r.timeoutMs);
    let req: ReturnType<typeof request>;
    try {
      req = request({
        host: base.hostname,
        port: base.port,
        method: r.method,
        path: r.path,
        headers: r.headers,
        agent,
        insecureHTTPParser: true,
      });
    } catch (e) {
      clearTimeout(timer);
      resolve({ error: `client refused: ${errorName(e)}` });
      return;
    }
    req.on("error", (e) => done({ error: errorName(e), status }));
    req.on("response", (res) => {
      status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let kept = 0;
      const max = r.maxBody ?? 1 << 20;
      res.on("data", (c: Buffer) => {
        if (kept < max) {
          chunks.push(c);
          kept += c.length;
        }
        if (r.until?.(Buffer.concat(chunks))) {
          done({ answer: { status: status ?? 0, headers: res.headers, body: Buffer.concat(chunks), cut: true } });
          res.destroy();
        }
      });
      res.on("end", () =>
        done({ answer: { status: status ?? 0, headers: res.headers, body: Buffer.concat(chunks), cut: false } }),
      );
      res.on("error", (e) => done({ error: errorName(e), status }));
    });
    if (r.body !== undefined && r.body.length > 0) req.end(r.body);
    else req.end();
  });
}

/** The first frame a WebSocket server sent: its opcode, and the close code of a close frame. */
export interface FirstFrame {
  opcode: number;
  payload: Buffer;
  closeCode?: number;
}

export type UpgradeOutcome =
  | { refused: HttpAnswer }
  | { opened: FirstFrame }
  /** Open, no frame in time, but the socket answered a ping: alive and silent. */
  | { silent: true }
  | { error: string };

/** One unmasked server frame from the start of `buf`, or undefined while incomplete. */
function parseFrame(buf: Buffer): FirstFrame | undefined {
  if (buf.length < 2) return undefined;
  let len = buf[1] & 0x7f;
  let at = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    at = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(buf.readBigUInt64BE(2));
    at = 10;
  }
  if (buf.length < at + len) return undefined;
  const opcode = buf[0] & 0x0f;
  const payload = buf.subarray(at, at + len);
  return { opcode, payload, closeCode: opcode === 8 && len >= 2 ? payload.readUInt16BE(0) : undefined };
}

/** A masked client frame (clients must mask). */
export function clientFrame(opcode: number, payload: Uint8Array, fin = true): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len])
      : len < 65536
        ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, len >> 8, len & 0xff])
        : Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 127]), u64(len)]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
  return Buffer.concat([head, mask, body]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

const CLOSE_1000 = () => clientFrame(8, Buffer.from([0x03, 0xe8]));

/**
 * A WebSocket upgrade of `path` by hand: the HTTP answer of a refused one, or the first frame of an
 * accepted one (then the socket is closed with 1000). No frame within the timeout: a ping decides
 * between a silent socket and a hang.
 */
export function rawUpgrade(
  base: URL,
  path: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<UpgradeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    let socket: Socket | undefined;
    const done = (o: UpgradeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    let pinged = false;
    const onTimeout = () => {
      if (socket && !pinged) {
        // Open but silent: a ping tells a live socket from a hung one.
        pinged = true;
        socket.write(clientFrame(9, Buffer.from("fuzz")));
        timer = setTimeout(onTimeout, timeoutMs);
        return;
      }
      done({ error: "timeout" });
      req.destroy();
      socket?.destroy();
    };
    let timer = setTimeout(onTimeout, timeoutMs);
    let req: ReturnType<typeof request>;
    try {
      req = request({
        host: base.hostname,
        port: base.port,
        method: "GET",
        path,
        agent: false,
        insecureHTTPParser: true,
        headers: {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
          ...headers,
        },
      });
    } catch (e) {
      clearTimeout(timer);
      resolve({ error: `client refused: ${errorName(e)}` });
      return;
    }
    req.on("error", (e) => done({ error: errorName(e) }));
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        done({
          refused: { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), cut: false },
        }),
      );
      res.on("error", (e) => done({ error: errorName(e) }));
    });
    req.on("upgrade", (_res, s: Socket, head: Buffer) => {
      socket = s;
      let buf = head;
      const check = () => {
        const f = parseFrame(buf);
        if (!f) return;
        if (f.opcode === 0xa && pinged) {
          done({ silent: true });
          s.end(CLOSE_1000());
          return;
        }
        if (f.opcode === 0xa) {
          buf = buf.subarray(2 + f.payload.length);
          return check();
        }
        done({ opened: f });
        if (f.opcode === 8) s.end(clientFrame(8, f.payload.subarray(0, 2)));
        else s.end(CLOSE_1000());
        setTimeout(() => s.destroy(), 1000).unref();
      };
      s.on("data", (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        check();
      });
      s.on("error", () => done({ error: "reset" }));
      s.on("close", () => done({ error: "closed without a frame" }));
      check();
    });
    req.end();
  });
}
