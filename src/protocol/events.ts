/**
 * Events as the room hands them to every format: plain data ({@link EventData}) and its one
 * schema, `relay.v1.ChatEvent`, in the protobuf JSON mapping or binary encoding. An
 * {@link EncodedEvent} encodes an event at most once per encoding, however many subscribers and
 * formats it goes to.
 */
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { type ChatEvent, ChatEventSchema, type PresenceMember, PresenceMemberSchema } from "../gen/relay/v1/relay_pb";

/** What an event is; see ChatEvent.kind in proto/relay/v1/relay.proto. */
export type EventKind = "message" | "subscribed" | "gap" | "heartbeat" | "error" | "join" | "leave";

/** One user connected to a room, with all their connections: relay.v1.PresenceMember as plain data. */
export interface MemberData {
  user: string;
  /** When the user's earliest open connection opened. */
  connectedAtMs: number;
  connections: number;
  /** Each once, sorted. */
  transports: string[];
}

/** Why a resume cannot deliver what was asked; see ChatEvent.reason. */
export type GapReason = "retention" | "epoch" | "ahead";

/**
 * An event as plain data: what crosses the Worker ↔ Durable Object RPC boundary and what the
 * room fans out. Numbers, not bigints: offsets and times stay far below 2^53.
 */
export interface EventData {
  room: string;
  seq: number;
  epoch: string;
  id: string;
  user: string;
  timeMs: number;
  kind: EventKind;
  text: string;
  firstSeq?: number;
  lastSeq?: number;
  reason?: string;
  /** On `subscribed` and `gap`: the offset to resume after. */
  resumeAfter?: number;
  /** On `join` and `leave`: who, with their connections after the change. */
  member?: MemberData;
}

/** The protobuf message for a member. */
export function toPresenceMember(m: MemberData): PresenceMember {
  return create(PresenceMemberSchema, { ...m, connectedAtMs: BigInt(m.connectedAtMs) });
}

/** The protobuf message for an event. */
export function toChatEvent(e: EventData): ChatEvent {
  return create(ChatEventSchema, {
    room: e.room,
    seq: BigInt(e.seq),
    epoch: e.epoch,
    id: e.id,
    user: e.user,
    timeMs: BigInt(e.timeMs),
    kind: e.kind,
    text: e.text,
    firstSeq: BigInt(e.firstSeq ?? 0),
    lastSeq: BigInt(e.lastSeq ?? 0),
    reason: e.reason ?? "",
    resumeAfter: BigInt(e.resumeAfter ?? 0),
    member: e.member && toPresenceMember(e.member),
  });
}

/** The event in the protobuf JSON mapping (default values omitted), as SSE `data:` and HTTP send it. */
export function eventJson(e: EventData): string {
  if (e.member !== undefined) return toJsonString(ChatEventSchema, toChatEvent(e));
  // Written out, in field order, as protobuf-es writes it (JSON.stringify of the same strings; a
  // 64-bit integer as a decimal string): every event of every transport is one, and this skips
  // building a message to reflect over (test/worker/formats.test.ts compares the two).
  let j = "";
  if (e.room) j += `,"room":${JSON.stringify(e.room)}`;
  if (e.seq) j += `,"seq":"${int64(e.seq)}"`;
  if (e.epoch) j += `,"epoch":${JSON.stringify(e.epoch)}`;
  if (e.id) j += `,"id":${JSON.stringify(e.id)}`;
  if (e.user) j += `,"user":${JSON.stringify(e.user)}`;
  if (e.timeMs) j += `,"timeMs":"${int64(e.timeMs)}"`;
  if (e.kind) j += `,"kind":${JSON.stringify(e.kind)}`;
  if (e.text) j += `,"text":${JSON.stringify(e.text)}`;
  if (e.firstSeq) j += `,"firstSeq":"${int64(e.firstSeq)}"`;
  if (e.lastSeq) j += `,"lastSeq":"${int64(e.lastSeq)}"`;
  if (e.reason) j += `,"reason":${JSON.stringify(e.reason)}`;
  if (e.resumeAfter) j += `,"resumeAfter":"${int64(e.resumeAfter)}"`;
  return j === "" ? "{}" : `{${j.slice(1)}}`;
}

/** A 64-bit integer field's JSON digits (what BigInt(v) gives, as toChatEvent converts it). */
function int64(v: number): string {
  return Number.isSafeInteger(v) ? String(v) : String(BigInt(v));
}

const utf8 = new TextEncoder();

/** An event with its encodings, each made on first use and then shared. */
export class EncodedEvent {
  #json?: string;
  #jsonBytes?: Uint8Array;
  #proto?: Uint8Array;

  constructor(readonly data: EventData) {}

  /** The protobuf JSON mapping. */
  get json(): string {
    this.#json ??= eventJson(this.data);
    return this.#json;
  }

  /** The JSON mapping as UTF-8. */
  get jsonBytes(): Uint8Array {
    this.#jsonBytes ??= utf8.encode(this.json);
    return this.#jsonBytes;
  }

  /** The protobuf binary encoding. */
  get proto(): Uint8Array {
    this.#proto ??= toBinary(ChatEventSchema, toChatEvent(this.data));
    return this.#proto;
  }

  /** The offset a reader resumes after once it has this event (SSE `id:`); undefined when it moves nothing. */
  get resumeId(): number | undefined {
    const d = this.data;
    if (d.kind === "message") return d.seq;
    if (d.kind === "subscribed" || d.kind === "gap") return d.resumeAfter;
    return undefined;
  }
}
