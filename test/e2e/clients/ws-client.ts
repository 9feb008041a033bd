/** A recording `ws` WebSocket client in every mode (plain, relay.v1.json, relay.v1.proto), and upgrade helpers. */
import { create, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import WebSocket from "ws";
import { ClientFrameSchema, ServerFrameSchema } from "../../../src/gen/relay/v1/relay_pb";
import type { ChatEventJson, ErrorJson, ServerFrameJson } from "./json";
import { jsonish } from "./jsonish";
import { deferred, waitFor } from "./wait";

/** The WebSocket formats: no subprotocol, `relay.v1.json`, `relay.v1.proto`. */
export type WsMode = "plain" | "json" | "proto";

export const WS_PROTOCOL: Record<WsMode, string | undefined> = {
  plain: undefined,
  json: "relay.v1.json",
  proto: "relay.v1.proto",
};

export interface WsOptions {
  timeoutMs?: number;
  /**
   * Behave like a well-written client: answer every ping with a pong (json, proto), and in plain
   * mode, which cannot answer pings, confirm what was read with an empty frame every
   * `confirmEveryBytes` received. Off by default: the frames are then recorded as they came.
   */
  flowControl?: boolean;
  confirmEveryBytes?: number;
  /** Headers of the upgrade request (Authorization, Origin, ...). */
  headers?: Record<string, string>;
}

/** A refused WebSocket upgrade: the HTTP status and JSON body. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`WebSocket upgrade refused: HTTP ${status} ${jsonish(body)}`);
  }
}

/**
 * A `ws` WebSocket that records every frame it receives and how it was closed, in any mode. Frames
 * are recorded as JSON: plain-mode frames as they came (a ChatEvent or `{"error":...}`), json and
 * proto frames as ServerFrame JSON (proto decoded with the generated schema); a batch is recorded as
 * one `{"event":...}` frame per event. With `flowControl` pings are answered and not recorded.
 */
export class WsClient {
  readonly ws: WebSocket;
  readonly mode: WsMode;
  readonly frames: unknown[] = [];
  /** Every ChatEvent received, in order (from event and batch frames; plain-mode events). */
  readonly events: ChatEventJson[] = [];
  readonly acks: { event: ChatEventJson; duplicate?: boolean }[] = [];
  readonly errors: ErrorJson[] = [];
  /** How many batch frames arrived. */
  batches = 0;
  pings = 0;
  pongs = 0;
  /** Bytes received in frames. */
  receivedBytes = 0;
  closed?: { code: number; reason: string };
  /** Called for every frame after it is recorded (acks, errors and events alike). */
  onFrame?: (frame: ServerFrameJson | ChatEventJson) => void;
  readonly #url: string;
  readonly #opts: WsOptions;
  #unconfirmed = 0;
  readonly #closedOnce = deferred<{ code: number; reason: string }>();

  private constructor(ws: WebSocket, url: string, mode: WsMode, opts: WsOptions) {
    this.ws = ws;
    this.#url = url;
    this.mode = mode;
    this.#opts = opts;
    ws.binaryType = "nodebuffer";
    ws.on("message", (data: Buffer, isBinary) => this.#receive(data, isBinary));
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.#closedOnce.resolve(this.closed);
    });
    ws.on("error", () => {
      // Recorded by the close event that follows.
    });
  }

  /**
   * Opens `url` (ws://...) with an optional subprotocol; resolves once open, rejects with an
   * {@link UpgradeRefused} when the server answers the upgrade with an HTTP error.
   */
  static async open(url: string, protocol?: string, opts: number | WsOptions = {}): Promise<WsClient> {
    const o = typeof opts === "number" ? { timeoutMs: opts } : opts;
    const timeoutMs = o.timeoutMs ?? 10_000;
    const mode: WsMode = protocol === WS_PROTOCOL.json ? "json" : protocol === WS_PROTOCOL.proto ? "proto" : "plain";
    const ws = new WebSocket(url, protocol ? [protocol] : [], { headers: o.headers });
    const client = new WsClient(ws, url, mode, o);
    await new Promise<void>((done, fail) => {
      const timer = setTimeout(() => {
        ws.terminate();
        fail(new Error(`WebSocket ${url} did not open in ${timeoutMs} ms`));
      }, timeoutMs);
      ws.once("open", () => {
        clearTimeout(timer);
        done();
      });
      ws.once("unexpected-response", (_req, res) => {
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString();
        });
        res.on("end", () => {
          clearTimeout(timer);
          ws.terminate();
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // Not JSON: keep the text.
          }
          fail(new UpgradeRefused(res.statusCode ?? 0, body));
        });
      });
      ws.once("error", (e) => {
        clearTimeout(timer);
        fail(e);
      });
    });
    return client;
  }

  #receive(data: Buffer, isBinary: boolean): void {
    this.receivedBytes += data.byteLength;
    let frame: ServerFrameJson | ChatEventJson;
    if (isBinary !== (this.mode === "proto")) {
      // Not what this mode's server sends: recorded for the test to see, never parsed.
      this.frames.push({ unexpected: `${isBinary ? "binary" : "text"} frame in ${this.mode} mode` });
      return;
    }
    if (this.mode === "proto") {
      frame = toJson(ServerFrameSchema, fromBinary(ServerFrameSchema, new Uint8Array(data))) as ServerFrameJson;
    } else frame = JSON.parse(data.toString());
    const f = frame as ServerFrameJson & { batch?: { events?: ChatEventJson[] } };
    if (f.ping && this.#opts.flowControl) {
      this.pings++;
      this.pong(f.ping.id);
      return;
    }
    if (f.batch) {
      this.batches++;
      for (const event of f.batch.events ?? []) {
        this.frames.push({ event });
        this.events.push(event);
      }
    } else {
      this.frames.push(frame);
      if (f.ping) this.pings++;
      else if (f.ack) this.acks.push(f.ack);
      else if (f.error) this.errors.push(f.error);
      else if (f.event) this.events.push(f.event);
      else if (this.mode === "plain") this.events.push(frame as ChatEventJson);
    }
    if (this.mode === "plain" && this.#opts.flowControl) {
      this.#unconfirmed += data.byteLength;
      if (this.#unconfirmed >= (this.#opts.confirmEveryBytes ?? 8192)) {
        this.#unconfirmed = 0;
        this.send("");
      }
    }
    this.onFrame?.(frame);
  }

  get protocol(): string {
    return this.ws.protocol;
  }

  /**
   * The server's close frame, as soon as it has arrived. `closed` waits for the end of the TCP
   * connection, which under `wrangler dev` comes ~10 s after the close frame when the room itself
   * closes a hibernatable socket (docs/runtime-notes.md); a client acts on the frame.
   */
  get closeFrame(): { code: number; reason: string } | undefined {
    if (this.closed) return this.closed;
    // `ws` keeps the frame's code and reason on the socket from the moment it reads the frame.
    const w = this.ws as unknown as { _closeFrameReceived?: boolean; _closeCode?: number; _closeMessage?: Buffer };
    return w._closeFrameReceived ? { code: w._closeCode ?? 1005, reason: String(w._closeMessage ?? "") } : undefined;
  }

  /** Resolves with the close code and reason once the socket has closed. */
  get whenClosed(): Promise<{ code: number; reason: string }> {
    return this.#closedOnce.promise;
  }

  send(data: string | Buffer | Uint8Array): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  /** Answers a ping (json and proto). */
  pong(id: string): void {
    this.pongs++;
    if (this.mode === "proto") {
      this.send(
        toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "pong", value: { id: BigInt(id) } } })),
      );
    } else this.send(JSON.stringify({ pong: { id } }));
  }

  /** Publishes in the socket's format: a `publish` ClientFrame (json, proto), or the text itself (plain, no id). */
  publish(text: string, id?: string): void {
    if (this.mode === "plain") {
      if (id !== undefined) throw new Error("plain mode has no way to send an id");
      this.send(text);
    } else if (this.mode === "json") {
      this.send(JSON.stringify({ publish: id === undefined ? { text } : { text, id } }));
    } else {
      const value = { text, id: id ?? "" };
      this.send(toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "publish", value } })));
    }
  }

  /** Stops reading the socket (the bytes stay in the kernel's buffers), as a stalled client would. */
  pause(): void {
    (this.ws as unknown as { _socket: import("node:net").Socket })._socket.pause();
  }

  resume(): void {
    (this.ws as unknown as { _socket: import("node:net").Socket })._socket.resume();
  }

  /** The TCP socket under the WebSocket, for writing raw frames. */
  get socket(): import("node:net").Socket {
    return (this.ws as unknown as { _socket: import("node:net").Socket })._socket;
  }

  /** The `message` events received so far. */
  messages(): ChatEventJson[] {
    return this.events.filter((e) => e.kind === "message");
  }

  /** Waits until at least `n` frames have arrived; returns all frames. */
  async waitFrames(n: number, timeoutMs = 5000): Promise<unknown[]> {
    await waitFor(
      `${n} frames on ${this.#url}`,
      () => this.frames.length >= n,
      timeoutMs,
      () => this.frames,
    );
    return this.frames;
  }

  /** Waits for the first frame after index `from` that matches `pred`. */
  async waitFrame<T>(pred: (f: T) => boolean, from = 0, timeoutMs = 5000): Promise<T> {
    return waitFor(
      `a matching frame on ${this.#url}`,
      () => (this.frames.slice(from) as T[]).find(pred),
      timeoutMs,
      () => this.frames,
    );
  }

  /** Waits until the server closes the socket; returns the close code and reason. */
  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    return waitFor(
      `close of ${this.#url}`,
      () => this.closed,
      timeoutMs,
      () => this.frames.slice(-5),
    );
  }

  /** Closes the socket and waits (bounded) for the close handshake; terminates if it hangs. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      this.resume();
    } catch {
      // No socket yet.
    }
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000, "test done");
    try {
      await waitFor("close handshake", () => this.closed, 2000);
    } catch {
      this.ws.terminate();
    }
  }
}

/** The ws:// URL of `path` on the server at `baseUrl`. */
export function wsUrl(baseUrl: string, path: string): string {
  return baseUrl.replace(/^http/, "ws") + path;
}

/** Tries a WebSocket upgrade that the server should refuse; returns its HTTP status and JSON body. */
export async function refusedUpgrade(url: string, protocol?: string): Promise<{ status: number; body: unknown }> {
  try {
    const c = await WsClient.open(url, protocol);
    await c.close();
  } catch (e) {
    if (e instanceof UpgradeRefused) return { status: e.status, body: e.body };
    throw e;
  }
  throw new Error(`upgrade to ${url} was accepted`);
}
