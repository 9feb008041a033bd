/**
 * @edge-relay/client/websocket: the same client, WebSocket only, without the protobuf runtime or
 * Connect (a few KiB; see the size budget in the README). `transport` may only be "websocket".
 */
import { createRelayClient } from "./core/client.js";
import { webSocketTransport } from "./transports/websocket.js";
import type { ClientOptions, RelayClient } from "./types.js";

export { RelayError } from "./core/errors.js";
export type * from "./types.js";

export function createClient(options: ClientOptions): RelayClient {
  return createRelayClient(options, { websocket: webSocketTransport });
}
