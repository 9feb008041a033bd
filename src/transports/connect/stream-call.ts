/**
 * Streamed responses of Connect and gRPC-Web (Subscribe and Chat), written from the bytes the
 * edge subscription hands over. @connectrpc/connect's handlers serialize a response stream one
 * message at a time and have no way to write messages that are already encoded; the room sends
 * a batch of events as the exact length-prefixed messages these protocols carry, so they are
 * written here as they are: one write per batch, nothing parsed. Everything else of the protocols
 * comes from @connectrpc/connect's own helpers: content types, compression negotiation, timeouts,
 * envelopes, end-of-stream messages and gRPC-Web trailers.
 */
import {
  type DescMessage,
  fromBinary,
  fromJsonString,
  type MessageShape,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import {
  compressionNegotiate,
  type EnvelopedMessage,
  encodeEnvelope,
  pipe,
  type Serialization,
  transformParseEnvelope,
  transformSplitEnvelope,
} from "@connectrpc/connect/protocol";
import * as connect from "@connectrpc/connect/protocol-connect";
import * as grpcWeb from "@connectrpc/connect/protocol-grpc-web";
import { byteStream } from "../../edge/byte-stream";
import { RelayError } from "../../errors";
import type { BridgeFormat } from "../../protocol/formats";
import { toConnectError } from "./errors";
import { checkRequestFlags } from "./request-check";

/** The protocol and codec of one streaming call. */
export interface StreamProtocol {
  name: "connect" | "grpc-web";
  binary: boolean;
  /** The bridge format whose bytes this call writes as they are. */
  format: BridgeFormat;
}

/** The streaming protocol of a request, or undefined when its content type is none that is served (415). */
export function streamProtocolOf(contentType: string | null): StreamProtocol | undefined {
  const c = connect.parseContentType(contentType);
  if (c?.stream) return { name: "connect", binary: c.binary, format: c.binary ? "envelope-proto" : "envelope-json" };
  const g = grpcWeb.parseContentType(contentType);
  // grpc-web-text (base64 bodies) is not served: browsers' grpc-web clients can use binary.
  if (g && !g.text)
    return { name: "grpc-web", binary: g.binary, format: g.binary ? "envelope-proto" : "envelope-json" };
  return undefined;
}

function responseContentType(p: StreamProtocol): string {
  if (p.name === "connect") return p.binary ? connect.contentTypeStreamProto : connect.contentTypeStreamJson;
  return p.binary ? grpcWeb.contentTypeProto : grpcWeb.contentTypeJson;
}

/**
 * The call's own refusals before any message is read: an unsupported compression (Connect says
 * `unimplemented`), a malformed timeout. Returns the timeout in ms, when the client set one.
 */
export function checkCallHeaders(p: StreamProtocol, headers: Headers): { timeoutMs?: number } {
  const encoding = p.name === "connect" ? connect.headerStreamEncoding : grpcWeb.headerEncoding;
  const accept = p.name === "connect" ? connect.headerStreamAcceptEncoding : grpcWeb.headerAcceptEncoding;
  const compression = compressionNegotiate([], headers.get(encoding), headers.get(accept), accept);
  if (compression.error) throw compression.error;
  const timeout =
    p.name === "connect"
      ? connect.parseTimeout(headers.get(connect.headerTimeout), Number.MAX_SAFE_INTEGER)
      : grpcWeb.parseTimeout(headers.get(grpcWeb.headerTimeout), Number.MAX_SAFE_INTEGER);
  if (timeout.error) throw timeout.error;
  return { timeoutMs: timeout.timeoutMs };
}

/** A compressed message without a negotiated compression, or a reserved flag, is the client's error, not ours. */
async function* refuseFlagged(envelopes: AsyncIterable<EnvelopedMessage>): AsyncIterable<EnvelopedMessage> {
  for await (const e of envelopes) {
    checkRequestFlags(e.flags);
    yield e;
  }
}

/**
 * Parses request messages. (Connect's own binary serialization reports a message it cannot parse
 * as `internal`; it is the client's error.)
 */
function inputSerialization<D extends DescMessage>(schema: D, binary: boolean): Serialization<MessageShape<D>> {
  const text = new TextDecoder();
  return {
    parse(data) {
      try {
        return binary ? fromBinary(schema, data) : fromJsonString(schema, text.decode(data));
      } catch (e) {
        throw new RelayError("invalid_argument", `malformed ${schema.typeName}: ${(e as Error).message}`);
      }
    },
    serialize() {
      throw new RelayError("internal", "request messages are only read");
    },
  };
}

/** The request messages of a call, parsed as `schema`, each at most `maxBytes`. */
export function requestMessages<D extends DescMessage>(
  body: AsyncIterable<Uint8Array>,
  schema: D,
  binary: boolean,
  maxBytes: number,
): AsyncIterable<MessageShape<D>> {
  return pipe(
    body,
    transformSplitEnvelope(maxBytes),
    refuseFlagged,
    transformParseEnvelope(inputSerialization(schema, binary), connect.endStreamFlag),
  ) as AsyncIterable<MessageShape<D>>;
}

const utf8 = new TextEncoder();

/**
 * One message in the call's codec (binary, or the JSON mapping as Connect's JSON codec writes
 * it), enveloped: for what the subscription does not carry (heartbeats, Chat's refusals).
 */
export function envelope<D extends DescMessage>(p: StreamProtocol, schema: D, message: MessageShape<D>): Uint8Array {
  return encodeEnvelope(0, p.binary ? toBinary(schema, message) : utf8.encode(toJsonString(schema, message)));
}

/** The last message of a response: Connect's end-of-stream message, or gRPC-Web's trailers. */
function endOfStream(p: StreamProtocol, error: ConnectError | undefined): Uint8Array {
  if (p.name === "connect") {
    const end = connect.createEndStreamSerialization(undefined).serialize({ metadata: new Headers(), error });
    return encodeEnvelope(connect.endStreamFlag, end);
  }
  const trailer = grpcWeb.setTrailerStatus(new Headers(), error);
  return encodeEnvelope(grpcWeb.trailerFlag, grpcWeb.createTrailerSerialization().serialize(trailer));
}

/** Writes bytes to a streamed response; resolves once the client's stream has taken them. */
export type WriteBytes = (bytes: Uint8Array) => Promise<unknown>;

/**
 * A streamed response in the call's protocol: headers at once (clients see the stream open
 * before the first message), then whatever `body` writes, then the end of the stream with the
 * error `body` resolves to (none: a normal end).
 */
export function streamResponse(
  p: StreamProtocol,
  body: (write: WriteBytes, signal: AbortSignal) => Promise<ConnectError | undefined>,
  requestSignal: AbortSignal,
): Response {
  const out = byteStream();
  const ac = new AbortController();
  const stop = () => ac.abort();
  requestSignal.addEventListener("abort", stop);
  out.gone.addEventListener("abort", stop);
  (async () => {
    let error: ConnectError | undefined;
    try {
      error = await body(out.write, ac.signal);
    } catch (e) {
      error = toConnectError(e);
    }
    requestSignal.removeEventListener("abort", stop);
    if (!ac.signal.aborted) await out.write(endOfStream(p, error));
    await out.close();
  })();
  return new Response(out.readable, { status: 200, headers: { "Content-Type": responseContentType(p) } });
}

/** A call refused before its stream starts, in its protocol's terms (status 200, the error at the end). */
export function refusal(p: StreamProtocol, error: ConnectError): Response {
  if (p.name === "grpc-web") {
    // Trailers-only: the status in the headers.
    const headers = grpcWeb.setTrailerStatus(new Headers({ "Content-Type": responseContentType(p) }), error);
    return new Response(null, { status: 200, headers });
  }
  return new Response(endOfStream(p, error), { status: 200, headers: { "Content-Type": responseContentType(p) } });
}
