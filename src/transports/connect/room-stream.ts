/**
 * A room subscription as an async iterable of ServerFrames, read from a bridge socket in
 * `relay.v1.proto` mode. The queue between the socket and the consumer is bounded: a client this
 * far behind gets `resource_exhausted` and resubscribes from its last offset. While the queue is
 * empty for `heartbeatMs`, a `null` is yielded so the caller can write a heartbeat (the Worker
 * notices a vanished client only when it writes, ../shared/TOOLCHAIN.md).
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ServerFrame, ServerFrameSchema } from "../../gen/relay/v1/relay_pb";
import { CLOSE_CODE, REPLAY_CONTINUE } from "../../protocol/close-codes";

export interface RoomStreamOptions {
  signal: AbortSignal;
  maxQueued: number;
  heartbeatMs: number;
}

/** How a room's close of the bridge socket reaches a Connect client (close codes: protocol/close-codes.ts). */
function closeError(code: number, reason: string): ConnectError | undefined {
  if (code === 1000) return undefined;
  if (code === 1009) return new ConnectError(reason || "message too large", Code.ResourceExhausted);
  if (code === 1008) return new ConnectError(reason || "not allowed", Code.PermissionDenied);
  if (code === CLOSE_CODE.room_full) return new ConnectError(reason || "room full", Code.ResourceExhausted);
  if (code === REPLAY_CONTINUE) return new ConnectError(reason, Code.Unavailable); // resubscribe from the last seq
  // Shutdown or failure of the room: resubscribe from the last seq.
  return new ConnectError(`room closed the stream (${code} ${reason})`, Code.Unavailable);
}

export async function* roomFrames(ws: WebSocket, o: RoomStreamOptions): AsyncGenerator<ServerFrame | null> {
  const queue: ServerFrame[] = [];
  let ended = false;
  let failure: ConnectError | undefined;
  let wake = () => {};
  const end = (err?: ConnectError) => {
    ended = true;
    failure ??= err;
    wake();
  };
  ws.addEventListener("message", (m) => {
    if (!(m.data instanceof ArrayBuffer)) return;
    if (queue.length >= o.maxQueued) {
      return end(new ConnectError("client too slow: resubscribe from the last seq", Code.ResourceExhausted));
    }
    const frame = fromBinary(ServerFrameSchema, new Uint8Array(m.data));
    // A batch (events published together) is its events, one frame each, in order.
    if (frame.frame.case === "batch") {
      for (const value of frame.frame.value.events) {
        queue.push(create(ServerFrameSchema, { frame: { case: "event", value } }));
      }
    } else queue.push(frame);
    wake();
  });
  ws.addEventListener("close", (e) => end(closeError(e.code, e.reason)));
  ws.addEventListener("error", () => end(new ConnectError("room stream failed", Code.Unavailable)));
  o.signal.addEventListener("abort", () => end());
  try {
    while (true) {
      const frame = queue.shift();
      if (frame) {
        yield frame;
        continue;
      }
      if (ended) break;
      let timer: ReturnType<typeof setTimeout> | null = null;
      const beat = await new Promise<boolean>((resolve) => {
        wake = () => resolve(false);
        timer = setTimeout(() => resolve(true), o.heartbeatMs);
      });
      clearTimeout(timer);
      if (beat && queue.length === 0 && !ended) yield null;
    }
    if (failure) throw failure;
  } finally {
    try {
      ws.close(1000, "stream ended");
    } catch {
      // Already closed.
    }
  }
}
