/**
 * Unary requests are one small message, which Connect buffers anyway; they are read (bounded in
 * size and time) and checked here first, for faults of @connectrpc/connect 2.1 on workerd:
 * - a request it cannot parse as binary protobuf is reported as `internal`, and so is a
 *   compressed message when no compression was negotiated; both are the client's error
 *   (`invalid_argument`);
 * - when it refuses an oversized body before reading it, the next request on the same keep-alive
 *   connection fails under `wrangler dev` (docs/runtime-notes.md).
 * A bad request is answered in the caller's protocol.
 */
import { type DescMessage, fromBinary } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { compressedFlag } from "@connectrpc/connect/protocol";
import * as connect from "@connectrpc/connect/protocol-connect";
import * as grpcWeb from "@connectrpc/connect/protocol-grpc-web";
import { discardBody, readBody } from "../../edge/body";
import { RelayError } from "../../errors";
import { toConnectError } from "./errors";

type Protocol = "connect-unary" | "grpc-web";

/**
 * The protocol of a unary call's content type and whether it is binary; undefined for anything
 * else, a streaming content type included (Connect answers those with 415).
 */
function protocolOf(contentType: string | null): { protocol: Protocol; binary: boolean } | undefined {
  const c = connect.parseContentType(contentType);
  if (c && !c.stream) return { protocol: "connect-unary", binary: c.binary };
  const g = grpcWeb.parseContentType(contentType);
  if (g && !g.text) return { protocol: "grpc-web", binary: g.binary };
  return undefined;
}

function errorResponse(protocol: Protocol, contentType: string, err: ConnectError): Response {
  if (protocol === "connect-unary") {
    // The error's metadata (the relay's own code) as headers, as Connect sends a unary error's.
    return Response.json(connect.errorToJson(err, undefined), {
      status: connect.codeToHttpStatus(err.code),
      headers: err.metadata,
    });
  }
  // gRPC-Web: trailers-only, the status in the headers.
  return new Response(null, { headers: grpcWeb.setTrailerStatus(new Headers({ "Content-Type": contentType }), err) });
}

/**
 * Checks a request envelope's flags: a client may set only the compressed bit (0x01), and only
 * when a compression was negotiated, which the relay never does; the rest are reserved (0x80 is
 * the server's trailers, 0x02 Connect's end of stream).
 */
export function checkRequestFlags(flags: number): void {
  if (flags & compressedFlag) {
    throw new RelayError("invalid_argument", "compressed message, but no compression was negotiated");
  }
  if (flags !== 0) throw new RelayError("invalid_argument", `reserved envelope flags 0x${flags.toString(16)}`);
}

/** The payload of an enveloped body (5-byte head), or throws for one that is truncated or flagged. */
function envelopePayload(body: Uint8Array): Uint8Array {
  if (body.byteLength < 5) throw new RelayError("invalid_argument", "truncated message envelope");
  checkRequestFlags(body[0]);
  const length = new DataView(body.buffer, body.byteOffset).getUint32(1);
  return body.subarray(5, 5 + length);
}

/**
 * Reads a unary request within `maxBytes` and `timeoutMs` and, when binary, parses it as `input`.
 * Returns an error response for an oversized, slow or malformed one, or the (buffered) body to
 * hand on to Connect; null for a request that is not a POST (a GET carries its message in the URL).
 */
export async function checkRequest(
  req: Request,
  input: DescMessage,
  o: { maxBytes: number; timeoutMs: number },
): Promise<Uint8Array | Response | null> {
  const contentType = req.headers.get("Content-Type") ?? "";
  if (req.method !== "POST") return null;
  const kind = protocolOf(contentType);
  if (!kind) {
    // Connect would answer 415 holding the body unread, which breaks the connection it came on
    // (edge/body.ts): read it first, then answer as Connect does.
    await discardBody(req);
    return new Response(null, { status: 415 });
  }
  const { protocol, binary } = kind;
  try {
    const body = await readBody(req, o);
    const payload = protocol === "connect-unary" ? body : envelopePayload(body);
    if (binary) {
      try {
        fromBinary(input, payload);
      } catch (e) {
        throw new RelayError("invalid_argument", `malformed ${input.typeName}: ${(e as Error).message}`);
      }
    }
    return body;
  } catch (e) {
    return errorResponse(protocol, contentType, toConnectError(e));
  }
}
