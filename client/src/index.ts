/**
 * @edge-relay/client: one API over every transport of the relay. `websocket` (default), `sse`
 * (with HTTP publish), `connect` (Connect-RPC Subscribe + Publish), or `auto` (WebSocket, falling
 * back to SSE for good when a WebSocket cannot be opened). For the smallest bundle with WebSocket
 * only, import `@edge-relay/client/websocket`.
 */
import { createRelayClient } from "./core/client.js";
import { connectTransport } from "./transports/connect.js";
import { sseTransport } from "./transports/sse.js";
import { webSocketTransport } from "./transports/websocket.js";
import type { ClientOptions, RelayClient } from "./types.js";

export { RelayError } from "./core/errors.js";
export type * from "./types.js";

export function createClient(options: ClientOptions): RelayClient {
  return createRelayClient(options, { websocket: webSocketTransport, sse: sseTransport, connect: connectTransport });
}
