/** The WebSocket drivers: plain, relay.v1.json and relay.v1.proto, publishing on a WebSocket of their own. */
import { create, toBinary } from "@bufbuild/protobuf";
import type { ErrorCode } from "../../../src/errors";
import { ClientFrameSchema } from "../../../src/gen/relay/v1/relay_pb";
import {
  type ChatEventJson,
  type ErrorJson,
  refusedUpgrade,
  UpgradeRefused,
  WS_PROTOCOL,
  WsClient,
  type WsMode,
  within,
  wsUrl,
} from "../clients";
import {
  ANSWER_MS,
  type Capabilities,
  type Driver,
  type End,
  endFromClose,
  endFromErrorFrame,
  endFromHttp,
  OPEN_MS,
  Opened,
  opened,
  type PublishResult,
  query,
  type Refusal,
  Refused,
  type SubscribeOptions,
  type Subscription,
  type Target,
  waitMessagesOf,
} from "./driver";

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

export class WsDriver implements Driver {
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
