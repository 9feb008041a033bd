/**
 * The e2e tests' one set of clients, each a real third-party client over a real socket: a `ws`
 * WebSocket in every mode (plain, relay.v1.json, relay.v1.proto) that records what it receives and
 * can answer the room's flow-control pings, an `eventsource` EventSource that also records what
 * EventSource itself hides (heartbeat comments, `retry:` lines, the `disconnect` event, the body of
 * a refusal), connect-node transports and a recorder for their streams, HTTP helpers over fetch,
 * and bounded waits. Every wait has a timeout; every client has a close() for `finally`/`afterEach`.
 */
export * from "./clients/connect";
export * from "./clients/http";
export * from "./clients/json";
export * from "./clients/sse-client";
export * from "./clients/wait";
export * from "./clients/ws-client";
