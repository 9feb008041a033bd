/**
 * How an answer is counted: each outcome (an HTTP answer, an SSE stream's first event, a WebSocket
 * upgrade's first frame, a Connect or gRPC-Web answer) becomes a short label for the summary
 * ("400 invalid_argument", "close 4540", "grpc-status 3", "stream open"), plus what makes it a
 * failure (a 5xx, an `internal` code, a hang) or a warning (a reset connection: a dev server that
 * reloaded, or one that crashed).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { ChatEventSchema } from "../../src/gen/relay/v1/relay_pb";
import { readEnvelopes } from "./connect-wire";
import type { HttpAnswer, HttpOutcome, UpgradeOutcome } from "./http-client";

export interface Verdict {
  label: string;
  /** SSE: the `id:` of the first event (the offset the subscription resumes after). */
  resumeId?: string;
  failure?: string;
  warning?: string;
  /** The request got through (2xx, a stream or socket that opened, a Connect `ok`). */
  accepted?: boolean;
}

/** Connect codes (and their gRPC numbers) that mean a fault of the server, like a 5xx. */
const SERVER_FAULTS = new Set(["internal", "unknown", "unavailable", "data_loss"]);
const GRPC_SERVER_FAULTS = new Set(["2", "13", "14", "15"]);

function jsonCode(body: Buffer): string | undefined {
  try {
    const j = JSON.parse(body.toString()) as { code?: string; error?: { code?: string } };
    return j.error?.code ?? j.code;
  } catch {
    return undefined;
  }
}

function noAnswer(o: { error: string; status?: number }, what: string): Verdict {
  if (o.error === "timeout") {
    return {
      label: `hang${o.status ? ` after ${o.status}` : ""}`,
      failure: `hang: ${what} unanswered within the timeout`,
    };
  }
  if (o.error.startsWith("client refused")) return { label: o.error };
  return { label: o.error, warning: `${o.error} (${what})` };
}

function statusVerdict(a: HttpAnswer, code: string | undefined): Verdict {
  const label = code ? `${a.status} ${code}` : String(a.status);
  const v: Verdict = { label, accepted: a.status >= 200 && a.status < 300 };
  if (a.status >= 500 && !(a.status === 501 && code === "unimplemented")) v.failure = `HTTP ${label}`;
  return v;
}

/** A plain HTTP route. */
export function httpVerdict(o: HttpOutcome): Verdict {
  if ("error" in o) return noAnswer(o, "HTTP request");
  return statusVerdict(o.answer, jsonCode(o.answer.body));
}

/** The first event of an SSE body: its `event:` name (and a disconnect's code), and its `id:`. */
function firstSseEvent(body: Buffer): { name: string; id?: string } | undefined {
  for (const block of body.toString().split("\n\n").slice(0, -1)) {
    const event = /^event: ?(.*)$/m.exec(block)?.[1];
    if (!event) continue;
    const id = /^id: ?(.*)$/m.exec(block)?.[1];
    if (event !== "disconnect") return { name: event, id };
    const data = /^data: ?(.*)$/m.exec(block)?.[1] ?? "{}";
    return { name: `disconnect ${jsonCode(Buffer.from(data)) ?? "?"}`, id };
  }
  return undefined;
}

/** Stop reading an SSE body at its first event. */
export const oneSseEvent = (body: Buffer) => firstSseEvent(body) !== undefined;

export function sseVerdict(o: HttpOutcome): Verdict {
  if ("error" in o) return noAnswer(o, o.status === 200 ? "SSE stream's first event" : "SSE request");
  const a = o.answer;
  if (a.status !== 200) return statusVerdict(a, jsonCode(a.body));
  const type = String(a.headers["content-type"] ?? "");
  // Not a stream at all (the assets' index.html for a path they normalise to "/").
  if (!type.startsWith("text/event-stream")) return { label: `200 ${type.split(";")[0] || "no type"}` };
  const first = firstSseEvent(a.body);
  if (!first) return { label: "200 no event", failure: "SSE stream ended without any event" };
  const v: Verdict = { label: `200 ${first.name}`, accepted: !first.name.startsWith("disconnect"), resumeId: first.id };
  if (first.name === "disconnect internal") v.failure = "SSE stream ended with internal";
  return v;
}

/** A WebSocket upgrade: refused (HTTP), or accepted and then its first frame. */
export function upgradeVerdict(o: UpgradeOutcome): Verdict {
  if ("error" in o) return noAnswer(o, "WebSocket upgrade");
  // Any HTTP answer to an upgrade is a refusal (a 200 is the assets' page, not a socket).
  if ("refused" in o) return { ...statusVerdict(o.refused, jsonCode(o.refused.body)), accepted: false };
  if ("silent" in o) return { label: "open, silent (answers pings)", accepted: true };
  const f = o.opened;
  if (f.opcode === 8) {
    const code = f.closeCode ?? 1005;
    const v: Verdict = { label: `open+close ${code}` };
    if (code === 1011) v.failure = "closed with 1011 (internal)";
    return v;
  }
  return { label: "open", accepted: true };
}

export type ConnectKind = "connect-unary" | "connect-stream" | "grpc-web";

/** The kind of the first event of a stream, in JSON or binary. */
function eventKind(payload: Buffer, binary: boolean): string {
  try {
    if (!binary) return (JSON.parse(payload.toString()) as { kind?: string }).kind ?? "?";
    return fromBinary(ChatEventSchema, new Uint8Array(payload)).kind || "?";
  } catch {
    return "undecodable";
  }
}

/**
 * A Connect or gRPC-Web answer. Unary Connect: the HTTP status and the JSON error's code. Connect
 * streams: the first message, or the end-of-stream message's code. gRPC-Web: the `grpc-status` of
 * the headers (trailers-only) or of the trailer message, or the first message of a stream.
 */
export function connectVerdict(kind: ConnectKind, o: HttpOutcome, binary: boolean): Verdict {
  if ("error" in o) return noAnswer(o, `${kind} call`);
  const a = o.answer;
  // Trailers-only (gRPC-Web refusals, native gRPC): the status is in the headers, whatever was asked.
  const header = a.headers["grpc-status"];
  if (typeof header === "string") return grpcStatus(header);
  if (kind === "connect-unary" || a.status !== 200) {
    if (a.status === 200) return { label: "ok", accepted: true };
    const code = jsonCode(a.body);
    const v = statusVerdict(a, code);
    if (code && SERVER_FAULTS.has(code)) v.failure = `Connect ${code}`;
    return v;
  }
  const envelopes = readEnvelopes(a.body);
  const first = envelopes[0];
  if (!first) return { label: "200, no message", failure: a.cut ? undefined : "stream ended without a message" };
  const trailer = envelopes.find((e) => e.flags & 0x80);
  if (kind === "grpc-web" && trailer && (trailer === first || !a.cut)) {
    return grpcStatus(/grpc-status:\s*(\d+)/.exec(trailer.payload.toString())?.[1] ?? "?");
  }
  if (kind === "connect-stream" && first.flags & 0x02) {
    const code = jsonCode(first.payload) ?? "ok";
    const v: Verdict = { label: `end ${code}` };
    if (SERVER_FAULTS.has(code)) v.failure = `Connect stream ended with ${code}`;
    return v;
  }
  return { label: `stream ${eventKind(first.payload, binary)}`, accepted: true };
}

function grpcStatus(status: string): Verdict {
  const v: Verdict = { label: `grpc-status ${status}`, accepted: status === "0" };
  if (GRPC_SERVER_FAULTS.has(status)) v.failure = `gRPC-Web status ${status}`;
  return v;
}
