/**
 * Publishes survive a connection that drops: a publish whose answer was lost is sent again with
 * the same id and stored once; publishes made while offline wait in a bounded queue and go once
 * the client is back; past `maxQueued`, publish rejects at once. A WebSocket whose network went
 * away without a close notices by its heartbeat, reconnects and resumes.
 */
import { afterEach, describe, expect, inject, it } from "vitest";
import { getJson, publishJson, uniqueRoom, waitFor } from "../clients";
import {
  assertOnceInOrder,
  closeClients,
  connected,
  portOf,
  received,
  record,
  TRANSPORTS,
  tcpProxy,
  WebSocket,
} from "./helpers";

const baseUrl = inject("baseUrl");
afterEach(closeClients);

/** A `ws` WebSocket that, the first time an ack arrives, drops it and the connection with it. */
class LosesFirstAck extends WebSocket {
  static dropped = 0;
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === "message" && LosesFirstAck.dropped === 0 && String(args[0]).startsWith('{"ack"')) {
      LosesFirstAck.dropped++;
      this.terminate(); // the relay stored it and answered; the client never hears
      return true;
    }
    return super.emit(event, ...args);
  }
}

/** A fetch that loses the answer of the first request to a path ending in `suffix` (after the relay handled it). */
function losesFirstAnswer(suffix: string) {
  const lost: string[] = [];
  const f: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    const url = String(input);
    if (lost.length === 0 && init?.method === "POST" && url.endsWith(suffix)) {
      lost.push(url);
      await res.body?.cancel();
      throw new TypeError("fetch failed (the answer was lost)");
    }
    return res;
  };
  return { fetch: f, lost };
}

describe.each(TRANSPORTS)("%s", (transport) => {
  it("a publish retried after its answer was lost is stored once", async () => {
    const room = uniqueRoom(`cl-retry-${transport}`);
    const lossy = losesFirstAnswer(transport === "connect" ? "/relay.v1.ChatService/Publish" : "/messages");
    LosesFirstAck.dropped = 0;
    const a = record(baseUrl, room, { transport, since: 0, WebSocket: LosesFirstAck, fetch: lossy.fetch });
    await connected(a);
    const result = await a.client.publish("only once", { id: `once-${transport}` });
    if (transport === "websocket") {
      expect(LosesFirstAck.dropped).toBe(1);
      expect(a.client.getSnapshot().reconnects).toBe(1);
    } else expect(lossy.lost).toHaveLength(1);
    // The retry's answer: the original event, stored the first time.
    expect(result).toMatchObject({ seq: 1, text: "only once", id: `once-${transport}`, duplicate: true });
    await a.client.publish("next");
    await received(a, 2);
    expect(a.texts()).toEqual(["only once", "next"]);
    const history = await getJson<{ events: { text: string }[] }>(baseUrl, `/rooms/${room}/messages?since=0`);
    expect(history.body.events.map((e) => e.text)).toEqual(["only once", "next"]);
  });

  it("publishes made offline are queued (bounded) and sent once on reconnect, in order", async () => {
    const proxy = await tcpProxy(portOf(baseUrl));
    try {
      const room = uniqueRoom(`cl-queue-${transport}`);
      const a = record(proxy.url, room, { transport, since: 0, maxQueued: 3 });
      await connected(a);
      proxy.down();
      await waitFor("the client to notice", () => a.client.getSnapshot().state !== "connected", 10_000);
      const queued = ["q1", "q2", "q3"].map((t) => a.client.publish(t));
      expect(a.client.getSnapshot().pending).toBe(3);
      await expect(a.client.publish("q4")).rejects.toMatchObject({ code: "queue_full" });
      await new Promise((r) => setTimeout(r, 300)); // still offline: nothing was sent, nothing failed
      expect(a.client.getSnapshot().pending).toBe(3);
      proxy.up();
      const stored = await Promise.all(queued);
      expect(stored.map((e) => [e.seq, e.text, e.duplicate])).toEqual([
        [1, "q1", false],
        [2, "q2", false],
        [3, "q3", false],
      ]);
      await received(a, 3);
      expect(a.texts()).toEqual(["q1", "q2", "q3"]);
      assertOnceInOrder(a.messages);
      expect(a.client.getSnapshot().pending).toBe(0);
      const history = await getJson<{ events: unknown[] }>(baseUrl, `/rooms/${room}/messages?since=0`);
      expect(history.body.events).toHaveLength(3);
    } finally {
      await proxy.close();
    }
  });
});

it("a WebSocket that goes silent without a close is found dead by its heartbeat, and resumes", {
  timeout: 30_000,
}, async () => {
  const proxy = await tcpProxy(portOf(baseUrl));
  try {
    const room = uniqueRoom("cl-silent");
    const a = record(proxy.url, room, { since: 0 });
    await connected(a);
    await a.client.publish("before");
    await received(a, 1);
    proxy.freeze(); // the connection stays open and carries nothing: no close, no error
    await publishJson(baseUrl, room, { text: "while frozen" });
    const down = await waitFor(
      "the heartbeat to find the connection dead",
      () => a.states.find((s) => s.state === "disconnected"),
      15_000,
    );
    expect(down.reason?.code).toBe("timeout");
    proxy.up();
    await received(a, 2);
    expect(a.texts()).toEqual(["before", "while frozen"]);
    expect(a.client.getSnapshot()).toMatchObject({ state: "connected", reconnects: 1, lastSeq: 2 });
  } finally {
    await proxy.close();
  }
});
