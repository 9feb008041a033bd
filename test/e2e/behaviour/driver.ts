/**
 * What every driver implements and shares: the Driver and Subscription interfaces, ends and
 * refusals in the relay's terms, and the helpers the drivers have in common.
 *
 * Every end and refusal is normalised from what the wire said (a close code, an SSE `disconnect`
 * event, a Connect code, an HTTP status and body, an error frame) to the relay's codes through the
 * one table in src/errors.ts, never through a copy of it.
 */
import type { ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { CODES, type ErrorCode } from "../../../src/errors";
import { type ChatEventJson, type DisconnectJson, type ErrorJson, waitFor } from "../clients";

// ---------------------------------------------------------------------------------------------
// Ends and refusals in the relay's terms

/** A relay error code, or a normal end (WebSocket 1000, a Connect stream that ended without error). */
export type EndCode = ErrorCode | "normal";

/** What the wire said, as it said it. */
export interface Wire {
  close?: { code: number; reason: string };
  /** An HTTP status (with the JSON error body's code) answering a request or an upgrade. */
  http?: { status: number; code?: string };
  /** A Connect code name, e.g. "resource_exhausted". */
  connect?: string;
  /** The data of an SSE `disconnect` event. */
  disconnect?: DisconnectJson;
  /** An error frame (WebSocket). */
  errorFrame?: ErrorJson;
}

/** How a subscription ended, or why a request was refused. */
export interface End {
  /** The relay codes the wire can mean: one, but several for a Connect code that several relay codes share. */
  codes: EndCode[];
  /** Whether the client may reconnect: what the wire said (SSE), else the table's answer when the codes agree. */
  reconnect?: boolean;
  message: string;
  wire: Wire;
}

const ALL_CODES = Object.keys(CODES) as ErrorCode[];

function reconnectOf(codes: EndCode[]): boolean | undefined {
  const answers = new Set(codes.map((c) => (c === "normal" ? undefined : CODES[c].reconnect)));
  return answers.size === 1 ? [...answers][0] : undefined;
}

function isErrorCode(code: string | undefined): code is ErrorCode {
  return code !== undefined && code in CODES;
}

export function endFromClose(code: number, reason: string): End {
  const codes: EndCode[] = code === 1000 ? ["normal"] : ALL_CODES.filter((c) => CODES[c].close === code);
  return { codes, reconnect: reconnectOf(codes), message: reason, wire: { close: { code, reason } } };
}

export function endFromHttp(status: number, body: unknown): End {
  const error = (body as { error?: ErrorJson } | null)?.error;
  const codes = isErrorCode(error?.code) && CODES[error.code].http === status ? [error.code] : [];
  return {
    codes,
    reconnect: reconnectOf(codes),
    message: error?.message ?? String(body),
    wire: { http: { status, code: error?.code } },
  };
}

export function endFromDisconnect(d: DisconnectJson): End {
  return {
    codes: isErrorCode(d.code) ? [d.code] : [],
    reconnect: d.reconnect,
    message: d.message,
    wire: { disconnect: d },
  };
}

export function endFromErrorFrame(e: ErrorJson): End {
  const codes = isErrorCode(e.code) ? [e.code] : [];
  return { codes, reconnect: reconnectOf(codes), message: e.message, wire: { errorFrame: e } };
}

/** A Connect call's end: its error's code, or a normal end. */
export function endFromConnect(error: ConnectError | undefined): End {
  if (!error) return { codes: ["normal"], message: "", wire: {} };
  const name = codeToString(error.code);
  const codes = ALL_CODES.filter((c) => CODES[c].connect === name);
  return { codes, reconnect: reconnectOf(codes), message: error.rawMessage, wire: { connect: name } };
}

/** A short account of an end, for assertion messages. */
export function describeEnd(end: End | undefined): string {
  return end ? `${JSON.stringify(end.wire)} → [${end.codes.join(", ")}] ${end.message}` : "no end";
}

/** A publish (or another request) the relay refused. */
export class Refused extends Error {
  constructor(readonly end: End) {
    super(`refused: ${describeEnd(end)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The interface

export interface SubscribeOptions {
  /** Resume after this offset (`?since=`, SubscribeRequest.since). */
  since?: number;
  epoch?: string;
  /** `Last-Event-ID` on the first request (SSE only). */
  lastEventId?: string;
  user?: string;
}

/** One subscription, whatever the transport: its events as ChatEvent JSON, in order, and how it ended. */
export interface Subscription {
  /** `subscribed`, `gap` and `message` events, in order (heartbeats are counted apart). */
  readonly events: ChatEventJson[];
  messages(): ChatEventJson[];
  /** SSE: the `id:` of each event in `events`. */
  readonly ids?: string[];
  /** Heartbeats read while idle (SSE comments, Connect heartbeat events). */
  readonly heartbeats: number;
  /** The first end the server gave (also a refusal before the stream started). */
  readonly ended: Promise<End>;
  /** Set once ended. */
  readonly end?: End;
  /** Every end the server gave: an EventSource goes on after one by itself. */
  readonly ends: End[];
  /** Connections made (an EventSource reconnects by itself). */
  readonly opens: number;
  /** SSE: the `Last-Event-ID` each request sent (null: none); `retry:` values read. */
  readonly requests?: (string | null)[];
  readonly retries?: string[];
  /** Waits for `n` messages in all; returns them. */
  waitMessages(n: number, timeoutMs?: number): Promise<ChatEventJson[]>;
  /** Publishes on the subscription's own connection, without waiting for an answer (WebSocket json, proto). */
  publishOwn?(msg: { text: string; id?: string }): void;
  /** Stops reading (the bytes back up to the server), and reads again. */
  pause(): void;
  resume(): void;
  /** The client goes away. */
  close(): Promise<void>;
}

export interface PublishResult {
  event: ChatEventJson;
  duplicate: boolean;
}

/** One malformed input and what it must be refused with. */
export interface Refusal {
  input: string;
  expect: ErrorCode;
  /** The publish id the refusal must name (an error frame answering a publish with an id). */
  id?: string;
  end: End;
}

export interface Capabilities {
  /** Resumes from a `Last-Event-ID` header, and reconnects and resumes by itself after an end (EventSource). */
  lastEventId: boolean;
  /** Sends heartbeats while idle (SSE comments, Connect heartbeat events). */
  heartbeats: boolean;
  /** A publish can carry an idempotency key (plain WebSocket frames cannot). */
  publishIds: boolean;
  /** Publishes go out on a connection that also receives, answered with acks in order (WebSocket json, proto). */
  acks: boolean;
  /** Publishes from one driver keep their order (one connection, frames in order). */
  orderedPublish: boolean;
  /** HEAD on the subscribe route (SSE). */
  head: boolean;
  /**
   * The client's own socket is the room's subscriber (WebSocket): the room sees what it leaves
   * unread at once. A bridged stream (SSE, Connect) first fills the buffers between the Worker and
   * the client.
   */
  direct: boolean;
}

export interface Driver {
  /** e.g. "ws-json"; the test's name. */
  readonly name: string;
  /** The transport as /stats and presence report it. */
  readonly transport: "websocket" | "sse" | "connect";
  readonly capabilities: Capabilities;
  /** Subscribes; resolves once the first event arrived or the subscription ended (a refusal). */
  subscribe(room: string, o?: SubscribeOptions): Promise<Subscription>;
  /** Publishes through the transport's own publish path; rejects with {@link Refused}. */
  publish(room: string, msg: { text: string; id?: string }): Promise<PublishResult>;
  /**
   * Sends the transport's malformed inputs, each of which must be refused, then a good publish on
   * the same connection (where there is one); `keptOpen` says whether that connection stayed open.
   */
  malformed(room: string): Promise<{ refusals: Refusal[]; after: PublishResult; keptOpen?: boolean }>;
  /** Closes everything it opened. */
  dispose(): Promise<void>;
}

/** What the drivers need from the suite: the server's URL, known once it has started. */
export interface Target {
  baseUrl: string;
}

export const OPEN_MS = 10_000;
export const ANSWER_MS = 10_000;

/** Waits (bounded) until a new subscription has its first event or has ended. */
export async function opened(sub: Subscription, what: string): Promise<Subscription> {
  await waitFor(
    `${what} to open`,
    () => sub.events.length > 0 || sub.end !== undefined,
    OPEN_MS,
    () => ({ events: sub.events, end: sub.end }),
  );
  return sub;
}

export function query(o: SubscribeOptions): string {
  const q = new URLSearchParams();
  if (o.since !== undefined) q.set("since", String(o.since));
  if (o.epoch !== undefined) q.set("epoch", o.epoch);
  if (o.user !== undefined) q.set("user", o.user);
  const s = q.toString();
  return s ? `?${s}` : "";
}

export function waitMessagesOf(sub: Subscription, n: number, timeoutMs = 5000): Promise<ChatEventJson[]> {
  return waitFor(
    `${n} messages`,
    () => sub.messages().length >= n && sub.messages(),
    timeoutMs,
    () => ({ events: sub.events.map((e) => `${e.kind} ${e.seq ?? e.resumeAfter ?? ""}`), end: sub.end }),
  );
}

/** Closables a driver opened, closed by dispose(). */
export class Opened {
  readonly #items = new Set<{ close(): unknown }>();

  add<T extends { close(): unknown }>(item: T): T {
    this.#items.add(item);
    return item;
  }

  async closeAll(): Promise<void> {
    const items = [...this.#items];
    this.#items.clear();
    await Promise.all(items.map((i) => i.close()));
  }
}

/** The text parsed as JSON, or the text itself when it is not JSON. */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
