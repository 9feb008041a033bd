/**
 * ChatService's unary methods (Publish, History, Presence), served by @connectrpc/connect's own
 * handlers over Connect and gRPC-Web; each calls the room over RPC. (Subscribe and Chat stream
 * through the edge subscription: see streaming-calls.ts.)
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
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
import { toConnectError } from "./errors";

/** What a handler needs from the Worker: its bindings. */
export const envKey = createContextKey<Env | undefined>(undefined, { description: "relay env" });

function envOf(ctx: HandlerContext): Env {
  const env = ctx.values.get(envKey);
  if (!env) throw new ConnectError("handler called without the relay's env", Code.Internal);
  return env;
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
    const r = await inConnectTerms(() =>
      roomStub(envOf(ctx), name).publish(name, { text: req.text, id: req.id, user: req.user }),
    );
    return create(PublishResponseSchema, { event: toChatEvent(r.event), duplicate: r.duplicate });
  },

  async history(req, ctx) {
    const name = room(req.room);
    const page = await inConnectTerms(async () =>
      roomStub(envOf(ctx), name).history(name, parseOffset(req.since, "since") ?? 0, req.limit),
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
    const members = await roomStub(envOf(ctx), name).presence();
    return create(PresenceResponseSchema, {
      room: name,
      members: members.map((m) => ({ user: m.user, transport: m.transport, connectedAtMs: BigInt(m.connectedAtMs) })),
    });
  },
};
