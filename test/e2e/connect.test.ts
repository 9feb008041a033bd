/**
 * What only Connect-RPC promises (everything shared by the transports is in behaviour/): the unary
 * History and Presence methods over connect-node (Connect JSON and binary, gRPC-Web) and `buf curl`
 * (Connect, gRPC-Web). Chat is in chat.test.ts.
 */
import { spawn } from "node:child_process";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, inject, it } from "vitest";
import { ChatService } from "../../src/gen/relay/v1/relay_pb";
import { connectTransports, publishJson, streamRecorders, uniqueRoom, waitFor } from "./clients";

const baseUrl = inject("baseUrl");
const transports = connectTransports(baseUrl);

/** Records a running call's events; stopped after each test. */
const record = streamRecorders();

/** Runs `buf curl` in its own process group; stops it (the whole group) once `until(stdout)` or at `ms`. */
function bufCurl(
  args: string[],
  until?: (out: string) => boolean,
  ms = 15000,
  onOutput?: (out: string) => void,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn("node_modules/.bin/buf", ["curl", "--schema", "proto", ...args], { detached: true });
    let out = "";
    let err = "";
    const kill = () => {
      try {
        process.kill(-(child.pid as number), "SIGKILL");
      } catch {
        // Already gone.
      }
    };
    const timer = setTimeout(kill, ms);
    child.stdout.on("data", (d) => {
      out += d;
      onOutput?.(out);
      if (until?.(out)) kill();
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe.each(Object.keys(transports) as (keyof typeof transports)[])("connect-node over %s", (name) => {
  const client: Client<typeof ChatService> = createClient(ChatService, transports[name]);

  it("reads history in pages and presence", async () => {
    const room = uniqueRoom("cn");
    const published = [];
    for (const text of ["one", "two", "three"])
      published.push((await client.publish({ room, text, user: "ann" })).event);
    const page = await client.history({ room, since: 0n, limit: 2 });
    expect(page.events).toEqual(published.slice(0, 2));
    expect(page).toMatchObject({ firstSeq: 1n, lastSeq: 3n, hasMore: true, epoch: published[0]?.epoch });
    const rest = await client.history({ room, since: 2n });
    expect(rest.events).toEqual(published.slice(2));
    expect(rest.hasMore).toBe(false);

    expect((await client.presence({ room })).members).toEqual([]);
    const sub = record((signal) => client.subscribe({ room }, { signal }));
    await waitFor("subscribed", () => sub.events[0]?.kind === "subscribed");
    const presence = await client.presence({ room });
    expect(presence.room).toBe(room);
    expect(presence.members.map((m) => m.transports)).toEqual([["connect"]]);
  });
});

describe("the relay's own error code", () => {
  for (const protocol of ["connect-json", "connect-proto", "grpc-web"] as const) {
    it(`rides on every ${protocol} error as Relay-Error-Code, where Connect's code is coarser`, async () => {
      const client = createClient(ChatService, transports[protocol]);
      const codeOf = async (call: Promise<unknown>) => {
        const e = await call.then(
          () => undefined,
          (err: unknown) => err,
        );
        return e instanceof ConnectError ? [Code[e.code], e.metadata.get("relay-error-code")] : ["no error"];
      };
      // Unary: resource_exhausted is too_large here, not rate_limited.
      expect(await codeOf(client.publish({ room: uniqueRoom("code"), text: "x".repeat(70_000) }))).toEqual([
        "ResourceExhausted",
        "too_large",
      ]);
      // Refused inside the handler (the room name), not by the body check.
      expect(await codeOf(client.history({ room: ".." }))).toEqual(["InvalidArgument", "invalid_argument"]);
      // A stream refused before it starts.
      const refused = record((signal) => client.subscribe({ room: "..", since: 0n }, { signal }));
      await waitFor("the refusal", () => refused.ended);
      expect([refused.error && Code[refused.error.code], refused.error?.metadata.get("relay-error-code")]).toEqual([
        "InvalidArgument",
        "invalid_argument",
      ]);
    });
  }
});

describe("buf curl", () => {
  for (const protocol of ["connect", "grpcweb"]) {
    it(`calls Publish, History and Subscribe with --protocol ${protocol}`, async () => {
      const room = uniqueRoom(`buf-${protocol}`);
      const pub = await bufCurl([
        "--protocol",
        protocol,
        "-d",
        JSON.stringify({ room, text: "via buf", id: "b-1" }),
        `${baseUrl}/relay.v1.ChatService/Publish`,
      ]);
      expect(pub.err).toBe("");
      expect(JSON.parse(pub.out).event).toMatchObject({ room, seq: "1", text: "via buf", id: "b-1" });
      const hist = await bufCurl([
        "--protocol",
        protocol,
        "-d",
        JSON.stringify({ room, since: "0" }),
        `${baseUrl}/relay.v1.ChatService/History`,
      ]);
      expect(JSON.parse(hist.out).events.map((e: { text: string }) => e.text)).toEqual(["via buf"]);
      // A stream: buf prints each event as it arrives; stop once the live one is there.
      let published: Promise<unknown> | undefined;
      const sub = bufCurl(
        [
          "--protocol",
          protocol,
          "-d",
          JSON.stringify({ room, since: "0" }),
          `${baseUrl}/relay.v1.ChatService/Subscribe`,
        ],
        (out) => out.includes("live via http"),
        15000,
        (out) => {
          // Live once the replay is out: publish the next message then, once.
          if (!published && out.includes('"text": "via buf"')) {
            published = publishJson(baseUrl, room, { text: "live via http" });
          }
        },
      );
      const { out } = await sub;
      await published;
      expect(out).toContain('"kind": "subscribed"');
      expect(out.indexOf('"text": "via buf"')).toBeLessThan(out.indexOf('"text": "live via http"'));
    });
  }
});
