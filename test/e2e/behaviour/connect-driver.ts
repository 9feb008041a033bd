/** The Connect drivers: Connect JSON, Connect binary, gRPC-Web (connect-node over HTTP/1.1). */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { ChatService } from "../../../src/gen/relay/v1/relay_pb";
import { type ChatEventJson, type ConnectProtocol, connectTransports, eventToJson, StreamRecorder } from "../clients";
import {
  ANSWER_MS,
  type Capabilities,
  type Driver,
  type End,
  endFromConnect,
  Opened,
  opened,
  type PublishResult,
  type Refusal,
  Refused,
  type SubscribeOptions,
  type Subscription,
  safeJson,
  type Target,
  waitMessagesOf,
} from "./driver";

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

export class ConnectDriver implements Driver {
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
