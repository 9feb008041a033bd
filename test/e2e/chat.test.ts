/**
 * Connect `Chat`, full duplex over HTTP/1.1 (CHAT_HTTP1_FULL_DUPLEX=true), on a dev server of its
 * own: a Chat call that the server ends while the client still streams its request leaves
 * `wrangler dev`'s proxy unable to open the next WebSocket for a while (seen as a 10 s upgrade
 * timeout in the test that ran next), so it does not share the suite's server, and that test runs
 * last here. Chat with a token: joining needs `subscribe`, each message `publish`.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { sign } from "hono/jwt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatMessageSchema, ChatService } from "../../src/gen/relay/v1/relay_pb";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../tools/dev-server";
import { connectTransports, sleep, streamRecorders, uniqueRoom, waitFor } from "./clients";

const SECRET = "chat-test-secret";
let server: DevServer;
beforeAll(async () => {
  server = await startDevServer({ vars: { CHAT_HTTP1_FULL_DUPLEX: "true", RELAY_JWT_SECRET: SECRET } });
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

  it("with a token: joins with `subscribe`, publishes as the token's sub, and a message without `publish` is an error event", async () => {
    const room = uniqueRoom("chat-auth");
    const exp = Math.floor(Date.now() / 1000) + 60;
    const reader = await sign({ sub: "rita", exp, relay: { subscribe: [room] } }, SECRET, "HS256");
    const writer = await sign({ sub: "will", exp, relay: { subscribe: [room], publish: [room] } }, SECRET, "HS256");
    const chatAs = (token: string, text: string) => {
      async function* messages(): AsyncGenerator<MessageInitShape<typeof ChatMessageSchema>> {
        yield { room, user: "mallory", message: "" };
        await waitFor("subscribed", () => chat.events[0]?.kind === "subscribed");
        yield { message: text, id: `${text.replace(" ", "-")}-1` };
        await sleep(3000);
      }
      const chat = record((signal) =>
        client.chat(messages(), { signal, headers: { Authorization: `Bearer ${token}` } }),
      );
      return chat;
    };
    const denied = chatAs(reader, "from rita");
    await waitFor(
      "an error event",
      () => denied.events.find((e) => e.kind === "error"),
      5000,
      () => denied.events,
    );
    expect(denied.events.find((e) => e.kind === "error")).toMatchObject({ reason: "permission_denied" });
    const allowed = chatAs(writer, "from will");
    await waitFor(
      "will's message",
      () => allowed.messages().length > 0,
      5000,
      () => ({ events: allowed.events, error: allowed.error }),
    );
    expect(allowed.messages().map((e) => [e.user, e.text])).toEqual([["will", "from will"]]);
    expect(denied.messages().map((e) => [e.user, e.text])).toEqual([["will", "from will"]]);
  });

  it("answers a text over the limit with an error event and goes on; ends the call for a message over the frame limit", async () => {
    const room = uniqueRoom("chat-big");
    async function* messages(): AsyncGenerator<MessageInitShape<typeof ChatMessageSchema>> {
      yield { room, message: "before" };
      await waitFor("echo", () => chat.messages().length >= 1);
      // Over MAX_MESSAGE_BYTES, within the frame limit: refused like a WebSocket's, the stream goes on.
      yield { message: "x".repeat(65_537), id: "big-1" };
      await waitFor("the error event", () => chat.events.some((e) => e.kind === "error"));
      yield { message: "after" };
      await waitFor("the second echo", () => chat.messages().length >= 2);
      // Over the frame limit (the text limit plus 1 KiB): the call ends, as a WebSocket closes with 1009.
      yield { message: "x".repeat(65_537 + 1024) };
      await sleep(3000);
    }
    const chat = record((signal) => client.chat(messages(), { signal }));
    await waitFor(
      "the call to end",
      () => chat.error,
      8000,
      () => chat.events,
    );
    expect(chat.events.find((e) => e.kind === "error")).toMatchObject({ reason: "too_large", id: "big-1" });
    expect(ConnectError.from(chat.error).code).toBe(Code.ResourceExhausted);
    expect(chat.messages().map((e) => e.text)).toEqual(["before", "after"]);
  });
});
