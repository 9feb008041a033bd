/** The Server-Sent Events driver: an EventSource, publishing over HTTP POST. */
import type { ErrorCode } from "../../../src/errors";
import { type ChatEventJson, post, publishJson, SseClient } from "../clients";
import {
  ANSWER_MS,
  type Capabilities,
  type Driver,
  type End,
  endFromDisconnect,
  endFromHttp,
  Opened,
  opened,
  type PublishResult,
  query,
  type Refusal,
  Refused,
  type SubscribeOptions,
  type Subscription,
  safeJson,
  type Target,
  waitMessagesOf,
} from "./driver";

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

export class SseDriver implements Driver {
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
