/**
 * RoomSubscription: the one Worker-side room subscription, below the SSE and Connect transports
 * and above the room. It opens a bridge socket to the room in the transport's own format (so a
 * batch of events arrives as the exact bytes the transport writes, and crosses the Worker as one
 * write, never parsed), answers the room's flow-control pings once the client's stream has taken
 * everything before them (so the room's one slow-consumer bound covers streams too), writes
 * heartbeats while idle, and ends with one {@link Disconnect} that each transport renders in its
 * own terms.
 *
 * Every subscriber is a hibernatable WebSocket on the room, the bridge included, so a room with
 * only SSE and Connect listeners can still hibernate: an HTTP stream served from the Durable
 * Object itself would keep it awake and billed (docs/runtime-notes.md).
 */
import { fromJsonString } from "@bufbuild/protobuf";
import { type Disconnect, disconnect, disconnectFromClose, type ErrorCode, type ErrorData } from "../errors";
import { ServerFrameSchema } from "../gen/relay/v1/relay_pb";
import { closeSocket } from "../protocol/close";
import { type BridgeFormat, encodeClientFrame } from "../protocol/formats";
import type { Settings } from "../settings";
import { joinBytes } from "./byte-stream";
import type { Env } from "./env";
import { openBridge, type SubscribeRequest } from "./room-client";

/** Where a subscription's bytes go: the transport's response stream. */
export interface SubscriptionSink {
  /** Writes one room frame (or a heartbeat) as it is; resolves once the client's stream has taken it. */
  write(bytes: Uint8Array): Promise<unknown>;
  /** What to write when nothing was written for a heartbeat interval. */
  heartbeat(): Uint8Array;
  /** The room refused something this subscription published (Chat). */
  refused?(error: ErrorData & { id: string }): void;
}

export class RoomSubscription {
  readonly #ws: WebSocket;
  readonly #settings: Settings;

  private constructor(ws: WebSocket, settings: Settings) {
    this.#ws = ws;
    this.#settings = settings;
  }

  /**
   * Opens a subscription. Fails (a RelayError: a bad resume point, a full room) before anything
   * is written, so the transport can still answer in its own terms.
   */
  static async open(
    env: Env,
    settings: Settings,
    request: SubscribeRequest & { format: BridgeFormat },
  ): Promise<RoomSubscription> {
    return new RoomSubscription(await openBridge(env, request), settings);
  }

  /** Publishes through the subscription's socket (Chat): ordered and rate-limited like a WebSocket client's publish. */
  publish(message: { text: string; id?: string; user?: string }): void {
    try {
      this.#ws.send(encodeClientFrame({ publish: message }));
    } catch {
      // The room has closed the socket: run() ends with its reason.
    }
  }

  /**
   * Streams the room into `sink` until the subscription ends: `signal` aborts (the client went
   * away, or the transport ended it: `undefined`), the room closes it (its reason), or the client
   * took nothing for a whole heartbeat interval while bytes were waiting (`too_slow`: a stalled or
   * vanished client). The room's bridge socket is closed on the way out.
   */
  run(sink: SubscriptionSink, signal: AbortSignal): Promise<Disconnect | undefined> {
    const ws = this.#ws;
    const heartbeatMs = this.#settings.heartbeatMs;
    let lastWriteAt = Date.now();
    let lastProgressAt = Date.now();
    // One write at a time: frames that arrive while one is under way are joined into the next,
    // so a client that is slower than the room gets fewer, larger writes.
    let writing = false;
    const waiting: Uint8Array[] = [];
    const drainers: (() => void)[] = [];
    const start = (bytes: Uint8Array) => {
      writing = true;
      sink.write(bytes).then(() => {
        lastProgressAt = Date.now();
        if (waiting.length > 0) return start(joinBytes(waiting.splice(0)));
        writing = false;
        for (const done of drainers.splice(0)) done();
      });
    };
    const write = (bytes: Uint8Array) => {
      lastWriteAt = Date.now();
      if (writing) waiting.push(bytes);
      else start(bytes);
    };
    /** Resolves once the client has taken everything written so far. */
    const drained = () => (writing ? new Promise<void>((resolve) => drainers.push(resolve)) : Promise.resolve());
    return new Promise<Disconnect | undefined>((resolve) => {
      let ended = false;
      let timer: ReturnType<typeof setInterval> | undefined;
      const end = (why: Disconnect | undefined, flushFirst = true) => {
        if (ended) return;
        ended = true;
        if (timer !== undefined) clearInterval(timer);
        signal.removeEventListener("abort", onAbort);
        closeSocket(ws, 1000, "stream ended");
        // Whatever the room sent before it ended goes out before the end is told (for as long
        // as a heartbeat interval: a client that takes nothing meanwhile is not waited for).
        if (!flushFirst) return resolve(why);
        const stop = new Promise((r) => setTimeout(r, heartbeatMs));
        Promise.race([drained(), stop]).then(() => resolve(why));
      };
      const onAbort = () => end(undefined, false);
      ws.addEventListener("message", (m) => {
        if (ended) return;
        if (m.data instanceof ArrayBuffer) return write(new Uint8Array(m.data));
        // A control frame (ServerFrame JSON): a ping to answer once everything before it is
        // written, or an error answering a publish.
        const frame = fromJsonString(ServerFrameSchema, m.data as string);
        if (frame.frame.case === "ping") {
          const id = Number(frame.frame.value.id);
          drained().then(() => {
            if (!ended) ws.send(encodeClientFrame({ pong: id }));
          });
        } else if (frame.frame.case === "error") {
          const { code, message, id } = frame.frame.value;
          sink.refused?.({ code: code as ErrorCode, message, id });
        }
      });
      ws.addEventListener("close", (e) => end(disconnectFromClose(e.code, e.reason)));
      ws.addEventListener("error", () => end(disconnect("going_away", "the room's stream failed")));
      if (signal.aborted) return end(undefined, false);
      signal.addEventListener("abort", onAbort);
      // Heartbeats keep proxies from closing an idle stream and make the runtime notice a client
      // that has gone (it does so only when it writes). They never reach the room, so they do
      // not keep it from hibernating.
      timer = setInterval(() => {
        const now = Date.now();
        if (writing && now - lastProgressAt >= heartbeatMs) {
          return end(disconnect("too_slow", `the client took nothing for ${heartbeatMs / 1000} s`), false);
        }
        if (now - lastWriteAt >= heartbeatMs) write(sink.heartbeat());
      }, heartbeatMs);
    });
  }
}
