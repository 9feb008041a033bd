/**
 * One driver per transport and mode, all behind one interface, so that the behaviour scenarios
 * (scenarios.case.ts) run unchanged against each: subscribe to a room, publish through the
 * transport's own publish path, send it malformed input, and read how a subscription ended in
 * the relay's terms. Adding a transport means adding one driver here.
 *
 * Every end and refusal is normalised from what the wire said (a close code, an SSE `disconnect`
 * event, a Connect code, an HTTP status and body, an error frame) to the relay's codes through the
 * one table in src/errors.ts, never through a copy of it.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { CODES, type ErrorCode } from "../../../src/errors";
import { ChatService, ClientFrameSchema } from "../../../src/gen/relay/v1/relay_pb";
import {
  type ChatEventJson,
  type ConnectProtocol,
  connectTransports,
  type DisconnectJson,
  type ErrorJson,
  eventToJson,
  post,
  publishJson,
  refusedUpgrade,
  SseClient,
  StreamRecorder,
  UpgradeRefused,
  WS_PROTOCOL,
  WsClient,
  type WsMode,
  waitFor,
  within,
  wsUrl,
} from "../clients";

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

const OPEN_MS = 10_000;
const ANSWER_MS = 10_000;

/** Waits (bounded) until a new subscription has its first event or has ended. */
async function opened(sub: Subscription, what: string): Promise<Subscription> {
  await waitFor(
    `${what} to open`,
    () => sub.events.length > 0 || sub.end !== undefined,
    OPEN_MS,
    () => ({ events: sub.events, end: sub.end }),
  );
  return sub;
}

function query(o: SubscribeOptions): string {
  const q = new URLSearchParams();
  if (o.since !== undefined) q.set("since", String(o.since));
  if (o.epoch !== undefined) q.set("epoch", o.epoch);
  if (o.user !== undefined) q.set("user", o.user);
  const s = q.toString();
  return s ? `?${s}` : "";
}

function waitMessagesOf(sub: Subscription, n: number, timeoutMs = 5000): Promise<ChatEventJson[]> {
  return waitFor(
    `${n} messages`,
    () => sub.messages().length >= n && sub.messages(),
    timeoutMs,
    () => ({ events: sub.events.map((e) => `${e.kind} ${e.seq ?? e.resumeAfter ?? ""}`), end: sub.end }),
  );
}

/** Closables a driver opened, closed by dispose(). */
class Opened {
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

// ---------------------------------------------------------------------------------------------
// WebSocket: plain, relay.v1.json, relay.v1.proto

class WsSubscription implements Subscription {
  readonly ended: Promise<End>;
  end?: End;
  readonly opens = 1;
  readonly heartbeats = 0;

  readonly publishOwn?: (msg: { text: string; id?: string }) => void;

  constructor(
    readonly client: WsClient | undefined,
    refused?: End,
  ) {
    if (client && client.mode !== "plain") this.publishOwn = (msg) => client.publish(msg.text, msg.id);
    this.ended = refused
      ? Promise.resolve(refused)
      : (client as WsClient).whenClosed.then((c) => endFromClose(c.code, c.reason));
    this.end = refused;
    this.ended.then((e) => {
      this.end = e;
    });
  }

  get events(): ChatEventJson[] {
    return this.client?.events ?? [];
  }

  get ends(): End[] {
    return this.end ? [this.end] : [];
  }

  messages(): ChatEventJson[] {
    return this.events.filter((e) => e.kind === "message");
  }

  waitMessages(n: number, timeoutMs?: number): Promise<ChatEventJson[]> {
    return waitMessagesOf(this, n, timeoutMs);
  }

  pause(): void {
    this.client?.pause();
  }

  resume(): void {
    this.client?.resume();
  }

  async close(): Promise<void> {
    await this.client?.close();
  }
}

/**
 * A publishing connection to one room: publishes are answered in order, by acks and error frames
 * (json, proto), or in plain mode by the echo of the event (the publisher's own user name tells
 * its events from others') and error frames. A close fails whatever is still waiting.
 */
class WsPublisher {
  readonly #pending: { resolve: (r: PublishResult) => void; reject: (e: Error) => void }[] = [];

