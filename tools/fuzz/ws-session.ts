/**
 * A `ws` WebSocket session for fuzzing frames in one mode (plain, relay.v1.json, relay.v1.proto).
 * Each hostile frame is followed by a sentinel frame whose answer is known, so the frames that
 * came back in between are exactly the answer to the hostile one (the room answers a socket's
 * frames in order):
 * - relay.v1.json: `{"zzz-<n>":1}`, an unknown key, answered by an error frame naming it;
 * - relay.v1.proto: a publish with an empty text and id `zzz-<n>`, answered by an error with that id;
 * - plain: a binary frame, answered by an error frame; told apart by counting (the caller says how
 *   many answers the hostile frame itself should get before it).
 * No sentinel answer within the timeout: a second sentinel decides between "no answer" (the socket
 * is alive) and a hang. Flow-control pings are answered and not recorded.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import WebSocket from "ws";
import { ClientFrameSchema, ServerFrameSchema } from "../../src/gen/relay/v1/relay_pb";

export type WsMode = "plain" | "json" | "proto";
export const SUBPROTOCOL: Record<WsMode, string | undefined> = {
  plain: undefined,
  json: "relay.v1.json",
  proto: "relay.v1.proto",
};

/** One frame from the server, reduced to what the fuzzer counts. */
export interface Received {
  kind: "error" | "event" | "ack" | "refreshed" | "other";
  /** error: its code; event: its kind; other: what it was. */
  what: string;
  message?: string;
  id?: string;
}

export interface FrameInput {
  data: Uint8Array;
  binary: boolean;
  /** Send as this many fragments (a continuation frame each). */
  fragments?: number;
}

export interface Exchange {
  /** e.g. "open+error invalid_argument", "close 1009", "open+no answer". */
  label: string;
  closeCode?: number;
  hang?: boolean;
  /** An ack or a message event arrived: something was stored. */
  stored?: boolean;
  answers: Received[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function decode(mode: WsMode, data: Buffer, isBinary: boolean): Received | "ping" {
  if (mode === "proto") {
    if (!isBinary) return { kind: "other", what: "text frame in proto mode" };
    try {
      const f = fromBinary(ServerFrameSchema, new Uint8Array(data)).frame;
      if (f.case === "ping") return "ping";
      if (f.case === "error") return { kind: "error", what: f.value.code, message: f.value.message, id: f.value.id };
      if (f.case === "event") return { kind: "event", what: f.value.kind };
      if (f.case === "batch") return { kind: "event", what: f.value.events.map((e) => e.kind).join("+") };
      if (f.case === "ack") return { kind: "ack", what: "ack" };
      return { kind: f.case === "refreshed" ? "refreshed" : "other", what: String(f.case) };
    } catch {
      return { kind: "other", what: "undecodable binary frame" };
    }
  }
  if (isBinary) return { kind: "other", what: `binary frame in ${mode} mode` };
  let j: Record<string, { code?: string; message?: string; id?: string; kind?: string; events?: { kind: string }[] }>;
  try {
    j = JSON.parse(data.toString());
  } catch {
    return { kind: "other", what: "non-JSON text frame" };
  }
  if (j.ping) return "ping";
  if (j.error) return { kind: "error", what: j.error.code ?? "?", message: j.error.message, id: j.error.id };
  if (j.ack) return { kind: "ack", what: "ack" };
  if (j.refreshed) return { kind: "refreshed", what: "refreshed" };
  if (j.event) return { kind: "event", what: j.event.kind ?? "?" };
  if (j.batch) return { kind: "event", what: (j.batch.events ?? []).map((e) => e.kind).join("+") };
  if (mode === "plain" && typeof j.kind === "string") return { kind: "event", what: j.kind };
  return { kind: "other", what: "unknown frame" };
}

export class FrameSession {
  readonly received: Received[] = [];
  closed?: { code: number; reason: string };
  #nonce = 0;

  private constructor(
    readonly ws: WebSocket,
    readonly mode: WsMode,
    readonly timeoutMs: number,
  ) {
    ws.binaryType = "nodebuffer";
    ws.on("message", (data: Buffer, isBinary) => {
      const r = decode(mode, data, isBinary);
      if (r === "ping") this.#pong(data, isBinary);
      else this.received.push(r);
    });
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
    });
    ws.on("error", () => {
      // The close event follows.
    });
  }

