/**
 * The size budget: `@edge-relay/client/websocket`, bundled and minified as an application would,
 * then gzipped, stays under WEBSOCKET_BUDGET (client/scripts/size.mjs) and pulls in no package:
 * no protobuf runtime, no Connect, no SSE parser.
 */
import { expect, it } from "vitest";
import { measure, WEBSOCKET_BUDGET } from "../../../client/scripts/size.mjs";

it("the WebSocket entry is within its min+gzip budget and carries no protobuf or Connect", async () => {
  const ws = await measure("websocket.ts");
  expect(ws.packages).toEqual([]);
  expect(ws.gzip, `websocket entry: ${ws.gzip} bytes min+gzip, budget ${WEBSOCKET_BUDGET}`).toBeLessThanOrEqual(
    WEBSOCKET_BUDGET,
  );
  const full = await measure("index.ts");
  expect(full.packages).toContain("@connectrpc/connect-web");
  console.log(`min+gzip: websocket entry ${ws.gzip} B (budget ${WEBSOCKET_BUDGET} B), full entry ${full.gzip} B`);
});
