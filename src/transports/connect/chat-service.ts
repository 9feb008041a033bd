/**
 * ChatService (proto/relay/v1/relay.proto) over Connect, gRPC-Web and, for Chat, full-duplex
 * streams. Subscribe and Chat hold a bridge socket to the room (like SSE); Publish, History and
 * Presence call the room over RPC. The room never learns which protocol a client speaks.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Env } from "../../config";
import { readLimits } from "../../config";
import { type Result, unwrap } from "../../errors";
import {
  type ChatEvent,
  ChatEventSchema,
  type ChatMessage,
  type ChatService,
  ClientFrameSchema,
  HistoryResponseSchema,
  PresenceResponseSchema,
  PublishResponseSchema,
} from "../../gen/relay/v1/relay_pb";
import { toChatEvent } from "../../protocol/events";
import { utf8Length } from "../../room/publish";
import { isRoomName } from "../../room-name";
import { openRoomSocket, roomStub } from "../../worker/room-client";
import { toConnectError } from "./errors";
import { roomFrames } from "./room-stream";

/** The Worker's env and what the Hono route learned of the request, for the handlers. */
export interface CallEnv {
  env: Env;
  /** True when the client's connection can carry a full-duplex stream (HTTP/2, or HTTP/1.1 by setting). */
  fullDuplex: boolean;
}

export const callEnvKey = createContextKey<CallEnv | undefined>(undefined, { description: "relay call env" });

function callEnv(ctx: HandlerContext): CallEnv {
  const value = ctx.values.get(callEnvKey);
  if (!value) throw new ConnectError("handler called without the relay's context", Code.Internal);
  return value;
}

function checkRoom(room: string): string {
  if (!isRoomName(room)) {
    throw new ConnectError("room names are 1-64 characters of A-Z a-z 0-9 . _ ~ -", Code.InvalidArgument);
  }
  return room;
}

/** {@link unwrap}, with the room's error in Connect terms. */
function unwrapForConnect<T>(r: Result<T>): T {
  try {
    return unwrap(r);
  } catch (e) {
    throw toConnectError(e);
  }
}

function offset(n: bigint, name: string): number {
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new ConnectError(`${name} is out of range`, Code.OutOfRange);
  return Number(n);
}

const heartbeat = (room: string): ChatEvent =>
  create(ChatEventSchema, { room, kind: "heartbeat", timeMs: BigInt(Date.now()) });

/** Events of a bridge socket as ChatEvents: heartbeats when idle; Chat's refusals as "error" events. */
async function* roomEvents(ws: WebSocket, room: string, signal: AbortSignal, env: Env): AsyncGenerator<ChatEvent> {
  const limits = readLimits(env);
  const frames = roomFrames(ws, {
    signal,
    maxQueued: limits.streamMaxQueuedEvents,
    heartbeatMs: limits.heartbeatMs,
  });
  for await (const f of frames) {
    if (f === null) yield heartbeat(room);
    else if (f.frame.case === "event") yield f.frame.value;
    else if (f.frame.case === "error") {
      const { code, message, id } = f.frame.value;
      yield create(ChatEventSchema, {
        room,
        kind: "error",
        reason: code,
        text: message,
        id,
        timeMs: BigInt(Date.now()),
      });
    }
    // Acks are not part of Chat's stream: the publisher sees its own event like everyone else.
  }
}

export const chatService: ServiceImpl<typeof ChatService> = {
  async *subscribe(req, ctx) {
    const { env } = callEnv(ctx);
    const room = checkRoom(req.room);
    const ws = await openRoomSocket(
      env,
      room,
      {
        transport: "connect",
        since: req.since === undefined ? undefined : offset(req.since, "since"),
        epoch: req.epoch || undefined,
      },
      "relay.v1.proto",
    ).catch((e) => {
      throw toConnectError(e);
    });
    yield* roomEvents(ws, room, ctx.signal, env);
  },

  async publish(req, ctx) {
    const { env } = callEnv(ctx);
    const room = checkRoom(req.room);
    const r = unwrapForConnect(await roomStub(env, room).publish(room, { text: req.text, id: req.id, user: req.user }));
    return create(PublishResponseSchema, { event: toChatEvent(r.event), duplicate: r.duplicate });
  },

  async history(req, ctx) {
    const { env } = callEnv(ctx);
    const room = checkRoom(req.room);
    const page = unwrapForConnect(await roomStub(env, room).history(room, offset(req.since, "since"), req.limit));
    return create(HistoryResponseSchema, {
      events: page.events.map(toChatEvent),
      epoch: page.epoch,
      firstSeq: BigInt(page.firstSeq),
      lastSeq: BigInt(page.lastSeq),
      hasMore: page.hasMore,
    });
  },

  async presence(req, ctx) {
    const { env } = callEnv(ctx);
    const room = checkRoom(req.room);
    const members = await roomStub(env, room).presence();
    return create(PresenceResponseSchema, {
      room,
      members: members.map((m) => ({ user: m.user, transport: m.transport, connectedAtMs: BigInt(m.connectedAtMs) })),
    });
  },

  /**
   * Two-way chat. The first message names the room (its text may be empty: a join); each message
   * with text is published through the same bridge socket, so it is rate-limited and ordered like a
   * WebSocket client's. The stream ends when the client ends its side; the last events the room
   * sent before that may not be delivered.
   */
  async *chat(requests: AsyncIterable<ChatMessage>, ctx) {
    const { env, fullDuplex } = callEnv(ctx);
    if (!fullDuplex) {
      throw new ConnectError(
        "Chat needs a full-duplex stream (HTTP/2); over HTTP/1.1 use Subscribe to receive and Publish to send",
        Code.FailedPrecondition,
      );
    }
    const it = requests[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done) return;
    const room = checkRoom(first.value.room);
    const user = first.value.user || undefined;
    const ws = await openRoomSocket(env, room, { transport: "connect", user }, "relay.v1.proto").catch((e) => {
      throw toConnectError(e);
    });
    const { maxMessageBytes } = readLimits(env);
    const send = (m: ChatMessage) => {
      if (m.room && m.room !== room) throw new ConnectError("one Chat stream is one room", Code.InvalidArgument);
      if (m.message === "") return;
      // Ends the call here, as a WebSocket is closed with 1009, rather than through the room's close
      // of the bridge socket, which reaches this side late (or, seen under wrangler dev, not at all).
      if (utf8Length(m.message) > maxMessageBytes) {
        throw new ConnectError(`message larger than ${maxMessageBytes} bytes`, Code.ResourceExhausted);
      }
      const frame = create(ClientFrameSchema, {
        frame: { case: "publish", value: { text: m.message, id: m.id, user: m.user } },
      });
      ws.send(toBinary(ClientFrameSchema, frame));
    };
    // Read the client's messages while events stream out. The end of the client's side (or a
    // message refused here) ends the event stream at once: it does not wait for the bridge socket's
    // close to come back from the room.
    const done = new AbortController();
    ctx.signal.addEventListener("abort", () => done.abort());
    const pump = (async () => {
      send(first.value);
      for (let r = await it.next(); !r.done; r = await it.next()) send(r.value);
    })();
    const stopped = pump.finally(() => done.abort());
    stopped.catch(() => {});
    yield* roomEvents(ws, room, done.signal, env);
    await stopped;
  },
};