  constructor(
    readonly client: WsClient,
    readonly user: string,
  ) {
    client.onFrame = (f) => {
      const frame = f as { ack?: PublishResult; error?: ErrorJson; kind?: string; user?: string };
      if (frame.ack)
        this.#pending.shift()?.resolve({ event: frame.ack.event, duplicate: frame.ack.duplicate === true });
      else if (frame.error) this.#pending.shift()?.reject(new Refused(endFromErrorFrame(frame.error)));
      else if (client.mode === "plain" && frame.kind === "message" && frame.user === user) {
        this.#pending.shift()?.resolve({ event: f as ChatEventJson, duplicate: false });
      }
    };
    client.whenClosed.then((c) => {
      for (const p of this.#pending.splice(0)) p.reject(new Refused(endFromClose(c.code, c.reason)));
    });
  }

  get open(): boolean {
    return this.client.closed === undefined;
  }

  /** Sends a frame that must be answered (a publish, or a malformed frame), and waits for the answer. */
  request(send: () => void): Promise<PublishResult> {
    const answer = new Promise<PublishResult>((resolve, reject) => this.#pending.push({ resolve, reject }));
    send();
    return within(answer, ANSWER_MS, "an answer on the publishing WebSocket");
  }
}

/** Malformed frames for each mode, each answered with an error frame on a connection that stays open. */
const BAD_FRAMES: Record<WsMode, { input: string; frame: string | Uint8Array; expect: ErrorCode; id?: string }[]> = {
  plain: [{ input: "a binary frame", frame: new Uint8Array([1, 2, 3]), expect: "invalid_argument" }],
  json: [
    { input: "not JSON", frame: "{not json", expect: "invalid_argument" },
    { input: "an unknown field", frame: '{"nope":{}}', expect: "invalid_argument" },
    { input: "a JSON array", frame: "[]", expect: "invalid_argument" },
    { input: "neither publish nor pong", frame: "{}", expect: "invalid_argument" },
    { input: "an empty text", frame: '{"publish":{"text":""}}', expect: "invalid_argument" },
    {
      input: "an id with a space",
      frame: '{"publish":{"text":"x","id":"a b"}}',
      expect: "invalid_argument",
      id: "a b",
    },
    {
      input: "an empty text with an id",
      frame: '{"publish":{"text":"","id":"named-1"}}',
      expect: "invalid_argument",
      id: "named-1",
    },
    { input: "a binary frame", frame: new Uint8Array([0x0a, 0x01, 0x78]), expect: "invalid_argument" },
  ],
  proto: [
    { input: "truncated protobuf", frame: new Uint8Array([0x0a, 0xff]), expect: "invalid_argument" },
    { input: "a text frame", frame: "text is not for this mode", expect: "invalid_argument" },
    { input: "neither publish nor pong", frame: new Uint8Array(0), expect: "invalid_argument" },
    {
      input: "an empty text",
      frame: toBinary(
        ClientFrameSchema,
        create(ClientFrameSchema, { frame: { case: "publish", value: { text: "" } } }),
      ),
      expect: "invalid_argument",
    },
    {
      input: "an id with a space",
      frame: toBinary(
        ClientFrameSchema,
        create(ClientFrameSchema, { frame: { case: "publish", value: { text: "x", id: "a b" } } }),
      ),
      expect: "invalid_argument",
      id: "a b",
    },
  ],
};

class WsDriver implements Driver {
  readonly transport = "websocket";
  readonly capabilities: Capabilities;
  readonly #opened = new Opened();
  readonly #publishers = new Map<string, Promise<WsPublisher>>();
  readonly #openPublishers = new Map<string, WsPublisher>();
  #users = 0;

  constructor(
    readonly name: string,
    readonly mode: WsMode,
    readonly target: Target,
  ) {
    const framed = mode !== "plain";
    this.capabilities = {
      lastEventId: false,
      heartbeats: false,
      publishIds: framed,
      acks: framed,
      orderedPublish: true,
      head: false,
      direct: true,
    };
  }

  #url(room: string, o: SubscribeOptions = {}): string {
    return wsUrl(this.target.baseUrl, `/rooms/${room}/ws${query(o)}`);
  }

  async #open(room: string, o: SubscribeOptions = {}): Promise<WsClient> {
    return this.#opened.add(
      await WsClient.open(this.#url(room, o), WS_PROTOCOL[this.mode], { flowControl: true, timeoutMs: OPEN_MS }),
    );
  }

