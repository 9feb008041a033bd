/**
 * The cross-transport behaviour suite: every scenario of scenarios.case.ts against every driver of
 * drivers.ts (WebSocket plain, relay.v1.json and relay.v1.proto; SSE; Connect JSON and binary;
 * gRPC-Web), over real clients and sockets, against this file's own `wrangler dev` with small
 * limits so that every case is cheap. Scenarios a driver cannot run are not generated for it.
 */
import { afterAll, afterEach, beforeAll, describe, it } from "vitest";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
import { allDrivers } from "./drivers";
import { type Limits, type Suite, scenarios } from "./scenarios.case";

const limits: Limits = {
  heartbeatSeconds: 1,
  // A replay part is ~16 KiB: a log of 30 small events fits in one, 24 events of 1.2 KB take three.
  replayMaxBytes: 16384,
  // At least twice REPLAY_MAX_BYTES (the relay refuses less); a stalled reader passes it with ~16 messages.
  subscriberMaxBehindBytes: 32768,
  historyMaxCount: 30,
  maxConnectionsPerRoom: 6,
  maxMessageBytes: 2048,
};

const suite: Suite = { baseUrl: "", drivers: [], limits };
suite.drivers = allDrivers(suite);

let server: DevServer | undefined;
beforeAll(async () => {
  server = await startDevServer({
    vars: {
      HEARTBEAT_SECONDS: String(limits.heartbeatSeconds),
      REPLAY_MAX_BYTES: String(limits.replayMaxBytes),
      SUBSCRIBER_MAX_BEHIND_BYTES: String(limits.subscriberMaxBehindBytes),
      HISTORY_MAX_COUNT: String(limits.historyMaxCount),
      MAX_CONNECTIONS_PER_ROOM: String(limits.maxConnectionsPerRoom),
      MAX_MESSAGE_BYTES: String(limits.maxMessageBytes),
      PUBLISH_RATE_PER_SECOND: "0",
      CHAT_HTTP1_FULL_DUPLEX: "true",
    },
  });
  suite.baseUrl = server.baseUrl;
}, READY_TIMEOUT_MS + 15_000);

afterEach(async () => {
  for (const d of suite.drivers) await d.dispose();
});

afterAll(async () => {
  await server?.stop();
});

describe.each(suite.drivers.map((d) => [d.name, d] as const))("%s", (_name, driver) => {
  for (const scenario of scenarios) {
    if (scenario.applies && !scenario.applies(driver)) continue;
    it(scenario.name, { timeout: scenario.timeout }, () => scenario.run(driver, suite));
  }
});
