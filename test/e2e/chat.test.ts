/**
 * Connect `Chat`, full duplex over HTTP/1.1 (CHAT_HTTP1_FULL_DUPLEX=true), on a dev server of its
 * own: a Chat call that the server ends while the client still streams its request leaves
 * `wrangler dev`'s proxy unable to open the next WebSocket for a while (seen as a 10 s upgrade
 * timeout in the test that ran next), so it does not share the suite's server.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatMessageSchema, ChatService } from "../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../tools/dev-server";
import { connectTransports, sleep, streamRecorders, uniqueRoom, waitFor } from "./clients";

let server: DevServer;
beforeAll(async () => {
  server = await startDevServer({ vars: { CHAT_HTTP1_FULL_DUPLEX: "true" } });
}, READY_TIMEOUT_MS + 10_000);
afterAll(async () => {
  await server?.stop();
});

/** Records a running call's events; stopped after each test. */
const record = streamRecorders();

describe("Chat, full duplex over HTTP/1.1", () => {
  let client: Client<typeof ChatService>;
  beforeAll(() => {
    client = createClient(ChatService, connectTransports(server.baseUrl)["connect-json"]);
  });

  it("streams events back while the client is still sending; a refused message is an error event", async () => {
    const room = uniqueRoom("chat");
    let joined = () => {};
    const subscribed = new Promise<void>((r) => {
      joined = r;
    });
    let finish = () => {};
    const finished = new Promise<void>((r) => {
      finish = r;
    });
    async function* messages(): AsyncGenerator<MessageInitShape<typeof ChatMessageSchema>> {
      yield { room, user: "ann", message: "" };
      // Full duplex: the server's first event arrives before the client sends anything else.
      await subscribed;
      yield { message: "hello", id: "c-1" };
      yield { message: "bad id", id: "has spaces" };
      yield { message: "still here" };
      await finished;
    }
    const chat = record((signal) => client.chat(messages(), { signal }));
    await waitFor("subscribed", () => chat.events[0]?.kind === "subscribed");
    joined();
    await chat.waitMessages(2);
    expect(chat.messages().map((e) => [e.seq, e.user, e.text])).toEqual([
      ["1", "ann", "hello"],
      ["2", "ann", "still here"],
    ]);
    expect(chat.events.find((e) => e.kind === "error")).toMatchObject({ reason: "invalid_argument" });
    finish();
    await chat.stop();
    expect(chat.error).toBeUndefined();
  });

  it("ends the call with resource_exhausted for an oversized message, as a WebSocket closes with 1009", async () => {
    const room = uniqueRoom("chat-big");
    async function* messages(): AsyncGenerator<MessageInitShape<typeof ChatMessageSchema>> {
      yield { room, message: "before" };
      await waitFor("echo", () => chat.messages().length >= 1);
      yield { message: "x".repeat(65_537) };
      await sleep(3000);
    }
    const chat = record((signal) => client.chat(messages(), { signal }));
    await waitFor(
      "the call to end",
      () => chat.error,
      5000,
      () => chat.events,
    );
    expect(ConnectError.from(chat.error).code).toBe(Code.ResourceExhausted);
    expect(chat.messages().map((e) => e.text)).toEqual(["before"]);
  });
});