  async subscribe(room: string, o: SubscribeOptions = {}): Promise<Subscription> {
    if (o.lastEventId !== undefined) throw new Error("WebSocket has no Last-Event-ID");
    try {
      return opened(this.#opened.add(new WsSubscription(await this.#open(room, o))), `${this.name} subscription`);
    } catch (e) {
      if (e instanceof UpgradeRefused) return new WsSubscription(undefined, endFromHttp(e.status, e.body));
      throw e;
    }
  }

  /** The room's publishing connection: one at a time, opened again once the room has closed it. */
  #publisher(room: string): Promise<WsPublisher> {
    const current = this.#publishers.get(room);
    const opened = this.#openPublishers.get(room);
    if (current && (opened === undefined || opened.open)) return current;
    const user = `${this.name}-pub-${++this.#users}`;
    this.#openPublishers.delete(room);
    const next = this.#open(room, { user }).then(
      (c) => {
        const p = new WsPublisher(c, user);
        this.#openPublishers.set(room, p);
        return p;
      },
      (e: unknown) => {
        this.#publishers.delete(room);
        throw e;
      },
    );
    this.#publishers.set(room, next);
    return next;
  }

  async publish(room: string, msg: { text: string; id?: string }): Promise<PublishResult> {
    const p = await this.#publisher(room);
    return p.request(() => p.client.publish(msg.text, msg.id));
  }

  async malformed(room: string): Promise<{ refusals: Refusal[]; after: PublishResult; keptOpen: boolean }> {
    const p = await this.#publisher(room);
    const refusals: Refusal[] = [];
    for (const bad of BAD_FRAMES[this.mode]) {
      const answer = await p
        .request(() => p.client.send(bad.frame))
        .then(
          (r) => new Error(`${bad.input} was accepted: ${JSON.stringify(r)}`),
          (e: unknown) => e,
        );
      if (!(answer instanceof Refused)) throw answer;
      refusals.push({ input: bad.input, expect: bad.expect, id: bad.id, end: answer.end });
    }
    const after = await this.publish(room, { text: `after ${refusals.length} malformed frames` });
    const keptOpen = p.open && this.#openPublishers.get(room) === p;
    // Resume points that are not offsets are refused before the upgrade.
    for (const since of ["abc", "-1", "1.5", "99999999999999999"]) {
      const url = wsUrl(this.target.baseUrl, `/rooms/${room}/ws?since=${since}`);
      const r = await refusedUpgrade(url, WS_PROTOCOL[this.mode]);
      refusals.push({ input: `since=${since}`, expect: "invalid_argument", end: endFromHttp(r.status, r.body) });
    }
    return { refusals, after, keptOpen };
  }

  async dispose(): Promise<void> {
    this.#publishers.clear();
    this.#openPublishers.clear();
    await this.#opened.closeAll();
  }
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events (publishing over HTTP POST)

class SseSubscription implements Subscription {
  readonly ended: Promise<End>;
  end?: End;
  readonly ends: End[] = [];

  constructor(readonly client: SseClient) {
    let first: (e: End) => void = () => {};
    this.ended = new Promise((r) => {
      first = r;
    });
    const add = (e: End) => {
      this.ends.push(e);
      this.end ??= e;
      first(e);
    };
    client.onDisconnect = (d) => add(endFromDisconnect(d));
    client.onRefusal = (r) => add(endFromHttp(r.status, r.body));
  }

  get events(): ChatEventJson[] {
    return this.client.events.map((e) => e.data);
  }

  get ids(): string[] {
    return this.client.events.map((e) => e.lastEventId);
  }

  get heartbeats(): number {
    return this.client.heartbeats;
  }

  get opens(): number {
    return this.client.opens;
  }

  get requests(): (string | null)[] {
    return this.client.requests;
  }

  get retries(): string[] {
    return this.client.retries;
  }

  messages(): ChatEventJson[] {
    return this.events.filter((e) => e.kind === "message");
  }

  waitMessages(n: number, timeoutMs?: number): Promise<ChatEventJson[]> {
    return waitMessagesOf(this, n, timeoutMs);
  }

  pause(): void {
    this.client.pause();
  }

