/**
 * ChatService's unary methods (Publish, History, Presence), served by @connectrpc/connect's own
 * handlers over Connect and gRPC-Web; each admits its caller (the request's Bearer token) and
 * calls the room over RPC. (Subscribe and Chat stream through the edge subscription: see
 * streaming-calls.ts.)
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Action } from "../../auth/rights";
import { admit } from "../../edge/caller";
import type { Env } from "../../edge/env";
import { roomPresence, roomStub } from "../../edge/room-client";
import { unwrap } from "../../errors";
import { type ChatService, HistoryResponseSchema, PublishResponseSchema } from "../../gen/relay/v1/relay_pb";
import { toChatEvent } from "../../protocol/events";
import { parseOffset, parseRoomName } from "../../protocol/rules";
import type { Settings } from "../../settings";
import { toConnectError } from "./errors";

/** What a handler needs from the Worker: its bindings, settings, and the request (for its token). */
export interface CallContext {
  env: Env;
  settings: Settings;
  request: Request;
}

export const callKey = createContextKey<CallContext | undefined>(undefined, { description: "relay call" });

function callOf(ctx: HandlerContext): CallContext {
  const call = ctx.values.get(callKey);
  if (!call) throw new ConnectError("handler called without the relay's context", Code.Internal);
  return call;
}

/** Runs `fn` with the relay's errors (a bad argument, a refusal, the room's own) in Connect terms. */
async function inConnectTerms<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toConnectError(e);
  }
}

/** The checked room of a request, and its caller admitted for `action` there. */
function admitted(ctx: HandlerContext, roomName: string, action: Action) {
  const call = callOf(ctx);
  return inConnectTerms(async () => {
    const room = parseRoomName(roomName);
    return { call, room, who: await admit(call.request, call.settings, action, room) };
  });
}

export const unaryService: Partial<ServiceImpl<typeof ChatService>> = {
  async publish(req, ctx) {
    const { call, room, who } = await admitted(ctx, req.room, "publish");
    const r = await inConnectTerms(async () =>
      unwrap(await roomStub(call.env, room).publish(room, { text: req.text, id: req.id, user: req.user }, who)),
    );
    return create(PublishResponseSchema, { event: toChatEvent(r.event), duplicate: r.duplicate });
  },

  async history(req, ctx) {
    const { call, room } = await admitted(ctx, req.room, "subscribe");
    const page = await inConnectTerms(async () =>
      unwrap(await roomStub(call.env, room).history(room, parseOffset(req.since, "since") ?? 0, req.limit)),
    );
    return create(HistoryResponseSchema, {
      events: page.events.map(toChatEvent),
      epoch: page.epoch,
      firstSeq: BigInt(page.firstSeq),
      lastSeq: BigInt(page.lastSeq),
      hasMore: page.hasMore,
    });
  },

  async presence(req, ctx) {
    const { call, room } = await admitted(ctx, req.room, "presence");
    return roomPresence(call.env, room);
  },
};
