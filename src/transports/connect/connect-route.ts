/**
 * `/relay.v1.ChatService/<Method>`: Connect (JSON and binary) and gRPC-Web, by @connectrpc/connect's
 * own protocol handlers mounted on the Hono router. Native gRPC is answered with a clear error:
 * it needs HTTP trailers, which Workers responses cannot carry.
 */
import { createConnectRouter, createContextValues } from "@connectrpc/connect";
import {
  type UniversalHandler,
  universalServerRequestFromFetch,
  universalServerResponseToFetch,
} from "@connectrpc/connect/protocol";
import type { Context } from "hono";
import { type Env, readLimits } from "../../config";
import { ChatService } from "../../gen/relay/v1/relay_pb";
import { callEnvKey, chatService } from "./chat-service";
import { coalesceChunks } from "./coalesce";
import { checkRequest } from "./request-check";

/** Handlers by path, built once per isolate (the limits cannot change while it lives). */
let handlers: Map<string, UniversalHandler> | undefined;

function handlersFor(env: Env): Map<string, UniversalHandler> {
  if (!handlers) {
    const limits = readLimits(env);
    const router = createConnectRouter({
      grpc: false,
      // A request message larger than a frame may be is `resource_exhausted` before it is parsed.
      readMaxBytes: limits.maxFrameBytes,
    });
    router.service(ChatService, chatService);
    handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  }
  return handlers;
}

/** A gRPC "trailers-only" response: status in the headers, which is all a Worker can send. */
function grpcUnsupported(): Response {
  return new Response(null, {
    status: 200,
    headers: {
      "Content-Type": "application/grpc",
      "grpc-status": "12",
      "grpc-message": encodeURIComponent(
        "native gRPC needs HTTP trailers, which Cloudflare Workers cannot send: use gRPC-Web or Connect",
      ),
    },
  });
}

/** Connect's answer for a method this service does not have, in the caller's protocol. */
function unimplemented(path: string, contentType: string): Response {
  const message = `no method ${path}: ChatService has Chat, Subscribe, Publish, History, Presence`;
  if (contentType.startsWith("application/grpc-web")) {
    return new Response(null, {
      status: 200,
      headers: { "Content-Type": contentType, "grpc-status": "12", "grpc-message": encodeURIComponent(message) },
    });
  }
  return Response.json({ code: "unimplemented", message }, { status: 501 });
}

export async function connectRoute(c: Context<{ Bindings: Env }>): Promise<Response> {
  const contentType = c.req.header("Content-Type") ?? "";
  if (/^application\/grpc(\+|;|$)/.test(contentType)) return grpcUnsupported();
  const handler = handlersFor(c.env).get(c.req.path);
  if (!handler) return unimplemented(c.req.path, contentType);
  let req = c.req.raw;
  if (handler.method.methodKind !== "bidi_streaming") {
    const checked = await checkRequest(req, handler.method.input, readLimits(c.env).maxFrameBytes + 5);
    if (checked instanceof Response) return checked;
    req = checked;
  }
  // On Cloudflare, `cf.httpProtocol` says whether the client came over HTTP/2; locally it is absent.
  const protocol = (req.cf as { httpProtocol?: string } | undefined)?.httpProtocol ?? "HTTP/1.1";
  const http2 = /^HTTP\/[23]/.test(protocol);
  const fullDuplex = http2 || readLimits(c.env).chatHttp1FullDuplex;
  const uReq = universalServerRequestFromFetch(req, {
    // Connect refuses bidi on HTTP/1.x with a bare 505; Chat decides itself and says why (chat-service.ts).
    httpVersion: "2",
  });
  const uRes = await handler({
    ...uReq,
    contextValues: createContextValues().set(callEnvKey, { env: c.env, fullDuplex }),
  });
  // Subscribe writes what is ready together as one chunk: a room batch is one write, not one per
  // event. (Chat is left as it is: its end is driven by the client's side, see chat-service.ts.)
  const body = uRes.body;
  const coalesce =
    handler.method.methodKind === "server_streaming" && body !== undefined && Symbol.asyncIterator in body;
  return universalServerResponseToFetch(coalesce ? { ...uRes, body: coalesceChunks(body) } : uRes);
}
