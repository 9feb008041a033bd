/**
 * ChatService's streaming methods, each a thin face over one edge subscription (RoomSubscription):
 * - Subscribe: one request message, then the room's events as they come (replay after `since`
 *   first); the subscription's end is the call's end, with the table's Connect code;
 * - Chat: the same stream, while every message the client sends is published through the
 *   subscription's socket. Needs a full-duplex stream (HTTP/2; HTTP/1.1 only by setting).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import { readBody } from "../../edge/body";
import { admit } from "../../edge/caller";
import type { Env } from "../../edge/env";
import { regionOf } from "../../edge/region";
import { RoomSubscription, type SubscriptionSink } from "../../edge/subscription";
import { RelayError } from "../../errors";
import {
  ChatEventSchema,
  type ChatMessage,
  ChatMessageSchema,
  SubscribeRequestSchema,
} from "../../gen/relay/v1/relay_pb";
import { parseRoomName, parseUser } from "../../protocol/rules";
import type { Settings } from "../../settings";
import { disconnectError, toConnectError } from "./errors";
import {
  checkCallHeaders,
  envelope,
  refusal,
  requestMessages,
  type StreamProtocol,
  streamResponse,
  type WriteBytes,
} from "./stream-call";

/** Bytes an enveloped request message may have: a frame and its envelope. */
const envelopeBytes = (s: Settings) => s.maxFrameBytes + 5;

function sink(p: StreamProtocol, room: string, write: WriteBytes): SubscriptionSink {
  const event = (e: MessageInitShape<typeof ChatEventSchema>) =>
    envelope(p, ChatEventSchema, create(ChatEventSchema, { room, timeMs: BigInt(Date.now()), ...e }));
  return {
    write,
    heartbeat: () => event({ kind: "heartbeat" }),
    // Chat: a refused message comes back as an "error" event and the stream goes on.
    refused: (err) => void write(event({ kind: "error", reason: err.code, text: err.message, id: err.id })),
  };
}

/** A signal that also fires after the client's deadline (Connect-Timeout-Ms, grpc-timeout), telling which. */
function withDeadline(
  signal: AbortSignal,
  timeoutMs: number | undefined,
): { signal: AbortSignal; expired: () => boolean } {
  if (timeoutMs === undefined) return { signal, expired: () => false };
  const ac = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    ac.abort();
  }, timeoutMs);
  signal.addEventListener("abort", () => {
    clearTimeout(timer);
    ac.abort();
  });
  return { signal: ac.signal, expired: () => expired };
}

const deadlineError = () => toConnectError(new RelayError("deadline_exceeded", "the call's deadline passed"));

export async function subscribeCall(req: Request, env: Env, settings: Settings, p: StreamProtocol): Promise<Response> {
  let sub: RoomSubscription;
  let room: string;
  let timeoutMs: number | undefined;
  try {
    ({ timeoutMs } = checkCallHeaders(p, req.headers));
    const body = await readBody(req, { maxBytes: envelopeBytes(settings), timeoutMs: settings.bodyTimeoutMs });
    const all = [];
    for await (const m of requestMessages(
      createAsyncIterable([body]),
      SubscribeRequestSchema,
      p.binary,
      envelopeBytes(settings),
    )) {
      all.push(m);
    }
    if (all.length !== 1) throw new RelayError("invalid_argument", "Subscribe takes exactly one request message");
    const request = all[0];
    const name = parseRoomName(request.room);
    room = name;
    sub = await RoomSubscription.open(env, settings, {
      room: name,
      via: "connect",
      since: request.since,
      epoch: request.epoch,
      format: p.format,
      who: await admit(req, settings, "subscribe", name, {
        name: parseUser(request.user),
        also: request.presence ? "presence" : undefined,
      }),
      presence: request.presence,
      region: regionOf(req, settings),
    });
  } catch (e) {
    return refusal(p, toConnectError(e));
  }
  return streamResponse(
    p,
    async (write, signal) => {
      const deadline = withDeadline(signal, timeoutMs);
      const why = await sub.run(sink(p, room, write), deadline.signal);
      if (deadline.expired()) return deadlineError();
      return why ? disconnectError(why) : undefined;
    },
    req.signal,
  );
}

export function chatCall(req: Request, env: Env, settings: Settings, p: StreamProtocol): Response {
  let timeoutMs: number | undefined;
  try {
    ({ timeoutMs } = checkCallHeaders(p, req.headers));
  } catch (e) {
    return refusal(p, toConnectError(e));
  }
  const messages = requestMessages(
    (req.body as AsyncIterable<Uint8Array> | null) ?? createAsyncIterable([]),
    ChatMessageSchema,
    p.binary,
    envelopeBytes(settings),
  )[Symbol.asyncIterator]();
  return streamResponse(
    p,
    async (write, signal) => {
      const deadline = withDeadline(signal, timeoutMs);
      let sub: RoomSubscription;
      let room: string;
      let first: IteratorResult<ChatMessage>;
      try {
        // The first message names the room (its text may be empty: a join).
        first = await messages.next();
        if (first.done) return undefined;
        const name = parseRoomName(first.value.room);
        room = name;
        // Publishing rights are the room's to check, message by message (a refused one is an
        // "error" event); joining needs `subscribe`.
        sub = await RoomSubscription.open(env, settings, {
          room: name,
          via: "connect",
          format: p.format,
          who: await admit(req, settings, "subscribe", name, { name: parseUser(first.value.user) }),
          region: regionOf(req, settings),
        });
      } catch (e) {
        return toConnectError(e);
      }
      // Read the client's messages while events stream out. The end of the client's side (or a
      // message refused here) ends the call at once.
      const done = new AbortController();
      deadline.signal.addEventListener("abort", () => done.abort());
      let failure: ConnectError | undefined;
      (async () => {
        for (let m: IteratorResult<ChatMessage> = first; !m.done; m = await messages.next()) {
          if (m.value.room && m.value.room !== room) {
            throw new RelayError("invalid_argument", "one Chat stream is one room");
          }
          if (m.value.message !== "") sub.publish({ text: m.value.message, id: m.value.id, user: m.value.user });
        }
      })()
        .catch((e) => {
          failure = toConnectError(e);
        })
        .finally(() => done.abort());
      const why = await sub.run(sink(p, room, write), done.signal);
      if (deadline.expired()) return deadlineError();
      if (failure) return failure;
      // The room ended it: stop reading the client's side.
      if (why) void messages.return?.();
      return why ? disconnectError(why) : undefined;
    },
    req.signal,
  );
}
