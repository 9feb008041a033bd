/**
 * Malformed binary protobuf requests are `invalid_argument`, as every other Connect server says,
 * but @connectrpc/connect 2.1 reports a request it cannot parse as `internal`. So unary and
 * server-streaming requests in binary are parsed here first (they are one small message, buffered
 * by Connect anyway, within the same limit), and a bad one is answered in the caller's protocol.
 */
import { type DescMessage, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, endStreamFlag, endStreamToJson, errorToJson } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc-web";
import { readBodyBytes } from "../../worker/body";

type Protocol = "connect-unary" | "connect-stream" | "grpc-web";

/** The binary protocol of a content type, or undefined for JSON and anything else. */
function binaryProtocol(contentType: string): Protocol | undefined {
  const type = contentType.split(";")[0].trim().toLowerCase();
  if (type === "application/proto") return "connect-unary";
  if (type === "application/connect+proto") return "connect-stream";
  if (type === "application/grpc-web" || type === "application/grpc-web+proto") return "grpc-web";
  return undefined;
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
 * Checks a binary request against `input`. Returns an error response for a malformed one, or a
 * request with the same (buffered) body to hand on to Connect.
 */
export async function checkBinaryRequest(
  req: Request,
  input: DescMessage,
  maxBytes: number,
): Promise<Request | Response> {
  const contentType = req.headers.get("Content-Type") ?? "";
  const protocol = binaryProtocol(contentType);
  if (!protocol || req.method !== "POST") return req;
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
  if (payload) {
    try {
      fromBinary(input, payload);
    } catch (e) {
      const err = new ConnectError(`malformed ${input.typeName}: ${(e as Error).message}`, Code.InvalidArgument);
      return errorResponse(protocol, contentType, err);
    }
  }
  return new Request(req, { body });
}