  resume(): void {
    this.client.resume();
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

/** HTTP publish bodies that must be refused, each with the code it must be refused with. */
const BAD_BODIES: { input: string; body: string | Uint8Array; headers: Record<string, string>; expect: ErrorCode }[] = [
  ...[
    "{not json",
    "",
    "[1,2]",
    '"just a string"',
    "{}",
    '{"text":""}',
    '{"text":42}',
    '{"text":"hi","id":7}',
    '{"text":"hi","id":"has space"}',
    '{"text":"hi","user":"\\u0007bell"}',
  ].map((body) => ({
    input: `JSON ${body}`,
    body,
    headers: { "Content-Type": "application/json" },
    expect: "invalid_argument" as const,
  })),
  {
    input: "a form body",
    body: "text=hi",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    expect: "invalid_argument",
  },
  {
    input: "no Content-Type",
    body: new TextEncoder().encode('{"text":"hi"}'),
    headers: {},
    expect: "invalid_argument",
  },
  {
    input: "an empty text/plain body",
    body: "",
    headers: { "Content-Type": "text/plain" },
    expect: "invalid_argument",
  },
  {
    input: "a body that is not UTF-8",
    body: new Uint8Array([0x68, 0xff, 0x69]),
    headers: { "Content-Type": "text/plain" },
    expect: "invalid_encoding",
  },
];

class SseDriver implements Driver {
  readonly name = "sse";
  readonly transport = "sse";
  readonly capabilities: Capabilities = {
    lastEventId: true,
    heartbeats: true,
    publishIds: true,
    acks: false,
    orderedPublish: false,
    head: true,
    direct: false,
  };
  readonly #opened = new Opened();

  constructor(readonly target: Target) {}

  async subscribe(room: string, o: SubscribeOptions = {}): Promise<Subscription> {
    const url = `${this.target.baseUrl}/rooms/${room}/sse${query(o)}`;
    const sub = this.#opened.add(new SseSubscription(new SseClient(url, { lastEventId: o.lastEventId })));
    return opened(sub, "SSE subscription");
  }

  async publish(room: string, msg: { text: string; id?: string }): Promise<PublishResult> {
    const r = await publishJson(this.target.baseUrl, room, msg);
    if (r.status === 201 || r.status === 200) return { event: r.body, duplicate: r.status === 200 };
    throw new Refused(endFromHttp(r.status, r.body));
  }

  async malformed(room: string): Promise<{ refusals: Refusal[]; after: PublishResult }> {
    const refusals: Refusal[] = [];
    for (const bad of BAD_BODIES) {
      const r = await post(this.target.baseUrl, `/rooms/${room}/messages`, bad.body, bad.headers);
      refusals.push({ input: bad.input, expect: bad.expect, end: endFromHttp(r.status, r.body) });
    }
    // Resume points that are not offsets are refused before the stream starts.
    for (const [input, path, headers] of [
      ["since=abc", "/sse?since=abc", {}],
      ["since=-1", "/sse?since=-1", {}],
      ["Last-Event-ID: abc", "/sse", { "Last-Event-ID": "abc" }],
    ] as const) {
      const res = await fetch(`${this.target.baseUrl}/rooms/${room}${path}`, {
        headers,
        signal: AbortSignal.timeout(ANSWER_MS),
      });
      const text = await res.text();
      refusals.push({ input, expect: "invalid_argument", end: endFromHttp(res.status, safeJson(text)) });
    }
    return { refusals, after: await this.publish(room, { text: "after the malformed bodies" }) };
  }

  async dispose(): Promise<void> {
    await this.#opened.closeAll();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// ---------------------------------------------------------------------------------------------
// Connect: Connect JSON, Connect binary, gRPC-Web (connect-node over HTTP/1.1)

class ConnectSubscription implements Subscription {
  readonly ended: Promise<End>;
  end?: End;
  readonly opens = 1;

  constructor(readonly recorder: StreamRecorder) {
    this.ended = recorder.done.then(() => endFromConnect(recorder.error));
    this.ended.then((e) => {
      this.end = e;
    });
  }

  get events(): ChatEventJson[] {
    return this.recorder.events;
  }

  get heartbeats(): number {
    return this.recorder.heartbeats;
  }

  get ends(): End[] {
    return this.end ? [this.end] : [];
  }

  messages(): ChatEventJson[] {
    return this.recorder.messages();
  }

  waitMessages(n: number, timeoutMs?: number): Promise<ChatEventJson[]> {
    return waitMessagesOf(this, n, timeoutMs);
  }

  pause(): void {
    this.recorder.pause();
  }

  resume(): void {
    this.recorder.resume();
  }

  async close(): Promise<void> {
    await this.recorder.stop();
  }
}

/** A unary call's answer: a Connect JSON error body, or gRPC-Web's status in the headers (trailers-only). */
async function connectAnswer(res: Response): Promise<End> {
  const grpcStatus = res.headers.get("grpc-status");
  const text = await res.text();
  if (grpcStatus !== null) {
    return endFromConnect(grpcStatus === "0" ? undefined : new ConnectError("", Number(grpcStatus) as Code));
  }
  const body = safeJson(text) as { code?: string; message?: string };
  const code = Object.values(Code).find((c) => typeof c === "number" && codeToString(c) === body.code) as
    | Code
    | undefined;
  return endFromConnect(code === undefined ? undefined : new ConnectError(body.message ?? "", code));
}

class ConnectDriver implements Driver {
  readonly transport = "connect";
  readonly capabilities: Capabilities = {
    lastEventId: false,
    heartbeats: true,
    publishIds: true,
    acks: false,
    orderedPublish: false,
    head: false,
    direct: false,
  };
  readonly #opened = new Opened();
  #client?: ReturnType<typeof createClient<typeof ChatService>>;

  constructor(
    readonly name: ConnectProtocol,
    readonly target: Target,
  ) {}

  get client() {
    this.#client ??= createClient(ChatService, connectTransports(this.target.baseUrl)[this.name]);
    return this.#client;
  }

  async subscribe(room: string, o: SubscribeOptions = {}): Promise<Subscription> {
    if (o.lastEventId !== undefined) throw new Error("Connect has no Last-Event-ID");
    const since = o.since === undefined ? undefined : BigInt(o.since);
    const recorder = new StreamRecorder((signal) => this.client.subscribe({ room, since, epoch: o.epoch }, { signal }));
    return opened(this.#opened.add(new ConnectSubscription(recorder)), `${this.name} subscription`);
  }

  async publish(room: string, msg: { text: string; id?: string }): Promise<PublishResult> {
    try {
      const r = await this.client.publish({ room, text: msg.text, id: msg.id }, { timeoutMs: ANSWER_MS });
      if (!r.event) throw new Error("PublishResponse without an event");
      return { event: eventToJson(r.event), duplicate: r.duplicate };
    } catch (e) {
      if (e instanceof ConnectError) throw new Refused(endFromConnect(e));
      throw e;
    }
  }

  async malformed(room: string): Promise<{ refusals: Refusal[]; after: PublishResult }> {
    const refusals: Refusal[] = [];
    const refused = async (input: string, call: Promise<unknown>) => {
      const end = await call.then(
        () => endFromConnect(undefined),
        (e: unknown) => endFromConnect(ConnectError.from(e)),
      );
      refusals.push({ input, expect: "invalid_argument", end });
    };
    await refused("an empty text", this.client.publish({ room, text: "" }));
    await refused("an id with a space", this.client.publish({ room, text: "x", id: "a b" }));
    await refused("a bad room name", this.client.publish({ room: "no spaces allowed", text: "x" }));
    // Malformed request bodies, in this protocol's own encoding.
    const raw = (contentType: string, body: string | Uint8Array) =>
      fetch(`${this.target.baseUrl}/${ChatService.typeName}/${ChatService.method.publish.name}`, {
        method: "POST",
        headers: { "Content-Type": contentType },
        body,
        signal: AbortSignal.timeout(ANSWER_MS),
      }).then(connectAnswer);
    const truncated = new Uint8Array([0x12, 0x80]);
    if (this.name === "connect-proto") {
      refusals.push({
        input: "truncated protobuf",
        expect: "invalid_argument",
        end: await raw("application/proto", truncated),
      });
    } else if (this.name === "connect-json") {
      for (const body of ["{not json", `{"room":"${room}","text":42}`, "[]"]) {
        refusals.push({ input: body, expect: "invalid_argument", end: await raw("application/json", body) });
      }
    } else {
      const envelope = new Uint8Array([0, 0, 0, 0, truncated.length, ...truncated]);
      refusals.push({
        input: "truncated protobuf in an envelope",
        expect: "invalid_argument",
        end: await raw("application/grpc-web+proto", envelope),
      });
      refusals.push({
        input: "a truncated envelope",
        expect: "invalid_argument",
        end: await raw("application/grpc-web+proto", new Uint8Array([0, 0, 0])),
      });
    }
    return { refusals, after: await this.publish(room, { text: "after the malformed requests" }) };
  }

  async dispose(): Promise<void> {
    await this.#opened.closeAll();
  }
}

/** Every driver, in the order the suite runs them. */
export function allDrivers(target: Target): Driver[] {
  return [
    new WsDriver("ws-plain", "plain", target),
    new WsDriver("ws-json", "json", target),
    new WsDriver("ws-proto", "proto", target),
    new SseDriver(target),
    new ConnectDriver("connect-json", target),
    new ConnectDriver("connect-proto", target),
    new ConnectDriver("grpc-web", target),
  ];
}
