/**
 * Connect and gRPC-Web on the wire, by hand: length-prefixed message envelopes (a flags byte and
 * a big-endian uint32 length), well-formed or not, and reading them back from an answer. The
 * fuzzer writes hostile envelopes itself; connect-node would refuse to send them.
 */

/** One envelope; `length` may lie about the payload's size. */
export function envelope(flags: number, payload: Uint8Array, length = payload.length): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags & 0xff;
  new DataView(out.buffer).setUint32(1, length >>> 0);
  out.set(payload, 5);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface Envelope {
  flags: number;
  payload: Buffer;
}

/** The complete envelopes at the start of `buf` (an incomplete one at the end is left out). */
export function readEnvelopes(buf: Buffer): Envelope[] {
  const out: Envelope[] = [];
  for (let at = 0; at + 5 <= buf.length; ) {
    const length = buf.readUInt32BE(at + 1);
    if (at + 5 + length > buf.length) break;
    out.push({ flags: buf[at], payload: buf.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

/** Stop reading a stream once one envelope is complete. */
export const oneEnvelope = (body: Buffer) => readEnvelopes(body).length > 0;

/** Connect's and gRPC-Web's content types of a request. */
export const CONTENT_TYPES = {
  connectJson: "application/json",
  connectProto: "application/proto",
  connectStreamJson: "application/connect+json",
  connectStreamProto: "application/connect+proto",
  grpcWeb: "application/grpc-web",
  grpcWebProto: "application/grpc-web+proto",
  grpcWebJson: "application/grpc-web+json",
} as const;

/**
 * A well-formed call carrying `payload` (a request message, JSON or binary): its kind, content
 * type and body (enveloped, except Connect's unary protocol). Subscribe streams; gRPC-Web always
 * envelopes.
 */
export function wellFormedCall(
  method: string,
  payload: Uint8Array,
  o: { binary: boolean; grpcWeb: boolean },
): { kind: "connect-unary" | "connect-stream" | "grpc-web"; contentType: string; body: Uint8Array } {
  const stream = method === "Subscribe";
  const kind = o.grpcWeb ? "grpc-web" : stream ? "connect-stream" : "connect-unary";
  const contentType = o.grpcWeb
    ? o.binary
      ? CONTENT_TYPES.grpcWebProto
      : CONTENT_TYPES.grpcWebJson
    : stream
      ? o.binary
        ? CONTENT_TYPES.connectStreamProto
        : CONTENT_TYPES.connectStreamJson
      : o.binary
        ? CONTENT_TYPES.connectProto
        : CONTENT_TYPES.connectJson;
  return { kind, contentType, body: kind === "connect-unary" ? payload : envelope(0, payload) };
}
