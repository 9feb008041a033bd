/**
 * `/relay.v1.ChatService/<Method>`: Connect (JSON and binary) and gRPC-Web. The unary methods are
 * served by @connectrpc/connect's own protocol handlers mounted on the Hono router; Subscribe and
 * Chat stream through the edge subscription (streaming-calls.ts). Native gRPC is answered with a
 * clear error: it needs HTTP trailers, which Workers responses cannot carry.
 */
import { createContextValues, createServiceImplSpec } from "@connectrpc/connect";
import {
  createAsyncIterable,
  createUniversalServiceHandlers,
  type UniversalHandler,
  type UniversalServerResponse,
  universalServerRequestFromFetch,
} from "@connectrpc/connect/protocol";
import { createHandlerFactory as connectProtocol } from "@connectrpc/connect/protocol-connect";
import { createHandlerFactory as grpcWebProtocol } from "@connectrpc/connect/protocol-grpc-web";
import { discardBody } from "../../edge/body";
import { joinBytes } from "../../edge/byte-stream";
import type { RelayContext } from "../../edge/context";
import { RelayError } from "../../errors";
import { ChatService } from "../../gen/relay/v1/relay_pb";
import type { Settings } from "../../settings";
import { toConnectError } from "./errors";
import { checkRequest } from "./request-check";
import { refusal, streamProtocolOf } from "./stream-call";
import { chatCall, subscribeCall } from "./streaming-calls";
import { callKey, unaryService } from "./unary-service";

const SUBSCRIBE = `/${ChatService.typeName}/${ChatService.method.subscribe.name}`;
const CHAT = `/${ChatService.typeName}/${ChatService.method.chat.name}`;

/** Unary handlers by path, built once per settings (once per isolate). */
const unaryHandlers = new WeakMap<Settings, Map<string, UniversalHandler>>();

function handlersFor(settings: Settings): Map<string, UniversalHandler> {
  let handlers = unaryHandlers.get(settings);
  if (!handlers) {
    // A request message larger than a frame may be is `resource_exhausted` before it is parsed.
    const options = { readMaxBytes: settings.maxFrameBytes };
    // Connect and gRPC-Web only, not createConnectRouter: it would bundle native gRPC's handler,
    // which a Worker cannot serve (no trailers; answered above with a clear error).
    const list = createUniversalServiceHandlers(createServiceImplSpec(ChatService, unaryService), [
      grpcWebProtocol(options),
      connectProtocol(options),
    ]);
    handlers = new Map(list.map((h) => [h.requestPath, h]));
    unaryHandlers.set(settings, handlers);
  }
  return handlers;
}

/** A gRPC "trailers-only" response: status in the headers, which is all a Worker can send. */
function grpcStatus(contentType: string, status: number, message: string): Response {
  return new Response(null, {
    status: 200,
    headers: {
      "Content-Type": contentType,
      "grpc-status": String(status),
      "grpc-message": encodeURIComponent(message),
    },
  });
}

/** Connect's answer for a method this service does not have, in the caller's protocol. */
function unimplemented(path: string, contentType: string): Response {
  const message = `no method ${path}: ChatService has Chat, Subscribe, Publish, History, Presence`;
  if (contentType.startsWith("application/grpc-web")) return grpcStatus(contentType, 12, message);
  return Response.json({ code: "unimplemented", message }, { status: 501 });
}

export async function connectRoute(c: RelayContext): Promise<Response> {
  const settings = c.var.settings;
  const contentType = c.req.header("Content-Type") ?? "";
  const req = c.req.raw;
  if (/^application\/grpc(\+|;|$)/.test(contentType)) {
    await discardBody(req);
    return grpcStatus(
      contentType,
      12,
      "native gRPC needs HTTP trailers, which Cloudflare Workers cannot send: use gRPC-Web or Connect",
    );
  }
  if (c.req.path === SUBSCRIBE || c.req.path === CHAT) {
    const p = streamProtocolOf(contentType || null);
    if (!p || req.method !== "POST") {
      await discardBody(req);
      return new Response(null, { status: p ? 405 : 415 });
    }
    if (c.req.path === SUBSCRIBE) return subscribeCall(req, c.env, settings, p);
    // On Cloudflare, `cf.httpProtocol` says whether the client came over HTTP/2; locally it is absent.
    const protocol = (req.cf as { httpProtocol?: string } | undefined)?.httpProtocol ?? "HTTP/1.1";
    if (!/^HTTP\/[23]/.test(protocol) && !settings.chatHttp1FullDuplex) {
      // A refused Chat client may keep its request stream open: read it briefly, then answer.
      await discardBody(req, { timeoutMs: 2000 });
      const why =
        "Chat needs a full-duplex stream (HTTP/2); over HTTP/1.1 use Subscribe to receive and Publish to send";
      return refusal(p, toConnectError(new RelayError("upgrade_required", why)));
    }
    return chatCall(req, c.env, settings, p);
  }
  const handler = handlersFor(settings).get(c.req.path);
  if (!handler) {
    await discardBody(req);
    return unimplemented(c.req.path, contentType);
  }
  const checked = await checkRequest(req, handler.method.input, {
    maxBytes: settings.maxFrameBytes + 5,
    timeoutMs: settings.bodyTimeoutMs,
  });
  if (checked instanceof Response) return checked;
  const uReq =
    checked === null
      ? universalServerRequestFromFetch(req, { httpVersion: "1.1" })
      : // The body already read, as it is: no second Request and stream around it.
        {
          httpVersion: "1.1",
          method: req.method,
          url: req.url,
          header: req.headers,
          signal: req.signal,
          body: createAsyncIterable([checked]),
        };
  const uRes = await handler({
    ...uReq,
    contextValues: createContextValues().set(callKey, { env: c.env, settings, request: req }),
  });
  return unaryResponse(uRes);
}

/**
 * A unary call's answer with its body as bytes: it is one message, complete once the handler
 * returns, so it needs no JavaScript stream pulling it chunk by chunk into the Response (what
 * Connect's universalServerResponseToFetch makes, for every body).
 */
async function unaryResponse(uRes: UniversalServerResponse): Promise<Response> {
  let body: Uint8Array | null = null;
  if (uRes.body !== undefined) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of uRes.body) chunks.push(chunk);
    body = joinBytes(chunks);
  }
  return new Response(body, { status: uRes.status, headers: uRes.header });
}
