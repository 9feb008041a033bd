/**
 * A slice is one input class on one transport ("bodies http", "frames ws-json"): a generator of
 * inputs, each an Attempt that sends itself over a lane and says how it was answered. This file
 * has the types and the attempts every generator builds on: an HTTP request, an SSE request, a
 * WebSocket upgrade, a Connect/gRPC-Web call, and a frame on a WebSocket session.
 */
import {
  type ConnectKind,
  connectVerdict,
  httpVerdict,
  oneSseEvent,
  sseVerdict,
  upgradeVerdict,
  type Verdict,
} from "./answers";
import { oneEnvelope } from "./connect-wire";
import { httpRequest, rawUpgrade } from "./http-client";
import type { Lane } from "./lane";
import type { Rule } from "./oracle";
import type { Rng } from "./prng";
import type { FrameInput, WsMode } from "./ws-session";

export interface FuzzContext {
  base: URL;
  seed: number;
  /** The server's MAX_MESSAGE_BYTES (frames and bodies may be 1 KiB larger). */
  maxMessageBytes: number;
  timeoutMs: number;
  /** Whether the server refuses a malformed token (found out before the slices run). */
  authEnforced: boolean;
  /** The server's RELAY_JWT_SECRET, for tokens that verify but are expired, without `sub`, ... */
  secret: string;
  /** Prefix of every room this run uses. */
  prefix: string;
}

export interface Outcome extends Verdict {
  /** The input was stored (an ack, a 201, a Connect `ok` to a publish). */
  stored?: boolean;
}

export interface Attempt {
  /** What was sent, short, for the failure list. */
  input: string;
  /** What the documents say the answer must be, where they say it (oracle.ts). */
  expect?: Expectation;
  run(lane: Lane): Promise<Outcome>;
}

export interface Expectation {
  /** true: must get through (2xx, a stream or socket that opens); false: must be refused with a 4xx. */
  accepted?: boolean;
  /** The offset the subscription must resume after (SSE: the `id:` of its `subscribed` event). */
  resumeId?: string;
}

/** An expectation from a documented rule ("either": none). */
export function expectFrom(rule: Rule, resumeId?: string): Expectation | undefined {
  if (rule === "either") return undefined;
  return rule === "valid" ? { accepted: true, resumeId } : { accepted: false };
}

export interface Slice {
  name: string;
  /** The room this slice publishes into (hostile publishes only): its history must stay empty. */
  room?: string;
  /** Every input must be refused (tokens, when the server checks them): getting through is a failure. */
  mustRefuse?: boolean;
  /** Input `rng`'s attempt, or undefined when it might be a valid publish (the runner draws again). */
  make(rng: Rng): Attempt | undefined;
}

/** A short printable preview of a string or bytes. */
export function show(x: string | Uint8Array, max = 60): string {
  const s = typeof x === "string" ? x : Buffer.from(x).toString("latin1");
  // JSON escapes C0 controls; C1 controls and DEL are escaped here, so that every byte shows.
  const head = JSON.stringify(s.length > max ? s.slice(0, max) : s).replace(
    /[\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16)}`,
  );
  return s.length > max ? `${head}…(${s.length})` : head;
}

/** Latin-1 form of UTF-8 bytes: how node:http sends a path or header byte for byte. */
export const raw = (s: string) => Buffer.from(s, "utf8").toString("latin1");

const isControl = (c: number) => c < 0x20 || c === 0x7f;

/** The Latin-1 bytes of `s` for a header value, without the controls node:http refuses (a tab stays). */
export function headerValue(s: string): string {
  return [...raw(s)].filter((ch) => ch === "\t" || !isControl(ch.charCodeAt(0))).join("");
}

/** The Latin-1 bytes of `s` for a path or query, with controls, space and the characters of `also` percent-encoded. */
export function pathBytes(s: string, also = ""): string {
  let out = "";
  for (const ch of raw(s)) {
    const c = ch.charCodeAt(0);
    out += isControl(c) || c === 0x20 || also.includes(ch) ? `%${c.toString(16).padStart(2, "0").toUpperCase()}` : ch;
  }
  return out;
}

export function httpAttempt(
  input: string,
  req: { method: string; path: string; headers?: Record<string, string>; body?: Uint8Array | string },
  publishes = false,
): Attempt {
  return {
    input,
    async run(lane) {
      const v = httpVerdict(await httpRequest(lane.base, lane.agent, { ...req, timeoutMs: lane.timeoutMs }));
      return { ...v, stored: publishes && v.accepted };
    },
  };
}

export function sseAttempt(input: string, path: string, headers: Record<string, string> = {}): Attempt {
  return {
    input,
    async run(lane) {
      const o = await httpRequest(lane.base, false, {
        method: "GET",
        path,
        headers: { Accept: "text/event-stream", ...headers },
        timeoutMs: lane.timeoutMs,
        until: oneSseEvent,
      });
      return sseVerdict(o);
    },
  };
}

export function upgradeAttempt(input: string, path: string, headers: Record<string, string> = {}): Attempt {
  return {
    input,
    async run(lane) {
      return upgradeVerdict(await rawUpgrade(lane.base, path, headers, lane.timeoutMs));
    },
  };
}

export interface Call {
  kind: ConnectKind;
  method: string;
  contentType?: string;
  body: Uint8Array | string;
  headers?: Record<string, string>;
  /** Messages in binary protobuf (for reading a stream's first event). */
  binary: boolean;
}

export function connectAttempt(input: string, call: Call, publishes = false): Attempt {
  return {
    input,
    async run(lane) {
      const headers: Record<string, string> = { ...call.headers };
      if (call.contentType !== undefined) headers["Content-Type"] = call.contentType;
      // A stream is read up to its first message, then dropped (its connection with it).
      const streaming = call.kind === "connect-stream" || /^(Subscribe|Chat)\b/.test(call.method);
      const o = await httpRequest(lane.base, streaming ? false : lane.agent, {
        method: "POST",
        path: `/relay.v1.ChatService/${call.method}`,
        headers,
        body: call.body,
        timeoutMs: lane.timeoutMs,
        until: streaming ? oneEnvelope : undefined,
      });
      const v = connectVerdict(call.kind, o, call.binary);
      return { ...v, stored: publishes && v.accepted };
    },
  };
}

/** A hostile frame on a session of `mode` in `room`; `before`: answers plain mode expects to it. */
export function frameAttempt(input: string, mode: WsMode, room: string, frame: FrameInput, before = 0): Attempt {
  return {
    input,
    async run(lane) {
      const s = await lane.session(mode, room);
      if (typeof s === "string") {
        return { label: "session failed", failure: `could not open a ${mode} session: ${s}` };
      }
      const x = await s.exchange(frame, before);
      const o: Outcome = { label: x.label, stored: x.stored };
      if (x.hang) o.failure = "hang: no answer and no close, and the follow-up sentinel got nothing";
      if (x.closeCode === 1011) o.failure = "closed with 1011 (internal)";
      if (x.closeCode === 1006) o.warning = "closed with 1006 (abnormal)";
      return o;
    },
  };
}
