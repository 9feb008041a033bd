/**
 * A room subscription as an async iterable of ServerFrames, read from a bridge socket in
 * `relay.v1.proto` mode. The queue between the socket and the consumer is bounded: a client this
 * far behind gets `resource_exhausted` and resubscribes from its last offset. While the queue is
 * empty for `heartbeatMs`, a `null` is yielded so the caller can write a heartbeat (the Worker
 * notices a vanished client only when it writes, ../shared/TOOLCHAIN.md).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ServerFrame, ServerFrameSchema } from "../../gen/relay/v1/relay_pb";

export interface RoomStreamOptions {
  signal: AbortSignal;
  maxQueued: number;
  heartbeatMs: number;
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
    queue.push(fromBinary(ServerFrameSchema, new Uint8Array(m.data)));
    wake();
  });
  ws.addEventListener("close", (e) => {
    // The room closes a bridge only on shutdown or error: the client should resubscribe.
    end(e.code === 1000 ? undefined : new ConnectError(`room closed the stream (${e.code})`, Code.Unavailable));
  });
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
