/**
 * ChatService's unary methods (Publish, History, Presence), served by @connectrpc/connect's own
 * handlers over Connect and gRPC-Web; each admits its caller (the request's Bearer token) and
 * calls the room over RPC. (Subscribe and Chat stream
 * through the edge subscription: see streaming-calls.ts.)
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Action, Principal } from "../../auth/rights";
import { admit } from "../../edge/caller";
import type { Env } from "../../edge/env";
import { roomStub } from "../../edge/room-client";
import { type Result, unwrap } from "../../errors";
import {
  type ChatService,
  HistoryResponseSchema,
  PresenceResponseSchema,
  PublishResponseSchema,
} from "../../gen/relay/v1/relay_pb";
import { toChatEvent } from "../../protocol/events";
import { parseOffset, parseRoomName, type RoomName } from "../../protocol/rules";
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

/** The caller, admitted for `action` in `room`, or the refusal in Connect terms. */
async function admitted(call: CallContext, action: Action, room: RoomName): Promise<Principal> {
  try {
    return await admit(call.request, call.settings, action, room);
  } catch (e) {
    throw toConnectError(e);
  }
}

/** Runs a room call, with the relay's errors (a bad argument, the room's own refusals) in Connect terms. */
async function inConnectTerms<T>(fn: () => Promise<Result<T>>): Promise<T> {
  try {
    return unwrap(await fn());
  } catch (e) {
    throw toConnectError(e);
  }
}

function room(name: string): RoomName {
  try {
    return parseRoomName(name);
  } catch (e) {
    throw toConnectError(e);
  }
}

export const unaryService: Partial<ServiceImpl<typeof ChatService>> = {
  async publish(req, ctx) {
    const name = room(req.room);
    const call = callOf(ctx);
    const who = await admitted(call, "publish", name);
    const r = await inConnectTerms(() =>
      roomStub(call.env, name).publish(name, { text: req.text, id: req.id, user: req.user }, who),
    );
    return create(PublishResponseSchema, { event: toChatEvent(r.event), duplicate: r.duplicate });
  },

  async history(req, ctx) {
    const name = room(req.room);
    const call = callOf(ctx);
    await admitted(call, "subscribe", name);
    const page = await inConnectTerms(async () =>
      roomStub(call.env, name).history(name, parseOffset(req.since, "since") ?? 0, req.limit),
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
    const name = room(req.room);
    const call = callOf(ctx);
    await admitted(call, "presence", name);
    const members = await roomStub(call.env, name).presence();
    return create(PresenceResponseSchema, {
      room: name,
      members: members.map((m) => ({ user: m.user, transport: m.transport, connectedAtMs: BigInt(m.connectedAtMs) })),
    });
  },
};
