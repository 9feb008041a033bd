/**
 * Unary and server-streaming requests are one small message, which Connect buffers anyway; they
 * are read and checked here first, for two faults of @connectrpc/connect 2.1 on workerd:
 * - a request it cannot parse as binary protobuf is reported as `internal`; every Connect server
 *   should say `invalid_argument`;
 * - when it refuses an oversized body (readMaxBytes) before reading it, the next request on the
 *   same keep-alive connection fails under `wrangler dev` ("worker restarted mid-request").
 * A bad request is answered in the caller's protocol.
 */
import { type DescMessage, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, endStreamFlag, endStreamToJson, errorToJson } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc-web";
import { readBodyBytes } from "../../worker/body";

type Protocol = "connect-unary" | "connect-stream" | "grpc-web";

/** The protocol of a content type and whether it is binary; undefined for anything else (Connect answers 415). */
function protocolOf(contentType: string): { protocol: Protocol; binary: boolean } | undefined {
  const type = contentType.split(";")[0].trim().toLowerCase();
  const match = /^application\/(?:(connect\+)|(grpc-web)\+?)?(proto|json)?$/.exec(type);
  if (!match || (!match[2] && !match[3])) return undefined;
  const protocol: Protocol = match[1] ? "connect-stream" : match[2] ? "grpc-web" : "connect-unary";
  return { protocol, binary: match[3] !== "json" };
}

/** The payload of an enveloped body (5-byte header); undefined when it cannot be checked here. */
function envelopePayload(body: Uint8Array): Uint8Array | undefined {
  if (body.byteLength < 5) return new Uint8Array(1).fill(0xff); // truncated: certainly malformed
  const flags = body[0];
  const length = new DataView(body.buffer, body.byteOffset).getUint32(1);
  if (flags & 0x01) return undefined; // compressed: left to Connect
  return body.subarray(5, 5 + length);
}

function errorResponse(protocol: Protocol, contentType: string, err: ConnectError): Response {
  switch (protocol) {
    case "connect-unary":
      return Response.json(errorToJson(err, undefined), { status: codeToHttpStatus(err.code) });
    case "connect-stream": {
      const json = new TextEncoder().encode(JSON.stringify(endStreamToJson(new Headers(), err, undefined)));
      return new Response(encodeEnvelope(endStreamFlag, json), { headers: { "Content-Type": contentType } });
    }
    case "grpc-web":
      return new Response(null, { headers: setTrailerStatus(new Headers({ "Content-Type": contentType }), err) });
  }
}

/**
 * Reads a request within `maxBytes` and, when binary, parses it as `input`. Returns an error
 * response for an oversized or malformed one, or a request with the same (buffered) body to hand
 * on to Connect.
 */
export async function checkRequest(req: Request, input: DescMessage, maxBytes: number): Promise<Request | Response> {
  const contentType = req.headers.get("Content-Type") ?? "";
  const kind = protocolOf(contentType);
  if (!kind || req.method !== "POST") return req;
  const { protocol, binary } = kind;
  let body: Uint8Array;
  try {
    body = await readBodyBytes(req, maxBytes);
  } catch {
    return errorResponse(
      protocol,
      contentType,
      new ConnectError(`request larger than ${maxBytes} bytes`, Code.ResourceExhausted),
    );
  }
  const payload = protocol === "connect-unary" ? body : envelopePayload(body);
  if (binary && payload) {
    try {
      fromBinary(input, payload);
    } catch (e) {
      const err = new ConnectError(`malformed ${input.typeName}: ${(e as Error).message}`, Code.InvalidArgument);
      return errorResponse(protocol, contentType, err);
    }
  }
  return new Request(req, { body });
}
