/**
 * The relay's JSON (protobuf JSON mapping: 64-bit integers as strings, defaults omitted) as the
 * client's plain types. Only `import type` from the generated code: the WebSocket entry must not
 * pull in the protobuf runtime.
 */
import type { ChatEventJson, PresenceMemberJson } from "../gen/relay/v1/relay_pb.js";
import type { Wire } from "../transports/transport.js";
import type { Member, RelayEvent } from "../types.js";

const num = (v: string | number | bigint | undefined) => (v ? Number(v) : 0);

export function memberFromJson(m: PresenceMemberJson): Member {
  return {
    user: m.user ?? "",
    connections: m.connections ?? 0,
    transports: m.transports ?? [],
    connectedAtMs: num(m.connectedAtMs),
  };
}

export function wireFromJson(e: ChatEventJson): Wire {
  return {
    kind: e.kind ?? "",
    room: e.room ?? "",
    seq: num(e.seq),
    epoch: e.epoch ?? "",
    id: e.id ?? "",
    user: e.user ?? "",
    timeMs: num(e.timeMs),
    text: e.text ?? "",
    firstSeq: num(e.firstSeq),
    lastSeq: num(e.lastSeq),
    reason: e.reason ?? "",
    resumeAfter: num(e.resumeAfter),
    member: e.member && memberFromJson(e.member),
  };
}

/** The public face of a message event: only its log fields. */
export function relayEvent(w: Wire): RelayEvent {
  return { room: w.room, seq: w.seq, epoch: w.epoch, id: w.id, user: w.user, timeMs: w.timeMs, text: w.text };
}
