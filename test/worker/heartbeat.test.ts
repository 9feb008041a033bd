/**
 * The liveness check: a client's `{"heartbeat":{}}` text frame is answered in kind on every
 * WebSocket mode (by the runtime's auto-response, so a hibernating room stays asleep), is never
 * published, and a relay.v1.proto client may send it binary.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { expect, it } from "vitest";
import { ClientFrameSchema, ServerFrameSchema } from "../../src/gen/relay/v1/relay_pb";
import { connectEveryMode, sleep } from "./helpers";

const HEARTBEAT = '{"heartbeat":{}}';

it("answers a heartbeat on every mode and publishes nothing", async () => {
  const room = "heartbeat";
  const { plain, json, proto } = await connectEveryMode(room);
  plain.ws.send(HEARTBEAT);
  json.ws.send(HEARTBEAT);
  proto.ws.send(HEARTBEAT);
  proto.ws.send(toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "heartbeat", value: {} } })));
  await Promise.all([plain.waitFor(2), json.waitFor(2), proto.waitFor(3)]);
  expect(plain.frames[1]).toBe(HEARTBEAT);
  expect(json.frames[1]).toBe(HEARTBEAT);
  expect(proto.frames[1]).toBe(HEARTBEAT);
  const binary = fromBinary(ServerFrameSchema, new Uint8Array(proto.frames[2] as ArrayBuffer));
  expect(binary.frame.case).toBe("heartbeat");
  await sleep(50);
  // Nothing was published: the log is empty and nobody got an event.
  const stats = await env.ROOM.getByName(room).stats();
  expect(stats.lastSeq).toBe(0);
  expect([plain.frames.length, json.frames.length, proto.frames.length]).toEqual([2, 2, 3]);
  // The text frames were answered by the runtime itself, not by waking the room's handler.
  await runInDurableObject(env.ROOM.getByName(room), (_room, state) => {
    for (const ws of state.getWebSockets()) expect(state.getWebSocketAutoResponseTimestamp(ws)).toBeInstanceOf(Date);
  });
  for (const s of [plain, json, proto]) s.ws.close();
});
