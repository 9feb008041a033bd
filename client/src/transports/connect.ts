/**
 * Connect-RPC: relay.v1.ChatService Subscribe (server streaming) for events, Publish, History and
 * Presence as unary calls, over @connectrpc/connect-web's fetch transport (which also works in
 * Node 20, whose fetch streams responses). Binary protobuf on the wire. A token goes in
 * `Authorization: Bearer`. Connect codes are coarser than the relay's (resource_exhausted is
 * too_large and rate_limited alike; unauthenticated is also token_expired), so every error the relay
 * sends carries its own code as `Relay-Error-Code` metadata, which decides whether to retry.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { retryable } from "../core/codes.js";
import { RelayError } from "../core/errors.js";
import { type ChatEvent, ChatService, type PresenceMember } from "../gen/relay/v1/relay_pb.js";
import type { Member } from "../types.js";
import { streamLife, type Transport, type TransportConfig, type Wire } from "./transport.js";

const member = (m: PresenceMember): Member => ({
  user: m.user,
  connections: m.connections,
  transports: m.transports,
  connectedAtMs: Number(m.connectedAtMs),
});

function wire(e: ChatEvent): Wire {
  return {
    kind: e.kind,
    room: e.room,
    seq: Number(e.seq),
    epoch: e.epoch,
    id: e.id,
    user: e.user,
    timeMs: Number(e.timeMs),
    text: e.text,
    firstSeq: Number(e.firstSeq),
    lastSeq: Number(e.lastSeq),
    reason: e.reason,
    resumeAfter: Number(e.resumeAfter),
    member: e.member && member(e.member),
  };
}

/** The relay's own code on every error it sends (Connect's codes are coarser; see src/transports/connect/errors.ts). */
const ERROR_CODE_KEY = "Relay-Error-Code";

/** A Connect error in the relay's terms: its code (the relay says it; else from Connect's) and whether to retry. */
export function fromConnectError(e: unknown): RelayError {
  const err = ConnectError.from(e);
  const m = err.rawMessage;
  const code =
    err.metadata.get(ERROR_CODE_KEY) ??
    (() => {
      switch (err.code) {
        case Code.InvalidArgument:
          return "invalid_argument";
        case Code.ResourceExhausted:
          return "rate_limited";
        case Code.Unauthenticated:
          return "unauthenticated";
        case Code.PermissionDenied:
          return "permission_denied";
        case Code.NotFound:
        case Code.Unimplemented:
          return "not_found";
        case Code.FailedPrecondition:
          return "upgrade_required";
        case Code.Unavailable:
          return "going_away";
        case Code.DeadlineExceeded:
          return "deadline_exceeded";
        case Code.Internal:
          return "internal";
        default:
          // Unknown, Canceled, ...: a connection that broke.
          return "network";
      }
    })();
  return new RelayError(code, m, retryable(code));
}

export function connectTransport(c: TransportConfig): Transport {
  const rpc = createClient(
    ChatService,
    createConnectTransport({ baseUrl: c.base.replace(/\/$/, ""), fetch: c.fetch, useBinaryFormat: true }),
  );
  const auth = (token?: string): { headers: Record<string, string> } => ({
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      throw fromConnectError(e);
    }
  };
  return {
    name: "connect",
    publish: (input, token) =>
      call(async () => {
        const r = await rpc.publish({ room: c.room, ...input, user: input.user ?? "" }, auth(token));
        if (!r.event) throw new RelayError("internal", "a Publish answer without its event", true);
        return { event: wire(r.event), duplicate: r.duplicate };
      }),
    history: (since, limit, token) =>
      call(async () => {
        const r = await rpc.history({ room: c.room, since: BigInt(since), limit }, auth(token));
        return {
          events: r.events.map((e) => {
            const w = wire(e);
            return { room: w.room, seq: w.seq, epoch: w.epoch, id: w.id, user: w.user, timeMs: w.timeMs, text: w.text };
          }),
          epoch: r.epoch,
          firstSeq: Number(r.firstSeq),
          lastSeq: Number(r.lastSeq),
          hasMore: r.hasMore,
        };
      }),
    presence: (token) => call(async () => (await rpc.presence({ room: c.room }, auth(token))).members.map(member)),
    open(p, sink) {
      const life = streamLife(sink);
      const { finish } = life;
      let opened = false;
      (async () => {
        try {
          const stream = rpc.subscribe(
            {
              room: c.room,
              since: p.since === undefined ? undefined : BigInt(p.since),
              epoch: p.epoch ?? "",
              presence: p.presence,
              user: p.user ?? "",
            },
            { ...auth(p.token), signal: life.signal },
          );
          for await (const e of stream) {
            if (life.done()) return;
            life.poke();
            opened = true;
            sink.events([wire(e)]);
          }
          finish({ code: "closed", message: "the stream ended", reconnect: true });
        } catch (e) {
          const err = fromConnectError(e);
          finish({ code: err.code, message: err.message, reconnect: err.retryable, beforeOpen: !opened });
        }
      })();
      return { close: life.close };
    },
  };
}