  /** Opens a session and waits for its `subscribed` event; a string says why it could not. */
  static async open(url: string, mode: WsMode, timeoutMs: number): Promise<FrameSession | string> {
    const protocol = SUBPROTOCOL[mode];
    const ws = new WebSocket(url, protocol ? [protocol] : [], { handshakeTimeout: timeoutMs, maxPayload: 64 << 20 });
    const s = new FrameSession(ws, mode, timeoutMs);
    const opened = await new Promise<string | undefined>((done) => {
      ws.once("open", () => done(undefined));
      ws.once("unexpected-response", (_req, res) => {
        done(`upgrade refused: HTTP ${res.statusCode}`);
        ws.terminate();
      });
      ws.once("error", (e) => done(`upgrade failed: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    });
    if (opened) return opened;
    if (!(await s.#until(() => s.received.length > 0 || s.closed !== undefined))) {
      ws.terminate();
      return "no subscribed event within the timeout";
    }
    if (s.closed) return `closed at once: ${s.closed.code} ${s.closed.reason}`;
    s.received.length = 0;
    // The sentinel must work before it is relied on.
    const first = await s.exchange(undefined, 0);
    if (first.hang || s.closed) {
      ws.terminate();
      return `the sentinel frame got no answer (${first.label})`;
    }
    return s;
  }

  #pong(data: Buffer, isBinary: boolean): void {
    if (this.mode === "proto" && isBinary) {
      const f = fromBinary(ServerFrameSchema, new Uint8Array(data)).frame;
      if (f.case !== "ping") return;
      const pong = create(ClientFrameSchema, { frame: { case: "pong", value: { id: f.value.id } } });
      this.#send(toBinary(ClientFrameSchema, pong), true);
    } else if (this.mode === "json") {
      const id = (JSON.parse(data.toString()) as { ping: { id: string } }).ping.id;
      this.#send(Buffer.from(JSON.stringify({ pong: { id } })), false);
    }
  }

  #send(data: Uint8Array, binary: boolean, fin = true): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data, { binary, fin });
  }

  #sentinel(): { nonce: string; data: Uint8Array; binary: boolean } {
    const nonce = `zzz-${++this.#nonce}`;
    if (this.mode === "json") return { nonce, data: Buffer.from(`{"${nonce}":1}`), binary: false };
    if (this.mode === "proto") {
      const f = create(ClientFrameSchema, { frame: { case: "publish", value: { text: "", id: nonce } } });
      return { nonce, data: toBinary(ClientFrameSchema, f), binary: true };
    }
    return { nonce, data: Buffer.from([0]), binary: true };
  }

  /** The index in `received` (from `mark`) of the sentinel's answer, if it came. */
  #answered(mark: number, nonce: string, before: number): number | undefined {
    for (let i = mark; i < this.received.length; i++) {
      const r = this.received[i];
      if (r.kind !== "error") continue;
      if (this.mode === "json" && r.message?.includes(`"${nonce}"`)) return i;
      if (this.mode === "proto" && r.id === nonce) return i;
      if (this.mode === "plain" && i - mark >= before) return i;
    }
    return undefined;
  }

  async #until(cond: () => boolean): Promise<boolean> {
    const deadline = Date.now() + this.timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) return false;
      await sleep(2);
    }
    return true;
  }

  /**
   * Sends `input` (none: the sentinel alone) and its sentinel, and reads the answer. `before` is
   * how many answers plain mode expects to the input itself (a binary frame: 1).
   */
  async exchange(input: FrameInput | undefined, before: number): Promise<Exchange> {
    const mark = this.received.length;
    if (input) {
      const n = Math.max(1, Math.min(input.fragments ?? 1, input.data.length || 1));
      const step = Math.ceil(input.data.length / n) || 1;
      for (let i = 0; i < n; i++) {
        const part = input.data.subarray(i * step, (i + 1) * step);
        this.#send(part, input.binary, i === n - 1);
      }
    }
    let s = this.#sentinel();
    this.#send(s.data, s.binary);
    let at: number | undefined;
    let late = false;
    const answered = () => {
      at = this.#answered(mark, s.nonce, before);
      return at !== undefined || !!this.closed;
    };
    const wait = () => this.#until(answered);
    if (!(await wait())) {
      // No answer and no close: does the socket still answer anything?
      late = true;
      s = this.#sentinel();
      this.#send(s.data, s.binary);
      before = 0;
      if (!(await wait())) {
        return { label: "hang (no answer, no close, follow-up unanswered)", hang: true, answers: [] };
      }
    }
    const answers = this.received.slice(mark, at ?? this.received.length);
    const stored = answers.some((r) => r.kind === "ack" || (r.kind === "event" && r.what.includes("message")));
    const said = answers.map((r) => (r.kind === "error" ? `error ${r.what}` : `${r.kind} ${r.what}`));
    if (this.closed) {
      const what = [...new Set(said)].join("+");
      return {
        label: `${what ? `${what}+` : ""}close ${this.closed.code}`,
        closeCode: this.closed.code,
        stored,
        answers,
      };
    }
    const what = said.length ? [...new Set(said)].join("+") : "no answer";
    return { label: `open+${what}${late ? " (late)" : ""}`, stored, answers };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      this.ws.close(1000);
    } catch {
      this.ws.terminate();
      return;
    }
    if (!(await this.#until(() => !!this.closed))) this.ws.terminate();
  }
}
